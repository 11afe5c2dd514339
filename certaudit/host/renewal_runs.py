"""What each command line that renews runs after a renewal: REN-02 judges every one of them.

A host may renew through more than one command line (its timer's service and a cron entry, two
cron entries). Each runs its own hooks, so each must reload the service. For one command line,
the deploy hook certbot runs is, in certbot's order, the last one the line gives, else a
`deploy-hook` in cli.ini, else the renewal conf's `renew_hook`; `renewal-hooks/deploy/` runs unless
the line or cli.ini says `no-directory-hooks`. RHEL/EPEL's certbot-renew.service takes words from
/etc/sysconfig/certbot (`$DEPLOY_HOOK`, `$CERTBOT_ARGS`, ...).

With nothing scheduled, the line judged is the one that renews once the schedule is mended (REN-01
reports the schedule): the installed timer's service, else a plain `certbot renew`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from certaudit.errors import Undeterminable
from certaudit.host.certbot.command_hooks import (
    NO_DIRECTORY_HOOKS,
    SYSCONFIG,
    CliIni,
    CommandHook,
    Word,
    certbot_option,
    command_line_hooks,
    sysconfig_variables,
)
from certaudit.host.facts import HostFacts
from certaudit.host.schedule import (
    TIMER_SERVICES,
    CertbotRun,
    RenewalSchedule,
    cron_daemon_runs,
    exec_argv,
    renewal_schedule,
    scheduled_runs,
)

__all__ = ["RenewalRun", "RenewalRuns", "renewal_runs"]

RHEL_SERVICE = "certbot-renew.service"  # reads /etc/sysconfig/certbot (EnvironmentFile=)
PLAIN_RUN = "a plain `certbot renew`"
# systemd's `$NAME` (split into words) and `${NAME}` (one word) on an ExecStart line.
_VARIABLE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")


@dataclass(frozen=True)
class RenewalRun:
    """One command line that renews, and the hooks it runs after a renewal."""

    where: str  # "certbot.service's ExecStart", "/etc/crontab:3", PLAIN_RUN
    directory_hooks_off: str | None  # why it runs nothing in renewal-hooks/, or None
    hook: CommandHook | None  # the one command hook it runs
    replaced: tuple[CommandHook, ...]  # hooks lower in certbot's order that it does not run
    problems: tuple[str, ...]  # what makes certbot refuse the line: it renews nothing
    reads_sysconfig: bool


@dataclass(frozen=True)
class _Sysconfig:
    variables: dict[str, tuple[str, list[str]]]
    problems: list[str]


@dataclass(frozen=True)
class RenewalRuns:
    runs: list[RenewalRun]
    sysconfig_problems: list[str]  # what /etc/sysconfig/certbot could not give (an unterminated quote)
    unread: list[str]  # where a command line that renews could be, not read: those runs are not judged


def renewal_runs(facts: HostFacts, cli_ini: CliIni, renew_hook: CommandHook | None) -> RenewalRuns:
    """Every command line that renews here, with the hooks it runs. Raises Undeterminable where a
    line's hooks cannot be known."""
    schedule = renewal_schedule(facts)
    runs = scheduled_runs(facts, schedule) or [_unscheduled_run(facts, schedule)]
    sysconfig: _Sysconfig | None = None
    if any(run.service == RHEL_SERVICE for run in runs):
        sysconfig = _read_sysconfig(facts)
    judged = [_judge(facts, run, sysconfig, cli_ini, renew_hook) for run in runs]
    return RenewalRuns(judged, sysconfig.problems if sysconfig is not None else [], _unread(facts, schedule))


def _unread(facts: HostFacts, schedule: RenewalSchedule) -> list[str]:
    """The timer's state if unknown, and the crontabs not read where cron runs (or may)."""
    unread = [reason for reason in schedule.unknown if reason not in schedule.cron.unknown]
    if schedule.cron.unknown:
        try:
            cron_runs, _ = cron_daemon_runs(facts)
        except Undeterminable:
            cron_runs = True
        if cron_runs:
            unread += schedule.cron.unknown
    return unread


def _unscheduled_run(facts: HostFacts, schedule: RenewalSchedule) -> CertbotRun:
    timer = schedule.timer  # with none effective, the first installed (certbot_timer_schedule)
    if timer is not None and timer.unit is not None and timer.observed.get("LoadState") not in (None, "", "not-found"):
        service = TIMER_SERVICES[timer.unit]
        return CertbotRun(f"{service}'s ExecStart", tuple(exec_argv(facts.unit(service).get("ExecStart", ""))), False, service)
    return CertbotRun(PLAIN_RUN, ("certbot", "renew"), exact=True)


def _read_sysconfig(facts: HostFacts) -> _Sysconfig:
    fact = facts.file(SYSCONFIG)
    if fact.problem() is not None:
        return _Sysconfig({}, [])  # absent: the service has no such variables (systemd then refuses to start it)
    variables, problems = sysconfig_variables(fact.text())
    return _Sysconfig(variables, problems)


def _words(facts: HostFacts, run: CertbotRun, sysconfig: _Sysconfig | None) -> list[Word]:
    if run.exact:
        return [Word(text, run.where, f"the command line of {run.where}") for text in run.argv[1:]]
    if not run.argv:
        raise Undeterminable(f"host {facts.host}: {run.service} shows no ExecStart: which hooks its renewals run is unknown")
    words = []
    for text in run.argv[1:]:
        variable = _VARIABLE.fullmatch(text)
        if variable is not None and run.service == RHEL_SERVICE and sysconfig is not None:
            name = variable.group(1) or variable.group(2)
            where, values = sysconfig.variables.get(name, ("", []))
            values = values if variable.group(1) else [" ".join(values)] if values else []
            words += [Word(value, where, where) for value in values]
            continue
        if "$" in text:
            raise Undeterminable(
                f"host {facts.host}: {run.where} passes {text!r}, which systemd expands from an environment the audit "
                "does not read: which hooks certbot runs is unknown"
            )
        option = certbot_option(text)
        if option is not None and option[0] != NO_DIRECTORY_HOOKS:
            raise Undeterminable(
                f"host {facts.host}: {run.where} passes a deploy hook on its command line, which systemctl show "
                "prints without its quoting: which hook certbot runs is unknown"
            )
        words.append(Word(text, run.where, run.where))
    return words


def _judge(
    facts: HostFacts, run: CertbotRun, sysconfig: _Sysconfig | None, cli_ini: CliIni, renew_hook: CommandHook | None
) -> RenewalRun:
    line = command_line_hooks(_words(facts, run, sysconfig))
    if line.config_files:
        raise Undeterminable(
            f"host {facts.host}: {run.where} gives certbot the config file {line.config_files[0]}, which the audit does not "
            "read: its options can replace the deploy hook or turn renewal-hooks/ off"
        )
    # certbot's order, lowest first: the conf's renew_hook, cli.ini's deploy-hook, the command line's.
    given = [hook for hook in (renew_hook, cli_ini.hook, line.hook) if hook is not None]
    hook = given[-1] if given else None
    return RenewalRun(
        where=run.where,
        directory_hooks_off=line.no_directory_hooks or cli_ini.no_directory_hooks,
        hook=hook,
        replaced=tuple(given[:-1]),
        problems=line.problems,
        reads_sysconfig=run.service == RHEL_SERVICE,
    )
