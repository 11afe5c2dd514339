"""`--shard i/n`: audit one of n deterministic parts of an inventory, so n machines share a fleet.

A host's shard is a stable hash of its inventory name (SHA-256, not Python's per-process `hash`):
the same name lands in the same shard on every machine, in every run and in every Python version,
whatever the order or the other hosts of the inventory. Every host is in exactly one shard, so the
shards' evidence, merged with `certaudit merge`, covers the inventory once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from certaudit.errors import CertauditError

__all__ = ["Shard", "ShardError", "parse_shard", "shard_index", "split"]

SHARD_RE = re.compile(r"^\s*([0-9]{1,4})\s*/\s*([0-9]{1,4})\s*$")  # ASCII digits: int() takes others, a person means none
MAX_SHARDS = 1000
T = TypeVar("T")


class ShardError(CertauditError):
    """A --shard value that cannot be used."""


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, name: str) -> bool:
        return shard_index(name, self.count) == self.index

    def select(self, items: Iterable[T], name_of: Any = str) -> list[T]:
        """The items whose name (name_of(item)) falls in this shard, in their order."""
        return [item for item in items if self.holds(name_of(item))]

    def as_dict(self, inventory_hosts: int) -> dict[str, int]:
        return {"index": self.index, "count": self.count, "inventory_hosts": inventory_hosts}


def parse_shard(text: str) -> Shard:
    """`i/n` with 1 <= i <= n <= 1000; raises ShardError saying what is expected."""
    match = SHARD_RE.fullmatch(text)
    if not match:
        raise ShardError(f"--shard {text!r}: expected i/n, the i-th of n shards (for example 2/3)")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise ShardError(f"--shard {text!r}: the number of shards must be from 1 to {MAX_SHARDS}")
    if not 1 <= index <= count:
        raise ShardError(f"--shard {text!r}: the shard must be from 1 to {count}")
    return Shard(index, count)


def shard_index(name: str, count: int) -> int:
    """The 1-based shard of an inventory host name among `count` shards."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def split(names: Sequence[str], count: int) -> list[list[str]]:
    """Every shard's names, shard 1 first (for tests and for planning a CI matrix)."""
    return [Shard(i, count).select(names) for i in range(1, count + 1)]
