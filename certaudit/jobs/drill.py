"""The renewal drill: a real, forced renewal on a host, and proof of what followed it.

`certbot renew --dry-run` skips deploy hooks, so it cannot show that a renewal reaches the wire.
The drill renews for real (`certbot renew --cert-name DOMAIN --force-renewal`), then gathers what
proves the rest of the chain: the hooks certbot ran and what they reported, the service's reload
in the journal, and, from the auditing machine, the certificate the endpoint now serves, with the
fingerprints and validity times before and after. Judging is DRL-01's (checks/test_drill.py).

This is the only code in certaudit that changes a host, so it runs only when asked
(`--renewal-drill`) and only on hosts whose inventory sets `certaudit_drill_ok: true`. It connects
as the probe does (certaudit/gather/transport.py): the same host-key rule, connect timeout and
per-host budget, which bounds the whole drill (`--host-budget`). Every command is an argv list
joined with shlex: inventory values never reach a shell unquoted. Only
certificates travel to the auditing machine (`openssl x509` prints the first certificate of a
file, never a key that may sit in the same file).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import posixpath
import re
import shlex
import time
from dataclasses import dataclass
from typing import Any

from certaudit.errors import Undeterminable
from certaudit.gather.tls import fetch_leaf
from certaudit.gather.transport import CommandResult, DeadlineExceeded, TransportError, remaining, run_command, sudo_refusal
from certaudit.host.x509 import CertificateError, fingerprint_der_sha256, fingerprint_sha256, load_pem_certificates
from certaudit.inventory import Target
from certaudit.policy import Policy

OPTION = "--renewal-drill"
# certbot's console shows the hooks it runs only at INFO level, hence -v.
CERTBOT_ARGS = ("--force-renewal", "--no-random-sleep-on-renew")
SERVED_WAIT_S = 10.0  # a reload is asynchronous (the service handles SIGHUP in its own time)
SERVED_POLL_S = 0.25
KILL_AFTER_S = 10  # `timeout --kill-after`: a certbot that ignores SIGTERM is killed this much later
# What the drill keeps of the host's budget for the steps after certbot: the kill-after grace, the
# wait for the endpoint to serve the new certificate, and the reads of the files and the journal.
AFTER_CERTBOT_S = KILL_AFTER_S + SERVED_WAIT_S + 10.0
MAX_OUTPUT = 4 * 1024 * 1024  # any one command's output; past it the drill cannot judge and says so
OUTPUT_TAIL_LINES = 40
JOURNAL_LINES = 200

_RUNNING_HOOK_RE = re.compile(r"^Running deploy-hook command: (.+)$")
_HOOK_ERROR_CODE_RE = re.compile(r"^Hook '([^']+)' reported error code (\d+)$")
_HOOK_ERROR_OUTPUT_RE = re.compile(r"^Hook '([^']+)' ran with error output:$")
# systemd's own journal entries about a unit's jobs carry JOB_TYPE and JOB_RESULT.
_RELOADING_JOBS = ("reload", "restart", "start", "try-restart", "reload-or-start")


@dataclass(frozen=True)
class DrillSettings:
    """What the run asked of the drill: whether to run it, and its time bounds."""

    enabled: bool
    connect_timeout: float
    host_budget: float  # the whole drill on one host: every command, TLS connection and wait
    served_wait_s: float = SERVED_WAIT_S

    @classmethod
    def from_config(cls, config: Any) -> DrillSettings:
        """From the pytest options: --renewal-drill, --connect-timeout and --host-budget, as the probe has them."""
        return cls(
            enabled=bool(config.getoption("renewal_drill")),
            connect_timeout=float(config.getoption("connect_timeout")),
            host_budget=float(config.getoption("host_budget")),
        )


def reason_not_run(enabled: bool, policy: Policy) -> str | None:
    """Why DRL-01 does not apply here, or None when the drill runs on this host."""
    if not enabled:
        return f"the renewal drill renews certificates for real: it runs only with {OPTION}"
    if not policy.drill_ok:
        return "certaudit_drill_ok is not true for this host: the inventory does not allow a real renewal here"
    if policy.renewal != "certbot":
        return f"certaudit_renewal is {policy.renewal}: the drill renews through certbot"
    return None


def renew_command(policy: Policy, timeout_s: float) -> list[str]:
    """The drill's command on the host, as an argv list (`timeout` bounds it on the host itself)."""
    env = ["env", f"REQUESTS_CA_BUNDLE={policy.acme_ca_bundle}"] if policy.acme_ca_bundle else []
    bound = ["timeout", f"--kill-after={KILL_AFTER_S}", f"{max(1, math.floor(timeout_s))}"]
    return [*env, *bound, "certbot", "renew", "--cert-name", policy.domain, *CERTBOT_ARGS, "-v"]


