"""Expiry tiers by days left or by share of the lifetime left (certaudit_threshold_mode)."""

from __future__ import annotations

import datetime as dt

import pytest
import trustme
from cryptography import x509

from certaudit.host.thresholds import judge_expiry
from certaudit.policy import Policy, policy_for

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
CA = trustme.CA()


def leaf(lifetime_days: float, days_left: float) -> x509.Certificate:
    not_after = NOW + dt.timedelta(days=days_left)
    issued = CA.issue_cert("stemedb.example.com", not_before=not_after - dt.timedelta(days=lifetime_days), not_after=not_after)
    return x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())


LIFETIME = policy_for("h", {"certaudit_threshold_mode": "lifetime"})
DAYS = policy_for("h", {"certaudit_threshold_mode": "days"})


@pytest.mark.parametrize(
    ("lifetime", "left", "policy", "mode", "tier"),
    [
        (90, 60, Policy(), "days", "ok"),
        (90, 20, Policy(), "days", "warning"),
        (90, 5, Policy(), "days", "critical"),
        (90, -1, Policy(), "days", "critical"),
        # A 6-day certificate in days mode: judged by its lifetime, and flagged as needing that mode.
        (6, 4, DAYS, "lifetime", "ok"),
        (6, 1.5, DAYS, "lifetime", "warning"),
        (6, 0.3, DAYS, "lifetime", "critical"),
        (30, 29, DAYS, "lifetime", "ok"),  # exactly the warning threshold: days can never pass it
        (45, 29, DAYS, "days", "warning"),  # forced days: a healthy 45-day certificate warns
        # auto (the default): the runbook's days for 90-day certificates, scaled below 89 days.
        (6, 4, Policy(), "lifetime", "ok"),
        (6, 1.9, Policy(), "lifetime", "warning"),  # under a third (2 days)
        (6, 0.4, Policy(), "lifetime", "critical"),  # under 7/90 (0.47 days)
        (45, 29, Policy(), "lifetime", "ok"),
        (45, 15.1, Policy(), "lifetime", "ok"),  # just above a third: certbot 4.0's renewal point
        (45, 14.9, Policy(), "lifetime", "warning"),
        (45, 3.4, Policy(), "lifetime", "critical"),  # under 3.5 days
        (64, 22, Policy(), "lifetime", "ok"),
        (64, 21, Policy(), "lifetime", "warning"),
        (89, 29.9, Policy(), "days", "warning"),  # 89 days and longer: the runbook's lifetime
        (88.9, 29.9, Policy(), "lifetime", "ok"),
        (365, 31, Policy(), "days", "ok"),
        (45, 20, LIFETIME, "lifetime", "ok"),
        (45, 10, LIFETIME, "lifetime", "warning"),
        (45, 3, LIFETIME, "lifetime", "critical"),
        (90, 60, LIFETIME, "lifetime", "ok"),
        (90, 25, LIFETIME, "lifetime", "warning"),  # 28% left: under 33%
    ],
)
def test_tier_by_mode(lifetime: float, left: float, policy: Policy, mode: str, tier: str) -> None:
    judged = judge_expiry(leaf(lifetime, left), NOW, policy)
    assert (judged.mode, judged.tier) == (mode, tier)
    assert judged.needs_lifetime == (policy.threshold_mode == "days" and lifetime <= policy.warn_days)
    assert judged.configured == policy.threshold_mode
    assert judged.lifetime_days == pytest.approx(lifetime, abs=1e-6)
    assert judged.share_left == pytest.approx(left / lifetime, abs=1e-6)


def test_findings_name_the_mode_that_judged() -> None:
    expiry = "2026-12-08T12:00:00+00:00"
    assert judge_expiry(leaf(90, 20), NOW, Policy()).finding(Policy(), expiry) == (
        "warning tier: 20.0 days left (expires 2026-12-08T12:00:00+00:00), under 30"
    )
    assert judge_expiry(leaf(45, 10), NOW, LIFETIME).finding(LIFETIME, expiry) == (
        "warning tier: 22% of its 45.0-day lifetime left (10.0 days, expires 2026-12-08T12:00:00+00:00), under 33%"
    )
    assert judge_expiry(leaf(6, 0.3), NOW, LIFETIME).finding(LIFETIME, expiry) == (
        "critical tier: 5% of its 6.0-day lifetime left (0.3 days, expires 2026-12-08T12:00:00+00:00), under 8%"
    )
    assert judge_expiry(leaf(6, -2), NOW, LIFETIME).finding(LIFETIME, expiry) == (
        "critical tier: the certificate expired 2.0 days ago (2026-12-08T12:00:00+00:00)"
    )
    assert judge_expiry(leaf(90, 60), NOW, Policy()).finding(Policy(), expiry) is None


def test_observed_and_thresholds_say_the_mode() -> None:
    judged = judge_expiry(leaf(6, 4), NOW, DAYS)
    assert judged.observed() == {
        "threshold_mode": "lifetime",
        "configured_mode": "days",
        "threshold_rule": "certaudit_threshold_mode is days, but the whole lifetime (6.0 days) is no longer than the "
        "30-day warning threshold: judged by share of lifetime",
        "lifetime_days": 6.0,
        "days_left": 4.0,
        "share_left": 0.6667,
        "tier": "ok",
    }
    assert judged.thresholds(Policy()) == "warning under 33% of the lifetime left, critical under 8% (of 6.0 days)"
    assert judge_expiry(leaf(90, 60), NOW, Policy()).thresholds(Policy()) == "warning under 30 days left, critical under 7"


def test_auto_says_which_rule_applied_and_why() -> None:
    assert judge_expiry(leaf(90, 60), NOW, Policy()).observed()["threshold_rule"] == (
        "a 90.0-day certificate, the runbook's lifetime: the runbook's 30 and 7 days"
    )
    judged = judge_expiry(leaf(64, 20), NOW, Policy())
    assert judged.observed()["threshold_rule"] == (
        "a 64.0-day certificate, shorter than the runbook's 90 days: the runbook's 30 and 7 days scaled to its "
        "lifetime (33% and 8%: 21.3 and 5.0 days; a third is where certbot 4.0 and later renew by default)"
    )
    assert judged.finding(Policy(), "X") == ("warning tier: 31% of its 64.0-day lifetime left (20.0 days, expires X), under 33%")
    assert judged.thresholds(Policy()) == "warning under 33% of the lifetime left, critical under 8% (of 64.0 days)"
