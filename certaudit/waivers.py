"""Waivers: a known failure, accepted for a while, by someone with the authority to accept it.

A waiver names a control, a host pattern, a reason, an approver, a ticket and an expiry date. A
failure it covers is reported as waived, with all of those. A waiver that has expired or cannot be
read is itself a finding; one that covers nothing is reported so it can be cleaned up. A waiver
covers a failure only: an error (a fact that could not be determined) is never waived.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from certaudit.controls import ID_RE

FIELDS = ("control", "hosts", "reason", "approver", "ticket", "expires")
Status = Literal["valid", "expired", "malformed"]


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
        return f"{self.source} waiver #{self.index} ({self.control or '?'} on {self.hosts or '?'})"

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
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _entry(index: int, source: str, raw: Any, today: dt.date) -> Waiver:
    waiver = Waiver(index, source)
    if not isinstance(raw, dict):
        waiver.status, waiver.problem = "malformed", "expected a mapping with " + ", ".join(FIELDS)
        return waiver
    missing = [f for f in FIELDS if raw.get(f) in (None, "")]
    unknown = sorted(set(map(str, raw)) - set(FIELDS))
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
        problems.append(f"control {waiver.control!r} is not a control id like KEY-01")
    if raw.get("expires") not in (None, "") and waiver.expires is None:
        problems.append(f"expires {raw.get('expires')!r} is not a date (YYYY-MM-DD)")
    if problems:
        waiver.status, waiver.problem = "malformed", "; ".join(problems)
    elif waiver.expires is not None and waiver.expires < today:
        waiver.status = "expired"
        waiver.problem = f"expired on {waiver.expires.isoformat()} (ticket {waiver.ticket}, approved by {waiver.approver})"
    return waiver


def load_waivers(path: Path | None, today: dt.date) -> Waivers:
    """Read a waivers file; problems are recorded as findings, never raised."""
    if path is None or not path.exists():
        return Waivers(None)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())[:300]
        return Waivers(str(path), file_problem=f"cannot be read as YAML: {reason}")
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
