"""The operator's ssh files (known_hosts, ssh_config, identities), parsed once per version of each file.

The in-process client logs in to every host of a fleet with the same files. Parsing them again at
each login made a fleet's audit quadratic: paramiko parses every line of a known_hosts file (a key
object a line, each checked against the lines before it), 152 ms of CPU a login for 1,000 entries,
so 1,000 hosts listed in one known_hosts cost about 150 s of CPU in parsing alone
(bench/bench_logins.py). Each file is now parsed once, and parsed again only when its bytes change:
a key that accept-new records, or an operator's edit during the run, is read at the next login. What
a login concludes from the parsed files is paramiko's own (its HostKeys lookup, its key classes), so
no rule of OpenSSH's is copied here.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

CACHED_FILES = 64  # files kept parsed: a run reads a handful; an inventory naming a file a host is bounded
READ_CHUNK = 1 << 20  # what a file costs in memory at once, whatever its size or the length of its lines
T = TypeVar("T")


def digest(path: str) -> str | None:
    """SHA-256 of the file's bytes, read in chunks (a file of any size costs this much memory, no
    more); None when it cannot be read (absent, unreadable)."""
    try:
        with open(path, "rb") as file:
            sha = hashlib.sha256()
            while chunk := file.read(READ_CHUNK):
                sha.update(chunk)
            return sha.hexdigest()
    except OSError:
        return None


class ParsedFiles:
    """A bounded map from a file (and any files it depends on) to what parsing it gave, kept while
    their bytes stay the same. Thread-safe: hosts log in concurrently.

    The bytes (their SHA-256), not the stat, say a file changed: a rewrite within one tick of the
    file system's clock keeps size and times, and a key replaced by another of its type keeps the
    size too. Reading a file is cheap; parsing it is what costs.
    """

    def __init__(self, limit: int = CACHED_FILES) -> None:
        self._limit = limit
        self._parsed: OrderedDict[tuple[str, ...], tuple[tuple[str | None, ...], Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.parses = 0  # how many times files were parsed: tests and the bench read it

    def get(self, paths: tuple[str, ...], parse: Callable[[], T]) -> T:
        """What `parse` gives for these files, parsed again only when one of them changed.

        `parse` reads the files itself (paramiko opens them by name): what it gave is kept only when
        the bytes before and after it are the same, so a file that changed while it was parsed is
        parsed again at the next login rather than kept as a mix of two versions.
        """
        before = tuple(digest(p) for p in paths)
        with self._lock:
            found = self._parsed.get(paths)
            if found is not None and found[0] == before:
                self._parsed.move_to_end(paths)
                return found[1]  # type: ignore[no-any-return]
        value = parse()  # outside the lock: a slow file holds up no other host
        after = tuple(digest(p) for p in paths)
        with self._lock:
            self.parses += 1
            if after == before:
                self._parsed[paths] = (after, value)
                self._parsed.move_to_end(paths)
                while len(self._parsed) > self._limit:
                    self._parsed.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._parsed.clear()


known_hosts_files = ParsedFiles()
known_hosts_traits = ParsedFiles()
identity_files = ParsedFiles()


def known_host_keys(path: str) -> Any:
    """The file's host keys as paramiko reads them (`paramiko.HostKeys`): raises what paramiko's own
    load raises (OSError, UnicodeDecodeError) for a file it cannot read. Shared: read it, never add to it."""
    import paramiko

    return known_hosts_files.get((path,), lambda: paramiko.HostKeys(path))


@dataclass(frozen=True)
class KnownHostsTraits:
    """What in a known_hosts file paramiko would read otherwise than OpenSSH."""

    markers: bool  # `@revoked` / `@cert-authority` lines (after any blanks, as OpenSSH reads them)
    patterns: bool  # hosts named by pattern: `*.example.com`, `10.0.0.?`, `!web-9`


def _traits(path: str) -> KnownHostsTraits:
    """The file's traits, read a line at a time in pieces of at most READ_CHUNK bytes; only a piece
    that starts a line (after blanks alone, for a marker) is looked at. A file that cannot be read has
    none, as one that is absent."""
    markers = patterns = False
    try:
        with open(path, "rb") as file:
            at_start = True
            while piece := file.readline(READ_CHUNK):
                if at_start:
                    stripped = piece.lstrip(b" \t")
                    markers = markers or stripped.startswith(b"@")
                    names = stripped.split(None, 1)[:1]
                    if names and not names[0].startswith((b"#", b"@", b"|")) and any(c in names[0] for c in b"*?!"):
                        patterns = True
                # A line goes on past its piece unless the piece ended it; blanks alone keep its start open.
                at_start = piece.endswith(b"\n") or (at_start and not piece.strip(b" \t"))
    except OSError:
        return KnownHostsTraits(False, False)
    return KnownHostsTraits(markers, patterns)


def has_markers(path: str) -> bool:
    """Whether a known_hosts file has `@revoked` or `@cert-authority` lines (which paramiko does not
    read: it would skip a revoked key's line and trust the key if listed elsewhere); False for a file
    that cannot be read, as for one that is absent. Each version of a file is scanned once."""
    return known_hosts_traits.get((path,), lambda: _traits(path)).markers


def has_patterns(path: str) -> bool:
    """Whether a known_hosts file names hosts by pattern (`*.example.com`, `10.0.0.?`, `!web-9`):
    OpenSSH matches them, paramiko only compares names, so it would call such a host unknown.
    False for a file that cannot be read. Each version of a file is scanned once."""
    return known_hosts_traits.get((path,), lambda: _traits(path)).patterns


def add_known_keys(client: Any, hostname: str, port: int, paths: tuple[str, ...]) -> None:
    """Give the client the keys these known_hosts files list for the host, as if it had loaded them
    all (`load_system_host_keys`, in order) but without parsing any file again.

    paramiko judges a host from the entries that match its name: the first entry's key type is the
    one it asks the host for, and the first entry of the offered type is the key it must equal. The
    matching entries are handed over in file order, the first of each type kept, so both stay what a
    full load gives.
    """
    name = hostname if port == 22 else f"[{hostname}]:{port}"
    keys = client.get_host_keys()
    for path in paths:
        if not os.path.isfile(path):
            continue
        listed = known_host_keys(path).lookup(name)
        if listed is None:
            continue
        for key_type in listed:  # every matching entry's type, in file order
            have = keys.lookup(name)
            if have is None or key_type not in have:
                keys.add(name, key_type, listed[key_type])  # the first entry of the type


def identity(path: str) -> Any | None:
    """The private key in an identity file as paramiko's client loads it (the first of its key classes
    that reads the file, with the file's `-cert.pub` beside it), or None when paramiko must be left to
    load it itself (a key with a passphrase, a file it cannot read): its own errors then say why."""
    import paramiko

    if path.endswith("-cert.pub"):
        return None
    certificate = f"{path}-cert.pub"

    def load() -> Any | None:
        for key_class in (paramiko.RSAKey, paramiko.ECDSAKey, paramiko.Ed25519Key):
            try:
                key = key_class.from_private_key_file(path, None)
            except paramiko.SSHException:
                continue
            except Exception:  # unreadable, malformed: paramiko's own load reports it
                return None
            if os.path.isfile(certificate):
                try:
                    key.load_certificate(certificate)
                except Exception:
                    return None
            return key
        return None

    return identity_files.get((path, certificate), load)


@lru_cache(maxsize=64)
def split_arguments(text: str) -> tuple[str, ...]:
    """shlex.split of an inventory's ssh arguments: the same few strings for every host of a fleet."""
    return tuple(shlex.split(text))


@lru_cache(maxsize=16)
def parsed_config(text: str) -> Any:
    """paramiko's SSHConfig of an ssh_config text (Include lines already expanded); its lookups
    only read it."""
    import paramiko

    return paramiko.SSHConfig.from_text(text)
