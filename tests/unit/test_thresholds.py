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


@pytest.mark.parametrize(
    ("lifetime", "left", "policy", "mode", "tier"),
    [
        (90, 60, Policy(), "days", "ok"),
        (90, 20, Policy(), "days", "warning"),
        (90, 5, Policy(), "days", "critical"),
        (90, -1, Policy(), "days", "critical"),
        # A 6-day certificate in days mode: judged by its lifetime, and flagged as needing that mode.
        (6, 4, Policy(), "lifetime", "ok"),
        (6, 1.5, Policy(), "lifetime", "warning"),
        (6, 0.3, Policy(), "lifetime", "critical"),
        (30, 29, Policy(), "lifetime", "ok"),  # exactly the warning threshold: days can never pass it
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
    judged = judge_expiry(leaf(6, 4), NOW, Policy())
    assert judged.observed() == {
        "threshold_mode": "lifetime",
        "configured_mode": "days",
        "lifetime_days": 6.0,
        "days_left": 4.0,
        "share_left": 0.6667,
        "tier": "ok",
    }
    assert judged.thresholds(Policy()) == "warning under 33% of the lifetime left, critical under 8% (of 6.0 days)"
    assert judge_expiry(leaf(90, 60), NOW, Policy()).thresholds(Policy()) == "warning under 30 days left, critical under 7"
