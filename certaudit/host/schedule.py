"""What really schedules `certbot renew` on a host: its systemd timer, or cron entries cron reads.

The timer is the installation's own: Debian's package ships `certbot.timer` (starting
`certbot.service`), RHEL/EPEL's `certbot-renew.timer` (`certbot-renew.service`, hooks from
/etc/sysconfig/certbot), and snapd writes `snap.certbot.renew.timer` for the snap
(`snap.certbot.renew.service`). The probe asks systemd for all three.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from dataclasses import dataclass, field
from typing import Any

from certaudit.errors import Undeterminable
from certaudit.host.certbot.exec_start import exec_argv, service_line
from certaudit.host.certbot.install import Installation, installation_of
from certaudit.host.cron import (
    CronEntry,
    certbot_renew_argvs,
    certbot_renew_executable,
    certbot_renews,
    cron_d_file_is_read,
    parse_crontab,
    runs_certbot_renew,
    skipped_under_systemd,
)
from certaudit.host.facts import HostFacts

TIMER = "certbot.timer"
# Each installation's timer and the service it starts, Debian's first.
TIMER_SERVICES = {
    "certbot.timer": "certbot.service",
    "certbot-renew.timer": "certbot-renew.service",
    "snap.certbot.renew.timer": "snap.certbot.renew.service",
}
TIMERS = tuple(TIMER_SERVICES)
NEXT_RUN_WITHIN = dt.timedelta(hours=24)
CRON_DAEMONS = ("cron", "crond")


@dataclass(frozen=True)
class Schedule:
    effective: bool
    reason: str  # why it is (or is not) effective, in one clause
    observed: dict[str, Any]
    ignored: list[str] = field(default_factory=list)
    # What could not be read (a directory not listed or cut, a crontab not read): when nothing
    # effective was found, the schedule is unknown, not absent.
    unknown: list[str] = field(default_factory=list)
    entries: tuple[CronEntry, ...] = ()  # the cron entries that run certbot renew (cron only)
    unit: str | None = None  # the timer judged; None for cron
    command: tuple[str, ...] = ()  # cron: the certbot the first effective entry runs


def parse_systemd_time(value: str) -> dt.datetime | None:
    """systemctl show's timestamps: `@1700000000` or `Sat 2026-11-28 21:52:40 UTC` (the probe sets TZ=UTC)."""
    value = value.strip()
    if not value or value in ("n/a", "0"):
        return None
    if value.startswith("@"):
        try:
            return dt.datetime.fromtimestamp(float(value[1:]), dt.UTC)
        except (ValueError, OverflowError, OSError):  # not a number, NaN, or beyond what a datetime holds
            return None
    parts = value.split()
    if len(parts) >= 3:
        try:
            return dt.datetime.strptime(f"{parts[1]} {parts[2]}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
        except ValueError:
            return None
    return None


def timer_schedule(facts: HostFacts, name: str = TIMER) -> Schedule:
    """Whether one certbot timer schedules renewal: loaded, enabled, active, next run within 24 h."""
    if not facts.systemd:
        return Schedule(False, f"systemd is not running here, so {name} cannot fire", {"systemd": False}, unit=name)
    unit = facts.unit(name)
    load, active = unit.get("LoadState", ""), unit.get("ActiveState", "")
    enabled = unit.get("UnitFileState", "")
    next_run = parse_systemd_time(unit.get("NextElapseUSecRealtime", ""))
    now = dt.datetime.fromtimestamp(facts.taken_at, dt.UTC)
    observed = {
        "LoadState": load,
        "UnitFileState": enabled,
        "ActiveState": active,
        "next_run": next_run.isoformat() if next_run else None,
    }
    if name != TIMER:
        observed = {"unit": name, **observed}

    def judged(effective: bool, reason: str) -> Schedule:
        return Schedule(effective, reason, observed, unit=name)

    if load == "masked" or enabled == "masked":
        return judged(False, f"{name} is masked")
    if load != "loaded":
        return judged(False, f"{name} is not installed (LoadState={load or 'unknown'})")
    if active != "active":
        state = f"enabled but {active}" if enabled.startswith("enabled") else f"{enabled or 'not enabled'} and {active}"
        return judged(False, f"{name} is {state}, so it schedules nothing")
    if not enabled.startswith("enabled") and enabled not in ("static", "linked", "alias"):
        return judged(False, f"{name} is active but {enabled}: it stops at the next reboot")
    if next_run is None:
        return judged(False, f"{name} is active but has no next run")
    if next_run - now > NEXT_RUN_WITHIN:
        return judged(False, f"{name}'s next run is {next_run.isoformat()}, over 24 h away")
    # It fires; what it starts must renew. A drop-in's `certbot renew --dry-run` renews nothing.
    line = service_line(facts, TIMER_SERVICES[name])
    runs = line.runs()
    if runs == "other":
        raise Undeterminable(
            f"host {facts.host}: {name} starts {line.where} `{line.shown()}`, which runs {line.program}, not certbot: "
            "whether it renews is unknown"
        )
    if runs == "certbot" and not certbot_renews([line.program, *(word.text for word in line.words)]):
        if any(not word.exact and word.text.startswith("--") and "-hook" in word.text for word in line.words):
            # A hook's command (`--pre-hook "x -h"`) may hold the words that seemed to stop it.
            raise Undeterminable(
                f"host {facts.host}: {line.where} `{line.shown()}` passes a hook command, which systemctl show prints "
                "without its quoting: whether it renews is unknown"
            )
        return judged(False, f"{name} is active, but {line.where} `{line.shown()}` renews nothing")
    return judged(True, f"{name} is active, next run {next_run.isoformat()}")


def installed_timers(facts: HostFacts) -> list[str]:
    """The certbot timers systemd knows on this host (loaded or masked), in TIMERS order."""
    return [t for t in TIMERS if facts.unit(t).get("LoadState", "") not in ("not-found", "")]


def certbot_timer_schedule(facts: HostFacts) -> Schedule:
    """The certbot timer that schedules renewal, whichever installation's it is; when none does, the
    first one installed (Debian's certbot.timer when none is), judged as it stands."""
    if not facts.systemd:
        return timer_schedule(facts, TIMER)
    schedules: list[Schedule] = []
    unknown: Undeterminable | None = None
    for name in installed_timers(facts) or [TIMER]:
        try:
            schedules.append(timer_schedule(facts, name))
        except Undeterminable as exc:  # one timer's service not judged: another may still prove renewal
            unknown = unknown or exc
    effective = next((s for s in schedules if s.effective), None)
    if effective is not None:
        return effective
    if unknown is not None:
        raise unknown
    return schedules[0]


def _cron_sources(facts: HostFacts) -> tuple[list[tuple[str, bool]], list[str]]:
    """Every crontab cron may read (path, system?) and what could not be listed."""
    sources = [("/etc/crontab", True)]
    unknown: list[str] = []
    for directory, system in (("/etc/cron.d", True), ("/var/spool/cron/crontabs", False)):
        listing = facts.listings.get(directory)
        if listing is None:
            unknown.append(f"{directory} was not listed")
            continue
        incomplete = listing.incomplete()
        if incomplete is not None:
            unknown.append(incomplete)  # what was listed is still judged: one effective entry is enough
        sources += [(posixpath.join(directory, name), system) for name in listing.names]
    return sources, unknown


def cron_daemon_runs(facts: HostFacts) -> tuple[bool, str]:
    if facts.systemd:
        state = facts.unit("cron.service").get("ActiveState", "")
        return state == "active", f"cron.service is {state or 'not installed'}"
    names = facts.running_processes()
    running = any(d in names for d in CRON_DAEMONS)
    return running, "a cron daemon runs" if running else "no cron daemon runs"


def _crontab_text(facts: HostFacts, path: str, unknown: list[str]) -> str | None:
    """The text of one crontab; None when absent (an observation) or not read (added to `unknown`)."""
    fact = facts.files.get(path)
    if fact is None:
        unknown.append(f"{path} was not probed")
        return None
    try:
        if fact.problem() is not None:
            return None
        return fact.text()
    except Undeterminable as exc:
        unknown.append(str(exc).removeprefix(f"host {facts.host}: "))
        return None


def cron_schedule(facts: HostFacts) -> Schedule:
    entries: list[CronEntry] = []
    ignored: list[str] = []
    sources, unknown = _cron_sources(facts)
    for path, system in sources:
        name = posixpath.basename(path)
        skipped_by_cron = path.startswith("/etc/cron.d/") and not cron_d_file_is_read(name)
        text = _crontab_text(facts, path, [] if skipped_by_cron else unknown)
        if text is None:
            continue
        found = parse_crontab(text, path, system=system)
        renewing = [e for e in found if runs_certbot_renew(e)]
        if skipped_by_cron:
            ignored += [f"{path}:{e.line_number} is ignored: cron skips /etc/cron.d files named like {name!r}" for e in renewing]
            continue
        for entry in renewing:
            if facts.systemd and skipped_under_systemd(entry):
                ignored.append(
                    f"{path}:{entry.line_number} does nothing on a host that runs systemd (it tests /run/systemd/system)"
                )
            else:
                entries.append(entry)
    daemon: bool | None
    try:
        daemon, daemon_text = cron_daemon_runs(facts)
    except Undeterminable as exc:
        daemon, daemon_text = None, str(exc).removeprefix(f"host {facts.host}: ")
    observed: dict[str, Any] = {
        "daemon": daemon_text,
        "entries": [f"{e.source}:{e.line_number}: {e.schedule} {e.command}" for e in entries],
        "ignored": ignored,
        "not_read": unknown,
    }
    if not entries:
        return Schedule(False, "no cron entry that cron runs here runs certbot renew", observed, ignored, unknown)
    if daemon is None:
        why = "cron entries run certbot renew, but whether cron runs is unknown"
        return Schedule(False, why, observed, ignored, [*unknown, daemon_text])
    if not daemon:
        return Schedule(False, f"cron entries run certbot renew but {daemon_text}", observed, ignored, unknown)
    executable = certbot_renew_executable(entries[0]) or "certbot"
    why = f"{entries[0].source}:{entries[0].line_number} runs certbot renew"
    return Schedule(True, why, observed, ignored, unknown, tuple(entries), command=(executable,))


@dataclass(frozen=True)
class RenewalSchedule:
    """The timer and cron judged together. One effective schedule, read whole, proves renewal is
    scheduled; none proves it is not only when every source was read (`unknown` is empty)."""

    timer: Schedule | None  # None: the timer's state could not be read (its reason is in `unknown`)
    cron: Schedule
    unknown: list[str]

    @property
    def proof(self) -> Schedule | None:
        """The effective schedule, timer first; None when there is none."""
        if self.timer is not None and self.timer.effective:
            return self.timer
        return self.cron if self.cron.effective else None

    @property
    def absent(self) -> str:
        """Why neither schedules renewal (meaningful when every source was read)."""
        timer = self.timer.reason if self.timer is not None else "the certbot timer's state is unknown"
        return f"{timer}; {self.cron.reason}"


def renewal_schedule(facts: HostFacts) -> RenewalSchedule:
    """REN-01's and FLT-01's one reading of what schedules `certbot renew` on a host; read once a
    host, since REN-01, REN-03, the lifetime rules and the fleet summary all ask for it."""
    return facts.derived("renewal_schedule", lambda: _read_renewal_schedule(facts))


def _read_renewal_schedule(facts: HostFacts) -> RenewalSchedule:
    unknown: list[str] = []
    timer: Schedule | None = None
    try:
        timer = certbot_timer_schedule(facts)
    except Undeterminable as exc:
        unknown.append(str(exc).removeprefix(f"host {facts.host}: "))
    cron = cron_schedule(facts)
    return RenewalSchedule(timer, cron, [*unknown, *cron.unknown])


@dataclass(frozen=True)
class CertbotRun:
    """One command line an effective schedule runs certbot renew with: a cron entry's words, or a
    timer's service (whose ExecStart `certbot.exec_start.service_line` reads)."""

    where: str  # "certbot.service's ExecStart", "/etc/cron.d/certbot-renew:2"
    argv: tuple[str, ...] = ()  # a cron entry's, as the shell splits it, the executable first
    service: str | None = None  # the timer's service whose ExecStart this is; None for a cron entry


def scheduled_runs(facts: HostFacts, schedule: RenewalSchedule) -> list[CertbotRun]:
    """Every command line that renews here: the effective timer's service, each effective cron entry."""
    runs = []
    timer = schedule.timer
    if timer is not None and timer.effective and timer.unit is not None:
        service = TIMER_SERVICES[timer.unit]
        runs.append(CertbotRun(f"{service}'s ExecStart", service=service))
    if schedule.cron.effective:
        for entry in schedule.cron.entries:
            for argv_list in certbot_renew_argvs(entry):
                runs.append(CertbotRun(f"{entry.source}:{entry.line_number}", tuple(argv_list)))
    return runs


def scheduled_certbot(facts: HostFacts, schedule: RenewalSchedule) -> Installation:
    """The certbot the effective schedule runs (its service's ExecStart, or its cron command); with no
    effective schedule, the one a bare `certbot` finds. Raises Undeterminable as installation_of does."""
    proof = schedule.proof
    if proof is not None and proof.unit is not None:
        service = TIMER_SERVICES[proof.unit]
        argv = exec_argv(facts.unit(service).get("ExecStart", ""))
        if not argv:
            raise Undeterminable(f"host {facts.host}: {service} shows no ExecStart: which certbot it runs is unknown")
        return installation_of(facts, argv[0], tuple(argv[1:]))
    if proof is not None and proof.command:
        return installation_of(facts, proof.command[0])
    return installation_of(facts, "certbot")
