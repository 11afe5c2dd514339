"""The lifetime what-if (`--lifetime-what-if 64d`): every host judged as if its next certificate
had that lifetime.

Let's Encrypt's `classic` profile issues 64-day certificates from 2027-02-10 and 45-day ones from
2028-02-16; its `shortlived` profile 6-day ones. For each host renewed by certbot, and each
lifetime asked for, the what-if answers from the facts of this run:

- would it still renew in time: renewal scheduled (REN-01) and reloading the service (REN-02), a
  renewal point (its pinned `renew_before_expiry`, or its certbot release's default) that fits the
  lifetime and the gap between certbot's runs (neither on every run, nor with no second chance);
- would the gate still pass it: CRT-01's critical tier, with the lifetime's thresholds, at the
  latest moment a healthy host renews (its renewal point less one gap between runs);
- would it page needlessly: CRT-01's warning tier, or the fleet's Prometheus alerts (MON-02's rules
  and promtool's points), firing on a healthy certificate an hour before certbot renews it.

Each host gets one row: `breaks`, `pages` (renews in time but alerts every cycle), `unknown` (a fact
it needs was not read), `ready`, or `not applicable` (not renewed by certbot here).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from certaudit.controls import renewal_by_certbot
from certaudit.errors import CertauditError, Undeterminable
from certaudit.host.cadence import RunGap
from certaudit.host.certbot.conf import CertbotConfError, parse_renewal_conf
from certaudit.host.certbot.interval import parse_interval
from certaudit.host.certbot.release import CertbotVersion
from certaudit.host.facts import HostFacts
from certaudit.host.lifetimes import host_certbot_version, host_run_gap, renewal_window, window_problems
from certaudit.host.promrules import SOON_ALERT, WARNING_ALERT, static_threshold
from certaudit.host.thresholds import judge_numbers
from certaudit.policy import Policy
from certaudit.record import Record

Verdict = Literal["breaks", "unknown", "pages", "ready", "not applicable"]
VERDICTS: tuple[Verdict, ...] = ("breaks", "pages", "unknown", "ready", "not applicable")
# Let's Encrypt's announced lifetimes ("Decreasing Certificate Lifetimes to 45 Days", 2025-12-02):
# the day each becomes the default. The quarterly audit asks about those still to come.
ANNOUNCED: tuple[tuple[dt.date, int], ...] = ((dt.date(2027, 2, 10), 64), (dt.date(2028, 2, 16), 45))
QUARTERLY_UNTIL = dt.date(2028, 2, 16)
HEALTHY_MARGIN_DAYS = 1 / 24  # a healthy certificate is judged an hour before certbot is due
MAX_LIFETIME_DAYS = 398  # the CA/Browser Forum's limit today
_LIFETIME = re.compile(r"([0-9]{1,3})d", re.ASCII)
_ALERTS = (WARNING_ALERT, SOON_ALERT)


class WhatIfError(CertauditError):
    """A --lifetime-what-if value that is not a lifetime."""


def parse_lifetimes(values: Iterable[str]) -> tuple[int, ...]:
    """`64d`, `45d,6d` (and the option repeated) → (64, 45, 6), in the order given, once each."""
    found: list[int] = []
    for value in values:
        for part in value.split(","):
            match = _LIFETIME.fullmatch(part.strip())
            days = int(match.group(1)) if match else 0
            if not 1 <= days <= MAX_LIFETIME_DAYS:
                shown = part.strip()[:40] or "(empty)"
                raise WhatIfError(
                    f"--lifetime-what-if {shown!r}: expected a certificate lifetime in days such as 64d, 45d or 6d "
                    f"(1d to {MAX_LIFETIME_DAYS}d)"
                )
            if days not in found:
                found.append(days)
    return tuple(found)


def quarterly_default(today: dt.date) -> tuple[int, ...]:
    """The announced lifetimes not yet in effect on `today` (the audit's clock); none from 2028-02-16."""
    if today >= QUARTERLY_UNTIL:
        return ()
    return tuple(days for start, days in ANNOUNCED if today < start)


@dataclass(frozen=True)
class Row:
    host: str
    lifetime_days: int
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)  # why it breaks, pages, or is unknown; what was judged
    renewal_point_days: float | None = None  # days before expiry certbot renews the new certificate
    window_rule: str = ""
    runs_at_most_hours_apart: float | None = None

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        if self.renewal_point_days is not None:
            row["renewal_point_days"] = round(self.renewal_point_days, 3)
        return row