def unit_name(service: str) -> str:
    return service if "." in service else f"{service}.service"


@dataclass(frozen=True)
class CertbotReport:
    """What certbot's console said about the deploy hooks of one run."""

    hooks_run: tuple[str, ...]
    hook_errors: tuple[str, ...]  # one line each: the hook, its error code and its error output


def parse_certbot_output(text: str) -> CertbotReport:
    """The deploy hooks certbot ran and the errors they reported, from its console output (-v).

    certbot reports a failing deploy hook but still exits 0 ("all renewals succeeded"): its exit
    status says nothing about the hook, its words do.
    """
    hooks: list[str] = []
    errors: list[str] = []
    codes: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        index += 1
        if match := _RUNNING_HOOK_RE.match(line):
            hooks.append(match.group(1).strip())
        elif match := _HOOK_ERROR_CODE_RE.match(line):
            codes[match.group(1)] = match.group(2)
            errors.append(f"{match.group(1)} reported error code {match.group(2)}")
        elif match := _HOOK_ERROR_OUTPUT_RE.match(line):
            output = []
            while index < len(lines) and lines[index].startswith(" "):
                output.append(lines[index].strip())
                index += 1
            text_out = " / ".join(o for o in output if o)[:400]
            code = codes.get(match.group(1))
            entry = f"{match.group(1)} reported error code {code}" if code else None
            if entry in errors:
                errors[errors.index(entry)] = f"{entry}: {text_out}"
            else:
                errors.append(f"{match.group(1)} wrote to stderr: {text_out}")
    return CertbotReport(tuple(hooks), tuple(errors))


@dataclass(frozen=True)
class JournalReport:
    """The unit's journal since the drill began: systemd's jobs on it and the service's own lines."""

    jobs: tuple[str, ...]  # e.g. "2026-11-28T00:46:52Z reload done: Reloaded stemedb-api.service - ..."
    reloaded: bool  # a reload, restart or start of the unit finished (JOB_RESULT=done)
    service_lines: tuple[str, ...]


def _journal_time(entry: dict[str, Any]) -> str:
    try:
        micros = int(entry.get("__REALTIME_TIMESTAMP", ""))
        return dt.datetime.fromtimestamp(micros / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, TypeError, OverflowError, OSError):  # absent, not a number, or no date a datetime holds
        return "?"


def _message(entry: dict[str, Any]) -> str:
    message = entry.get("MESSAGE", "")
    if isinstance(message, list):  # journalctl -o json gives non-UTF-8 messages as byte arrays
        message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256).decode("utf-8", "replace")
    return " ".join(str(message).split())[:300]


def parse_journal(text: str, unit: str) -> JournalReport:
    """`journalctl -u UNIT -o json` output: the unit's finished jobs and the service's own log lines."""
    jobs: list[str] = []
    lines: list[str] = []
    reloaded = False
    for raw in text.splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        when = _journal_time(entry)
        job_type, job_result = entry.get("JOB_TYPE"), entry.get("JOB_RESULT")
        if entry.get("UNIT") == unit and job_type and job_result:
            jobs.append(f"{when} {job_type} {job_result}: {_message(entry)}")
            reloaded = reloaded or (job_type in _RELOADING_JOBS and job_result == "done")
        elif entry.get("_SYSTEMD_UNIT") == unit:
            lines.append(f"{when} {_message(entry)}")
    return JournalReport(tuple(jobs), reloaded, tuple(lines[-20:]))


