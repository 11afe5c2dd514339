"""What a control observed on a host, what it expected, and what it concluded.

Every control records its observations whether it passes or fails: a pass without evidence proves
nothing to an auditor. `require` collects findings rather than stopping at the first, so one run
shows everything wrong with a host.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from certaudit.controls import Control
from certaudit.redact import CUT_MARK, MESSAGE_CAP, bounded, untrusted

Outcome = Literal["pass", "fail", "not applicable", "waived", "error"]
USER_PROPERTY = "certaudit"
MAX_ENTRIES = 100  # findings (and notes) one record keeps; the rest are counted, not listed


def is_record_property(prop: object) -> bool:
    """Whether a report's user property is the certaudit record it carries: (USER_PROPERTY, its
    JSON), a tuple in-process and a list once serialized (xdist)."""
    return isinstance(prop, tuple | list) and len(prop) == 2 and prop[0] == USER_PROPERTY


def _plain(value: Any) -> Any:
    """JSON-safe copy of an observation (tuples to lists, unknown objects to text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@dataclass
class Evidence:
    control: Control
    host: str
    observed: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # Observations, notes and findings quote the host (a file's line, a certificate's subject) and
    # ssh or openssl about it: each is redacted and bounded here, as it is recorded.
    def observe(self, **values: Any) -> None:
        self.observed.update({k: bounded(_plain(v)) for k, v in values.items()})

    def expect(self, **values: Any) -> None:
        self.expected.update({k: bounded(_plain(v)) for k, v in values.items()})

    def note(self, text: str) -> None:
        """Something worth the auditor's attention that is not a finding (e.g. an ignored cron entry)."""
        _append_bounded(self.notes, untrusted(text), "notes")

    def require(self, condition: bool, finding: str) -> bool:
        """Record `finding` unless `condition` holds; the control fails at its end if any was recorded."""
        if not condition:
            _append_bounded(self.findings, untrusted(finding), "findings")
        return condition

    def failure_message(self) -> str:
        lines = [f"{self.control.id} on {self.host}: " + "; ".join(self.findings)]
        if self.observed:
            lines.append("  observed: " + _inline(self.observed))
        if self.expected:
            lines.append("  expected: " + _inline(self.expected))
        lines.append(f"  rule: {self.control.id} {self.control.title}")
        lines.append(f"  fix: {self.control.fix}")
        return "\n".join(lines)


def _append_bounded(entries: list[str], text: str, what: str) -> None:
    """Append `text`, or past MAX_ENTRIES count it in one last entry: a host with 10,000 bad files
    makes one record of a hundred findings, not of ten thousand."""
    if len(entries) < MAX_ENTRIES:
        entries.append(text)
        return
    more = int(entries[MAX_ENTRIES].split()[3]) + 1 if len(entries) > MAX_ENTRIES else 1
    del entries[MAX_ENTRIES:]
    entries.append(f"{CUT_MARK} {more} more {what} not listed]")


INLINE_CAP = 1024  # characters of one value in a failure message (the record keeps it whole, bounded)


def _inline(values: dict[str, Any]) -> str:
    return "; ".join(
        f"{k}={untrusted(json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v, INLINE_CAP)}"
        for k, v in values.items()
    )


@dataclass
class Record:
    """One (host, control) result as the reports keep it."""

    control: str
    title: str
    host: str
    outcome: Outcome
    message: str = ""
    observed: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fix: str = ""
    gate: bool = False
    nodeid: str = ""
    started: str = ""
    duration_s: float = 0.0
    waiver: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # However a record is made (a control's evidence, an error's text, a merged part), what it
        # keeps of the host, ssh or openssl is redacted and bounded. Idempotent: bounded text stays.
        if isinstance(self.message, str):
            self.message = untrusted(self.message, MESSAGE_CAP)
        for name in ("findings", "notes"):
            entries = getattr(self, name)
            if isinstance(entries, list):
                setattr(self, name, [untrusted(e) if isinstance(e, str) else e for e in entries[: MAX_ENTRIES + 1]])
        for name in ("observed", "expected"):
            values = getattr(self, name)
            if isinstance(values, dict):
                setattr(self, name, {untrusted(str(k)): bounded(v) for k, v in values.items()})

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Record:
        return cls(**json.loads(text))

    @classmethod
    def of_bounded(cls, **fields: Any) -> Record:
        """A record of every field, each already redacted and bounded as __post_init__ would make it
        (an Evidence's observations and findings, an `untrusted` message): not done a second time."""
        missing = _FIELD_NAMES - fields.keys()
        if missing or fields.keys() - _FIELD_NAMES:
            raise TypeError(f"Record.of_bounded takes every field once: {sorted(missing or fields.keys() - _FIELD_NAMES)}")
        return cls._trusted(fields)

    @classmethod
    def _trusted(cls, fields: dict[str, Any]) -> Record:
        """A record this process wrote itself (RecordLog's line): already redacted and bounded."""
        record = cls.__new__(cls)
        record.__dict__.update(fields)
        return record


_FIELD_NAMES = frozenset(Record.__dataclass_fields__)
_READ_CHUNK = 1 << 20
SPOOL_BUFFER = 1 << 20  # bytes a run's record and snapshot logs gather before each write


class RecordLog:
    """Every record of a run, in the order made, kept in an anonymous temporary file, not in memory.

    A fleet's records grow with it (17 a host, each with its observations): held as objects, a
    thousand hosts' take hundreds of megabytes. Each record is written as one JSON line when it is
    made; iterating reads them back one at a time (a record appended meanwhile is not seen by an
    iteration already begun). The file has no name (O_TMPFILE where the system has it): it never
    shows in a run directory's manifest and is gone when the process is, however it ends.
    `directory` is where it lives (the run directory, so that it is on the evidence's disk)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._file: IO[bytes] | None = None
        self._size = 0
        self._count = 0

    def append(self, record: Record, text: str | None = None) -> None:
        """Keep `record`; `text` is its to_json() when the caller has it already (made once, not twice)."""
        if self._file is None:
            # A large buffer: each write that reaches the disk lets go of the GIL, and the audit's 32
            # probe threads keep it for up to 5 ms before the run's own thread gets it back.
            self._file = tempfile.TemporaryFile(dir=self.directory, prefix=".certaudit-records-", buffering=SPOOL_BUFFER)  # noqa: SIM115 (lives as long as the run)
        line = (text if text is not None else record.to_json()).encode() + b"\n"
        self._file.write(line)
        self._size += len(line)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def lines(self) -> Iterator[bytes]:
        """Each record's JSON line (without its newline), in the order appended."""
        if self._file is None:
            return
        self._file.flush()
        fd, end, offset, rest = self._file.fileno(), self._size, 0, b""
        while offset < end:
            chunk = os.pread(fd, min(_READ_CHUNK, end - offset), offset)
            if not chunk:
                raise OSError(f"the run's record log ended at {offset} of {end} bytes")
            offset += len(chunk)
            *complete, rest = (rest + chunk).split(b"\n")
            yield from complete

    def __iter__(self) -> Iterator[Record]:
        for line in self.lines():
            yield Record._trusted(json.loads(line))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._size = self._count = 0