@dataclass(frozen=True)
class FleetAlerts:
    """The fleet's alert rules as MON-02 read and proved them on each Prometheus host."""

    rules: dict[str, dict[str, str]]  # host -> alert -> expr
    points: dict[str, list[dict[str, Any]]]  # host -> promtool's lifetime points

    @classmethod
    def from_records(cls, records: Iterable[Record]) -> FleetAlerts:
        rules: dict[str, dict[str, str]] = {}
        points: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            if record.control != "MON-02" or record.outcome not in ("pass", "fail"):
                continue
            alerts = record.observed.get("alerts")
            if isinstance(alerts, list):
                rules[record.host] = {
                    str(a["alert"]): str(a["expr"]) for a in alerts if isinstance(a, dict) and a.get("alert") in _ALERTS
                }
            proven = record.observed.get("lifetime_points")
            if isinstance(proven, list):
                points[record.host] = [p for p in proven if isinstance(p, dict)]
        return cls(rules, points)

    def fired_at(self, lifetime: int, days_left: float) -> tuple[list[str], list[str]]:
        """(what fires on a certificate of `lifetime` days with `days_left`, what cannot be told)."""
        fired: list[str] = []
        unknown: list[str] = []
        for host, alerts in sorted(self.rules.items()):
            for name, expr in sorted(alerts.items()):
                seconds = static_threshold(expr)
                if seconds is not None:
                    if days_left * 86400 < seconds:
                        fired.append(f"{name} on {host} (under {seconds / 86400:g} days)")
                    continue
                point = self._point(host, lifetime, days_left)
                if point is None:
                    unknown.append(
                        f"whether {name} on {host} ({expr}) fires at {days_left:.2f} days of a {lifetime}-day certificate "
                        "(not a plain threshold, and promtool proved no such point)"
                    )
                elif name in point.get("fired", []):
                    fired.append(f"{name} on {host} (promtool: at {point['days_left']:g} days of {lifetime})")
        return fired, unknown

    def _point(self, host: str, lifetime: int, days_left: float) -> dict[str, Any] | None:
        for point in self.points.get(host, []):
            if point.get("lifetime_days") == lifetime and abs(float(point.get("days_left", -1)) - days_left) < 0.01:
                return point
        return None


def _pinned_days(facts: HostFacts, policy: Policy) -> tuple[float | None, str | None]:
    """(renew_before_expiry in days or None when unset, a problem that breaks renewal)."""
    conf = facts.file(policy.renewal_conf)
    problem = conf.problem()
    if problem is not None:
        return None, f"no renewal conf certbot can use: {problem}"
    try:
        value = parse_renewal_conf(conf.read(), conf.path).renew_before_expiry
    except CertbotConfError as exc:
        return None, f"certbot cannot read its renewal conf: {exc}"
    if value is None:
        return None, None
    interval = parse_interval(value, dt.datetime.fromtimestamp(facts.audited_at, dt.UTC))
    if interval is None:
        return None, f"certbot cannot parse renew_before_expiry = {value!r}: it renews only at expiry"
    return interval.total_seconds() / 86400, None


# (host, control) -> that control's records on the host: indexed once, since a run's records are
# read back from its log (certaudit/record.py RecordLog) and a fleet has thousands of them.
Verdicts = Mapping[tuple[str, str], Sequence[Record]]
JUDGED_BY = ("REN-01", "REN-02")


def verdicts_of(records: Iterable[Record]) -> dict[tuple[str, str], list[Record]]:
    index: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        if record.control in JUDGED_BY:
            index.setdefault((record.host, record.control), []).append(record)
    return index


def _control_problem(records: Verdicts, host: str, control: str, breaks: str) -> tuple[str | None, str | None]:
    """(a reason it breaks, a reason it is unknown) from the control's own verdict on the host."""
    found = records.get((host, control), ())
    if not found:
        return None, f"{control} did not run on this host"
    outcome = found[0].outcome
    if outcome in ("fail", "waived"):
        return f"{breaks} ({control}: {found[0].findings[0] if found[0].findings else 'failed'})", None
    if outcome == "error":
        return None, f"{control} could not judge it"
    return None, None


@dataclass(frozen=True)
class WhatIfFacts:
    """The few facts of one host the what-if rests on, read when its controls are done with its
    snapshot (the run lets go of a host's facts then): its pinned window, certbot's release, the
    gap between certbot's runs, or what made them unreadable."""

    pinned_days: float | None = None
    conf_problem: str | None = None  # breaks renewal
    unreadable: str | None = None  # a fact the what-if needs could not be read
    version: CertbotVersion | None = None
    version_source: str = ""
    gap: RunGap | None = None

    @classmethod
    def of(cls, facts: HostFacts, policy: Policy) -> WhatIfFacts:
        try:
            pinned, conf_problem = _pinned_days(facts, policy)
            if conf_problem is not None:
                return cls(conf_problem=conf_problem)
            version, version_source = host_certbot_version(facts, policy)
            return cls(pinned, None, None, version, version_source, host_run_gap(facts))
        except Undeterminable as exc:
            return cls(unreadable=str(exc))


