"""Run the real audit (pytest over checks/) as a subprocess, the way `make audit` does, and read its evidence."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class AuditRun:
    returncode: int
    stdout: str
    stderr: str
    evidence: dict[str, Any]

    def result(self, control: str, host: str) -> dict[str, Any]:
        matches = [r for r in self.evidence.get("results", []) if r["control"] == control and r["host"] == host]
        assert len(matches) == 1, f"{control}[{host}]: {len(matches)} results in the evidence\n{self.stdout[-3000:]}"
        record: dict[str, Any] = matches[0]
        return record


def run_audit(inventory: Path, out_dir: Path, *extra: str, timeout: float = 600) -> AuditRun:
    return run_audit_args(out_dir, "--inventory", str(inventory), *extra, timeout=timeout)


def run_audit_args(out_dir: Path, *args: str, timeout: float = 600) -> AuditRun:
    """`pytest checks ARGS` in the repository, as a user runs it, with its evidence written to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    evidence_path = out_dir / "evidence.json"
    argv = [sys.executable, "-m", "pytest", "checks", "--evidence", str(evidence_path), "-p", "no:cacheprovider", "-q", *args]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    evidence = json.loads(evidence_path.read_text()) if evidence_path.exists() else {}
    return AuditRun(done.returncode, done.stdout, done.stderr, evidence)


Check = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Expect:
    """What one (host, control) pair must conclude: the outcome, message fragments, further checks."""

    outcome: str
    says: tuple[str, ...] = ()  # fragments the message must contain; {address} is the host's address
    evidence: Check | None = None  # further assertions on the record


def assert_verdict(record: dict[str, Any], want: Expect, host: str, control: str, address: str) -> None:
    """The exact outcome, the message fragments, and evidence recorded whatever the verdict."""
    __tracebackhide__ = True
    assert record["outcome"] == want.outcome, (
        f"{control}[{host}]: {record['outcome']}, expected {want.outcome}\n{record['message']}"
    )
    for fragment in (f.format(address=address) for f in want.says):
        assert fragment in record["message"], f"{control}[{host}]: {fragment!r} not in message:\n{record['message']}"
    if want.outcome in ("pass", "fail"):
        # Evidence is recorded whatever the verdict: a pass must show what it saw.
        assert record["observed"], f"{control}[{host}] recorded no observation"
        assert record["expected"], f"{control}[{host}] recorded no expectation"
    if want.outcome == "fail":
        assert record["message"].startswith(f"{control} on {host}: "), record["message"]
        assert "rule: " in record["message"] and "fix: " in record["message"]
    if want.evidence is not None:
        want.evidence(record)
