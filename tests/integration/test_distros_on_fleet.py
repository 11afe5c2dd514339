"""Mixed fleets on the fleet: Debian 11, 12 and 13, certbot by pip in /opt/certbot, RHEL/EPEL's
layout and the snap's (tests/scenarios_distros.py).

One real audit of those hosts: each compliant host passes every control (DRL-01 and MON-02 do not
apply to them); each broken host fails REN-01, REN-02, REN-03 and REN-05 in its own installation's
way, and REN-03's evidence names the certbot the scheduler runs, how it was installed, and the rule
its release applies.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fleet import pki
from tests.fleet.fleet import Fleet
from tests.integration.audit_run import AuditRun, Check, Expect, assert_verdict, run_audit
from tests.integration.test_catalog_on_fleet import pebble_root
from tests.scenarios_distros import SCENARIOS

pytestmark = pytest.mark.fleet

COMPLIANT = ["compliant", *(s.name for s in SCENARIOS if s.name.endswith("-compliant"))]
BROKEN = [s.name for s in SCENARIOS if s.name.endswith("-broken")]
OTHERS = [s.name for s in SCENARIOS if s.name not in (*COMPLIANT, *BROKEN)]  # one way of breaking a control each
NOT_APPLICABLE = {"DRL-01", "MON-02"}  # no renewal drill asked for, no Prometheus server
DEB = "/usr/lib/python3/dist-packages"
CONF = "/etc/letsencrypt/renewal/stemedb.example.com.conf"
NO_HOOK = (
    f"no deploy hook: nothing in /etc/letsencrypt/renewal-hooks/deploy and no renew_hook in {CONF} nor a deploy-hook "
    "in certbot's cli.ini"
)
NOT_RECORDED = "has not run since boot and /var/log/letsencrypt holds no log of a certbot run"


def certbot(version: str, how: str, version_from: str, executable: str, rules: str) -> Check:
    def check(record: dict[str, Any]) -> None:
        observed = record["observed"]
        assert observed["certbot"] == {
            "version": version,
            "installed_as": how,
            "version_from": version_from,
            "executable": executable,
        }
        assert observed["rules"].startswith(rules), observed["rules"]

    return check


DEBIAN_11 = (f"{DEB}/certbot-1.12.0.egg-info/PKG-INFO", "/usr/bin/certbot")
DEBIAN_12 = (f"{DEB}/certbot-2.1.0.egg-info/PKG-INFO", "/usr/bin/certbot")
DEBIAN_13 = (f"{DEB}/certbot-4.0.0.egg-info/PKG-INFO", "/usr/bin/certbot")
PIP = (
    "/opt/certbot/lib/python3.11/site-packages/certbot-4.1.1.dist-info/METADATA",
    "/usr/bin/certbot -> /opt/certbot/bin/certbot",
)
SNAP = "/snap/certbot/current/meta/snap.yaml"
PINNED = "renew_before_expiry = 30 days wins over its default"
ARI_EARLIER = "; the CA's renewal information (ARI) may only bring the renewal earlier"


def timer(unit: str) -> Check:
    def check(record: dict[str, Any]) -> None:
        assert record["observed"]["timer"].get("unit", "certbot.timer") == unit
        assert record["observed"]["timer"]["ActiveState"] == "active"

    return check


def cron_entry(record: dict[str, Any]) -> None:
    assert record["observed"]["timer"]["LoadState"] == "not-found"
    assert record["observed"]["cron"]["entries"] == [
        "/etc/crontab:5: 0 0,12 * * * /opt/certbot/bin/python -c 'import random; import time; "
        "time.sleep(random.random() * 3600)' && sudo certbot renew -q"
    ]


def sysconfig_hook(record: dict[str, Any]) -> None:
    observed = record["observed"]
    assert observed["hooks"] == []
    assert observed["command_hooks"] == [
        {
            "source": "DEPLOY_HOOK in /etc/sysconfig/certbot:7",
            "command": "/usr/local/libexec/reload-stemedb.sh",
            "script": "/usr/local/libexec/reload-stemedb.sh",
            "reload_line": "systemctl reload stemedb-api",
        }
    ]
    assert observed["reloading_hooks"] == ["DEPLOY_HOOK in /etc/sysconfig/certbot:7"]


def deploy_hook_ignored(record: dict[str, Any]) -> None:
    assert record["notes"] == [
        f"deploy_hook = systemctl reload stemedb-api in [renewalparams] of {CONF} is ignored: certbot reads "
        "renew_hook there (where --deploy-hook is saved), never deploy_hook"
    ]


EXPECTED: dict[tuple[str, str], Expect] = {
    # REN-01: each installation's own scheduler.
    ("compliant", "REN-01"): Expect("pass", evidence=timer("certbot.timer")),
    ("bullseye-compliant", "REN-01"): Expect("pass", evidence=timer("certbot.timer")),
    ("trixie-compliant", "REN-01"): Expect("pass", evidence=timer("certbot.timer")),
    ("pip-compliant", "REN-01"): Expect("pass", evidence=cron_entry),
    ("rhel-compliant", "REN-01"): Expect("pass", evidence=timer("certbot-renew.timer")),
    ("snap-compliant", "REN-01"): Expect("pass", evidence=timer("snap.certbot.renew.timer")),
    ("bullseye-broken", "REN-01"): Expect("fail", ("certbot.timer is enabled but inactive, so it schedules nothing",)),
    ("trixie-broken", "REN-01"): Expect(
        "fail", ("certbot.timer is masked; no cron entry that cron runs here runs certbot renew",)
    ),
    ("pip-broken", "REN-01"): Expect(
        "fail",
        ("certbot.timer is not installed (LoadState=not-found); cron entries run certbot renew but cron.service is inactive",),
    ),
    ("rhel-broken", "REN-01"): Expect("fail", ("certbot-renew.timer is disabled and inactive, so it schedules nothing",)),
    ("snap-broken", "REN-01"): Expect("fail", ("snap.certbot.renew.timer is enabled but inactive, so it schedules nothing",)),
    # REN-02: the hook where each installation keeps it, and the ways it is not run.
    ("rhel-compliant", "REN-02"): Expect("pass", evidence=sysconfig_hook),
    ("bullseye-broken", "REN-02"): Expect("fail", ("reload-stemedb.sh: not executable (mode 0644): certbot skips it",)),
    ("trixie-broken", "REN-02"): Expect("fail", ("reload-stemedb.sh: reloads no stemedb-api",)),
    ("pip-broken", "REN-02"): Expect(
        "fail",
        (
            f"renew_hook in {CONF} names /usr/local/sbin/reload-stemedb, which is not executable (mode 0644): "
            "the shell cannot run it",
        ),
    ),
    ("rhel-broken", "REN-02"): Expect("fail", (f"{NO_HOOK} nor a DEPLOY_HOOK/RENEW_HOOK in /etc/sysconfig/certbot",)),
    ("rhel-no-directory-hooks", "REN-01"): Expect("pass", evidence=timer("certbot-renew.timer")),
    ("rhel-no-directory-hooks", "REN-02"): Expect(
        "fail",
        (
            "reload-stemedb.sh: --no-directory-hooks on CERTBOT_ARGS in /etc/sysconfig/certbot:8: certbot runs nothing in "
            "renewal-hooks/",
        ),
    ),
    ("snap-broken", "REN-02"): Expect("fail", (NO_HOOK,), deploy_hook_ignored),
    # REN-03: the certbot the scheduler runs, and its release's rules.
    ("compliant", "REN-03"): Expect("pass", evidence=certbot("2.1.0", "debian package", *DEBIAN_12, f"certbot 2.1.0: {PINNED}")),
    ("bullseye-compliant", "REN-03"): Expect(
        "pass", evidence=certbot("1.12.0", "debian package", *DEBIAN_11, f"certbot 1.12.0: {PINNED}")
    ),
    ("trixie-compliant", "REN-03"): Expect(
        "pass", evidence=certbot("4.0.0", "debian package", *DEBIAN_13, f"certbot 4.0.0: {PINNED}")
    ),
    ("pip-compliant", "REN-03"): Expect(
        "pass", evidence=certbot("4.1.1", "pip in /opt/certbot", *PIP, f"certbot 4.1.1: {PINNED}{ARI_EARLIER}")
    ),
    ("rhel-compliant", "REN-03"): Expect(
        "pass", evidence=certbot("2.1.0", "debian package", *DEBIAN_12, f"certbot 2.1.0: {PINNED}")
    ),
    ("snap-compliant", "REN-03"): Expect(
        "pass",
        evidence=certbot("4.1.1", "snap", SNAP, "/usr/bin/snap", f"certbot 4.1.1: {PINNED}{ARI_EARLIER}"),
    ),
    ("bullseye-broken", "REN-03"): Expect("fail", ("renew_before_expiry = 10 days is 10 days, under 30 days",)),
    ("trixie-broken", "REN-03"): Expect(
        "fail",
        (
            f"renew_before_expiry is not set in {CONF} (only certbot's commented default); certbot 4.0.0 renews when "
            "a third of the lifetime is left (45.0 days) when renew_before_expiry is not set: 15.0 days before expiry, "
            "under 20.00 days, 40/90 of the 45.0-day lifetime",
        ),
        certbot("4.0.0", "debian package", *DEBIAN_13, "certbot 4.0.0 renews when a third of the lifetime is left"),
    ),
    ("pip-broken", "REN-03"): Expect("fail", ("renew_before_expiry = 20 days is 20 days, under 30 days",)),
    ("rhel-broken", "REN-03"): Expect("fail", ("renew_before_expiry = 10 days is 10 days, under 30 days",)),
    ("snap-broken", "REN-03"): Expect(
        "fail",
        (
            "certbot 4.1.1 renews when a third of the lifetime is left (45.0 days)",
            "ARI) may move it: 15.0 days before expiry, under 20.00 days, 40/90 of the 45.0-day lifetime",
        ),
        certbot("4.1.1", "snap", SNAP, "/usr/bin/certbot -> /usr/bin/snap", "certbot 4.1.1 renews when a third of the lifetime"),
    ),
    # REN-05: the broken hosts' certificates were never issued by certbot here; the message names their service.
    ("bullseye-broken", "REN-05"): Expect("fail", (f"certbot.service {NOT_RECORDED}",)),
    ("trixie-broken", "REN-05"): Expect("fail", (f"certbot.service {NOT_RECORDED}",)),
    ("pip-broken", "REN-05"): Expect("fail", (f"certbot.service {NOT_RECORDED}",)),
    ("rhel-broken", "REN-05"): Expect("fail", (f"certbot-renew.service {NOT_RECORDED}",)),
    ("snap-broken", "REN-05"): Expect("fail", (f"snap.certbot.renew.service {NOT_RECORDED}",)),
}


@pytest.fixture(scope="module")
def distros_audit(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> AuditRun:
    out = tmp_path_factory.mktemp("distros")
    bundle = out / "trusted-roots.pem"
    bundle.write_bytes(pki.ca_pem("letsencrypt-like") + pebble_root(fleet))
    inventory = fleet.write_inventory(
        out / "inventory.yml", hosts=[*COMPLIANT, *BROKEN, *OTHERS], extra_vars={"certaudit_ca_bundle": str(bundle)}
    )
    return run_audit(inventory, out, "--connect-timeout", "10")


@pytest.mark.parametrize(("host", "control"), list(EXPECTED), ids=[f"{c}[{h}]" for h, c in EXPECTED])
def test_distros_verdict(fleet: Fleet, distros_audit: AuditRun, host: str, control: str) -> None:
    assert_verdict(distros_audit.result(control, host), EXPECTED[(host, control)], host, control, fleet.hosts[host].address)


@pytest.mark.parametrize("host", COMPLIANT)
def test_every_compliant_host_passes_every_control(distros_audit: AuditRun, host: str) -> None:
    results = [r for r in distros_audit.evidence["results"] if r["host"] == host]
    outcomes = {r["control"]: r["outcome"] for r in results}
    assert len(outcomes) == 17  # every control of a certbot host
    wrong = {c: o for c, o in outcomes.items() if o != ("not applicable" if c in NOT_APPLICABLE else "pass")}
    assert wrong == {}, [f"{r['control']}: {r['message'][:400]}" for r in results if r["control"] in wrong]