def judge_host(lifetime: int, host: str, policy: Policy, read: WhatIfFacts | None, records: Verdicts, alerts: FleetAlerts) -> Row:
    skip = renewal_by_certbot(policy)
    if skip is not None:
        return Row(host, lifetime, "not applicable", [skip])
    if read is None:
        return Row(host, lifetime, "unknown", ["the host was not reached"])
    breaks: list[str] = []
    unknown: list[str] = []
    for control, what in (
        ("REN-01", "renewal is not scheduled"),
        ("REN-02", "no safe deploy hook reloads the service: the new certificate would not be served"),
    ):
        broken, unsure = _control_problem(records, host, control, what)
        breaks += [broken] if broken else []
        unknown += [unsure] if unsure else []
    if read.unreadable is not None:
        return Row(host, lifetime, "unknown", [*breaks, read.unreadable])
    if read.conf_problem is not None:
        return Row(host, lifetime, "breaks", [*breaks, read.conf_problem])
    version = read.version
    window = renewal_window(read.pinned_days, version, lifetime)
    rule = window.rule + (f" (release from {read.version_source})" if version is not None and not window.pinned else "")
    gap = read.gap
    gap_hours = gap.hours if gap is not None else None
    if window.before_expiry_days is None:
        unknown.append(f"{window.rule}: set certaudit_certbot_version or pin renew_before_expiry")
    if gap is None:
        unknown.append("how often certbot runs is unknown (no effective schedule whose times could be read)")
    if window.before_expiry_days is None or gap is None:
        return Row(
            host, lifetime, "breaks" if breaks else "unknown", breaks + unknown, window.before_expiry_days, rule, gap_hours
        )
    before = window.before_expiry_days
    verdict: Verdict
    breaks += window_problems(before, lifetime, gap.hours)
    pages: list[str] = []
    if before < lifetime:
        latest = judge_numbers(lifetime, before - gap.days, policy)
        if latest.tier == "critical":
            breaks.append(
                f"the gate would fail it: CRT-01's critical tier ({latest.thresholds(policy)}) is reached before "
                f"certbot's run renews it ({before - gap.days:.2f} days left at the latest)"
            )
        healthy_days = before + HEALTHY_MARGIN_DAYS
        healthy = judge_numbers(lifetime, healthy_days, policy)
        if healthy.tier != "ok":
            pages.append(
                f"CRT-01 is in its {healthy.tier} tier ({healthy.thresholds(policy)}) on a healthy certificate "
                f"{healthy_days:.2f} days before expiry, before certbot is due: the audit fails it every cycle"
            )
        fired, untold = alerts.fired_at(lifetime, round(healthy_days, 3))
        if fired:
            pages.append(
                f"the fleet's alerts fire on a healthy certificate {healthy_days:.2f} days before expiry, before "
                f"certbot is due: {'; '.join(fired)}"
            )
        unknown += untold
    notes = ["certbot 4.1 and later: the CA's renewal information (ARI) may renew earlier"] if window.ari_may_move else []
    # A page that certainly comes outranks one that may: what is unknown here is only whether a rule fires.
    verdict = "breaks" if breaks else "pages" if pages else "unknown" if unknown else "ready"
    return Row(host, lifetime, verdict, breaks + pages + unknown + notes, before, rule, gap.hours)


def what_if(
    lifetimes: Sequence[int],
    policies: Mapping[str, Policy],
    read: Mapping[str, WhatIfFacts],
    records: Iterable[Record],
) -> list[Row]:
    """One row per (lifetime, host) of the run, hosts in inventory order (`records` read twice);
    `read`: each reached host's WhatIfFacts."""
    alerts = FleetAlerts.from_records(records)
    verdicts = verdicts_of(records)
    return [
        judge_host(lifetime, host, policy, read.get(host), verdicts, alerts)
        for lifetime in lifetimes
        for host, policy in policies.items()
    ]


def summary(rows: Sequence[Row]) -> list[str]:
    """One line per lifetime, for the terminal."""
    lines = []
    for lifetime in dict.fromkeys(r.lifetime_days for r in rows):
        counts = {v: sum(1 for r in rows if r.lifetime_days == lifetime and r.verdict == v) for v in VERDICTS}
        shown = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        lines.append(f"lifetime what-if {lifetime}d: {shown}")
    return lines
