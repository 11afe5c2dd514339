"""The catalog's controls judged on hand-made snapshots: the branches no fleet host takes
(undeterminable facts, absent records, odd answers), each with its outcome and its words."""

from __future__ import annotations

import base64
import datetime as dt
import errno
from collections.abc import Callable
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

import checks.test_certificate as certificate
import checks.test_keys as keys
import checks.test_live as live
import checks.test_monitoring as monitoring
import checks.test_renewal as renewal
from certaudit.controls import REGISTRY
from certaudit.errors import Undeterminable
from certaudit.host.facts import Endpoint, HostFacts, MetricsPage, facts_from_probe
from certaudit.host.schedule import TIMER_SERVICES
from certaudit.policy import Policy
from certaudit.record import Evidence
from tests.fleet import pki
from tests.scenarios_catalog import PROMETHEUS_CONFIG, RUNBOOK_RULES

NOW = dt.datetime.now(dt.UTC).timestamp()
CERT = "/etc/stemedb/tls/cert.pem"
KEY = "/etc/stemedb/tls/key.pem"
ISSUED = pki.issue("stemedb.example.com", days_left=60)
PROMETHEUS = Policy(groups=("prometheus",))


def file_item(path: str, content: bytes | None, *, ctime: float = NOW - 3600, error: int = 0) -> dict[str, Any]:
    if error:
        return {"path": path, "lstat_error": {"errno": error, "reason": "No such file or directory"}}
    item: dict[str, Any] = {"path": path, "kind": "file", "mode": 0o644, "uid": 0, "gid": 0, "mtime": ctime, "ctime": ctime}
    if content is not None:
        item["content_b64"] = base64.b64encode(content).decode()
        item["size"] = len(content)
    return item


NOT_INSTALLED = {
    unit: {"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""}
    for unit in (*TIMER_SERVICES, *TIMER_SERVICES.values())
}


def snapshot(
    files: dict[str, bytes | None] | None = None,
    *,
    systemd: bool = True,
    units: dict[str, dict[str, str]] | None = None,
    endpoint: Endpoint | None = None,
    missing: tuple[str, ...] = (),
    ctime: float = NOW - 3600,
    **sections: Any,
) -> HostFacts:
    given = {CERT: ISSUED.fullchain_pem, KEY: None} if files is None else files
    raw: dict[str, Any] = {
        "time": NOW,
        "systemd": systemd,
        "files": {p: file_item(p, c, ctime=ctime) for p, c in given.items()}
        | {p: file_item(p, None, error=errno.ENOENT) for p in missing},
        "listings": {},
        "public_keys": {},
        # The probe asks for every installation's certbot units: those a test does not give are not installed.
        "units": {**NOT_INSTALLED, **units} if units else {},
        "service_events": None,
        "certbot_logs": {"dir": "/var/log/letsencrypt", "logs": [], "error": {"errno": errno.ENOENT, "reason": "No such file"}},
        "prometheus": None,
    }
    raw.update(sections)
    return facts_from_probe("web-1", raw, NOW, endpoint)


def judge(
    control: str, check: Callable[[HostFacts, Policy, Evidence], None], facts: HostFacts, policy: Policy | None = None
) -> Evidence:
    evidence = Evidence(REGISTRY[control], "web-1")
    check(facts, policy or Policy(), evidence)
    return evidence


# --- KEY-03 -------------------------------------------------------------------------------------------
def test_key03_without_openssl_is_undeterminable() -> None:
    facts = snapshot(public_keys={KEY: {"path": KEY, "error": {"errno": 0, "reason": "openssl is not installed on the host"}}})
    with pytest.raises(
        Undeterminable, match=r"cannot derive the public key of /etc/stemedb/tls/key\.pem: openssl is not installed"
    ):
        judge("KEY-03", keys.test_private_key_matches_certificate, facts)


def test_key03_missing_key_fails() -> None:
    facts = snapshot({CERT: ISSUED.fullchain_pem}, missing=(KEY,))
    assert judge("KEY-03", keys.test_private_key_matches_certificate, facts).findings == [
        "the service's key: /etc/stemedb/tls/key.pem does not exist"
    ]


# --- CRT-02 -------------------------------------------------------------------------------------------
def _self_signed(key: Any, san: list[str] | None) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stemedb.example.com")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=60))
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
    return builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM
    )


