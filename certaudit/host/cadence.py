"""How often the renewal schedule runs certbot: the longest gap between two runs.

A certificate renews at the first run of certbot after its renewal point, so the gap between runs
decides whether a short window is met in time (a weekly timer never fits a 6-day certificate, whose
certbot renews 3 days before expiry), and whether a long one renews on every run.

certbot.timer's `OnCalendar=` specs come from `systemctl show -p TimersCalendar` in systemd's
normalized form (`*-*-* 00,12:00:00`, `Mon *-*-* 00:00:00`), plus `RandomizedDelaySec`; a cron
entry's from its five fields. Only schedules that repeat within a week (any day of month, any
month) are read; anything else is None: the gap is unknown, never guessed.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from certaudit.host.schedule import Schedule

WEEK_MIN = 7 * 24 * 60
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_KEYWORDS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0"}
_TIMESPAN_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SPAN_PART = re.compile(r"(?a)(\d{1,9}(?:\.\d{1,6})?)\s*(us|ms|sec|min|s|m|h|d|w)")
_ON_CALENDAR = re.compile(r"OnCalendar=([^;{}]{1,200})")


@dataclass(frozen=True)
class RunGap:
    hours: float  # the longest time between two runs, random delay included
    source: str  # what it was read from, for the evidence

    @property
    def days(self) -> float:
        return self.hours / 24


def _expand(field: str, low: int, high: int, names: tuple[str, ...] = (), *, systemd: bool = False) -> set[int] | None:
    """The values one schedule field matches: `*`, `N`, `A,B`, ranges (`A-B` cron, `A..B` systemd), `/step`."""
    values: set[int] = set()
    for part in field.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and 0 < int(step_text) <= high else None
        if step_text and step is None:
            return None
        if base == "*":
            start, end = low, high
        else:
            bounds = base.split(".." if systemd else "-")
            if len(bounds) > 2:
                return None
            numbers = [_number(b, names) for b in bounds]
            if any(n is None or not low <= n <= high for n in numbers):
                return None
            start = numbers[0]  # type: ignore[assignment]
            end = numbers[-1] if len(numbers) == 2 or step is None else high  # type: ignore[assignment]
        if start > end:
            return None
        values.update(range(start, end + 1, step or 1))
    return values


def _number(text: str, names: tuple[str, ...]) -> int | None:
    if text.isdigit() and len(text) <= 4:
        return int(text)
    short = text[:3]
    return names.index(short) if names and short in names else None


def _longest_gap(minutes: set[int]) -> float | None:
    """The longest cyclic gap, in hours, between minutes of a week."""
    if not minutes:
        return None
    ordered = sorted(minutes)
    gaps = [b - a for a, b in itertools.pairwise(ordered)] + [ordered[0] + WEEK_MIN - ordered[-1]]
    return max(gaps) / 60


def _week_minutes(days: set[int], hours: set[int], minutes: set[int]) -> set[int]:
    return {d * 1440 + h * 60 + m for d in days for h in hours for m in minutes}


def calendar_minutes(spec: str) -> set[int] | None:
    """The minutes of a week one normalized OnCalendar= spec runs at; None when it is not a weekly pattern."""
    words = spec.split()
    if len(words) == 2:
        day_field, date, time = "*", words[0], words[1]
    elif len(words) == 3:
        day_field, date, time = words
    else:
        return None
    if date != "*-*-*" or time.count(":") not in (1, 2):
        return None
    hour_field, minute_field = time.split(":")[:2]
    days = {0, 1, 2, 3, 4, 5, 6} if day_field == "*" else _expand(day_field, 0, 6, _DAYS, systemd=True)
    hours, minutes = _expand(hour_field, 0, 23, systemd=True), _expand(minute_field, 0, 59, systemd=True)
    if days is None or hours is None or minutes is None:
        return None
    return _week_minutes(days, hours, minutes)


def cron_minutes(schedule: str) -> set[int] | None:
    """The minutes of a week a cron schedule runs at; None unless it repeats every week."""
    fields = _CRON_KEYWORDS.get(schedule.lower(), schedule).split()
    if len(fields) != 5 or fields[2] != "*" or fields[3] != "*":
        return None
    minutes, hours = _expand(fields[0], 0, 59), _expand(fields[1], 0, 23)
    days = {0, 1, 2, 3, 4, 5, 6} if fields[4] == "*" else _expand(fields[4], 0, 7, _DAYS)
    if minutes is None or hours is None or days is None:
        return None
    return _week_minutes({d % 7 for d in days}, hours, minutes)


def _union(parts: list[set[int] | None]) -> set[int] | None:
    if not parts or any(p is None for p in parts):
        return None
    return set().union(*(p for p in parts if p is not None))


def timespan_hours(text: str) -> float | None:
    """systemd's time span as `systemctl show` prints it (`12h`, `1d 6h`, `0`), in hours."""
    text = text.strip()
    if text in ("", "0", "infinity"):
        return 0.0 if text != "infinity" else None
    if text.isdigit():  # plain microseconds
        return int(text) / 3.6e9
    parts = _SPAN_PART.findall(text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text.replace(" ", ""):
        return None
    return sum(float(n) * _TIMESPAN_UNITS[u] for n, u in parts) / 3600


def run_gap(schedule: Schedule, unit: dict[str, str] | None) -> RunGap | None:
    """The effective schedule's longest gap between runs; None when any part of it cannot be read."""
    if schedule.entries:
        minutes = _union([cron_minutes(e.schedule) for e in schedule.entries])
        gap = _longest_gap(minutes) if minutes is not None else None
        shown = "; ".join(f"{e.source}:{e.line_number}: {e.schedule}" for e in schedule.entries[:5])
        return RunGap(gap, f"cron {shown}") if gap is not None else None
    if unit is None:
        return None
    specs = [s.strip() for s in _ON_CALENDAR.findall(unit.get("TimersCalendar", ""))]
    delay = timespan_hours(unit.get("RandomizedDelayUSec", ""))
    minutes = _union([calendar_minutes(s) for s in specs])
    gap = _longest_gap(minutes) if minutes is not None else None
    if gap is None or delay is None:
        return None
    shown = "; ".join(f"OnCalendar={s}" for s in specs)
    jitter = f", RandomizedDelaySec={delay:g}h" if delay else ""
    # A run may start up to the random delay late while the one before started on time.
    return RunGap(gap + delay, f"certbot.timer: {shown}{jitter}")
