"""REN-*: renewal is automated, reloads the service, starts early, suits the lifetime and succeeds (runbook: Prevention)."""

from __future__ import annotations

import datetime as dt
import errno
import posixpath
from dataclasses import asdict, dataclass, replace

from certaudit.controls import control, renewal_by_certbot
from certaudit.errors import Undeterminable
from certaudit.host.cadence import RunGap
from certaudit.host.certbot.conf import CertbotConfError, parse_renewal_conf
from certaudit.host.certbot.hooks import HookFile, reason_certbot_skips, reloads_service
from certaudit.host.certbot.interval import parse_interval
from certaudit.host.certbot.log import last_attempt
from certaudit.host.certificates import certificate_at, leaf_on_disk
from certaudit.host.facts import HostFacts
from certaudit.host.lifetimes import host_run_gap, window_problems
from certaudit.host.schedule import parse_systemd_time, renewal_schedule
from certaudit.host.thresholds import RUNBOOK_LIFETIME_DAYS, RUNBOOK_LIFETIME_FROM_DAYS, judge_expiry, lifetime_days
from certaudit.policy import Policy
from certaudit.record import Evidence


@control(
    "REN-01",
    title="Schedule renewal: certbot.timer active with a run within 24 h, or an effective cron entry runs certbot renew",
    source="Prevention › Automated Renewal 1; Investigation 4",
    not_applicable=renewal_by_certbot,
)
def test_renewal_is_scheduled(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: a certificate nobody renews expires, and an expired certificate is a full outage.
    certbot renews only when something runs it: on a systemd host its timer, elsewhere cron.

    Check: certbot.timer is loaded, enabled and active, with its next run at most 24 h away; or
    the cron daemon runs and an entry it really reads runs `certbot renew`. Debian's
    /etc/cron.d/certbot does nothing on a host that runs systemd, and a timer that is enabled
    but not active schedules nothing, so neither counts. Every source is judged: the timer's
    state, /etc/crontab, /etc/cron.d and the users' crontabs. One effective schedule passes; with
    none, a source that could not be read (a directory the audit's login may not list, a crontab
    over the read limit) makes it an error, never a failure.

    Fix: `systemctl enable --now certbot.timer` and check `systemctl list-timers certbot.timer`;
    on a host without systemd, a root cron entry such as `0 */12 * * * certbot -q renew`.
    """
    evidence.expect(schedule="certbot.timer active with a run within 24 h, or an effective cron entry running certbot renew")
    schedule = renewal_schedule(facts)
    timer, cron = schedule.timer, schedule.cron
    evidence.observe(systemd_running=facts.systemd, timer=timer.observed if timer else None, cron=cron.observed)
    for note in cron.ignored:
        evidence.note(note)
    # Any one effective schedule, read whole, proves renewal is scheduled; no schedule proves it is
    # not only when every source was read (the timer's state, every crontab, every directory of
    # crontabs listed whole). A source not read never turns into "no schedule".
    if schedule.proof is not None:
        for source in schedule.unknown:
            evidence.note(f"not read, not needed for this verdict: {source}")
        return
    if schedule.unknown:
        raise Undeterminable(f"host {facts.host}: {'; '.join(schedule.unknown)}: whether renewal is scheduled is unknown")
    evidence.require(False, f"renewal is not scheduled: {schedule.absent}")


def _hook_file(facts: HostFacts, path: str) -> HookFile:
    """A file of the hooks directory; its text only when certbot runs it (the probe reads no other)."""
    fact = facts.file(path)
    # problem() raises where the login may not stat it: a hook it cannot see may be one certbot runs.
    if fact.problem() is None and fact.mode is None:
        raise Undeterminable(f"host {facts.host}: the mode of {path} is unknown")
    name = posixpath.basename(path)
    hook = HookFile(path=path, name=name, is_file=fact.kind == "file", mode=fact.mode, uid=fact.uid, content=None)
    if reason_certbot_skips(hook) is not None:
        return hook
    # certbot runs it: its text decides; one not read (over the hook read limit, a private key,
    # permission) raises with the reason, since what it does cannot be told from here.
    return replace(hook, content=fact.text())


MAX_LISTED = 20  # skipped files and problems named in the evidence; the rest are counted


@control(
    "REN-02",
    title="Reload the service on renewal: a safe deploy hook reloads the configured service",
    source="Prevention › Automated Renewal 2",
    not_applicable=renewal_by_certbot,
)
def test_deploy_hook_reloads_service(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: certbot writes the new certificate to disk; the service keeps serving the old one
    until it reloads. Without a deploy hook, every renewal still ends in an expired certificate
    on the wire. A hook runs as root, so one that others can write is a root shell for them.

    Check: `renewal-hooks/deploy/` holds a hook certbot really runs (a regular, executable file
    whose name does not end in `~`), owned by root and not writable by group or others, whose
    commands reload or restart the configured service; or the renewal conf stores a
    `renew_hook` (what `--deploy-hook` saves) that does. Every hook certbot runs must be safe.

    Fix: install the runbook's hook as `/etc/letsencrypt/renewal-hooks/deploy/reload-stemedb.sh`
    with `systemctl reload stemedb-api`, then `chown root:root` and `chmod 755` it.
    """
    hooks_dir = policy.deploy_hooks_dir
    listing = facts.listing(hooks_dir)
    hooks = [_hook_file(facts, f.path) for f in facts.files_in(hooks_dir)]
    renew_hook = _renew_hook(facts, policy)
    observed_hooks = []
    skipped: list[str] = []
    reloading: list[str] = []
    problems: list[str] = []
    for hook in hooks:
        skip = reason_certbot_skips(hook)
        line = reloads_service(hook.content, policy.service) if hook.content is not None else None
        mode = "unknown" if hook.mode is None else f"{hook.mode:04o}"
        if skip is not None:
            if len(skipped) < MAX_LISTED:  # a directory of 10,000 data files is counted, not listed
                observed_hooks.append(
                    {"path": hook.path, "mode": mode, "uid": hook.uid, "certbot_runs_it": False, "reload_line": None}
                )
            skipped.append(f"{hook.path}: {skip}")
            continue
        observed_hooks.append({"path": hook.path, "mode": mode, "uid": hook.uid, "certbot_runs_it": True, "reload_line": line})
        unsafe = []
        if hook.uid != 0:
            unsafe.append(f"owned by uid {hook.uid}, not root")
        if hook.mode is not None and hook.mode & 0o022:
            unsafe.append(f"writable by group or others (mode {mode})")
        if unsafe:
            evidence.require(False, f"{hook.path} runs as root on every renewal but is " + " and ".join(unsafe))
        if line is None:
            problems.append(f"{hook.path}: reloads no {policy.service} (no systemctl reload/restart of it)")
        elif not unsafe:
            reloading.append(hook.path)
    if renew_hook is not None:
        line = reloads_service(renew_hook, policy.service)
        if line is not None:
            reloading.append("renew_hook in " + policy.renewal_conf)
        else:
            problems.append(f"renew_hook `{renew_hook}` reloads no {policy.service}")
    evidence.observe(
        hooks_dir=hooks_dir,
        hooks_dir_exists=listing.exists,
        hooks=observed_hooks,
        skipped_by_certbot=len(skipped),
        renew_hook=renew_hook,
        reloading_hooks=reloading,
    )
    evidence.expect(
        hook=f"a root-owned, executable, not group/world-writable hook reloading {policy.service}", example=policy.deploy_hook
    )
    if not hooks and renew_hook is None:
        where = hooks_dir if listing.exists else f"{hooks_dir} (missing)"
        evidence.require(False, f"no deploy hook: nothing in {where} and no renew_hook in {policy.renewal_conf}")
    else:
        problems += skipped
        shown = problems[:MAX_LISTED] + ([f"and {len(problems) - MAX_LISTED} more"] if len(problems) > MAX_LISTED else [])
        evidence.require(bool(reloading), "no deploy hook reloads " + policy.service + ": " + "; ".join(shown))


def _renew_hook(facts: HostFacts, policy: Policy) -> str | None:
    conf = facts.file(policy.renewal_conf)
    if conf.problem() is not None:
        return None
    try:
        return parse_renewal_conf(conf.read(), conf.path).renew_hook
    except CertbotConfError:
        return None  # REN-03 reports an unreadable renewal conf


@control(
    "REN-03",
    title="Pin the renewal window: renew_before_expiry is at least 30 days",
    source="Operational Best Practices 1",
    not_applicable=renewal_by_certbot,
)
def test_renewal_window_is_pinned(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: renewing 30 days before expiry leaves a month to notice and fix a failing renewal
    before the outage. certbot's own default has changed between releases; pinning the setting
    keeps the window where the runbook's alerts expect it. The 30 days are a third of a 90-day
    certificate: pinned on a 6-day certificate they renew it on every run of the timer, and the
    CA refuses the sixth duplicate in a week.

    Check: `renew_before_expiry` is set (not only as certbot's commented default) at the top of
    `renewal/<domain>.conf`, is in certbot's interval syntax ("30 days", "4 weeks", "720 hours";
    a bare number means days), and is at least `certaudit_min_renew_before_days` (30) for a
    certificate of the runbook's 90 days; for a shorter one (the lineage's cert.pem, else the
    service's), at least those days scaled to its lifetime (a third). And it fits the lifetime: a
    window as long as the certificate, or one that leaves less of it than the time between two runs
    of certbot (its timer's OnCalendar and random delay, or its cron entry), renews on every run; a
    window shorter than two such gaps leaves no second chance.

    Fix: set `renew_before_expiry = 30 days` in `/etc/letsencrypt/renewal/<domain>.conf` (for a
    certificate shorter than 90 days, a third of its lifetime, e.g. `2 days` for 6 days), then
    `certbot renew --dry-run --cert-name <domain>`.
    """
    conf = facts.file(policy.renewal_conf)
    now = dt.datetime.fromtimestamp(facts.audited_at, dt.UTC)
    lifetime = _lineage_lifetime(facts, policy, evidence)
    minimum_days = float(policy.min_renew_before_days)
    if lifetime is not None and lifetime < RUNBOOK_LIFETIME_FROM_DAYS:
        minimum_days = policy.min_renew_before_days * lifetime / RUNBOOK_LIFETIME_DAYS
        evidence.expect(
            renew_before_expiry=f"at least {minimum_days:.2f} days ({policy.min_renew_before_days}/{RUNBOOK_LIFETIME_DAYS} "
            f"of the {lifetime:.1f}-day lifetime), shorter than the lifetime less one gap between certbot's runs",
            file=policy.renewal_conf,
        )
    else:
        evidence.expect(renew_before_expiry=f"at least {policy.min_renew_before_days} days", file=policy.renewal_conf)
    problem = conf.problem()
    if problem is not None:
        evidence.observe(file=conf.as_evidence())
        evidence.require(False, f"{problem}: certbot manages no lineage for {policy.domain} here")
        return
    try:
        renewal = parse_renewal_conf(conf.read(), conf.path)
    except CertbotConfError as exc:
        evidence.observe(file=conf.path)
        evidence.require(False, f"certbot cannot read its renewal conf: {exc}")
        return
    value = renewal.renew_before_expiry
    evidence.observe(file=conf.path, renew_before_expiry=value)
    if value is None:
        evidence.require(False, f"renew_before_expiry is not set in {conf.path} (only certbot's commented default)")
        return
    interval = parse_interval(value, now)
    if interval is None:
        evidence.require(False, f"certbot cannot parse renew_before_expiry = {value!r}: it would renew only at expiry")
        return
    days = interval.total_seconds() / 86400
    evidence.observe(renew_before_expiry_days=round(days, 2))
    shown_minimum = (
        f"{policy.min_renew_before_days} days"
        if minimum_days == policy.min_renew_before_days
        else (f"{minimum_days:.2f} days, a third of the {lifetime:.1f}-day lifetime")
    )
    # A minute's slack: certificate times are whole seconds, so a window of exactly a third of the
    # lifetime ("512 hours" of 64 days) must not fail on the second notBefore was rounded by.
    if not evidence.require(
        days >= minimum_days - 1 / 1440, f"renew_before_expiry = {value} is {days:g} days, under {shown_minimum}"
    ):
        return
    if lifetime is None:
        return
    gap = _run_gap(facts, evidence)
    if gap is None and lifetime < RUNBOOK_LIFETIME_FROM_DAYS:
        raise Undeterminable(
            f"host {facts.host}: how often certbot runs is unknown (no effective schedule whose times could be read), "
            f"so whether a {days:g}-day window suits the {lifetime:.1f}-day certificate is unknown"
        )
    for finding in window_problems(days, lifetime, gap.hours if gap is not None else None):
        evidence.require(False, finding)


def _lineage_lifetime(facts: HostFacts, policy: Policy, evidence: Evidence) -> float | None:
    """The lifetime of the certificate certbot renews (the lineage's, else the service's); None when neither is there."""
    for path in (posixpath.join(policy.live_dir, "cert.pem"), policy.tls_cert):
        if path not in facts.files:  # not gathered (a snapshot made without it): the next one answers
            continue
        try:
            cert = certificate_at(facts, path)
        except Undeterminable as exc:
            evidence.note(f"the lifetime was not read from {path}: {str(exc).removeprefix(f'host {facts.host}: ')}")
            continue
        if cert is not None:
            lifetime = lifetime_days(cert)
            evidence.observe(certificate=path, lifetime_days=round(lifetime, 2))
            return lifetime
    evidence.note("no certificate to read the lifetime from: the window is judged by the runbook's days")
    return None


def _run_gap(facts: HostFacts, evidence: Evidence) -> RunGap | None:
    gap = host_run_gap(facts)
    if gap is not None:
        evidence.observe(runs_at_most_hours_apart=round(gap.hours, 2), schedule=gap.source)
    return gap


@control(
    "REN-04",
    title="Judge short-lived certificates by share of lifetime: the threshold mode suits the certificate's lifetime",
    source="Prevention › Monitoring 1; Operational Best Practices 1",
)
def test_threshold_mode_suits_lifetime(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: the runbook's 30 and 7 days assume Let's Encrypt's 90-day certificates. Its 45-day
    and 6-day certificates always have fewer than 30 days left: judged in days they fail from the
    day they are issued, an alarm that teaches everyone to ignore it. Judged by the share of their
    lifetime left, they warn and page as a 90-day certificate does.

    Check: the threshold mode that judges the leaf in `certaudit_tls_dir/cert.pem` suits its
    lifetime. Under `certaudit_threshold_mode: auto` (the default) it always does: a certificate
    of the runbook's 90 days is judged in days, a shorter one by the runbook's days scaled to its
    lifetime. Under `days`, a certificate whose whole lifetime is no longer than
    `certaudit_warn_days` is reported as needing another mode. Under `lifetime`, any certificate
    suits it. Either way the evidence says which rule judged the host (CRT-01 applies it), why,
    and the share of the lifetime left.

    Fix: remove `certaudit_threshold_mode: days` for hosts with short-lived certificates (the
    default `auto` judges them by their lifetime), or set it to `lifetime`, with
    `certaudit_warn_fraction` / `certaudit_crit_fraction` if 0.33 and 0.08 do not suit.
    """
    evidence.expect(
        lifetime_days=f"more than {policy.warn_days} under the days mode; any under the auto and lifetime modes",
        threshold_mode=policy.threshold_mode,
    )
    leaf = leaf_on_disk(facts, policy, evidence)
    if leaf is None:
        return
    judged = judge_expiry(leaf, dt.datetime.fromtimestamp(facts.audited_at, dt.UTC), policy)
    evidence.observe(**judged.observed(), thresholds=judged.thresholds(policy))
    evidence.require(
        not judged.needs_lifetime,
        f"needs the lifetime mode: its whole lifetime is {judged.lifetime_days:.1f} days, no longer than the "
        f"{policy.warn_days}-day warning threshold, so in days it never has enough left; remove "
        "certaudit_threshold_mode: days for this host (auto judges it by its lifetime) or set it to lifetime "
        "(CRT-01 judges it by share of lifetime meanwhile)",
    )


@dataclass(frozen=True)
class _ServiceRun:
    """certbot.service's last run since boot, as systemd keeps it."""

    time: float
    at: str
    result: str
    exit_status: str
    running: bool


def _service_run(facts: HostFacts) -> _ServiceRun | None:
    if not facts.systemd:
        return None
    unit = facts.unit("certbot.service")
    started = parse_systemd_time(unit.get("ExecMainStartTimestamp", ""))
    if started is None:
        return None  # it has not run since boot
    ended = parse_systemd_time(unit.get("ExecMainExitTimestamp", "")) or started
    return _ServiceRun(
        ended.timestamp(),
        ended.isoformat(),
        unit.get("Result", ""),
        unit.get("ExecMainStatus", ""),
        unit.get("ActiveState") == "activating",
    )


@control(
    "REN-05",
    title="Prove the last renewal attempt succeeded: certbot.service's last result or certbot's log, with its time",
    source="Investigation 4; If Renewal Fails 1",
    not_applicable=renewal_by_certbot,
)
def test_last_renewal_attempt_succeeded(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: a renewal that fails leaves the certificate in place, so nothing looks wrong until
    30 days of daily failures end in an outage. The timer (REN-01) only proves certbot runs, not
    that it succeeds: an expired ACME account, a blocked port 80 or a broken renewal conf fail
    every run.

    Check: the most recent of certbot.service's last run since boot (`Result=success`) and the last
    run in `/var/log/letsencrypt/letsencrypt.log*` that renewed or obtained a certificate (it ends
    with `no renewal failures` or `Successfully received certificate`, and logs no error) succeeded;
    its time is recorded. No record of any attempt is a failure: success cannot be shown.

    Fix: read the errors recorded (`journalctl -u certbot`, `/var/log/letsencrypt/letsencrypt.log`),
    fix their cause (the runbook's "If Renewal Fails"), then `certbot renew --cert-name <domain>`
    and check it ends with "Congratulations" or "not yet due".
    """
    evidence.expect(last_attempt="succeeded: certbot.service Result=success, or a certbot log run without errors")
    service = _service_run(facts)
    logs = facts.certbot_logs()
    # The newest record decides, so a log not read may hold a later attempt than the unit's.
    if logs.error and logs.errno_ not in (errno.ENOENT, errno.ENOTDIR):
        raise Undeterminable(f"host {facts.host}: cannot read certbot's logs in {logs.directory}: {logs.error}")
    unread = [log for log in logs.logs if log.error]
    if unread:
        raise Undeterminable(f"host {facts.host}: cannot read certbot's log {unread[0].path}: {unread[0].error}")
    run = last_attempt(logs)
    logged = None
    if run is not None:
        moment = run.ended if run.ended is not None else run.started
        logged = {
            "time": moment,
            "at": dt.datetime.fromtimestamp(moment, dt.UTC).isoformat() if moment is not None else None,
            **run.as_evidence(),
        }
    evidence.observe(
        certbot_service=asdict(service) if service is not None else None,
        certbot_log=logged,
        logs_read=[log.path for log in logs.logs],
    )
    if service is None and logged is None:
        evidence.require(
            False,
            f"no renewal attempt is recorded: certbot.service has not run since boot and {logs.directory} holds no "
            "log of a certbot run that renewed or obtained a certificate",
        )
        return
    # The newest record decides; the unit's own verdict wins over the log of the same run.
    log_time = run.ended if run is not None else None
    if service is not None and (log_time is None or service.time >= log_time - 60):
        evidence.observe(last_attempt=f"certbot.service at {service.at}: {service.result}")
        if service.running:
            evidence.note("certbot.service is running now: its previous result is judged")
        same_run = run is not None and log_time is not None and abs(log_time - service.time) <= 120
        errors = f"; certbot logged: {'; '.join(run.errors[:3])}" if same_run and run is not None and run.errors else ""
        evidence.require(
            service.result == "success",
            f"the last renewal attempt failed: certbot.service ran at {service.at} and ended with result "
            f"{service.result or 'unknown'} (exit status {service.exit_status or '?'}){errors}",
        )
        return
    assert run is not None and logged is not None
    evidence.observe(last_attempt=f"certbot run logged in {run.log} at {logged['at']}: {run.outcome}")
    if run.outcome == "failure":
        detail = "; ".join(run.errors[:3]) or "it exited abnormally"
        evidence.require(False, f"the last renewal attempt failed: certbot's run logged at {logged['at']}: {detail}")
    elif run.outcome == "unknown":
        evidence.require(
            False,
            f"the last renewal attempt did not finish: certbot's run logged at {logged['at']} in {run.log} shows no outcome",
        )
