"""The catalog beyond the runbook, judged on the fleet: the exact outcome and evidence of each new
control (and CRT-01, which applies the threshold mode) on its own hosts, on `compliant` and on
`down`, plus the runbook hosts where a new control has something to say.

One real audit runs (pytest over checks/, restricted with -k to these controls) with an inventory
that trusts the fleet's CAs (certaudit_ca_bundle: the generated CAs' roots and pebble's) and puts
the Prometheus hosts, and the down host, in its `prometheus` group.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from typing import Any

import pytest
import yaml

from tests.fleet import pki
from tests.fleet.fleet import PEBBLE_ADDRESS, Fleet
from tests.integration.audit_run import AuditRun, Check, Expect, assert_verdict, run_audit
from tests.scenarios_catalog import PROMETHEUS_HOSTS, SCENARIOS

NEW_CONTROLS = ("KEY-03", "CRT-02", "CRT-03", "CRT-04", "LIVE-02", "MON-01", "MON-02", "REN-04", "REN-05")
JUDGED = (*NEW_CONTROLS, "CRT-01")
HOSTS = ["compliant", "down", *(s.name for s in SCENARIOS)]
# Runbook hosts, for the new controls that judge what they were built to break.
ALSO = {"not-reloaded": ("LIVE-02",), "custom-ca": ("CRT-03", "CRT-04", "REN-05")}
CUSTOM_CA_HOSTS = {s.name for s in SCENARIOS if s.inventory_vars.get("certaudit_renewal") == "custom-ca"}
DOMAIN = "stemedb.example.com"


def observed(**expected: Any) -> Check:
    def check(record: dict[str, Any]) -> None:
        for key, value in expected.items():
            assert record["observed"].get(key) == value, (
                f"observed[{key!r}] = {record['observed'].get(key)!r}, expected {value!r}"
            )

    return check


def all_of(*checks: Check) -> Check:
    def check(record: dict[str, Any]) -> None:
        for one in checks:
            one(record)

    return check


def findings(count: int) -> Check:
    def check(record: dict[str, Any]) -> None:
        assert len(record["findings"]) == count, record["findings"]

    return check


one_finding = findings(1)


def _served(count: int) -> Check:
    def check(record: dict[str, Any]) -> None:
        assert len(record["observed"]["served"]) == count, record["observed"]["served"]

    return check


# --- evidence of the passes -----------------------------------------------------------------------
def _same_key(record: dict[str, Any]) -> None:
    obs = record["observed"]
    assert obs["key_public_key_sha256"] == obs["certificate_public_key_sha256"] and len(obs["key_public_key_sha256"]) == 64


def _different_key(record: dict[str, Any]) -> None:
    obs = record["observed"]
    assert obs["key_public_key_sha256"] != obs["certificate_public_key_sha256"], obs


def _pebble_chain(record: dict[str, Any]) -> None:
    obs = record["observed"]
    assert obs["served"][0]["subject"] == f"CN={DOMAIN}"
    assert obs["path"][1].startswith("CN=Pebble Intermediate CA"), obs["path"]
    assert obs["trusted_root"]["subject"].startswith("CN=Pebble Root CA"), obs["trusted_root"]
    assert obs["trust_store"].endswith("(3 roots)"), obs["trust_store"]


def _rooted_at(organization: str) -> Check:
    def check(record: dict[str, Any]) -> None:
        assert record["observed"]["trusted_root"]["subject"].endswith(f"O=certaudit test {organization} CA"), record["observed"]

    return check


def _single_lineage_read(record: dict[str, Any]) -> None:
    obs = record["observed"]
    assert obs["service_lineage"] == DOMAIN
    ((lineage),) = obs["lineages"]
    assert lineage["renewed"] is True and lineage["service_reads_it"] is True


def _reloaded_by(kind: str) -> Check:
    def check(record: dict[str, Any]) -> None:
        obs = record["observed"]
        assert obs["reloaded_by"] == kind, obs
        assert obs["last_event"] >= obs["certificate_changed"][:19], obs

    return check


def _metric_true(record: dict[str, Any]) -> None:
    obs = record["observed"]
    ((sample),) = obs["samples"]
    value = int(sample.rsplit(" ", 1)[1])
    assert sample.startswith(f'stemedb_tls_cert_expiry_seconds{{domain="{DOMAIN}"}} ')
    assert abs(value - obs["served_seconds_left"]) <= 300, obs
    assert obs["status"] == 200


def _promtool_proves(record: dict[str, Any]) -> None:
    promtool = record["observed"]["promtool"]
    assert promtool["version"].startswith("promtool, version 2."), promtool
    assert promtool["points"] == [
        "at 31 days: no alert, as expected",
        "at 29 days: CertificateExpiringWarning, as expected",
        "at 8 days: CertificateExpiringWarning, as expected",
        "at 6 days: CertificateExpiringWarning, CertificateExpiringSoon, as expected",
    ]
    assert [a["alert"] for a in record["observed"]["alerts"]] == ["CertificateExpiringWarning", "CertificateExpiringSoon"]


def _no_promtool(record: dict[str, Any]) -> None:
    assert record["observed"]["promtool"] is None
    assert any("promtool is not installed" in n for n in record["notes"]), record["notes"]


def _logged_attempt(kind: str, outcome: str) -> Check:
    def check(record: dict[str, Any]) -> None:
        logged = record["observed"]["certbot_log"]
        assert (logged["kind"], logged["outcome"], logged["log"]) == (kind, outcome, "/var/log/letsencrypt/letsencrypt.log")
        assert record["observed"]["certbot_service"] is None

    return check


def _timer_attempt(result: str) -> Check:
    def check(record: dict[str, Any]) -> None:
        service = record["observed"]["certbot_service"]
        assert (service["result"], service["running"]) == (result, False), service
        assert record["observed"]["last_attempt"].startswith("certbot.service at "), record["observed"]

    return check


def _mode(judged: str, configured: str, tier: str = "ok") -> Check:
    return observed(threshold_mode=judged, configured_mode=configured, tier=tier)


def _share(low: float, high: float) -> Check:
    def check(record: dict[str, Any]) -> None:
        assert low < record["observed"]["share_left"] < high, record["observed"]

    return check


def _judged_by_lifetime_note(record: dict[str, Any]) -> None:
    assert any("judged by share of lifetime (see REN-04)" in n for n in record["notes"]), record["notes"]


PASS = Expect("pass")
UNREACHABLE = Expect("error", ("host down", "({address})", "{address} port 22: Connection refused"))
RENEWAL_NA = Expect("not applicable", ("certaudit_renewal is custom-ca",))
NOT_PROMETHEUS = Expect("not applicable", ("not in the inventory's prometheus group",))

EXPECTED: dict[str, dict[str, Expect]] = {
    "compliant": {
        "KEY-03": Expect("pass", evidence=_same_key),
        "CRT-02": Expect("pass", evidence=observed(covering_name=DOMAIN, signature_hash="sha256")),
        "CRT-03": Expect("pass", evidence=_pebble_chain),
        "CRT-04": Expect("pass", evidence=_single_lineage_read),
        # The deploy hook installed the certificate, then reloaded: the journal has the reload.
        "LIVE-02": Expect("pass", evidence=_reloaded_by("reload")),
        "MON-01": Expect("pass", evidence=_metric_true),
        "REN-04": Expect("pass", evidence=_mode("days", "auto")),
        # Its only certbot run is the issuance (the timer has not fired): judged from certbot's log.
        "REN-05": Expect("pass", evidence=_logged_attempt("issue", "success")),
    },
    "key-mismatch": {
        "KEY-03": Expect(
            "fail",
            ("/etc/stemedb/tls/key.pem is not the key of /etc/stemedb/tls/cert.pem", "refuse the pair at its next reload"),
            all_of(_different_key, one_finding),
        ),
        "REN-05": Expect("pass", evidence=_timer_attempt("success")),
    },
    "key-is-certificate": {
        "KEY-03": Expect(
            "fail", ("/etc/stemedb/tls/key.pem is not a usable private key: openssl pkey could not read it as a private key",)
        ),
    },
    "san-other-name": {
        "CRT-02": Expect("fail", ("its subjectAltName (other.example.com) does not name stemedb.example.com",), one_finding),
    },
    "not-yet-valid": {
        "CRT-02": Expect("fail", ("it is not valid before", "(30.0 days from now): clients reject it until then"), one_finding),
    },
    "rsa-1024": {
        "CRT-02": Expect(
            "fail", ("its key is RSA 1024, under 2048 bits",), all_of(one_finding, observed(signature_hash="sha256"))
        ),
    },
    "sha1-signed": {
        "CRT-02": Expect(
            "fail",
            ("it is signed with SHA1: clients reject SHA-1 and MD5 signatures",),
            all_of(one_finding, observed(signature_hash="sha1")),
        ),
        # CRT-03 checks the chain's signatures itself: the SHA-1 signature still verifies to the root.
        "CRT-03": Expect("pass", evidence=_rooted_at("letsencrypt-like")),
    },
    "chain-leaf-only": {
        "CRT-03": Expect(
            "fail",
            (
                "the chain is incomplete: the endpoint serves the leaf alone, and its issuer "
                "CN=certaudit test letsencrypt-like intermediate is not in the trust store",
                "(fullchain.pem, not cert.pem)",
            ),
            all_of(one_finding, _served(1)),
        ),
    },
    "chain-untrusted": {
        "CRT-03": Expect(
            "fail",
            ("the chain ends at", "O=certaudit test untrusted CA, a self-signed certificate not in the trust store"),
            observed(trusted_root=None),
        ),
    },
    "chain-intermediate-first": {
        "CRT-03": Expect(
            "fail",
            (
                "intermediate CN=certaudit test letsencrypt-like intermediate expires on",
                "before the leaf",
                "clients reject the chain",
            ),
            all_of(one_finding, _rooted_at("letsencrypt-like")),
        ),
    },
    "lineage-stale-copy": {
        "CRT-04": Expect(
            "fail",
            (
                "the service's copy is stale: it is /etc/letsencrypt/archive/stemedb.example.com/cert1.pem",
                "-> /etc/letsencrypt/archive/stemedb.example.com/cert2.pem",
                "the renewal never reached /etc/stemedb/tls",
            ),
            one_finding,
        ),
        "REN-05": Expect("pass", evidence=_logged_attempt("renew", "success")),
    },
    "lineage-orphan": {
        "CRT-04": Expect(
            "fail",
            ("certbot renews lineage stemedb.example.com-0001", "while the service reads lineage stemedb.example.com (issued"),
            all_of(one_finding, observed(service_lineage=DOMAIN)),
        ),
    },
    "reloaded-after-change": {"LIVE-02": Expect("pass", evidence=_reloaded_by("reload"))},
    "restarted-after-change": {"LIVE-02": Expect("pass", evidence=_reloaded_by("start"))},
    "not-reloaded": {
        "LIVE-02": Expect(
            "fail", ("stemedb-api.service has not started or reloaded since its certificate changed at", "it still serves what")
        ),
    },
    "metrics-missing": {"MON-01": Expect("fail", ("/metrics exports no stemedb_tls_cert_expiry_seconds",))},
    "metrics-in-days": {
        "MON-01": Expect("fail", ('stemedb_tls_cert_expiry_seconds{{domain="stemedb.example.com"}} 59 says 59 s', "over 300 s"))
    },
    "metrics-other-domain": {
        "MON-01": Expect(
            "fail", ("exports stemedb_tls_cert_expiry_seconds for api.example.com, not for domain=stemedb.example.com",)
        )
    },
    "prom-rules": {"MON-02": Expect("pass", evidence=_promtool_proves)},
    "prom-soon-missing": {
        "MON-02": Expect(
            "fail",
            ("no alert CertificateExpiringSoon in the rule files Prometheus loads (/etc/prometheus/rules/certificates.yml)",),
            all_of(one_finding, _no_promtool),
        )
    },
    "prom-hours-bug": {
        "MON-02": Expect(
            "fail",
            (
                "alert CertificateExpiringSoon fires under 25200 s",
                "promtool: at 6 days: CertificateExpiringWarning fired, "
                "expected CertificateExpiringWarning, CertificateExpiringSoon",
            ),
            findings(2),
        )
    },
    "prom-rules-not-loaded": {
        "MON-02": Expect(
            "fail",
            ("Prometheus loads no rule file: /etc/prometheus/prometheus.yml has no rule_files",),
            all_of(one_finding, _no_promtool),
        )
    },
    "short-lived-days": {
        "REN-04": Expect(
            "fail",
            ("needs the lifetime mode: its whole lifetime is 6.0 days, no longer than the 30-day warning threshold",),
            _mode("lifetime", "days"),
        ),
        # Not a plain "4 days left" failure: judged by share of lifetime, and said so.
        "CRT-01": Expect("pass", evidence=all_of(_mode("lifetime", "days"), _share(0.66, 0.67), _judged_by_lifetime_note)),
    },
    "short-lived-lifetime": {
        "REN-04": Expect("pass", evidence=_mode("lifetime", "lifetime")),
        "CRT-01": Expect("pass", evidence=all_of(_mode("lifetime", "lifetime"), _share(0.66, 0.67))),
    },
    "lifetime-warning": {
        "CRT-01": Expect(
            "fail",
            ("warning tier: 22% of its 45.0-day lifetime left (10.0 days", "under 33%"),
            all_of(_mode("lifetime", "lifetime", "warning"), _share(0.22, 0.23)),
        ),
    },
    "renewal-failing": {
        "REN-05": Expect(
            "fail",
            (
                "the last renewal attempt failed: certbot.service ran at",
                "ended with result exit-code (exit status 1)",
                "certbot logged: Failed to renew certificate stemedb.example.com with error: Account at",
            ),
            _timer_attempt("exit-code"),
        ),
        "CRT-01": Expect("fail", ("warning tier: 20.0 days left",)),
    },
    "renewal-failed-log": {
        "REN-05": Expect(
            "fail",
            ("the last renewal attempt failed: certbot's run logged at", "Failed to renew certificate stemedb.example.com"),
            _logged_attempt("renew", "failure"),
        ),
    },
    "custom-ca": {"CRT-03": Expect("pass", evidence=_rooted_at("custom"))},
}


def expected(host: str, control: str) -> Expect:
    if host == "down":
        return UNREACHABLE
    explicit = EXPECTED.get(host, {}).get(control)
    if explicit is not None:
        return explicit
    if control == "MON-02" and host not in PROMETHEUS_HOSTS:
        return NOT_PROMETHEUS
    if control in ("CRT-04", "REN-05") and (host in CUSTOM_CA_HOSTS or host == "custom-ca"):
        return RENEWAL_NA
    return PASS


def pebble_root(fleet: Fleet) -> bytes:
    """The root of the chain pebble issues (its management API), trusted through pebble's own TLS CA."""
    context = ssl.create_default_context(cafile=str(fleet.pebble_ca_path))
    url = f"https://{PEBBLE_ADDRESS}:{fleet.pebble_port + 1}/roots/0"
    with urllib.request.urlopen(url, context=context, timeout=10) as answer:  # a fixed https URL
        return bytes(answer.read())


