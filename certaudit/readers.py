"""Bounded reading of the files certaudit is given: the inventory, the waivers, a run's evidence.

Every such file is untrusted input. Before a byte of it is parsed, it must be a regular file
(opened non-blocking, so a FIFO or a device given in its place never blocks the run), no larger
than a limit a real file never reaches, and, for YAML, its aliases must not expand past a bound:
nine levels of nine aliases ("billion laughs") are a few hundred bytes that any consumer walking
the document (str(), json.dumps, Ansible's deep copies) expands to hundreds of millions of nodes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from certaudit.errors import PathError

__all__ = [
    "MAX_YAML_NODES",
    "ReadError",
    "check_yaml",
    "kind_of",
    "load_yaml",
    "read_bounded",
    "shown_text",
]

# Expanded nodes of one YAML document (every alias counted as the whole node it names). An
# inventory of 10,000 hosts with 50 variables each is about 1,000,000.
MAX_YAML_NODES = 2_000_000
_CHUNK = 1024 * 1024
# libyaml's parser where PyYAML has it: the same events, many times faster on a large inventory.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ReadError(PathError):
    """A file certaudit was given cannot be used as it is; the message names the path and why."""


def shown_text(text: str, limit: int = 120) -> str:
    """Text from outside (a host name, a path, an option) fit for one line of a message: control
    characters escaped, and at most `limit` characters of it shown."""
    shown = text if text.isprintable() else text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return shown if len(shown) <= limit else f"{shown[: limit - 3]}... ({len(text)} characters)"


def kind_of(mode: int) -> str:
    """What a file is, in words, for a message saying it is not what was expected."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; ReadError otherwise, before blocking.

    O_NONBLOCK makes opening a FIFO return at once (instead of waiting for a writer); the kind is
    then judged on the open descriptor, so what was checked is what is read.
    """
    shown = shown_text(str(path), 300)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ReadError(shown, "does not exist") from None
    except OSError as exc:
        raise ReadError(shown, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadError(shown, f"is {kind_of(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise ReadError(shown, f"is {st.st_size} bytes, more than the {limit} a real one needs")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew since fstat
                raise ReadError(shown, f"is more than the {limit} bytes a real one needs")
    except OSError as exc:
        raise ReadError(shown, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _expanded_nodes(text: str, limit: int) -> int | None:
    """How many nodes the YAML stream holds once every alias is expanded; None past `limit`.

    Walks the parser's events (linear in the text: the parser expands no alias), with each
    anchor's expanded size remembered for the aliases that name it. `counted` (the nodes closed at
    the top level plus those of every collection still open) only grows towards the final count,
    so the walk stops as soon as it passes the limit.
    """
    sizes: dict[str, int] = {}
    stack: list[tuple[str | None, int]] = []  # open collections: (anchor, expanded nodes so far)
    counted = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append((event.anchor, 1))
            counted += 1
            added = 0
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, added = stack.pop()
            if anchor:
                sizes[anchor] = added
            counted -= added  # counted again below, as a node of its parent
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor:
                sizes[event.anchor] = 1
            added = 1
        elif isinstance(event, yaml.AliasEvent):
            added = sizes.get(event.anchor or "", 1)
        else:
            continue
        counted += added
        if stack and added:
            anchor, nodes = stack[-1]
            stack[-1] = (anchor, nodes + added)
        if counted > limit:
            return None
    return counted


def check_yaml(path: Path, limit: int, max_nodes: int = MAX_YAML_NODES, *, yaml_only: bool = True) -> str | None:
    """The text of a YAML (or JSON) file, checked as read_bounded does and for alias expansion.

    With yaml_only=False a file that is not YAML at all (an INI inventory, a script) is no
    problem: None, after its kind and size were checked.
    """
    data = read_bounded(path, limit)
    shown = shown_text(str(path), 300)
    try:
        text = data.decode("utf-8")
        # Without an anchor (`&`) no alias can name anything: the document is as large as its text.
        nodes = _expanded_nodes(text, max_nodes) if "&" in text else 0
    except UnicodeDecodeError as exc:
        if not yaml_only:
            return None
        raise ReadError(shown, f"is not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        if not yaml_only:
            return None
        raise ReadError(shown, f"cannot be read as YAML: {shown_text(' '.join(str(exc).split()), 300)}") from None
    if nodes is None:
        raise ReadError(shown, f"its YAML aliases expand to more than {max_nodes} nodes (an alias bomb?)")
    return text


def load_yaml(path: Path, limit: int, max_nodes: int = MAX_YAML_NODES) -> Any:
    """A YAML file's document, bounded as check_yaml bounds it; ReadError says what is wrong."""
    text = check_yaml(path, limit, max_nodes)
    try:
        return yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        raise ReadError(
            shown_text(str(path), 300), f"cannot be read as YAML: {shown_text(' '.join(str(exc).split()), 300)}"
        ) from None
