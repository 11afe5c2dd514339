"""MON-*: the expiry metric tells the truth, and the alerts on it fire (runbook: Prevention › Monitoring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from certaudit.controls import control
from certaudit.errors import Undeterminable
from certaudit.host.certificates import served_leaf
from certaudit.host.facts import HostFacts, Promtool
from certaudit.policy import PROMETHEUS_GROUP, Policy
from certaudit.record import Evidence

# The metrics page's parser and the alert rules' are imported by the controls that read them: every
# run collects this module, the gate too, which judges neither.
if TYPE_CHECKING:
    from certaudit.host.promrules import AlertRule

TOLERANCE_S = 300


@control(
    "MON-01",
    title="Export the true expiry: the domain's stemedb_tls_cert_expiry_seconds within 5 minutes of the served certificate",
    source="Prevention › Monitoring 2",
)
def test_metric_agrees_with_served_certificate(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: the runbook's alerts fire on `stemedb_tls_cert_expiry_seconds`. A metric that is
    missing, labelled for another domain, in the wrong unit, or computed from a certificate other
    than the one served keeps every alert silent until the outage.

    Check: from the auditing machine, GET /metrics on the endpoint (`certaudit_endpoint_port`, SNI
    `certaudit_domain`, on the connection whose certificate is judged) answers 200 in the
    Prometheus text format with `stemedb_tls_cert_expiry_seconds{domain="<certaudit_domain>"}`,
    and each such sample is within 300 seconds of the served certificate's notAfter minus the
    time of the answer.

    Fix: export the metric from the certificate the service serves (recompute it on reload), in
    seconds, labelled `domain="<domain>"`: `stemedb_tls_cert_expiry_seconds{domain="stemedb.example.com"} 2592000`.
    """
    from certaudit.host.metrics import MetricsError, MetricsUnread, finite, number, parse_metrics
    from certaudit.host.promrules import METRIC

    endpoint = facts.endpoint
    if endpoint is None:
        raise Undeterminable(f"host {facts.host}: the endpoint was not contacted")
    evidence.expect(
        metric=f'{METRIC}{{domain="{policy.domain}"}}',
        value=f"the served certificate's seconds left, within {TOLERANCE_S} s",
    )
    if not endpoint.determinable:
        raise Undeterminable(f"host {facts.host}: {endpoint.error}")
    if endpoint.leaf_der is None:
        evidence.observe(endpoint_error=endpoint.error)
        evidence.require(False, f"the endpoint serves nothing to read metrics from: {endpoint.error}")
        return
    page = endpoint.metrics
    if page is None:
        raise Undeterminable(f"host {facts.host}: /metrics was not fetched")
    evidence.observe(url=page.url, status=page.status)
    if not page.determinable:
        raise Undeterminable(f"host {facts.host}: {page.error}")
    if page.error or page.body is None:
        evidence.require(False, page.error or "GET /metrics returned no body")
        return
    if page.status != 200:
        evidence.require(False, f"GET /metrics answered HTTP {page.status}, not 200")
        return
    try:
        samples = parse_metrics(page.body.decode("utf-8", "replace"))
    except MetricsUnread as exc:
        raise Undeterminable(f"host {facts.host}: /metrics {exc}") from None
    except MetricsError as exc:
        evidence.require(False, f"/metrics is not in the Prometheus text format: {exc}")
        return
    exported = [s for s in samples if s.name == METRIC]
    ours = [s for s in exported if s.label("domain") == policy.domain]
    evidence.observe(samples=[s.text() for s in exported[:20]])
    if not exported:
        evidence.require(False, f"/metrics exports no {METRIC} ({len(samples)} other samples)")
        return
    if not ours:
        domains = sorted({s.label("domain") or "(no domain label)" for s in exported})
        evidence.require(False, f"/metrics exports {METRIC} for {', '.join(domains)}, not for domain={policy.domain}")
        return
    served = served_leaf(endpoint.leaf_der, evidence)
    if served is None:
        return
    truth = served.not_valid_after_utc.timestamp() - page.fetched_at
    evidence.observe(served_not_after=served.not_valid_after_utc.isoformat(), served_seconds_left=round(truth))
    for sample in ours:
        off = sample.value - truth if finite(sample.value) else float("inf")
        evidence.require(
            abs(off) <= TOLERANCE_S,
            f"{sample.text()} says {number(sample.value)} s ({sample.value / 86400:.2f} days), but the served "
            f"certificate expires in {truth:.0f} s ({truth / 86400:.2f} days): off by {abs(off):.0f} s, over {TOLERANCE_S} s",
        )


