"""Shorter certificate lifetimes on the fleet ([lifetimes]): every verdict of the renewal, expiry and
alert controls on the 90, 64, 45 and 6-day hosts, and every row of `--lifetime-what-if 64d,45d,6d`.

One real audit runs over the lifetime hosts, `compliant` (the 90-day host pinned to 30 days) and
`prom-rules` (a Prometheus server with the runbook's fixed-day rules); `prom-rules` and
`lt-64-pinned` (lifetime-relative rules) form the inventory's prometheus group, so the what-if
judges paging against both rule sets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.fleet.fleet import Fleet
from tests.integration.audit_run import AuditRun, Check, Expect, assert_verdict, run_audit
from tests.scenarios_lifetimes import PROMETHEUS_HOSTS, SCENARIOS

CONTROLS = ("REN-01", "REN-02", "REN-03", "REN-04", "CRT-01", "MON-02")
HOSTS = [*(s.name for s in SCENARIOS), "compliant", "prom-rules"]
PROMETHEUS = [*PROMETHEUS_HOSTS, "prom-rules"]
SCHEMA = Path(__file__).resolve().parents[2] / "certaudit/evidence/schema/evidence-v1.schema.json"
CONF = "/etc/letsencrypt/renewal/stemedb.example.com.conf"
LIFETIME = {s.name: s.lifetime_days for s in SCENARIOS} | {"compliant": 90, "prom-rules": 90}


def observed(**expected: Any) -> Check:
    def check(record: dict[str, Any]) -> None:
        for key, value in expected.items():
            assert record["observed"].get(key) == value, f"observed[{key!r}] = {record['observed'].get(key)!r}, not {value!r}"

    return check


def _rule(mode: str, says: str) -> Check:
    def check(record: dict[str, Any]) -> None:
        obs = record["observed"]
        assert (obs["threshold_mode"], obs["configured_mode"], obs["tier"]) == (mode, "auto", "ok"), obs
        assert says in obs["threshold_rule"], obs["threshold_rule"]

    return check


SCALED = "shorter than the runbook's 90 days: the runbook's 30 and 7 days scaled to its lifetime"
RUNBOOK = "the runbook's lifetime: the runbook's 30 and 7 days"
NOT_SET = Expect("fail", (f"renew_before_expiry is not set in {CONF} (only certbot's commented default)",))


def _window(days: float, lifetime: float, gap: float) -> Check:
    def check(record: dict[str, Any]) -> None:
        obs = record["observed"]
        assert obs["renew_before_expiry_days"] == days and obs["lifetime_days"] == pytest.approx(lifetime, abs=0.01), obs
        assert obs["runs_at_most_hours_apart"] == gap, obs

    return check


def _certbot_window(share: str, lifetime: float, days: float) -> Check:
    def check(record: dict[str, Any]) -> None:
        obs = record["observed"]
        assert obs["certbot"]["version"] == "4.0.0" and obs["certbot"]["installed_as"] == "debian package", obs
        assert obs["rules"] == (
            f"certbot 4.0.0 renews when {share} of the lifetime is left ({lifetime:.1f} days) when renew_before_expiry is not set"
        ), obs
        assert obs["certbot_window_days"] == days and obs["runs_at_most_hours_apart"] == 24, obs

    return check


def _lifetime_points(failing: int) -> Check:
    def check(record: dict[str, Any]) -> None:
        points = record["observed"]["lifetime_points"]
        assert len(points) == 11, points  # 64 and 45 days: 4 points each; 6 days: 3
        assert sum(1 for p in points if not p["ok"]) == failing, points

    return check


EXPECTED: dict[str, dict[str, Expect]] = {
    **{host: {"REN-03": NOT_SET} for host in ("lt-90-defaults", "lt-64-defaults", "lt-45-defaults", "lt-6-defaults")},
    "lt-64-pinned": {
        "REN-03": Expect("pass", evidence=_window(30, 64, 24)),
        # 25 days left: the runbook's days would warn; a third of 64 days (21.3) does not.
        "MON-02": Expect("pass", evidence=_lifetime_points(0)),
    },
    "lt-45-pinned": {"REN-03": Expect("pass", evidence=_window(30, 45, 24))},
    "lt-64-third": {"REN-03": Expect("pass", evidence=_window(21.33, 64, 24))},
    "lt-6-pinned": {
        "REN-03": Expect(
            "fail",
            ("the renewal window (30 days) is as long as the 6-day certificate or longer: certbot renews it on every run",),
        )
    },
    "lt-6-weekly": {
        "REN-03": Expect(
            "fail",
            (
                "the renewal window (3 days) is shorter than the 168 h between certbot's runs: certbot may not run at all "
                "between the renewal point and expiry",
            ),
            _window(3, 6, 168),
        )
    },
    "prom-rules": {"MON-02": Expect("pass", evidence=_lifetime_points(4))},
    # certbot 4.0's own window, accepted: a third of 45 days (15) and half of 6 days (3) meet the
    # runbook's 30 days scaled to the lifetime, and the evidence names the release and its rule.
    "lt-45-certbot4": {"REN-03": Expect("pass", evidence=_certbot_window("a third", 45, 15))},
    "lt-6-certbot4": {"REN-03": Expect("pass", evidence=_certbot_window("half", 6, 3))},
}


def expected(host: str, control: str) -> Expect:
    explicit = EXPECTED.get(host, {}).get(control)
    if explicit is not None:
        return explicit
    if control == "MON-02":
        return Expect("not applicable", ("not in the inventory's prometheus group",))
    if control in ("CRT-01", "REN-04"):
        return Expect(
            "pass", evidence=_rule("days" if LIFETIME[host] >= 89 else "lifetime", RUNBOOK if LIFETIME[host] >= 89 else SCALED)
        )
    return Expect("pass")


# --- the what-if rows -------------------------------------------------------------------------------
CERTBOT_4 = ("lt-45-certbot4", "lt-6-certbot4")
ON_30 = [h for h in HOSTS if h not in ("lt-64-third", "lt-6-weekly", *CERTBOT_4)]  # every host renewing 30 days before expiry
EVERY_RUN = "the renewal window (30 days) is as long as the 6-day certificate or longer: certbot renews it on every run"
WEEKLY = "the renewal window (3 days) is shorter than the 168 h between certbot's runs"
RUNBOOK_PAGES = (
    "the fleet's alerts fire on a healthy certificate 21.38 days before expiry, before certbot is due: "
    "CertificateExpiringWarning on prom-rules (under 30 days)"
)
ROWS: dict[tuple[str, int], tuple[str, tuple[str, ...]]] = {
    **{(h, 64): ("ready", ()) for h in ON_30},
    **{(h, 45): ("ready", ()) for h in ON_30},
    **{(h, 6): ("breaks", (EVERY_RUN,)) for h in ON_30},
    ("lt-64-third", 64): ("pages", (RUNBOOK_PAGES,)),
    ("lt-64-third", 45): ("pages", ("CertificateExpiringWarning on prom-rules (under 30 days)",)),
    ("lt-64-third", 6): ("breaks", ("the renewal window (21.33 days) is as long as the 6-day certificate or longer",)),
    **{("lt-6-weekly", n): ("breaks", (WEEKLY, "the gate would fail it: CRT-01's critical tier")) for n in (64, 45, 6)},
    # certbot 4.0 renews in time at every lifetime, but the runbook's fixed-day alerts page before it is due.
    **{(h, 64): ("pages", (RUNBOOK_PAGES,)) for h in CERTBOT_4},
    **{(h, 45): ("pages", ("15.04 days before expiry", "CertificateExpiringWarning on prom-rules")) for h in CERTBOT_4},
    **{(h, 6): ("pages", ("3.04 days before expiry", "CertificateExpiringSoon on prom-rules (under 7 days)")) for h in CERTBOT_4},
}


@pytest.fixture(scope="module")
def lifetimes_audit(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> AuditRun:
    out = tmp_path_factory.mktemp("lifetimes-audit")
    inventory = fleet.write_inventory(out / "inventory.yml", hosts=HOSTS)
    document = yaml.safe_load(inventory.read_text())
    document["all"]["children"] = {"prometheus": {"hosts": {name: {} for name in PROMETHEUS}}}
    inventory.write_text(yaml.safe_dump(document, sort_keys=False))
    return run_audit(
        inventory,
        out,
        "--connect-timeout",
        "10",
        "-k",
        " or ".join(CONTROLS),
        "--lifetime-what-if",
        "64d,45d",
        "--lifetime-what-if",
        "6d",
        "--html",
        str(out / "report.html"),
    )


CASES = [(h, c) for h in HOSTS for c in CONTROLS]


@pytest.mark.fleet
@pytest.mark.parametrize(("host", "control"), CASES, ids=[f"{c}[{h}]" for h, c in CASES])
def test_lifetime_verdict(fleet: Fleet, lifetimes_audit: AuditRun, host: str, control: str) -> None:
    record = lifetimes_audit.result(control, host)
    assert_verdict(record, expected(host, control), host, control, fleet.hosts[host].address)


@pytest.mark.fleet
@pytest.mark.parametrize(("host", "lifetime"), list(ROWS), ids=[f"{h}-{n}d" for h, n in ROWS])
def test_what_if_row(lifetimes_audit: AuditRun, host: str, lifetime: int) -> None:
    rows = [
        r for r in lifetimes_audit.evidence["lifetime_what_if"]["rows"] if (r["host"], r["lifetime_days"]) == (host, lifetime)
    ]
    assert len(rows) == 1, rows
    verdict, fragments = ROWS[(host, lifetime)]
    row = rows[0]
    assert row["verdict"] == verdict, row
    for fragment in fragments:
        assert any(fragment in reason for reason in row["reasons"]), (fragment, row["reasons"])
    if verdict == "ready":
        assert row["reasons"] == [], row
        assert (row["renewal_point_days"], row["runs_at_most_hours_apart"]) == (30, 24), row


@pytest.mark.fleet
def test_what_if_as_a_whole(lifetimes_audit: AuditRun) -> None:
    evidence = lifetimes_audit.evidence
    assert lifetimes_audit.returncode == 1, lifetimes_audit.stdout[-3000:]
    assert "Traceback" not in lifetimes_audit.stdout + lifetimes_audit.stderr
    section = evidence["lifetime_what_if"]
    assert section["lifetimes_days"] == [64, 45, 6]
    assert sorted((r["host"], r["lifetime_days"]) for r in section["rows"]) == sorted(ROWS)  # every row asserted
    jsonschema.validate(evidence, json.loads(SCHEMA.read_text()))
    # The defaults hosts' window comes from their certbot release, as the inventory gives it.
    row = next(r for r in section["rows"] if (r["host"], r["lifetime_days"]) == ("lt-64-defaults", 64))
    assert row["window_rule"] == (
        "certbot 2.1.0 renews 30 days before expiry when renew_before_expiry is not set (release from the host's certbot)"
    )
    assert "certaudit: lifetime what-if 64d: 1 breaks, 3 pages, 9 ready" in lifetimes_audit.stdout
    assert "certaudit: lifetime what-if 6d: 11 breaks, 2 pages" in lifetimes_audit.stdout
    four = next(r for r in section["rows"] if (r["host"], r["lifetime_days"]) == ("lt-6-certbot4", 6))
    assert four["window_rule"] == (
        "certbot 4.0.0 renews when half of the lifetime is left (6.0 days) when renew_before_expiry is not set "
        "(release from the host's certbot)"
    )
    html = (Path(lifetimes_audit.evidence["run"]["inventory"]).parent / "report.html").read_text()
    assert 'id="certaudit-lifetime-what-if"' in html and "If the next certificate lived 64 days (13 host(s))" in html
    assert "Will page needlessly: 3" in html and "Will break: 11" in html
