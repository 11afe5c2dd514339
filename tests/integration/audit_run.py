"""Run the real audit (pytest over checks/) as a subprocess, the way `make audit` does, and read its evidence."""

from __future__ import annotations

import json
import subprocess
import sys
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
