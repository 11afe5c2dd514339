"""CRT-*: the certificate the service uses is far from expiry (runbook: Prevention › Monitoring)."""

from __future__ import annotations

import datetime as dt

from certaudit.certificates import leaf_on_disk
from certaudit.controls import control
from certaudit.evidence import Evidence
from certaudit.facts import HostFacts
from certaudit.policy import Policy
from certaudit.x509 import days_left, summary


@control(
    "CRT-01",
    title="Renew before expiry: more than 30 days left (warning tier) and more than 7 (critical tier)",
    source="Prevention › Monitoring 1",
    gate=True,
)
def test_certificate_does_not_expire_soon(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: when the certificate expires every TLS connection fails: a full outage. Under
    30 days left, automated renewal has already failed at least once (it starts at 30); under 7,
    the outage is days away and the runbook's critical alert fires.

    Check: the leaf certificate in `certaudit_tls_dir/cert.pem` (the one the service reads) has
    more than `certaudit_warn_days` (30) days left; a certificate under `certaudit_crit_days`
    (7) fails in the critical tier, one under 30 in the warning tier.

    Fix: `certbot renew --cert-name <domain> --force-renewal`, then `systemctl reload stemedb-api`;
    for a custom CA, follow the runbook's CSR steps. Then find out why renewal did not happen.
    """
    evidence.expect(days_left=f"more than {policy.warn_days} (warning tier), more than {policy.crit_days} (critical tier)")
    leaf = leaf_on_disk(facts, policy, evidence)
    if leaf is None:
        return
    now = dt.datetime.fromtimestamp(facts.audited_at, dt.UTC)
    left = days_left(leaf, now)
    tier = "ok" if left > policy.warn_days else "warning" if left > policy.crit_days else "critical"
    evidence.observe(certificate=summary(leaf), days_left=round(left, 2), tier=tier, judged_at=now.isoformat())
    expiry = leaf.not_valid_after_utc.isoformat()
    if left <= 0:
        evidence.require(False, f"critical tier: the certificate expired {-left:.1f} days ago ({expiry})")
    elif tier == "critical":
        evidence.require(False, f"critical tier: {left:.1f} days left (expires {expiry}), under {policy.crit_days}")
    elif tier == "warning":
        evidence.require(False, f"warning tier: {left:.1f} days left (expires {expiry}), under {policy.warn_days}")
