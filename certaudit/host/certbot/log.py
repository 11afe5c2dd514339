"""certbot's own record of its runs, from /var/log/letsencrypt/letsencrypt.log (REN-05).

certbot appends each run to its log, starting with a `certbot version:` line. The probe keeps
only the lines that tell runs apart (see CERTBOT_LOG_MARKERS in remote_probe.py), each with its
time. A run that renews (`certbot renew`, or the timer's `certbot -q renew`) processes renewal
confs and ends with `no renewal failures` or `N renew failure(s)`; one that obtains a certificate
(`certonly`, `run`) ends with `Successfully received certificate`; any run that fails logs
`Exiting abnormally`. Runs that do neither (`certbot certificates`) are not renewal attempts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from certaudit.host.facts import CertbotLog, CertbotLogs

Kind = Literal["renew", "issue", "other"]
Outcome = Literal["success", "failure", "unknown"]
_ERROR = re.compile(r"^[0-9-]{10} [0-9:,]{12}:(?:ERROR|CRITICAL):[\w.]+:(?P<text>.*)$")
_FAILURES = re.compile(r"(\d+) renew failure\(s\)")


@dataclass(frozen=True)
class CertbotRun:
    log: str
    started: float | None  # None: the run began before the part of the log that was read
    ended: float | None
    kind: Kind
    dry_run: bool
    outcome: Outcome
    errors: tuple[str, ...]

    def as_evidence(self) -> dict[str, object]:
        return {
            "log": self.log,
            "kind": self.kind,
            "dry_run": self.dry_run,
            "outcome": self.outcome,
            "errors": list(self.errors),
        }


# certbot 1.x (Debian 11's 1.12) logs a new certificate only as its report to the user:
# "Reporting to user: Congratulations! Your certificate and chain have been saved at: ...".
CERTBOT_1_SAVED = "Congratulations! Your certificate and chain have been saved"


def _run(log: CertbotLog, lines: list[tuple[float | None, str]], ended: float | None) -> CertbotRun:
    texts = [text for _, text in lines]
    joined = "\n".join(texts)
    renews = any(
        marker in joined
        for marker in ("Processing /", "no renewal failures", "renew failure(s)", "Certificate not yet due", "No renewals were")
    )
    issues = any(
        marker in joined
        for marker in (
            "Requesting a certificate for",
            "Renewing an existing certificate for",
            "Successfully received certificate",
            CERTBOT_1_SAVED,
        )
    )
    dry_run = "Simulating" in joined
    kind: Kind = "renew" if renews else "issue" if issues or dry_run else "other"
    # certbot's summary lines ("All renewals failed...", the indented list of lineages) repeat the cause.
    errors = tuple(
        m.group("text").strip()[:300]
        for m in (_ERROR.match(t) for t in texts)
        if m and not m.group("text").startswith((" ", "All renewals failed"))
    )
    failures = [int(n) for n in _FAILURES.findall(joined)]
    outcome: Outcome
    if "Exiting abnormally" in joined or errors or any(failures):
        outcome = "failure"
    elif any(
        m in joined for m in ("no renewal failures", "Successfully received certificate", "Congratulations, all", CERTBOT_1_SAVED)
    ):
        outcome = "success"
    else:
        outcome = "unknown"
    started = lines[0][0] if lines and "certbot version:" in lines[0][1] else None
    times = [t for t, _ in lines if t is not None]
    return CertbotRun(
        log.path, started, ended if ended is not None else (times[-1] if times else None), kind, dry_run, outcome, errors
    )


def runs_of(log: CertbotLog, last_write: float | None = None) -> list[CertbotRun]:
    """The runs in one log, oldest first; `last_write` (the file's mtime) ends its last run."""
    chunks: list[list[tuple[float | None, str]]] = []
    for line in log.lines:
        if "certbot version:" in line.text or not chunks:
            chunks.append([])
        chunks[-1].append((line.time, line.text))
    runs = []
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        runs.append(_run(log, chunk, last_write if last else None))
    return runs


def last_attempt(logs: CertbotLogs) -> CertbotRun | None:
    """The newest run that renewed or obtained a certificate (dry runs included), across the logs read."""
    candidates: list[CertbotRun] = []
    for log in logs.logs:
        candidates += [run for run in runs_of(log, log.mtime) if run.kind != "other"]
    dated = [run for run in candidates if run.ended is not None]
    if dated:
        return max(dated, key=lambda run: run.ended or 0.0)
    return candidates[-1] if candidates else None
