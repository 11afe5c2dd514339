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

from dataclasses import dataclass

from certaudit.errors import Undeterminable
from certaudit.host.certbot.command_hooks import (
    DEPLOY_HOOK,
    RENEW_HOOK,
    CliIni,
    CommandHook,
    Word,
    certbot_option,
    command_line_hooks,
)
from certaudit.host.certbot.exec_start import RHEL_SERVICE, service_line
from certaudit.host.facts import HostFacts
from certaudit.host.schedule import (
    TIMER_SERVICES,
    CertbotRun,
    RenewalSchedule,
    cron_daemon_runs,
    renewal_schedule,
    scheduled_runs,
)

__all__ = ["RenewalRun", "RenewalRuns", "renewal_runs"]

PLAIN_RUN = "a plain `certbot renew`"


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
class RenewalRuns:
    runs: list[RenewalRun]
    sysconfig_problems: list[str]  # what /etc/sysconfig/certbot could not give (an unterminated quote)
    unread: list[str]  # where a command line that renews could be, not read: those runs are not judged


def renewal_runs(facts: HostFacts, cli_ini: CliIni, renew_hook: CommandHook | None) -> RenewalRuns:
    """Every command line that renews here, with the hooks it runs. Raises Undeterminable where a
    line's hooks cannot be known."""
    schedule = renewal_schedule(facts)
    runs = scheduled_runs(facts, schedule) or [_unscheduled_run(schedule)]
    judged = []
    problems: list[str] = []
    for run in runs:
        words, sysconfig_problems = _words(facts, run)
        problems += [p for p in sysconfig_problems if p not in problems]
        judged.append(_judge(facts, run, words, cli_ini, renew_hook))
    return RenewalRuns(judged, problems, _unread(facts, schedule))


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


def _unscheduled_run(schedule: RenewalSchedule) -> CertbotRun:
    timer = schedule.timer  # with none effective, the first installed (certbot_timer_schedule)
    if timer is not None and timer.unit is not None and timer.observed.get("LoadState") not in (None, "", "not-found"):
        service = TIMER_SERVICES[timer.unit]
        return CertbotRun(f"{service}'s ExecStart", service=service)
    return CertbotRun(PLAIN_RUN, ("certbot", "renew"))


def _words(facts: HostFacts, run: CertbotRun) -> tuple[list[Word], tuple[str, ...]]:
    """The words certbot receives after its executable, and what RHEL's sysconfig could not give."""
    if run.service is None:
        return [Word(text, run.where, f"the command line of {run.where}") for text in run.argv[1:]], ()
    line = service_line(facts, run.service)
    for word in line.words:
        option = certbot_option(word.text)
        if not word.exact and option is not None and option[0] in (DEPLOY_HOOK, RENEW_HOOK):
            raise Undeterminable(
                f"host {facts.host}: {run.where} passes a deploy hook on its command line, which systemctl show "
                "prints without its quoting: which hook certbot runs is unknown"
            )
    return list(line.words), line.sysconfig_problems


def _judge(facts: HostFacts, run: CertbotRun, words: list[Word], cli_ini: CliIni, renew_hook: CommandHook | None) -> RenewalRun:
    line = command_line_hooks(words)
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
