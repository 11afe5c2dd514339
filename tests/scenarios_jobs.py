"""Scenario hosts of the jobs (gate, scheduled run, quarterly audit, renewal drill): 127.77.4.x.

The gate and the Prometheus output judge the runbook hosts (compliant, days-20, days-5, ...) read-only;
the hosts here are the ones the jobs' tests change: the renewal drill renews their certificates for
real, and the quarterly audit's test changes their state between two quarters.
"""

from __future__ import annotations

from tests.fleet.scenario import HOOK_PATH, PEBBLE_CA_PATH, Scenario


def _address(n: int) -> str:
    return f"127.77.4.{n}"


# What an inventory says to let the quarterly renewal drill renew a host: the fleet's hosts trust
# pebble, the fleet's ACME CA, through the CA bundle certbot's HTTP client (requests) reads.
DRILL_VARS = {"certaudit_drill_ok": True, "certaudit_acme_ca_bundle": PEBBLE_CA_PATH}
# A deploy hook that looks right to every static check (REN-02 passes: root-owned, executable, it
# reloads stemedb-api) but breaks on a real renewal: a typo in the lineage's file name stops it
# (set -e) before it installs the certificate or reloads the service. Only a real renewal shows it.
BREAK_HOOK = f"sed -i 's#/fullchain.pem#/full-chain.pem#' {HOOK_PATH}"

SCENARIOS: list[Scenario] = [
    Scenario(
        "drill-ok",
        _address(10),
        "certificate issued by pebble with real certbot; marked for the renewal drill",
        cert_source="pebble",
        inventory_vars=dict(DRILL_VARS),
        audited=False,
    ),
    Scenario(
        "drill-hook-broken",
        _address(11),
        "pebble host marked for the drill whose deploy hook fails on a real renewal (a typo in a path)",
        cert_source="pebble",
        inventory_vars=dict(DRILL_VARS),
        # After certbot's first issuance (which ran the hook intact), as a later edit would.
        after_boot=(BREAK_HOOK,),
        audited=False,
    ),
    Scenario(
        "quarter-fixed",
        _address(20),
        "key 0644 and 20 days left; the quarterly test fixes the key",
        key_mode=0o644,
        days_left=20,
        audited=False,
    ),
    Scenario("quarter-new", _address(21), "compliant; the quarterly test breaks its deploy hook", audited=False),
]