def test_crt02_wildcard_counts_no_san_and_ed25519_do_not() -> None:
    wildcard = trustme.CA().issue_cert("*.example.com").cert_chain_pems[0].bytes()
    assert judge("CRT-02", certificate.test_certificate_is_acceptable, snapshot({CERT: wildcard})).findings == []
    from cryptography.hazmat.primitives.asymmetric import ec

    no_san = _self_signed(ec.generate_private_key(ec.SECP256R1()), None)
    assert judge("CRT-02", certificate.test_certificate_is_acceptable, snapshot({CERT: no_san})).findings == [
        "it has no subjectAltName: clients match stemedb.example.com there only, never in the CN"
    ]
    edwards = _self_signed(ed25519.Ed25519PrivateKey.generate(), ["stemedb.example.com"])
    (finding,) = judge("CRT-02", certificate.test_certificate_is_acceptable, snapshot({CERT: edwards})).findings
    assert finding.startswith("its key is Ed25519, which is neither RSA nor EC")
    other_label = trustme.CA().issue_cert("*.stemedb.example.com").cert_chain_pems[0].bytes()
    assert judge("CRT-02", certificate.test_certificate_is_acceptable, snapshot({CERT: other_label})).findings == [
        "its subjectAltName (*.stemedb.example.com) does not name stemedb.example.com"
    ]


# --- CRT-03 -------------------------------------------------------------------------------------------
def test_crt03_without_the_served_chain_is_undeterminable() -> None:
    endpoint = Endpoint("10.0.0.1", 18180, "stemedb.example.com", leaf_der=b"0", chain_error="this Python cannot")
    with pytest.raises(Undeterminable, match="the served chain was not read: this Python cannot"):
        judge("CRT-03", certificate.test_served_chain_reaches_trusted_root, snapshot(endpoint=endpoint))


# --- CRT-04 -------------------------------------------------------------------------------------------
LIVE = "/etc/letsencrypt/live"
ARCHIVE = "/etc/letsencrypt/archive/stemedb.example.com"


def lineage_snapshot(service: bytes, lineages: dict[str, bytes], renewed: list[str]) -> HostFacts:
    files: dict[str, bytes | None] = {CERT: service, KEY: None}
    files |= {f"{LIVE}/{name}/cert.pem": pem for name, pem in lineages.items()}
    listings = {
        LIVE: {"path": LIVE, "names": sorted(lineages)},
        "/etc/letsencrypt/renewal": {"path": "/etc/letsencrypt/renewal", "names": [f"{n}.conf" for n in renewed]},
        ARCHIVE: {"path": ARCHIVE, "names": []},
    }
    return snapshot(files, listings=listings)


def test_crt04_findings() -> None:
    other = pki.issue("stemedb.example.com", days_left=80)
    facts = lineage_snapshot(other.cert_pem, {"stemedb.example.com": ISSUED.cert_pem}, ["stemedb.example.com"])
    (finding,) = judge("CRT-04", certificate.test_service_uses_newest_lineage_certificate, facts).findings
    assert finding.startswith("the service's certificate (expires") and "is not the newest certificate of any lineage" in finding
    facts = lineage_snapshot(ISSUED.cert_pem, {"stemedb.example.com": ISSUED.cert_pem}, [])
    assert judge("CRT-04", certificate.test_service_uses_newest_lineage_certificate, facts).findings == [
        "certbot does not renew the lineage the service reads: /etc/letsencrypt/renewal/stemedb.example.com.conf does not exist"
    ]
    nothing = {"path": LIVE, "error": {"errno": errno.ENOENT, "reason": "No such file or directory"}}
    gone = {LIVE: nothing, "/etc/letsencrypt/renewal": {**nothing, "path": "/etc/letsencrypt/renewal"}}
    facts = snapshot({CERT: ISSUED.cert_pem}, missing=(f"{LIVE}/stemedb.example.com/cert.pem",), listings=gone)
    assert judge("CRT-04", certificate.test_service_uses_newest_lineage_certificate, facts).findings == [
        "no certbot lineage for stemedb.example.com in /etc/letsencrypt/live: nothing renews what the service reads"
    ]
    denied = {"path": LIVE, "error": {"errno": errno.EACCES, "reason": "Permission denied"}}
    facts = snapshot({CERT: ISSUED.cert_pem}, listings={**gone, LIVE: denied})
    with pytest.raises(Undeterminable, match="cannot list /etc/letsencrypt/live: Permission denied"):
        judge("CRT-04", certificate.test_service_uses_newest_lineage_certificate, facts)


