"""REN-05's reading of certbot's log: runs told apart, what each did and how it ended."""

from __future__ import annotations

from certaudit.host.certbot.log import last_attempt, runs_of
from certaudit.host.facts import CertbotLog, CertbotLogs, LogLine

T = "2026-11-28 00:52:15,684"
NOTIFY = "DEBUG:certbot._internal.display.obj:Notifying user:"

ISSUE = [
    "2026-11-28 00:51:05,227:DEBUG:certbot._internal.main:certbot version: 2.1.0",
    f"{T}:{NOTIFY} Requesting a certificate for stemedb.example.com",
    "Successfully received certificate.",
]
RENEW_OK = [
    "2026-11-28 00:52:20,037:DEBUG:certbot._internal.main:certbot version: 2.1.0",
    f"{T}:{NOTIFY} Processing /etc/letsencrypt/renewal/stemedb.example.com.conf",
    f"{T}:{NOTIFY} Certificate not yet due for renewal",
    "2026-11-28 00:52:20,055:DEBUG:certbot._internal.renewal:no renewal failures",
]
RENEW_FAILED = [
    "2026-11-28 00:52:15,656:DEBUG:certbot._internal.main:certbot version: 2.1.0",
    f"{T}:{NOTIFY} Processing /etc/letsencrypt/renewal/stemedb.example.com.conf",
    f"{T}:ERROR:certbot._internal.renewal:Failed to renew certificate stemedb.example.com with error: Account x is gone",
    f"{T}:ERROR:certbot._internal.renewal:All renewals failed. The following certificates could not be renewed:",
    f"{T}:ERROR:certbot._internal.renewal:  /etc/letsencrypt/live/stemedb.example.com/fullchain.pem (failure)",
    "2026-11-28 00:52:15,684:DEBUG:certbot._internal.log:Exiting abnormally:",
    "2026-11-28 00:52:15,684:ERROR:certbot._internal.log:1 renew failure(s), 0 parse failure(s)",
]
CERTIFICATES = ["2026-11-28 00:53:00,000:DEBUG:certbot._internal.main:certbot version: 2.1.0"]
DRY_RUN = [
    "2026-11-28 00:54:00,000:DEBUG:certbot._internal.main:certbot version: 2.1.0",
    f"{T}:{NOTIFY} Simulating renewal of an existing certificate for stemedb.example.com",
    f"{T}:{NOTIFY} Congratulations, all simulated renewals succeeded:",
]


def log(*runs: list[str], mtime: float = 2000.0, path: str = "/var/log/letsencrypt/letsencrypt.log") -> CertbotLog:
    lines = []
    for offset, run in enumerate(runs):
        lines += [LogLine(1000.0 + offset * 10 + i, text) for i, text in enumerate(run)]
    return CertbotLog(path, mtime, tuple(lines), False, "")


def test_runs_are_told_apart() -> None:
    runs = runs_of(log(ISSUE, RENEW_OK, RENEW_FAILED, CERTIFICATES), last_write=2000.0)
    assert [(r.kind, r.outcome) for r in runs] == [
        ("issue", "success"),
        ("renew", "success"),
        ("renew", "failure"),
        ("other", "unknown"),
    ]
    assert runs[2].errors == (
        "Failed to renew certificate stemedb.example.com with error: Account x is gone",
        "1 renew failure(s), 0 parse failure(s)",
    )
    assert runs[0].started == 1000.0 and runs[0].ended == 1002.0
    assert runs[3].ended == 2000.0  # the last run ends when the file was last written


def test_last_attempt_skips_runs_that_renew_nothing() -> None:
    attempt = last_attempt(CertbotLogs("/var/log/letsencrypt", (log(RENEW_FAILED, CERTIFICATES),), 0, ""))
    assert attempt is not None and (attempt.kind, attempt.outcome) == ("renew", "failure")
    dry = last_attempt(CertbotLogs("/var/log/letsencrypt", (log(RENEW_FAILED, DRY_RUN),), 0, ""))
    assert dry is not None and (dry.kind, dry.dry_run, dry.outcome) == ("issue", True, "success")
    assert last_attempt(CertbotLogs("/var/log/letsencrypt", (log(CERTIFICATES),), 0, "")) is None


def test_newest_across_rotated_logs() -> None:
    older = log(RENEW_OK, mtime=500.0, path="/var/log/letsencrypt/letsencrypt.log.1")
    newer = log(RENEW_FAILED, mtime=3000.0)
    attempt = last_attempt(CertbotLogs("/var/log/letsencrypt", (newer, older), 0, ""))
    assert attempt is not None and attempt.outcome == "failure" and attempt.ended == 3000.0


def test_a_run_cut_off_shows_no_outcome() -> None:
    (run,) = runs_of(log(RENEW_OK[:2]))
    assert (run.kind, run.outcome) == ("renew", "unknown")


def test_certbot_1_reports_a_new_certificate_only_to_the_user() -> None:
    """Debian 11's certbot 1.12 logs no "Successfully received certificate": its success is the report."""
    issue_1_12 = [
        "2026-11-28 00:51:05,227:DEBUG:certbot._internal.main:certbot version: 1.12.0",
        f"{T}:DEBUG:certbot._internal.client:Requesting a certificate for stemedb.example.com",
        f"{T}:DEBUG:certbot._internal.reporter:Reporting to user: Congratulations! Your certificate and chain have been "
        "saved at:",
    ]
    attempt = last_attempt(CertbotLogs("/var/log/letsencrypt", (log(issue_1_12),), 0, ""))
    assert attempt is not None and (attempt.kind, attempt.outcome) == ("issue", "success")
