"""REN-*: renewal is automated, reloads the service, starts early, suits the lifetime and succeeds (runbook: Prevention)."""

from __future__ import annotations

import datetime as dt
import errno
import posixpath
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from cryptography import x509

from certaudit.controls import control, renewal_by_certbot
from certaudit.errors import Undeterminable
from certaudit.host.certbot.install import Installation
from certaudit.host.certbot.release import ARI_SINCE, default_renewal_point
from certaudit.host.certificates import certificate_at, leaf_on_disk
from certaudit.host.facts import HostFacts
from certaudit.host.schedule import (
    TIMER,
    TIMER_SERVICES,
    installed_timers,
    parse_systemd_time,
    renewal_schedule,
    scheduled_certbot,
)
from certaudit.host.thresholds import RUNBOOK_LIFETIME_DAYS, RUNBOOK_LIFETIME_FROM_DAYS, judge_expiry, lifetime_days
from certaudit.host.x509 import CertificateError, load_pem_certificates
from certaudit.policy import Policy
from certaudit.record import Evidence

# What only these controls read (certbot's hooks, conf, interval and log, the run gap) is imported by
# the control that reads it: every run collects this module, the gate too, which judges none of them.
if TYPE_CHECKING:
    from certaudit.host.cadence import RunGap
    from certaudit.host.certbot.command_hooks import CliIni, CommandHook
    from certaudit.host.certbot.conf import RenewalConf
    from certaudit.host.certbot.hooks import HookFile