# --- LIVE-02 ------------------------------------------------------------------------------------------
UNIT = {"stemedb-api.service": {"LoadState": "loaded", "ActiveState": "active", "ExecMainStartTimestamp": f"@{int(NOW - 7200)}"}}


def events(*items: tuple[float, str], error: str = "", truncated: bool = False, read: int = 3) -> dict[str, Any]:
    section: dict[str, Any] = {
        "unit": "stemedb-api.service",
        "since": NOW - 3600,
        "events": [{"time": t, "kind": k, "message": k} for t, k in items],
        "entries_read": read,
        "truncated": truncated,
    }
    if error:
        section["error"] = {"errno": 0, "reason": error}
    return section


def test_live02_branches() -> None:
    judge_live = live.test_service_reloaded_after_certificate_changed
    passed = judge(
        "LIVE-02", judge_live, snapshot(units=UNIT, service_events=events((NOW - 60, "service-reloaded"), (NOW - 59, "reload")))
    )
    assert passed.findings == [] and passed.observed["reloaded_by"] == "reload"
    started_later = {"stemedb-api.service": {**UNIT["stemedb-api.service"], "ExecMainStartTimestamp": f"@{int(NOW - 60)}"}}
    assert (
        judge("LIVE-02", judge_live, snapshot(units=started_later, service_events=events(error="no journal"))).observed[
            "reloaded_by"
        ]
        == "start"
    )
    with pytest.raises(
        Undeterminable, match=r"cannot tell whether stemedb-api\.service reloaded since .*: journalctl did not finish"
    ):
        judge("LIVE-02", judge_live, snapshot(units=UNIT, service_events=events(error="journalctl did not finish within 15 s")))
    with pytest.raises(Undeterminable, match="a reload may be among those not read"):
        judge("LIVE-02", judge_live, snapshot(units=UNIT, service_events=events(truncated=True, read=20001)))
    with pytest.raises(Undeterminable, match="systemd is not running"):
        judge("LIVE-02", judge_live, snapshot(systemd=False))
    stopped = {"stemedb-api.service": {"LoadState": "loaded", "ActiveState": "failed"}}
    assert judge("LIVE-02", judge_live, snapshot(units=stopped, service_events=events())).findings == [
        "stemedb-api.service is not running (LoadState=loaded, ActiveState=failed): it serves no certificate"
    ]


# --- REN-04 -------------------------------------------------------------------------------------------
def test_ren04_observes_the_mode() -> None:
    short = pki.issue("stemedb.example.com", days_left=3, lifetime_days=6)
    days = Policy(threshold_mode="days")
    evidence = judge("REN-04", renewal.test_threshold_mode_suits_lifetime, snapshot({CERT: short.cert_pem}), days)
    assert evidence.observed["threshold_mode"] == "lifetime" and evidence.observed["configured_mode"] == "days"
    (finding,) = evidence.findings
    assert finding.startswith("needs the lifetime mode: its whole lifetime is 6.0 days")


def test_ren04_auto_suits_every_lifetime_and_says_why() -> None:
    """The default (auto) needs nobody to set a mode per host: a 6-day certificate passes, judged by its lifetime."""
    short = pki.issue("stemedb.example.com", days_left=3, lifetime_days=6)
    evidence = judge("REN-04", renewal.test_threshold_mode_suits_lifetime, snapshot({CERT: short.cert_pem}))
    assert not evidence.findings
    assert (evidence.observed["threshold_mode"], evidence.observed["configured_mode"]) == ("lifetime", "auto")
    assert evidence.observed["threshold_rule"] == (
        "a 6.0-day certificate, shorter than the runbook's 90 days: the runbook's 30 and 7 days scaled to its "
        "lifetime (33% and 8%: 2.0 and 0.5 days; a third is where certbot 4.0 and later renew by default)"
    )


# --- REN-05 -------------------------------------------------------------------------------------------
def certbot_log(*lines: tuple[float, str], mtime: float | None = None) -> dict[str, Any]:
    return {
        "dir": "/var/log/letsencrypt",
        "logs": [
            {
                "path": "/var/log/letsencrypt/letsencrypt.log",
                "mtime": mtime if mtime is not None else lines[-1][0],
                "lines": [{"time": t, "text": text} for t, text in lines],
            }
        ],
    }


