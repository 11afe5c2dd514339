"""What a control observed on a host, what it expected, and what it concluded.

Every control records its observations whether it passes or fails: a pass without evidence proves
nothing to an auditor. `require` collects findings rather than stopping at the first, so one run
shows everything wrong with a host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from certaudit.controls import Control

Outcome = Literal["pass", "fail", "not applicable", "waived", "error"]
USER_PROPERTY = "certaudit"


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

    def observe(self, **values: Any) -> None:
        self.observed.update({k: _plain(v) for k, v in values.items()})

    def expect(self, **values: Any) -> None:
        self.expected.update({k: _plain(v) for k, v in values.items()})

    def note(self, text: str) -> None:
        """Something worth the auditor's attention that is not a finding (e.g. an ignored cron entry)."""
        self.notes.append(text)

    def require(self, condition: bool, finding: str) -> bool:
        """Record `finding` unless `condition` holds; the control fails at its end if any was recorded."""
        if not condition:
            self.findings.append(finding)
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


def _inline(values: dict[str, Any]) -> str:
    return "; ".join(f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}" for k, v in values.items())


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

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Record:
        return cls(**json.loads(text))