def _in_prometheus_group(policy: Policy) -> str | None:
    if PROMETHEUS_GROUP in policy.groups:
        return None
    return f"not in the inventory's {PROMETHEUS_GROUP} group: no Prometheus server's alert rules to read here"


@control(
    "MON-02",
    title="Alert before expiry: CertificateExpiringWarning under 30 days and CertificateExpiringSoon under 7, proven by promtool",
    source="Prevention › Monitoring 1; Alert Rule",
    not_applicable=_in_prometheus_group,
)
def test_alert_rules_fire(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: the runbook's safety net is two alerts on the expiry metric. A rule file Prometheus
    does not load, a missing alert, or a threshold in the wrong unit (7 * 3600 is 7 hours) means
    the page never comes, and nobody notices until it should have.

    Check: on hosts in the inventory's `prometheus` group, the rule files Prometheus loads
    (`rule_files:` of `certaudit_prometheus_config`, globs relative to its directory) define the
    alerts CertificateExpiringWarning and CertificateExpiringSoon on
    `stemedb_tls_cert_expiry_seconds`; a threshold written as `metric < <arithmetic>` must be
    `certaudit_warn_days` (30) and `certaudit_crit_days` (7) days. Where promtool is installed
    (Debian's prometheus package), `promtool test rules` with the metric held at 31, 29, 8 and 6
    days for a day proves which alerts fire: none, Warning, Warning, and both. Alerts that read the
    certificate's lifetime (`stemedb_tls_cert_not_before_timestamp_seconds` and
    `..._not_after_timestamp_seconds`, which the service exports) must also hold for 64, 45 and
    6-day certificates: no alert an hour before certbot renews (a third of the lifetime left, half
    under 10 days; 30 days where pinned), the warning with a quarter left, both with 5% left.
    Fixed-day alerts are judged for 90-day certificates; what they do to shorter ones is recorded
    (`lifetime_points`) for `--lifetime-what-if`.

    Fix: add the runbook's rules (Prevention › Monitoring 1), or their lifetime-relative form
    (`stemedb_tls_cert_expiry_seconds < (not_after - not_before) / 3`, and `* 7 / 90` for the
    critical one) before certificates shorter than 90 days arrive, to a file listed under `rule_files:`,
    e.g. `/etc/prometheus/rules/certificates.yml`, check with `promtool check rules`, then reload
    Prometheus (`systemctl reload prometheus`).
    """
    from certaudit.host.metrics import number
    from certaudit.host.promrules import (
        METRIC,
        SOON_ALERT,
        WARNING_ALERT,
        RulesError,
        alert_rules,
        config_rule_files,
        promtool_points,
        static_threshold,
    )

    evidence.expect(
        alerts=[
            f"{WARNING_ALERT}: {METRIC} < {policy.warn_days} days",
            f"{SOON_ALERT}: {METRIC} < {policy.crit_days} days",
        ],
        promtool="where installed: fires at the expected points",
    )
    found = facts.prometheus()
    if found is None:
        raise Undeterminable(f"host {facts.host}: the probe read no Prometheus configuration")
    config = facts.file(found.config)
    evidence.observe(config=config.where())
    problem = config.problem()
    if problem is not None:
        evidence.require(False, f"no Prometheus configuration: {problem}")
        return
    if found.rule_files_block is None:
        raise Undeterminable(f"host {facts.host}: cannot read {config.where()}: {found.read_error or 'not read'}")
    try:
        patterns = config_rule_files(found.rule_files_block, config.where())
    except RulesError as exc:
        evidence.require(False, f"Prometheus cannot load its configuration: {exc}")
        return
    if sorted(patterns) != sorted(found.rule_patterns):
        raise Undeterminable(
            f"host {facts.host}: the probe read rule_files as {list(found.rule_patterns)}, the configuration says {patterns}"
        )
    evidence.observe(rule_files=list(patterns), loaded=list(found.rule_files))
    if found.rule_files_truncated:
        raise Undeterminable(
            f"host {facts.host}: rule_files of {config.where()} match more than the {len(found.rule_files)} rule files "
            "the probe reads: the alerts cannot be judged on part of them"
        )
    rules: list[AlertRule] = []
    for path in found.rule_files:
        rule_file = facts.file(path)
        if rule_file.problem() is None:
            try:
                rules += alert_rules(rule_file.text(), path)
            except RulesError as exc:
                evidence.require(False, f"Prometheus cannot load a rule file: {exc}")
    if not found.rule_files:
        why = "no rule_files" if not patterns else "rule_files that match no file"
        evidence.require(False, f"Prometheus loads no rule file: {config.path} has {why}")
    thresholds = {WARNING_ALERT: policy.warn_days, SOON_ALERT: policy.crit_days}
    unproven_thresholds: list[str] = []
    defined = {r.name: r for r in rules if r.name in thresholds}
    evidence.observe(alerts=[r.as_evidence() for r in defined.values()])
    for name, days in thresholds.items():
        rule = defined.get(name)
        if rule is None:
            if found.rule_files:
                evidence.require(False, f"no alert {name} in the rule files Prometheus loads ({', '.join(found.rule_files)})")
            continue
        if not evidence.require(METRIC in rule.expr, f"alert {name} does not use {METRIC}: {rule.expr}"):
            continue
        seconds = static_threshold(rule.expr)
        if seconds is None:
            unproven_thresholds.append(f"the threshold of {name} ({rule.expr}) is not a plain `{METRIC} < <number>`")
            evidence.note(f"the threshold of {name} is not a plain `{METRIC} < <number>`: only promtool can prove it")
        else:
            evidence.require(
                seconds == days * 86400,
                f"alert {name} fires under {number(seconds)} s ({seconds / 86400:g} days), "
                f"not under {days} days ({days * 86400} s)",
            )
    tool = found.promtool
    if tool is None:
        evidence.note("promtool is not installed on the host: the alerts were read, not run (Debian's prometheus package has it)")
        evidence.observe(promtool=None)
        if unproven_thresholds and not evidence.findings:
            # Read, not proven: a pass here would be a guess (`metric / 3600 < 7` fires 7 hours before expiry).
            raise Undeterminable(
                f"host {facts.host}: {'; '.join(unproven_thresholds)}, and promtool is not installed on the host to prove when "
                "it fires: install promtool (Debian's prometheus package) or write the threshold as "
                f"`{METRIC} < <seconds>`"
            )
        return
    if not found.rule_files:
        return
    results, unproven = promtool_points(tool)
    evidence.observe(promtool={"path": tool.path, "version": tool.version, "points": [r.describe() for r in results]})
    if unproven is not None:
        if tool.error:
            raise Undeterminable(f"host {facts.host}: {unproven}")
        evidence.require(False, unproven)
        return
    for result in results:
        evidence.require(result.ok, f"promtool: {result.describe()}")
    _judge_lifetime_points(tool, list(defined.values()), evidence)


def _judge_lifetime_points(tool: Promtool, rules: list[AlertRule], evidence: Evidence) -> None:
    """Rules that read the lifetime must hold at every shorter certificate's points; fixed-day rules
    (the runbook's) are judged for 90-day certificates only, and what they do to shorter ones is
    recorded for the lifetime what-if (they page a healthy host with a 64-day certificate)."""
    from certaudit.host.promrules import lifetime_points, lifetime_relative

    points = lifetime_points(tool)
    evidence.observe(lifetime_points=[p.as_evidence() for p in points])
    relative = [r.name for r in rules if lifetime_relative(r.expr)]
    wrong = [p for p in points if not p.ok]
    if relative:
        for point in wrong:
            evidence.require(False, f"promtool: {point.describe()}")
    elif wrong:
        shown = "; ".join(p.describe() for p in wrong[:4])
        evidence.note(
            f"the alerts are fixed days, right for 90-day certificates only: {shown}"
            + (f" and {len(wrong) - 4} more" if len(wrong) > 4 else "")
        )