RENEW_FAILED = (
    (NOW - 100, "2026-11-28 00:00:00,000:DEBUG:certbot._internal.main:certbot version: 2.1.0"),
    (NOW - 99, "2026-11-28 00:00:01,000:DEBUG:x:Notifying user: Processing /etc/letsencrypt/renewal/a.conf"),
    (NOW - 98, "2026-11-28 00:00:02,000:ERROR:certbot._internal.renewal:Failed to renew certificate a with error: timeout"),
    (NOW - 98, "2026-11-28 00:00:02,000:DEBUG:certbot._internal.log:Exiting abnormally:"),
)
TIMER_OK = {
    "certbot.service": {
        "ExecMainStartTimestamp": f"@{int(NOW - 30)}",
        "ExecMainExitTimestamp": f"@{int(NOW - 29)}",
        "Result": "success",
        "ExecMainStatus": "0",
    }
}
TIMER_OLD = {
    "certbot.service": {
        **TIMER_OK["certbot.service"],
        "ExecMainStartTimestamp": f"@{int(NOW - 9000)}",
        "ExecMainExitTimestamp": f"@{int(NOW - 9000)}",
    }
}


NOT_RUN = {"certbot.service": {"LoadState": "loaded", "ActiveState": "inactive", "ExecMainStartTimestamp": ""}}


def test_ren05_the_newest_record_decides() -> None:
    judge_ren = renewal.test_last_renewal_attempt_succeeded
    assert judge("REN-05", judge_ren, snapshot(units=TIMER_OK, certbot_logs=certbot_log(*RENEW_FAILED))).findings == []
    (finding,) = judge("REN-05", judge_ren, snapshot(units=TIMER_OLD, certbot_logs=certbot_log(*RENEW_FAILED))).findings
    assert finding.startswith("the last renewal attempt failed: certbot's run logged at") and finding.endswith(
        "with error: timeout"
    )
    (finding,) = judge("REN-05", judge_ren, snapshot(units=NOT_RUN, certbot_logs=certbot_log(*RENEW_FAILED[:2]))).findings
    assert finding.startswith("the last renewal attempt did not finish")
    (finding,) = judge("REN-05", judge_ren, snapshot(units=NOT_RUN)).findings
    assert finding.startswith("no renewal attempt is recorded")


def test_ren05_unreadable_logs_without_a_timer_run_are_undeterminable() -> None:
    logs = {"dir": "/var/log/letsencrypt", "logs": [], "error": {"errno": errno.EACCES, "reason": "Permission denied"}}
    with pytest.raises(Undeterminable, match="cannot read certbot's logs in /var/log/letsencrypt: Permission denied"):
        judge("REN-05", renewal.test_last_renewal_attempt_succeeded, snapshot(units=NOT_RUN, certbot_logs=logs))


# --- MON-01 -------------------------------------------------------------------------------------------
def served(page: MetricsPage | None) -> Endpoint:
    der = ISSUED.certificate.public_bytes(serialization.Encoding.DER)
    return Endpoint("10.0.0.1", 18180, "stemedb.example.com", leaf_der=der, chain_der=(der,), metrics=page)


def page(body: bytes | None, status: int | None = 200, **kw: Any) -> MetricsPage:
    return MetricsPage("https://stemedb.example.com:18180/metrics", status=status, body=body, fetched_at=NOW, **kw)


def test_mon01_branches() -> None:
    judge_mon = monitoring.test_metric_agrees_with_served_certificate
    left = ISSUED.certificate.not_valid_after_utc.timestamp() - NOW
    good = f'stemedb_tls_cert_expiry_seconds{{domain="stemedb.example.com"}} {left - 100:.0f}\n'.encode()
    assert judge("MON-01", judge_mon, snapshot(endpoint=served(page(good)))).findings == []
    assert judge("MON-01", judge_mon, snapshot(endpoint=served(page(b"", status=404)))).findings == [
        "GET /metrics answered HTTP 404, not 200"
    ]
    (finding,) = judge("MON-01", judge_mon, snapshot(endpoint=served(page(b"m{x=1} 2\n")))).findings
    assert (
        finding
        == "/metrics is not in the Prometheus text format: line 1: prometheus_client rejects it (Invalid labels): 'm{x=1} 2'"
    )
    nan = b'stemedb_tls_cert_expiry_seconds{domain="stemedb.example.com"} NaN\n'
    (finding,) = judge("MON-01", judge_mon, snapshot(endpoint=served(page(nan)))).findings
    assert "says nan s" in finding and "off by inf s" in finding
    long_line = b'm{a="' + b"x" * 20_000 + b'"} 1\n'  # over the bound: not parsed, so nothing is known
    with pytest.raises(Undeterminable, match=r"/metrics line 1: over 16384 characters: not parsed$"):
        judge("MON-01", judge_mon, snapshot(endpoint=served(page(long_line))))
    with pytest.raises(Undeterminable, match="no complete answer to GET /metrics within 10 s"):
        judge(
            "MON-01",
            judge_mon,
            snapshot(
                endpoint=served(
                    page(None, status=None, error="no complete answer to GET /metrics within 10 s", determinable=False)
                )
            ),
        )