@dataclass(frozen=True)
class CertState:
    """One side of the drill: the lineage's certificate, the service's copy, and what the endpoint served."""

    at: str  # the auditing machine's clock, UTC
    lineage_sha256: str | None
    lineage_not_before: str | None
    lineage_not_after: str | None
    lineage_error: str
    service_file_sha256: str | None
    service_file_error: str
    served_sha256: str | None
    served_error: str

    def as_evidence(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", None) or not k.endswith("_error")}


@dataclass(frozen=True)
class DrillResult:
    command: str
    started: str
    finished: str
    exit_status: int | None  # None: certbot did not finish within its time bound (timeout killed it)
    certbot_timeout_s: float  # that bound: what the host's budget left for certbot
    output_tail: tuple[str, ...]
    certbot: CertbotReport
    before: CertState
    after: CertState
    journal: JournalReport | None
    journal_error: str
    served_wait_s: float


class _Host:
    """The drill's commands on the target, through certaudit's transport: the probe's host-key rule,
    connect timeout and one deadline for the whole drill. Every command is an argv list."""

    def __init__(self, target: Target, connect_timeout: float, deadline: float, budget: float) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.deadline = deadline
        self.budget = budget

    def left(self) -> float:
        """Seconds left of the drill's budget; raises Undeterminable once it is spent."""
        try:
            return remaining(self.deadline)
        except DeadlineExceeded:
            raise self._over_budget() from None

    def _over_budget(self) -> Undeterminable:
        return Undeterminable(
            f"host {self.target.name}: the drill did not finish within the per-host budget of {self.budget:g} s"
        )

    def run(self, argv: list[str]) -> CommandResult:
        name = self.target.name
        try:
            done = run_command(self.target, argv, self.connect_timeout, self.deadline, MAX_OUTPUT)
        except TransportError as exc:
            raise Undeterminable(f"host {name} ({self.target.address}): the drill cannot connect: {exc}") from None
        except DeadlineExceeded:
            raise self._over_budget() from None
        if done.truncated:
            raise Undeterminable(
                f"host {name}: `{shlex.join(argv)[:200]}` wrote over {MAX_OUTPUT} bytes: the drill cannot judge it"
            )
        if done.rc == -1:  # the in-process client's word for "no exit status": the session ended under it
            raise Undeterminable(f"host {name}: connection lost during the drill")
        refused = sudo_refusal(self.target, done)
        if refused is not None:
            raise Undeterminable(f"host {name}: the drill cannot run `{argv[0]}`: {refused}")
        return done

    def tls_timeout(self) -> float:
        return min(self.connect_timeout, self.left())


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _first_certificate(host: _Host, path: str) -> tuple[str | None, str | None, str | None, str]:
    """(sha256, notBefore, notAfter, error) of the first certificate in `path` on the host."""
    done = host.run(["openssl", "x509", "-in", path])
    if done.rc != 0:
        return None, None, None, f"openssl x509 -in {path}: " + " ".join(_text(done.stderr).split())[:200]
    try:
        (leaf, *_) = load_pem_certificates(done.stdout, path)
    except CertificateError as exc:
        return None, None, None, str(exc)
    return (
        fingerprint_sha256(leaf),
        leaf.not_valid_before_utc.isoformat(),
        leaf.not_valid_after_utc.isoformat(),
        "",
    )


def _state(host: _Host, target: Target) -> CertState:
    policy = target.policy
    lineage = _first_certificate(host, posixpath.join(policy.live_dir, "cert.pem"))
    service_file = _first_certificate(host, policy.tls_cert)
    served = fetch_leaf(target.address, policy.endpoint_port, policy.domain, timeout=host.tls_timeout())
    return CertState(
        at=_now(),
        lineage_sha256=lineage[0],
        lineage_not_before=lineage[1],
        lineage_not_after=lineage[2],
        lineage_error=lineage[3],
        service_file_sha256=service_file[0],
        service_file_error=service_file[3],
        served_sha256=fingerprint_der_sha256(served.leaf_der) if served.leaf_der else None,
        served_error=served.error,
    )


def _journal_cursor(host: _Host) -> tuple[str | None, str]:
    done = host.run(["journalctl", "-o", "json", "-n", "1", "--no-pager"])
    if done.rc != 0:
        return None, f"journalctl exited {done.rc}: " + " ".join(_text(done.stderr).split())[:200]
    try:
        cursor = json.loads(_text(done.stdout).strip().splitlines()[-1])["__CURSOR"]
    except (ValueError, IndexError, KeyError, TypeError):
        return None, "journalctl gave no cursor: the journal is empty or unreadable"
    return str(cursor), ""


def _served_after(host: _Host, expected: str | None, wait_s: float) -> tuple[str | None, str, float]:
    """The endpoint's leaf after the renewal, polled until it is `expected` or `wait_s` passed."""
    target = host.target
    policy = target.policy
    start = time.monotonic()
    while True:
        served = fetch_leaf(target.address, policy.endpoint_port, policy.domain, timeout=host.tls_timeout())
        sha = fingerprint_der_sha256(served.leaf_der) if served.leaf_der else None
        waited = time.monotonic() - start
        if expected is None or sha == expected or waited >= wait_s:
            return sha, served.error, round(waited, 2)
        time.sleep(SERVED_POLL_S)


def run_drill(target: Target, settings: DrillSettings) -> DrillResult:
    """Renew the host's certificate for real and gather the proof; raises Undeterminable when the
    connection fails, the host key is refused or the budget runs out (a drill that could not be
    followed through is an error, never a pass)."""
    policy = target.policy
    host = _Host(target, settings.connect_timeout, time.monotonic() + settings.host_budget, settings.host_budget)
    before = _state(host, target)
    cursor, journal_error = _journal_cursor(host)
    # certbot gets what the budget leaves after the steps that follow it, bounded on the host itself
    # by `timeout`: a renewal never outlives the drill's deadline.
    certbot_timeout_s = max(1.0, math.floor(host.left() - AFTER_CERTBOT_S))
    argv = renew_command(policy, certbot_timeout_s)
    started = _now()
    done = host.run(argv)
    finished = _now()
    exit_status: int | None = None if done.rc in (124, 137) else int(done.rc)
    output = _text(done.stdout) + "\n" + _text(done.stderr)
    certbot = parse_certbot_output(output)
    after_files = _state(host, target)
    served_sha, served_error, waited = _served_after(host, after_files.lineage_sha256, settings.served_wait_s)
    after = CertState(**{**after_files.__dict__, "served_sha256": served_sha, "served_error": served_error, "at": _now()})
    journal: JournalReport | None = None
    if cursor is not None:
        unit = unit_name(policy.service)
        shown = host.run(
            ["journalctl", "-u", unit, "--after-cursor", cursor, "-o", "json", "-n", str(JOURNAL_LINES), "--no-pager"]
        )
        if shown.rc == 0:
            journal = parse_journal(_text(shown.stdout), unit)
        else:
            journal_error = f"journalctl -u {unit} exited {shown.rc}: " + " ".join(_text(shown.stderr).split())[:200]
    tail = tuple(line for line in output.splitlines() if line.strip() and not set(line.strip()) <= {"-", " "})
    return DrillResult(
        command=shlex.join(argv),
        started=started,
        finished=finished,
        exit_status=exit_status,
        certbot_timeout_s=certbot_timeout_s,
        output_tail=tail[-OUTPUT_TAIL_LINES:],
        certbot=certbot,
        before=before,
        after=after,
        journal=journal,
        journal_error=journal_error,
        served_wait_s=waited,
    )
