"""MON-02's reading of Prometheus configs and rule files, static thresholds and promtool's report."""

from __future__ import annotations

import pytest

from certaudit.host.facts import Promtool
from certaudit.host.promrules import RulesError, alert_rules, config_rule_files, promtool_points, static_threshold
from tests.scenarios_catalog import CONFIG_WITHOUT_RULES, PROMETHEUS_CONFIG, RUNBOOK_RULES

POINTS = (
    (31, ()),
    (29, ("CertificateExpiringWarning",)),
    (8, ("CertificateExpiringWarning",)),
    (6, ("CertificateExpiringWarning", "CertificateExpiringSoon")),
)


def test_config_rule_files() -> None:
    assert config_rule_files(PROMETHEUS_CONFIG, "p.yml") == ["rules/*.yml"]
    assert config_rule_files(CONFIG_WITHOUT_RULES, "p.yml") == []
    assert config_rule_files("", "p.yml") == []
    with pytest.raises(RulesError, match=r"p\.yml is not valid YAML at line 2: expected ',' or ']'"):
        config_rule_files("rule_files: [a\n", "p.yml")
    with pytest.raises(RulesError, match="rule_files is not a list of file patterns"):
        config_rule_files("rule_files: a.yml\n", "p.yml")
    with pytest.raises(RulesError, match="not a Prometheus config"):
        config_rule_files("- a\n", "p.yml")


def test_alert_rules() -> None:
    rules = alert_rules(RUNBOOK_RULES + "      - record: job:up:sum\n        expr: sum(up)\n", "r.yml")
    assert [(r.name, r.expr, r.for_, r.group) for r in rules] == [
        ("CertificateExpiringWarning", "stemedb_tls_cert_expiry_seconds < (30 * 86400)", "1h", "stemedb-tls"),
        ("CertificateExpiringSoon", "stemedb_tls_cert_expiry_seconds < (7 * 86400)", "1h", "stemedb-tls"),
    ]
    with pytest.raises(RulesError, match="not a Prometheus rule file"):
        alert_rules("rules: []\n", "r.yml")
    with pytest.raises(RulesError, match="alert 'X' has no expr"):
        alert_rules("groups:\n  - name: g\n    rules:\n      - alert: X\n", "r.yml")


@pytest.mark.parametrize(
    ("expr", "seconds"),
    [
        ("stemedb_tls_cert_expiry_seconds < (30 * 86400)", 2592000),
        ('stemedb_tls_cert_expiry_seconds{domain="stemedb.example.com"} < 7*24*3600', 604800),
        ("stemedb_tls_cert_expiry_seconds <= 604800", 604800),
        ("stemedb_tls_cert_expiry_seconds < 7 * 3600", 25200),
        ("stemedb_tls_cert_expiry_seconds / 86400 < 7", None),  # another form: promtool proves it
        ("min(stemedb_tls_cert_expiry_seconds) < 604800", None),
        ("stemedb_tls_cert_expiry_seconds < __import__('os')", None),
        ("stemedb_tls_cert_expiry_seconds < 1/0", None),
    ],
)
def test_static_threshold(expr: str, seconds: float | None) -> None:
    assert static_threshold(expr) == seconds


def promtool(rc: int, output: str, error: str = "") -> Promtool:
    return Promtool("/usr/bin/promtool", "promtool, version 2.42.0", POINTS, rc, output, error)


def test_promtool_success_and_failures() -> None:
    results, problem = promtool_points(promtool(0, "Unit Testing:  /dev/stdin\n  SUCCESS\n"))
    assert problem is None and all(r.ok for r in results) and len(results) == 4
    assert results[3].describe() == "at 6 days: CertificateExpiringWarning, CertificateExpiringSoon, as expected"
    failed = (
        "Unit Testing:  /dev/stdin\n  FAILED:\n"
        '    expr: "count by (alertname) (ALERTS{alertstate=\\"firing\\"}) # at 6 days", time: 1d,\n'
        '        exp: {alertname="CertificateExpiringSoon"} 1E+00, {alertname="CertificateExpiringWarning"} 1E+00\n'
        '        got: {alertname="CertificateExpiringWarning"} 1E+00\n'
        '    expr: "count by (alertname) (ALERTS{alertstate=\\"firing\\"}) # at 29 days", time: 1d,\n'
        '        exp: {alertname="CertificateExpiringWarning"} 1E+00\n'
        "        got: nil\n"
    )
    results, problem = promtool_points(promtool(1, failed))
    assert problem is None
    assert [r.describe() for r in results if not r.ok] == [
        "at 29 days: no alert fired, expected CertificateExpiringWarning",
        "at 6 days: CertificateExpiringWarning fired, expected CertificateExpiringWarning, CertificateExpiringSoon",
    ]


def test_promtool_that_proves_nothing() -> None:
    results, problem = promtool_points(
        promtool(1, "Unit Testing:  /dev/stdin\n  FAILED:\n    r.yml: yaml: line 3: mapping values\n")
    )
    assert results == [] and problem == "promtool could not test the rules: FAILED:; r.yml: yaml: line 3: mapping values"
    results, problem = promtool_points(promtool(0, "", error="promtool did not finish within 30 s"))
    assert results == [] and problem == "promtool did not finish within 30 s"