@pytest.mark.parametrize(
    ("control", "check"),
    [
        ("LIVE-01", live.test_endpoint_serves_certificate_on_disk),
        ("MON-01", monitoring.test_metric_agrees_with_served_certificate),
    ],
)
def test_a_served_certificate_that_does_not_parse_is_a_finding(control: str, check: Any) -> None:
    metrics = f'stemedb_tls_cert_expiry_seconds{{domain="stemedb.example.com"}} {86400 * 60}\n'.encode()
    endpoint = Endpoint("10.0.0.1", 18180, "stemedb.example.com", leaf_der=b"0\x03\x02\x01\x00", metrics=page(metrics))
    (finding,) = judge(control, check, snapshot(endpoint=endpoint)).findings
    assert finding.startswith("the endpoint presents a certificate that does not parse: ")


# --- MON-02 -------------------------------------------------------------------------------------------
CONFIG = "/etc/prometheus/prometheus.yml"
RULES = "/etc/prometheus/rules/certificates.yml"


def prometheus(rules: str = RUNBOOK_RULES, *, patterns: tuple[str, ...] = ("rules/*.yml",), promtool: Any = None) -> HostFacts:
    block = PROMETHEUS_CONFIG[PROMETHEUS_CONFIG.index("rule_files:") : PROMETHEUS_CONFIG.index("scrape_configs:")]
    section = {
        "config": CONFIG,
        "rule_files_block": block,
        "rule_patterns": list(patterns),
        "rule_files": [RULES],
        "promtool": promtool,
    }
    return snapshot({CONFIG: PROMETHEUS_CONFIG.encode(), RULES: rules.encode()}, prometheus=section)


def test_mon02_branches() -> None:
    judge_prom = monitoring.test_alert_rules_fire
    assert judge("MON-02", judge_prom, prometheus(), PROMETHEUS).findings == []
    days_form = RUNBOOK_RULES.replace(
        "stemedb_tls_cert_expiry_seconds < (7 * 86400)", "stemedb_tls_cert_expiry_seconds / 86400 < 7"
    )
    # Read but not proven (no promtool): an error naming the rule, never a pass.
    with pytest.raises(Undeterminable, match=r"the threshold of CertificateExpiringSoon .* promtool is not installed"):
        judge("MON-02", judge_prom, prometheus(days_form), PROMETHEUS)
    wrong = RUNBOOK_RULES.replace("(30 * 86400)", "(14 * 86400)")
    assert judge("MON-02", judge_prom, prometheus(wrong), PROMETHEUS).findings == [
        "alert CertificateExpiringWarning fires under 1209600 s (14 days), not under 30 days (2592000 s)"
    ]
    with pytest.raises(Undeterminable, match=r"the probe read rule_files as \['other/\*.yml'\]"):
        judge("MON-02", judge_prom, prometheus(patterns=("other/*.yml",)), PROMETHEUS)
    broken = {"path": "/usr/bin/promtool", "points": [], "error": {"errno": 0, "reason": "promtool did not finish within 30 s"}}
    with pytest.raises(Undeterminable, match="promtool did not finish within 30 s"):
        judge("MON-02", judge_prom, prometheus(promtool=broken), PROMETHEUS)
    assert (
        judge("MON-02", judge_prom, prometheus("groups: [\n"), PROMETHEUS)
        .findings[0]
        .startswith("Prometheus cannot load a rule file: /etc/prometheus/rules/certificates.yml is not valid YAML")
    )
    assert REGISTRY["MON-02"].reason_not_applicable(Policy()) == (
        "not in the inventory's prometheus group: no Prometheus server's alert rules to read here"
    )
