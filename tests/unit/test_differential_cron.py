"""certaudit.host.cron against croniter and python-crontab: does a library read crontab schedules
at least as faithfully as Debian's cron? (Issue 13: it would replace the hand-written code only if so.)

Neither does. Both read the common grammar as cron.py does (the property below), but each accepts
schedules Debian's cron drops without a word, so an entry certaudit would count as running
`certbot renew` never runs: croniter takes Quartz's `L`, `W`, `#` and `?` and backwards ranges,
and refuses `@reboot`; python-crontab refuses `N/step`, which cron runs; both take numbers of
more digits than cron.py does. Neither reads a crontab file as cron does (cron.d user field,
vixie's environment lines, `%`, run-parts names): they would replace only `_valid_field`.
"""

from __future__ import annotations

import warnings

import pytest
from croniter import croniter
from crontab import CronSlices
from hypothesis import given, settings
from hypothesis import strategies as st

from certaudit.host.cron import parse_crontab

SETTINGS = settings(max_examples=400, deadline=None, database=None, derandomize=True)


def cron_runs(schedule: str) -> bool:
    """Whether Debian's cron (as cron.py reads it) takes the schedule in /etc/cron.d."""
    return bool(parse_crontab(f"{schedule} root certbot -q renew\n", "/etc/cron.d/certbot", system=True))


def croniter_runs(schedule: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(croniter.is_valid(schedule))


def python_crontab_runs(schedule: str) -> bool:
    return bool(CronSlices.is_valid(schedule))


# (low, high, names) per field, as cron's entry.c bounds them
FIELDS = [
    (0, 59, []),
    (0, 23, []),
    (1, 31, []),
    (1, 12, ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]),
    (0, 7, ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]),
]


@st.composite
def elements(draw: st.DrawFn, low: int, high: int, names: list[str]) -> str:
    """One element of a field's list in the grammar every reader shares: `*`, N, a name, or an
    ascending range, then maybe `/step` (after `*` or a range: `N/step` is where they part)."""
    kind = draw(st.sampled_from(["star", "number", "name", "range"] if names else ["star", "number", "range"]))
    if kind == "star":
        base = "*"
    elif kind == "number":
        return str(draw(st.integers(low, high)))
    elif kind == "name":
        return draw(st.sampled_from(names))
    else:
        start = draw(st.integers(low, high))
        base = f"{start}-{draw(st.integers(start, high))}"
    step = draw(st.one_of(st.just(""), st.integers(1, high).map(lambda n: f"/{n}")))
    return base + step


schedules = st.tuples(
    *(st.lists(elements(low, high, names), min_size=1, max_size=3).map(",".join) for low, high, names in FIELDS)
).map(" ".join)


@SETTINGS
@given(schedules)
def test_the_shared_grammar_is_read_alike(schedule: str) -> None:
    assert cron_runs(schedule)
    assert croniter_runs(schedule), schedule
    assert python_crontab_runs(schedule), schedule


@pytest.mark.parametrize(
    ("schedule", "cron", "croniter_says", "python_crontab_says"),
    [
        ("0 0 L * *", False, True, False),  # Quartz "last day"
        ("0 0 1W * *", False, True, False),  # Quartz "nearest weekday"
        ("0 0 * * 5#2", False, True, False),  # Quartz "second Friday"
        ("0 0 ? * *", False, True, False),  # Quartz "no value"
        ("5-1 * * * *", False, True, False),  # a backwards range: cron's get_range refuses it
        ("0 0 * * fri-mon", False, True, False),
        ("00007 * * * *", False, True, True),  # cron.py reads at most 4 digits; both libraries any number
        ("0/5 * * * *", True, True, False),  # cron: minute 0, step 5 over a range of one
        ("@reboot", True, False, True),
    ],
)
def test_where_the_libraries_part_from_cron(schedule: str, cron: bool, croniter_says: bool, python_crontab_says: bool) -> None:
    assert (cron_runs(schedule), croniter_runs(schedule), python_crontab_runs(schedule)) == (
        cron,
        croniter_says,
        python_crontab_says,
    )