@pytest.fixture(scope="module")
def catalog_audit(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> AuditRun:
    out = tmp_path_factory.mktemp("catalog-audit")
    bundle = out / "trusted-roots.pem"
    bundle.write_bytes(pki.ca_pem("letsencrypt-like") + pki.ca_pem("custom") + pebble_root(fleet))
    inventory = fleet.write_inventory(
        out / "inventory.yml", hosts=[*HOSTS, *ALSO], extra_vars={"certaudit_ca_bundle": str(bundle)}
    )
    document = yaml.safe_load(inventory.read_text())
    document["all"]["children"] = {"prometheus": {"hosts": {name: {} for name in [*PROMETHEUS_HOSTS, "down"]}}}
    inventory.write_text(yaml.safe_dump(document, sort_keys=False))
    return run_audit(inventory, out, "--connect-timeout", "10", "-k", " or ".join(JUDGED))


CASES = [(h, c) for h in HOSTS for c in JUDGED] + [(h, c) for h, controls in ALSO.items() for c in controls]


@pytest.mark.fleet
@pytest.mark.parametrize(("host", "control"), CASES, ids=[f"{c}[{h}]" for h, c in CASES])
def test_catalog_verdict(fleet: Fleet, catalog_audit: AuditRun, host: str, control: str) -> None:
    want = expected(host, control)
    record = catalog_audit.result(control, host)
    assert_verdict(record, want, host, control, fleet.hosts[host].address)


@pytest.mark.fleet
def test_catalog_audit_as_a_whole(catalog_audit: AuditRun) -> None:
    assert catalog_audit.returncode == 1, catalog_audit.stdout[-2000:]
    assert "Traceback" not in catalog_audit.stdout + catalog_audit.stderr
    judged = [r for r in catalog_audit.evidence["results"] if r["control"] in JUDGED]
    assert len(judged) == len(HOSTS + list(ALSO)) * len(JUDGED)  # one result per (host, control), every pair
    # The report says which threshold mode judged each reachable host.
    for record in judged:
        if record["control"] == "REN-04" and record["host"] != "down":
            assert record["observed"]["threshold_mode"] in ("days", "lifetime"), record
    # New facts (certbot's log lines, the journal, rule files) carry no private key material.
    assert "PRIVATE KEY" not in json.dumps(catalog_audit.evidence)


def test_every_new_control_is_broken_somewhere() -> None:
    """Each new control has a host that satisfies it and one that breaks it (the fleet aside)."""
    for control in JUDGED:
        outcomes = {expected(h, control).outcome for h, c in CASES if c == control}
        assert {"pass", "fail", "error"} <= outcomes, (control, outcomes)
