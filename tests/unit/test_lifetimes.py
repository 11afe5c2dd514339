"""The pure rules of [lifetimes]: how often certbot runs, when it renews, whether the window fits
the lifetime, the what-if's verdicts, and MON-02's lifetime points (promtool run for real when the
fleet's cached promtool is on this machine)."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import checks.test_renewal as renewal
from certaudit.controls import REGISTRY
from certaudit.errors import Undeterminable
from certaudit.host.cadence import RunGap, calendar_minutes, cron_minutes, run_gap, timespan_hours
from certaudit.host.cron import CronEntry
from certaudit.host.facts import Promtool
from certaudit.host.lifetimes import renewal_window, window_problems
from certaudit.host.promrules import lifetime_points, promtool_points
from certaudit.host.schedule import Schedule
from certaudit.jobs import whatif
from certaudit.policy import Policy, PolicyError, policy_for
from certaudit.record import Evidence, Record
from tests.fleet import pki
from tests.scenarios_catalog import RUNBOOK_RULES
from tests.scenarios_lifetimes import LIFETIME_RULES
from tests.unit.test_catalog_controls import CERT, NOW, snapshot

remote_probe: Any = importlib.import_module("certaudit.gather.remote_probe")  # stdlib-only, untyped: it runs on the host

REPO = Path(__file__).resolve().parents[2]
CONF = "/etc/letsencrypt/renewal/stemedb.example.com.conf"
LIVE = "/etc/letsencrypt/live/stemedb.example.com/cert.pem"


def gap_of(minutes: set[int] | None) -> float | None:
    from certaudit.host.cadence import _longest_gap

    return _longest_gap(minutes) if minutes is not None else None


# --- cadence ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "hours"),
    [
        ("*-*-* 00,12:00:00", 12),  # Debian's certbot.timer
        ("*-*-* 00:00:00", 24),  # daily
        ("Mon *-*-* 00:00:00", 168),  # weekly
        ("Mon..Fri *-*-* 00:00:00", 72),  # Friday to Monday
        ("*-*-* *:00:00", 1),  # hourly
        ("*-*-* 00/6:30:00", 6),
        ("*-*-01 00:00:00", None),  # monthly: not a weekly pattern, unknown
        ("*-*-* 25:00:00", None),
        ("garbage", None),
        ("Mon *-*-* 00:00:00 extra", None),
    ],
)
def test_calendar_gap(spec: str, hours: float | None) -> None:
    assert gap_of(calendar_minutes(spec)) == hours


@pytest.mark.parametrize(
    ("schedule", "hours"),
    [
        ("0 */12 * * *", 12),
        ("17 3 * * *", 24),
        ("@weekly", 168),
        ("0 0 * * mon,thu", 96),
        ("0 0 1 * *", None),  # once a month: not weekly
        ("@reboot", None),
        ("61 * * * *", None),
    ],
)
def test_cron_gap(schedule: str, hours: float | None) -> None:
    assert gap_of(cron_minutes(schedule)) == hours


def test_timespan_and_run_gap_with_random_delay() -> None:
    assert [timespan_hours(t) for t in ("12h", "1d 6h", "43200000000", "0", "", "30min", "12 parsecs")] == [
        12,
        30,
        12,
        0,
        0,
        0.5,
        None,
    ]
    timer = Schedule(True, "certbot.timer is active", {})
    unit = {"TimersCalendar": "{ OnCalendar=*-*-* 00,12:00:00 ; next_elapse=@1764460800 }", "RandomizedDelayUSec": "12h"}
    assert run_gap(timer, unit) == RunGap(24, "certbot.timer: OnCalendar=*-*-* 00,12:00:00, RandomizedDelaySec=12h")
    # Two OnCalendar= lines (the probe joins them): the union runs every 6 hours.
    two = {"TimersCalendar": "{ OnCalendar=*-*-* 00,12:00:00 ; } { OnCalendar=*-*-* 06,18:00:00 ; }", "RandomizedDelayUSec": "0"}
    assert run_gap(timer, two) == RunGap(6, "certbot.timer: OnCalendar=*-*-* 00,12:00:00; OnCalendar=*-*-* 06,18:00:00")
    assert run_gap(timer, {"TimersCalendar": "", "RandomizedDelayUSec": "0"}) is None  # unknown, never guessed
    assert run_gap(timer, {"TimersCalendar": "{ OnCalendar=*-*-01 00:00:00 ; }", "RandomizedDelayUSec": "0"}) is None
    entry = CronEntry("/etc/cron.d/certbot-renew", 2, "0 */12 * * *", "root", "certbot -q renew")
    cron = Schedule(True, "cron", {}, entries=(entry,))
    assert run_gap(cron, None) == RunGap(12, "cron /etc/cron.d/certbot-renew:2: 0 */12 * * *")


# --- the window against the lifetime ------------------------------------------------------------------
def test_renewal_window_by_pin_and_release() -> None:
    assert renewal_window(30, None, 64).before_expiry_days == 30
    unknown = renewal_window(None, None, 64)
    assert unknown.before_expiry_days is None and "release is unknown" in unknown.rule
    assert renewal_window(None, (2, 1, 0), 6).before_expiry_days == 30  # certbot 2.1: 30 days, whatever the lifetime
    assert renewal_window(None, (4, 0, 0), 64).before_expiry_days == pytest.approx(64 / 3)
    assert renewal_window(None, (4, 0, 0), 6).before_expiry_days == pytest.approx(3)  # half under 10 days
    assert renewal_window(None, (4, 1, 0), 45).ari_may_move


@pytest.mark.parametrize(
    ("before", "lifetime", "gap", "says"),
    [
        (30, 90, 24, None),
        (30, 64, 24, None),
        (30, 6, 24, "is as long as the 6-day certificate or longer: certbot renews it on every run"),
        (6, 6, None, "is as long as the 6-day certificate or longer"),
        (3, 6, 168, "is shorter than the 168 h between certbot's runs: certbot may not run at all"),
        (3, 6, 48, "is shorter than two of the 48 h between certbot's runs"),
        (5.5, 6, 24, "leaves 0.5 days of the 6-day certificate before it is due, less than the 24 h"),
        (3, 6, 24, None),
        (2, 6, None, None),  # gap unknown: only the lifetime is judged
    ],
)
def test_window_problems(before: float, lifetime: float, gap: float | None, says: str | None) -> None:
    problems = window_problems(before, lifetime, gap)
    if says is None:
        assert problems == []
    else:
        assert len(problems) == 1 and says in problems[0], problems


# --- REN-03 on hand-made snapshots ----------------------------------------------------------------------
TIMER_UNIT = {
    "certbot.timer": {
        "LoadState": "loaded",
        "UnitFileState": "enabled",
        "ActiveState": "active",
        "NextElapseUSecRealtime": f"@{int(NOW + 3600)}",
        "TimersCalendar": "{ OnCalendar=*-*-* 00,12:00:00 ; next_elapse=@1 }",
        "RandomizedDelayUSec": "12h",
    },
    "certbot.service": {"ExecStart": "{ path=/usr/bin/certbot ; argv[]=/usr/bin/certbot -q renew ; ignore_errors=no }"},
}


def ren03(lifetime: float, rbe: str | None, units: dict[str, dict[str, str]] | None = None) -> Evidence:
    issued = pki.issue("stemedb.example.com", days_left=lifetime / 2, lifetime_days=lifetime)
    conf = (f"renew_before_expiry = {rbe}\n" if rbe else "# renew_before_expiry = 30 days\n") + "version = 2.1.0\n"
    facts = snapshot({CERT: issued.fullchain_pem, LIVE: issued.cert_pem, CONF: conf.encode()}, units=units or TIMER_UNIT)
    evidence = Evidence(REGISTRY["REN-03"], "web-1")
    renewal.test_renewal_window_is_pinned(facts, Policy(), evidence)
    return evidence


def test_ren03_keeps_the_runbook_days_for_90_day_certificates() -> None:
    assert ren03(90, "30 days").findings == []
    assert ren03(90, "10 days").findings == ["renew_before_expiry = 10 days is 10 days, under 30 days"]
    assert ren03(90, None).findings[0].startswith("renew_before_expiry is not set")


def test_ren03_scales_the_minimum_and_judges_the_lifetime() -> None:
    passed = ren03(64, "30 days")
    assert passed.findings == [] and passed.observed["runs_at_most_hours_apart"] == 24
    assert passed.expected["renew_before_expiry"].startswith("at least 21.33 days (30/90 of the 64.0-day lifetime)")
    assert ren03(64, "512 hours").findings == []  # exactly a third: the minute's slack for whole-second times
    assert ren03(64, "14 days").findings == [
        "renew_before_expiry = 14 days is 14 days, under 21.33 days, 30/90 of the 64.0-day lifetime"
    ]
    (every_run,) = ren03(6, "30 days").findings
    assert every_run.startswith("the renewal window (30 days) is as long as the 6-day certificate or longer")


def test_ren03_cannot_judge_a_short_window_without_the_schedule() -> None:
    stopped = {"certbot.timer": {**TIMER_UNIT["certbot.timer"], "ActiveState": "inactive"}}
    with pytest.raises(Undeterminable, match="how often certbot runs is unknown"):
        ren03(6, "3 days", stopped)


# --- the what-if -----------------------------------------------------------------------------------------
def test_parse_lifetimes() -> None:
    assert whatif.parse_lifetimes(["64d,45d", "6d", "64d"]) == (64, 45, 6)
    for bad in ("64", "0d", "399d", "64days", "-6d", "", "6d,", "١d"):
        with pytest.raises(whatif.WhatIfError, match="expected a certificate lifetime in days such as 64d"):
            whatif.parse_lifetimes([bad])


def test_quarterly_default_follows_the_announced_dates() -> None:
    assert whatif.quarterly_default(dt.date(2026, 11, 29)) == (64, 45)
    assert whatif.quarterly_default(dt.date(2027, 2, 10)) == (45,)
    assert whatif.quarterly_default(dt.date(2028, 2, 15)) == (45,)
    assert whatif.quarterly_default(dt.date(2028, 2, 16)) == ()


def _mon02(host: str, alerts: dict[str, str], points: list[dict[str, Any]]) -> Record:
    observed = {"alerts": [{"alert": a, "expr": e} for a, e in alerts.items()], "lifetime_points": points}
    return Record("MON-02", "", host, "pass", observed=observed)


def _passing(host: str) -> list[Record]:
    return [Record("REN-01", "", host, "pass"), Record("REN-02", "", host, "pass")]


RUNBOOK = {"CertificateExpiringWarning": "stemedb_tls_cert_expiry_seconds < (30 * 86400)"}


def test_what_if_rows() -> None:
    conf = b"renew_before_expiry = 30 days\n"
    facts = snapshot({CERT: pki.issue("stemedb.example.com", days_left=60).fullchain_pem, CONF: conf}, units=TIMER_UNIT)
    third = snapshot({CONF: b"renew_before_expiry = 512 hours\n"}, units=TIMER_UNIT)
    unpinned = snapshot({CONF: b"# renew_before_expiry = 30 days\n"}, units=TIMER_UNIT)
    records = [*_passing("a"), *_passing("b"), *_passing("c"), _mon02("prom", RUNBOOK, [])]
    policies = {"a": Policy(), "b": Policy(), "c": Policy(), "d": Policy(renewal="custom-ca"), "e": Policy()}
    read = {h: whatif.WhatIfFacts.of(f, policies[h]) for h, f in {"a": facts, "b": third, "c": unpinned}.items()}
    rows = whatif.what_if((64, 6), policies, read, records)
    got = {(r.host, r.lifetime_days): r for r in rows}
    assert got[("a", 64)].verdict == "ready" and got[("a", 64)].reasons == []
    assert got[("a", 6)].verdict == "breaks"
    assert got[("b", 64)].verdict == "pages"
    assert got[("b", 64)].reasons == [
        "the fleet's alerts fire on a healthy certificate 21.38 days before expiry, before certbot is due: "
        "CertificateExpiringWarning on prom (under 30 days)"
    ]
    assert got[("c", 64)].verdict == "unknown"
    assert "set certaudit_certbot_version or pin renew_before_expiry" in got[("c", 64)].reasons[0]
    assert got[("d", 64)].verdict == "not applicable"
    assert got[("e", 64)].reasons == ["the host was not reached"]
    # With the release known, the unpinned host renews on its defaults: certbot 4.0 at a third.
    known_policy = Policy(certbot_version="4.0.0")
    known = whatif.what_if((64,), {"c": known_policy}, {"c": whatif.WhatIfFacts.of(unpinned, known_policy)}, _passing("c"))
    assert (known[0].verdict, round(known[0].renewal_point_days or 0, 2)) == ("ready", 21.33)
    # A failed REN-02 breaks renewal whatever the window.
    broken = [Record("REN-01", "", "a", "pass"), Record("REN-02", "", "a", "fail", findings=["no deploy hook"])]
    row = whatif.what_if((64,), {"a": Policy()}, {"a": whatif.WhatIfFacts.of(facts, Policy())}, broken)[0]
    assert row.verdict == "breaks" and row.reasons[0].startswith("no safe deploy hook reloads the service")
    assert whatif.summary(rows) == [
        "lifetime what-if 64d: 1 pages, 2 unknown, 1 ready, 1 not applicable",
        "lifetime what-if 6d: 2 breaks, 2 unknown, 1 not applicable",
    ]


def test_lifetime_relative_rules_are_judged_by_promtool_points() -> None:
    relative = {"CertificateExpiringWarning": "stemedb_tls_cert_expiry_seconds < (a - b) / 3"}
    alerts = whatif.FleetAlerts.from_records(
        [_mon02("prom", relative, [{"lifetime_days": 64, "days_left": 21.375, "fired": [], "ok": True}])]
    )
    assert alerts.fired_at(64, 21.375) == ([], [])
    fired, unknown = alerts.fired_at(45, 15.042)
    assert fired == [] and "promtool proved no such point" in unknown[0]


def test_certbot_version_variable_is_validated() -> None:
    assert policy_for("h", {"certaudit_certbot_version": "4.0.0"}).certbot_version == "4.0.0"
    with pytest.raises(PolicyError, match=r"expected certbot's release as MAJOR\.MINOR"):
        policy_for("h", {"certaudit_certbot_version": "latest"})
    assert policy_for("h", {"certaudit_threshold_mode": "auto"}).threshold_mode == "auto"


def test_bad_what_if_is_one_line_and_exit_4(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "checks", "-p", "no:cacheprovider", "--lifetime-what-if", "64days"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 4, done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines == [
        "ERROR: certaudit: --lifetime-what-if '64days': expected a certificate lifetime in days such as 64d, 45d or 6d "
        "(1d to 398d)"
    ]


# --- MON-02's lifetime points -------------------------------------------------------------------------
FAILED = (
    "Unit Testing:  /dev/stdin\n  FAILED:\n"
    '    expr: "count by (alertname) (ALERTS{alertstate=\\"firing\\"}) # lifetime 64 point 21.375 days", time: 1d,\n'
    "        exp: nil\n"
    '        got: {alertname="CertificateExpiringWarning"} 1E+00\n'
)


def test_lifetime_points_parse_promtools_failures() -> None:
    points = tuple((p["lifetime"], float(p["days"]), tuple(p["expect"])) for p in remote_probe.lifetime_points())
    assert len(points) == 11 and points[0] == (64, 21.375, ())
    tool = Promtool("/usr/bin/promtool", "2.42", ((31, ()),), 1, FAILED, "", points)
    results = lifetime_points(tool)
    assert [r.describe() for r in results if not r.ok] == [
        "64-day certificate at 21.375 days left: CertificateExpiringWarning fired, expected no alert"
    ]
    assert promtool_points(tool) == ([promtool_points(tool)[0][0]], None) and promtool_points(tool)[0][0].ok


def _cached_promtool() -> Path | None:
    found = sorted((Path.home() / ".cache/certaudit/fleet/promtool").glob("*/promtool"))
    return found[0] if found else None


@pytest.mark.skipif(_cached_promtool() is None, reason="the fleet's promtool is not cached on this machine")
@pytest.mark.parametrize(("rules", "failing"), [(LIFETIME_RULES, 0), (RUNBOOK_RULES, 4)])
def test_promtool_proves_the_lifetime_rules(tmp_path: Path, rules: str, failing: int) -> None:
    """The probe's own promtool test, run for real: the lifetime rules hold at every point, the
    runbook's fixed days page a healthy 64, 45 and 6-day certificate."""
    tool = tmp_path / "promtool"
    shutil.copy(_cached_promtool() or "", tool)
    tool.chmod(0o755)
    (tmp_path / "rules.yml").write_text(rules)
    points = remote_probe.promtool_points(30, 7)
    result = remote_probe.promtool_test(
        str(tool),
        [str(tmp_path / "rules.yml")],
        "stemedb.example.com",
        points,
        remote_probe.lifetime_points(),
    )
    typed = Promtool(
        result["path"],
        "",
        tuple((int(p["days"]), tuple(p["expect"])) for p in result["points"]),
        result.get("rc"),
        result.get("output", ""),
        "",
        tuple((p["lifetime"], float(p["days"]), tuple(p["expect"])) for p in result["lifetime_points"]),
    )
    assert "error" not in result, result.get("error")
    runbook_points, problem = promtool_points(typed)
    assert problem is None and all(p.ok for p in runbook_points)  # both hold for 90-day certificates
    assert sum(1 for p in lifetime_points(typed) if not p.ok) == failing