@control(
    "REN-01",
    title="Schedule renewal: certbot.timer active with a run within 24 h, or an effective cron entry runs certbot renew",
    source="Prevention › Automated Renewal 1; Investigation 4",
    not_applicable=renewal_by_certbot,
)
def test_renewal_is_scheduled(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: a certificate nobody renews expires, and an expired certificate is a full outage.
    certbot renews only when something runs it: on a systemd host its timer, elsewhere cron.

    Check: the installation's timer (Debian's certbot.timer, RHEL/EPEL's certbot-renew.timer or the
    snap's snap.certbot.renew.timer) is loaded, enabled and active, with its next run at most 24 h
    away, and the service it starts runs `certbot renew` (not a `--dry-run`, which saves nothing;
    the snap's `certbot.renew`; RHEL's with its sysconfig's variables; a service that runs another
    program, a wrapper the audit does not read, leaves it unknown); or the cron daemon runs and an
    entry it really reads runs `certbot renew` (the EFF's pip install puts one in /etc/crontab).
    Debian's /etc/cron.d/certbot does nothing on a host that runs systemd, and a timer that is
    enabled but not active schedules nothing, so neither counts. Every source is judged: the timer's
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
    from certaudit.host.certbot.hooks import HookFile, reason_certbot_skips

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

    Check: every command line that renews (the timer's service's ExecStart, each cron entry cron
    runs; with none, the installed timer's service, else a plain `certbot renew`) runs a hook that
    reloads or restarts the configured service: a file in `renewal-hooks/deploy/` certbot really
    runs (regular, executable, a name not ending in `~`), owned by root and not writable by group
    or others; or the one command hook the line runs, in certbot's order the last: the renewal
    conf's `renew_hook` (what `--deploy-hook` saves), then a `deploy-hook` in certbot's config file
    (`/etc/letsencrypt/cli.ini`, root's `~/.config/letsencrypt/cli.ini`), then the line's own
    `--deploy-hook` (for RHEL/EPEL's certbot-renew.service, with the words of the variables its
    ExecStart names from `/etc/sysconfig/certbot`: DEPLOY_HOOK, CERTBOT_ARGS, ...). A line is read
    as certbot's argparse reads it (an unambiguous prefix of an option counts; of its hooks the
    last runs). A `no-directory-hooks` in cli.ini, or `--no-directory-hooks` on the line, means
    certbot runs nothing in `renewal-hooks/` for it; a cli.ini certbot cannot parse, or a line with
    a `--renew-hook` and a `--deploy-hook` that differ, means it does not start at all; a cli.ini
    the audit cannot read, a hook on a service's ExecStart (systemctl show loses its quoting), a
    variable of an environment it does not read, a config file given on the line (`-c`), or a
    crontab or timer state it could not read (a line that renews from there is not judged) leaves
    the verdict unknown.
    A hook that names a script is judged by the script (it must be executable, root's and not
    group/world-writable). A `deploy_hook` line in `[renewalparams]` counts for nothing: certbot
    never reads it. Every hook certbot runs must be safe.

    Fix: install the runbook's hook as `/etc/letsencrypt/renewal-hooks/deploy/reload-stemedb.sh`
    with `systemctl reload stemedb-api`, then `chown root:root` and `chmod 755` it.
    """
    from certaudit.host.certbot.command_hooks import SYSCONFIG, CommandHook
    from certaudit.host.certbot.hooks import reason_certbot_skips, reloads_service
    from certaudit.host.renewal_runs import renewal_runs

    hooks_dir = policy.deploy_hooks_dir
    listing = facts.listing(hooks_dir)
    hooks = [_hook_file(facts, f.path) for f in facts.files_in(hooks_dir)]
    conf = _renewal_conf(facts, policy)
    renew_hook = conf.renew_hook if conf is not None else None
    cli_ini = _cli_ini(facts)
    for problem in cli_ini.problems:
        evidence.require(False, problem)
    conf_hook = CommandHook(f"renew_hook in {policy.renewal_conf}", renew_hook) if renew_hook is not None else None
    found = renewal_runs(facts, cli_ini, conf_hook)
    runs = found.runs
    for problem in found.sysconfig_problems:
        evidence.note(problem)
    for run in runs:
        for problem in run.problems:
            evidence.require(False, problem)
    offs = list(dict.fromkeys(run.directory_hooks_off for run in runs if run.directory_hooks_off is not None))
    directory_hooks_off = " and ".join(offs) or None
    directory_hooks_run = any(run.directory_hooks_off is None for run in runs)

    # The hook files, judged once: whether certbot runs each, whether it is safe, whether it reloads.
    observed_hooks = []
    skipped: list[str] = []  # certbot's own reasons to skip a file
    turned_off: list[str] = []  # files it would run, were renewal-hooks/ not turned off
    reloading_files: list[str] = []
    file_problems: list[str] = []
    not_run = 0
    for hook in hooks:
        skip = reason_certbot_skips(hook)
        mode = "unknown" if hook.mode is None else f"{hook.mode:04o}"
        if skip is None and offs:
            turned_off.append(hook.path)
        if skip is not None or not directory_hooks_run:
            not_run += 1
            if not_run <= MAX_LISTED:  # a directory of 10,000 data files is counted, not listed
                listed = {"path": hook.path, "mode": mode, "uid": hook.uid, "certbot_runs_it": False, "reload_line": None}
                observed_hooks.append(listed)
            if skip is not None:
                skipped.append(f"{hook.path}: {skip}")
            continue
        line = reloads_service(hook.content, policy.service) if hook.content is not None else None
        observed_hooks.append({"path": hook.path, "mode": mode, "uid": hook.uid, "certbot_runs_it": True, "reload_line": line})
        unsafe = []
        if hook.uid != 0:
            unsafe.append(f"owned by uid {hook.uid}, not root")
        if hook.mode is not None and hook.mode & 0o022:
            unsafe.append(f"writable by group or others (mode {mode})")
        if unsafe:
            evidence.require(False, f"{hook.path} runs as root on every renewal but is " + " and ".join(unsafe))
        if line is None:
            file_problems.append(f"{hook.path}: reloads no {policy.service} (no systemctl reload/restart of it)")
        elif not unsafe:
            reloading_files.append(hook.path)

    # The command hooks the runs execute, each judged once.
    replacements: dict[str, None] = {}  # a set in the order found
    for run in runs:
        if run.hook is None:
            continue
        on = "" if len(runs) == 1 else f" on {run.where}"
        for replaced in run.replaced:
            replacements[f"{replaced.source} is not run{on}: {run.hook.source} replaces it"] = None
    for replacement in replacements:
        evidence.note(
            f"{replacement} (certbot restores a renewal conf's renew_hook only when neither the command line nor a "
            "config file sets one, and a command line's hook comes after a config file's)"
        )
    if conf is not None and conf.deploy_hook is not None:
        evidence.note(
            f"deploy_hook = {conf.deploy_hook} in [renewalparams] of {policy.renewal_conf} is ignored: certbot reads "
            "renew_hook there (where --deploy-hook is saved), never deploy_hook"
        )
    if facts.file(SYSCONFIG).problem() is None and not any(run.reads_sysconfig for run in runs):
        evidence.note(f"{SYSCONFIG} is not read: no command line that renews here is RHEL/EPEL's certbot-renew.service")
    command_hooks = list(dict.fromkeys(run.hook for run in runs if run.hook is not None))
    observed_commands = []
    hook_problem: dict[CommandHook, str] = {}
    reloading = list(reloading_files)
    for given in command_hooks:
        line, script, trouble = _judge_command_hook(facts, policy, given)
        observed_commands.append({"source": given.source, "command": given.command, "script": script, "reload_line": line})
        if trouble.startswith("unsafe: "):
            evidence.require(False, trouble.removeprefix("unsafe: "))
            hook_problem[given] = ""
        elif trouble:
            hook_problem[given] = trouble
        elif line is not None:
            reloading.append(given.source)
        else:
            hook_problem[given] = f"{given.source} `{given.command}` reloads no {policy.service}"

    # Each run must reload the service, through the hook files it runs or its command hook.
    observed_runs = []
    failures = []
    for run in runs:
        files_reload = run.directory_hooks_off is None and bool(reloading_files)
        reloads = files_reload or (run.hook is not None and run.hook.source in reloading)
        observed_runs.append(
            {
                "where": run.where,
                "directory_hooks_off": run.directory_hooks_off,
                "hook": run.hook.source if run.hook else None,
                "reloads": reloads,
            }
        )
        if reloads:
            continue
        prefix = "" if len(runs) == 1 else f"{run.where}: "
        if not hooks and run.hook is None:
            where = hooks_dir if listing.exists else f"{hooks_dir} (missing)"
            elsewhere = f" nor a DEPLOY_HOOK/RENEW_HOOK in {SYSCONFIG}" if run.reads_sysconfig else ""
            failures.append(
                f"{prefix}no deploy hook: nothing in {where} and no renew_hook in {policy.renewal_conf} nor a deploy-hook in "
                f"certbot's cli.ini{elsewhere}"
            )
            continue
        problems = [] if run.directory_hooks_off is not None else list(file_problems)
        if run.hook is not None and hook_problem.get(run.hook):
            problems.append(hook_problem[run.hook])
        problems += skipped
        if run.directory_hooks_off is not None:
            problems += [f"{path}: {run.directory_hooks_off}: certbot runs nothing in renewal-hooks/" for path in turned_off]
        shown = problems[:MAX_LISTED] + ([f"and {len(problems) - MAX_LISTED} more"] if len(problems) > MAX_LISTED else [])
        failures.append(f"{prefix}no deploy hook reloads {policy.service}: " + "; ".join(shown))
    evidence.observe(
        hooks_dir=hooks_dir,
        hooks_dir_exists=listing.exists,
        hooks=observed_hooks,
        skipped_by_certbot=len(skipped),
        renew_hook=renew_hook,
        cli_ini={"deploy_hook": cli_ini.hook.source if cli_ini.hook else None, "no_directory_hooks": cli_ini.no_directory_hooks},
        directory_hooks_off=directory_hooks_off,
        command_hooks=observed_commands,
        reloading_hooks=reloading,
        runs=observed_runs,
    )
    evidence.expect(
        hook=f"a root-owned, executable, not group/world-writable hook reloading {policy.service}",
        example=policy.deploy_hook,
        runs="each command line that renews runs one",
    )
    for failure in failures:
        evidence.require(False, failure)
    if found.unread and not evidence.findings:
        # What was read reloads; a command line that renews from what was not could run other hooks.
        raise Undeterminable(
            f"host {facts.host}: {found.unread[0]}: a command line that renews from there could run hooks that do not reload "
            f"{policy.service}"
        )


def _renewal_conf(facts: HostFacts, policy: Policy) -> RenewalConf | None:
    from certaudit.host.certbot.conf import CertbotConfError, parse_renewal_conf

    conf = facts.file(policy.renewal_conf)
    if conf.problem() is not None:
        return None
    try:
        return parse_renewal_conf(conf.read(), conf.path)
    except CertbotConfError:
        return None  # REN-03 reports an unreadable renewal conf


def _cli_ini(facts: HostFacts) -> CliIni:
    """What certbot's config files (cli.ini) say about its deploy hooks. One that could not be read
    is undeterminable: it can replace the renew_hook or turn renewal-hooks/ off."""
    from certaudit.host.certbot.command_hooks import CLI_INI_FILES, read_cli_ini

    texts = []
    for path in CLI_INI_FILES:
        fact = facts.file(path)
        try:
            if fact.problem() is not None:
                continue  # absent (or not a file): certbot reads no options from it
            texts.append((path, fact.text()))
        except Undeterminable as exc:
            raise Undeterminable(
                f"{exc}: certbot reads its options there, which can replace the deploy hook or turn renewal-hooks/ off"
            ) from None
    return read_cli_ini(texts)


def _judge_command_hook(facts: HostFacts, policy: Policy, hook: CommandHook) -> tuple[str | None, str | None, str]:
    """(the reload line, the script it names, a problem: "" none, "unsafe: ..." a finding on its own)."""
    from certaudit.host.certbot.command_hooks import script_of
    from certaudit.host.certbot.hooks import reloads_service

    script = script_of(hook.command)
    if script is None:
        return reloads_service(hook.command, policy.service), None, ""
    fact = facts.file(script)
    problem = fact.problem()
    if problem is not None:
        return None, script, f"{hook.source} names {script}, but {problem}"
    if fact.mode is None:
        raise Undeterminable(f"host {facts.host}: the mode of {script} is unknown")
    if not fact.mode & 0o111:
        mode = f"{fact.mode:04o}"
        return None, script, f"{hook.source} names {script}, which is not executable (mode {mode}): the shell cannot run it"
    unsafe = []
    if fact.uid != 0:
        unsafe.append(f"owned by uid {fact.uid}, not root")
    if fact.mode & 0o022:
        unsafe.append(f"writable by group or others (mode {fact.mode:04o})")
    if unsafe:
        return None, script, f"unsafe: {script} runs as root on every renewal but is " + " and ".join(unsafe)
    return reloads_service(fact.text(), policy.service), script, ""


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

    Check: `renew_before_expiry` is set (not only as the comment certbot before 4.1 writes) at the
    top of `renewal/<domain>.conf`, is in certbot's interval syntax ("30 days", "4 weeks", "720
    hours"; a bare number means days), and is at least `certaudit_min_renew_before_days` (30) for a
    certificate of the runbook's 90 days; for a shorter one (the lineage's cert.pem, else the
    service's), at least those days scaled to its lifetime (a third). With
    `certaudit_accept_certbot_default_window: true` an unset value is judged instead by the window
    the installed certbot computes itself (the one its scheduler runs, read from package metadata):
    30 days before 4.0, a third of the lifetime (half under 10 days) from 4.0, ARI from 4.1 noted
    as able to move it. The evidence names the certbot and the rule applied. And the window fits
    the lifetime: one as long as the certificate, or one that leaves less of it than the time
    between two runs of certbot (its timer's OnCalendar and random delay, or its cron entry),
    renews on every run; one shorter than two such gaps leaves no second chance.

    Fix: set `renew_before_expiry = 30 days` in `/etc/letsencrypt/renewal/<domain>.conf` (for a
    certificate shorter than 90 days, a third of its lifetime, e.g. `2 days` for 6 days), then
    `certbot renew --dry-run --cert-name <domain>`.
    """
    from certaudit.host.certbot.conf import CertbotConfError, parse_renewal_conf
    from certaudit.host.certbot.interval import parse_interval
    from certaudit.host.lifetimes import window_problems

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
    installed = _certbot_installed(facts, evidence)
    shown_minimum = (
        f"{policy.min_renew_before_days} days"
        if minimum_days == policy.min_renew_before_days
        else f"{minimum_days:.2f} days, {policy.min_renew_before_days}/{RUNBOOK_LIFETIME_DAYS} of the {lifetime:.1f}-day lifetime"
    )
    if value is None:
        default = _default_window(facts, policy, evidence, conf.text(), installed)
        if default is None:
            return
        days, judged = default
    else:
        interval = parse_interval(value, now)
        if interval is None:
            evidence.require(False, f"certbot cannot parse renew_before_expiry = {value!r}: it would renew only at expiry")
            return
        days = interval.total_seconds() / 86400
        judged = f"renew_before_expiry = {value} is {days:g} days"
        evidence.observe(renew_before_expiry_days=round(days, 2))
        if installed is not None:
            rule = f"certbot {installed.version_text}: renew_before_expiry = {value} wins over its default"
            if installed.version[:2] >= ARI_SINCE:
                rule += "; the CA's renewal information (ARI) may only bring the renewal earlier"
            evidence.observe(rules=rule)
    # A minute's slack: certificate times are whole seconds, so a window of exactly a third of the
    # lifetime ("512 hours" of 64 days) must not fail on the second notBefore was rounded by.
    if not evidence.require(days >= minimum_days - 1 / 1440, f"{judged}, under {shown_minimum}"):
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
    from certaudit.host.lifetimes import host_run_gap

    gap = host_run_gap(facts)
    if gap is not None:
        evidence.observe(runs_at_most_hours_apart=round(gap.hours, 2), schedule=gap.source)
    return gap


def _certbot_installed(facts: HostFacts, evidence: Evidence) -> Installation | None:
    """The certbot the renewal scheduler runs, in the evidence; None (with a note) when unknown."""
    try:
        installed = scheduled_certbot(facts, renewal_schedule(facts))
    except Undeterminable as exc:
        evidence.note(f"which certbot renews is unknown: {str(exc).removeprefix(f'host {facts.host}: ')}")
        return None
    evidence.observe(certbot=installed.as_evidence())
    return installed


def _default_window(
    facts: HostFacts, policy: Policy, evidence: Evidence, conf_text: str, installed: Installation | None
) -> tuple[float, str] | None:
    """renew_before_expiry unset: a failure by the runbook's reading (None); with
    certaudit_accept_certbot_default_window, the days before expiry the installed release renews at
    and how to name them in a finding."""
    commented = "\n# renew_before_expiry" in "\n" + conf_text
    unset = f"renew_before_expiry is not set in {policy.renewal_conf}" + (
        " (only certbot's commented default)" if commented else ""
    )
    if not policy.accept_certbot_default_window:
        evidence.require(False, f"{unset}; certaudit_accept_certbot_default_window is false: the window must be pinned")
        return None
    if installed is None:
        raise Undeterminable(f"host {facts.host}: {unset}, and which certbot release renews is unknown, so its window is too")
    leaf = _lineage_leaf(facts, policy)
    point = default_renewal_point(installed.version, leaf.not_valid_before_utc, leaf.not_valid_after_utc)
    days = point.days_before_expiry
    evidence.observe(rules=point.rule, certbot_window_days=round(days, 2))
    if point.ari_may_move:
        evidence.note("the CA's renewal information (ARI) replaces this point when it answers: it may move either way")
    return days, f"{unset}; {point.rule}: {days:.1f} days before expiry"


def _lineage_leaf(facts: HostFacts, policy: Policy) -> x509.Certificate:
    """The lineage's current certificate (live/<domain>/cert.pem), whose lifetime certbot's default follows."""
    path = posixpath.join(policy.live_dir, "cert.pem")
    fact = facts.file(path)
    problem = fact.problem()
    if problem is not None:
        raise Undeterminable(f"host {facts.host}: {problem}: the lifetime certbot's default window follows is unknown")
    try:
        return load_pem_certificates(fact.read(), fact.where())[0]
    except CertificateError as exc:
        raise Undeterminable(f"host {facts.host}: {exc}: the lifetime certbot's default window follows is unknown") from None


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
    """The renewal service's last run since boot, as systemd keeps it."""

    unit: str
    time: float
    at: str
    result: str
    exit_status: str
    running: bool


def _service_run(facts: HostFacts) -> _ServiceRun | None:
    """The latest run since boot of the service an installed certbot timer starts (Debian's
    certbot.service, RHEL's certbot-renew.service, the snap's snap.certbot.renew.service)."""
    if not facts.systemd:
        return None
    timers = installed_timers(facts) or [TIMER]
    runs = [run for run in (_unit_run(facts, TIMER_SERVICES[t]) for t in timers) if run is not None]
    return max(runs, key=lambda run: run.time, default=None)


def _unit_run(facts: HostFacts, name: str) -> _ServiceRun | None:
    unit = facts.unit(name)
    started = parse_systemd_time(unit.get("ExecMainStartTimestamp", ""))
    if started is None:
        return None  # it has not run since boot
    ended = parse_systemd_time(unit.get("ExecMainExitTimestamp", "")) or started
    return _ServiceRun(
        name,
        ended.timestamp(),
        ended.isoformat(),
        unit.get("Result", ""),
        unit.get("ExecMainStatus", ""),
        unit.get("ActiveState") == "activating",
    )


def _services_named(facts: HostFacts) -> str:
    if not facts.systemd:
        return "no renewal service (systemd is not running)"
    return " nor ".join(TIMER_SERVICES[t] for t in installed_timers(facts) or [TIMER])


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

    Check: the most recent of the renewal service's last run since boot (`Result=success`; the
    service of the installed timer: certbot.service, certbot-renew.service or
    snap.certbot.renew.service) and the last
    run in `/var/log/letsencrypt/letsencrypt.log*` that renewed or obtained a certificate (it ends
    with `no renewal failures` or `Successfully received certificate`, and logs no error) succeeded;
    its time is recorded. No record of any attempt is a failure: success cannot be shown.

    Fix: read the errors recorded (`journalctl -u certbot`, `/var/log/letsencrypt/letsencrypt.log`),
    fix their cause (the runbook's "If Renewal Fails"), then `certbot renew --cert-name <domain>`
    and check it ends with "Congratulations" or "not yet due".
    """
    from certaudit.host.certbot.log import last_attempt

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
            f"no renewal attempt is recorded: {_services_named(facts)} has not run since boot and {logs.directory} holds no "
            "log of a certbot run that renewed or obtained a certificate",
        )
        return
    # The newest record decides; the unit's own verdict wins over the log of the same run.
    log_time = run.ended if run is not None else None
    if service is not None and (log_time is None or service.time >= log_time - 60):
        evidence.observe(last_attempt=f"{service.unit} at {service.at}: {service.result}")
        if service.running:
            evidence.note(f"{service.unit} is running now: its previous result is judged")
        same_run = run is not None and log_time is not None and abs(log_time - service.time) <= 120
        errors = f"; certbot logged: {'; '.join(run.errors[:3])}" if same_run and run is not None and run.errors else ""
        evidence.require(
            service.result == "success",
            f"the last renewal attempt failed: {service.unit} ran at {service.at} and ended with result "
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
