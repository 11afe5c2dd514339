"""Waivers: a known failure, accepted for a while, by someone with the authority to accept it.

A waiver names a control, a host pattern, a reason, an approver, a ticket and an expiry date. A
failure it covers is reported as waived, with all of those. A waiver that has expired or cannot be
read is itself a finding; one that covers nothing is reported so it can be cleaned up. A waiver
covers a failure only: an error (a fact that could not be determined) is never waived.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from certaudit.controls import ID_RE
from certaudit.readers import ReadError, load_yaml, shown_text

FIELDS = ("control", "hosts", "reason", "approver", "ticket", "expires")
Status = Literal["valid", "expired", "malformed"]
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)  # YYYY-MM-DD and nothing else ("20990131" is not)
# A waivers file is a few dozen entries written by hand; one this large is a mistake or an attack.
MAX_WAIVERS_BYTES = 1024 * 1024
MAX_WAIVER_NODES = 100_000


@dataclass
class Waiver:
    index: int  # position in the file, from 1
    source: str
    control: str = ""
    hosts: str = ""
    reason: str = ""
    approver: str = ""
    ticket: str = ""
    expires: dt.date | None = None
    status: Status = "valid"
    problem: str = ""
    covered: list[str] = field(default_factory=list)  # "KEY-01[web-1]" it waived in this run
    matched_passing: list[str] = field(default_factory=list)  # matched, but the control passed

    @property
    def label(self) -> str:
        control, hosts = shown_text(self.control, 40) or "?", shown_text(self.hosts, 80) or "?"
        return f"{shown_text(self.source, 80)} waiver #{self.index} ({control} on {hosts})"

    def covers(self, control: str, host: str) -> bool:
        return self.status == "valid" and control == self.control and fnmatch.fnmatchcase(host, self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "control": self.control, "hosts": self.hosts, "reason": self.reason,
            "approver": self.approver, "ticket": self.ticket,
            "expires": self.expires.isoformat() if self.expires else None,
            "status": self.status, "problem": self.problem, "covered": list(self.covered),
            "matched_passing": list(self.matched_passing),
        }  # fmt: skip


@dataclass
class Waivers:
    path: str | None
    entries: list[Waiver] = field(default_factory=list)
    file_problem: str = ""  # the whole file could not be read

    def find(self, control: str, host: str) -> Waiver | None:
        for waiver in self.entries:
            if waiver.covers(control, host):
                return waiver
        return None

    def findings(self) -> list[str]:
        problems = [f"{self.path}: {self.file_problem}"] if self.file_problem else []
        return problems + [f"{w.label}: {w.problem}" for w in self.entries if w.status != "valid"]

    def unused(self) -> list[Waiver]:
        return [w for w in self.entries if w.status == "valid" and not w.covered]


def _parse_date(value: Any) -> dt.date | None:
    """A YAML date, or text that is exactly YYYY-MM-DD; None for anything else (a time of day too)."""
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and DATE_RE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _entry(index: int, source: str, raw: Any, today: dt.date) -> Waiver:
    waiver = Waiver(index, source)
    if not isinstance(raw, dict):
        waiver.status, waiver.problem = "malformed", "expected a mapping with " + ", ".join(FIELDS)
        return waiver
    missing = [f for f in FIELDS if raw.get(f) in (None, "")]
    unknown = sorted(shown_text(str(k), 40) for k in set(map(str, raw)) - set(FIELDS))
    for name in ("control", "hosts", "reason", "approver", "ticket"):
        value = raw.get(name)
        setattr(waiver, name, str(value).strip() if value is not None else "")
    waiver.expires = _parse_date(raw.get("expires"))
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if unknown:
        problems.append("unknown field " + ", ".join(unknown))
    if waiver.control and not ID_RE.fullmatch(waiver.control):
        problems.append(f"control {shown_text(repr(waiver.control), 60)} is not a control id like KEY-01")
    if raw.get("expires") not in (None, "") and waiver.expires is None:
        problems.append(f"expires {shown_text(repr(raw.get('expires')), 60)} is not a date (YYYY-MM-DD)")
    if problems:
        waiver.status, waiver.problem = "malformed", "; ".join(problems)
    elif waiver.expires is not None and waiver.expires < today:
        waiver.status = "expired"
        waiver.problem = f"expired on {waiver.expires.isoformat()} (ticket {waiver.ticket}, approved by {waiver.approver})"
    return waiver


def load_waivers(path: Path | None, today: dt.date) -> Waivers:
    """Read a waivers file; problems are recorded as findings, never raised."""
    if path is None or not (path.exists() or path.is_symlink()):
        return Waivers(None)
    try:
        # Bounded before parsing: a FIFO never blocks, an alias bomb never expands.
        document = load_yaml(path, MAX_WAIVERS_BYTES, MAX_WAIVER_NODES)
    except ReadError as exc:
        return Waivers(str(path), file_problem=exc.cause)
    if document is None:
        return Waivers(str(path))
    items: Iterable[Any]
    if isinstance(document, dict) and isinstance(document.get("waivers"), list):
        items = document["waivers"]
    elif isinstance(document, dict) and document.get("waivers") is None and set(document) <= {"waivers"}:
        items = []
    else:
        return Waivers(str(path), file_problem="expected a top-level `waivers:` list")
    return Waivers(str(path), [_entry(i, path.name, raw, today) for i, raw in enumerate(items, start=1)])
