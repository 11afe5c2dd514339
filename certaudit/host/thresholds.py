"""Expiry tiers, by days left or by the share of the certificate's lifetime left.

`certaudit_threshold_mode: days` (the runbook's): warning under `certaudit_warn_days` (30), critical
under `certaudit_crit_days` (7). `lifetime`: warning under `certaudit_warn_fraction` of the
lifetime left (0.33), critical under `certaudit_crit_fraction` (0.08) — the runbook's 30 and 7 days
of Let's Encrypt's 90, carried over to its 45-day and 6-day certificates.

Under `days`, a certificate whose whole lifetime is no longer than the warning threshold can never
pass: it always has fewer days left than the threshold. It is judged by its lifetime instead, and
reported as needing the lifetime mode (REN-04) rather than as a plain failure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from certaudit.host.x509 import days_left
from certaudit.policy import Policy, ThresholdMode

Tier = Literal["ok", "warning", "critical"]


@dataclass(frozen=True)
class ExpiryJudgement:
    configured: ThresholdMode  # what the policy says
    mode: ThresholdMode  # what judged: the policy's, or lifetime when days cannot
    lifetime_days: float
    days_left: float
    share_left: float  # days_left / lifetime_days
    tier: Tier
    needs_lifetime: bool  # days mode, and the whole lifetime is no longer than the warning threshold

    def thresholds(self, policy: Policy) -> str:
        if self.mode == "days":
            return f"warning under {policy.warn_days} days left, critical under {policy.crit_days}"
        return (
            f"warning under {policy.warn_fraction:.0%} of the lifetime left, "
            f"critical under {policy.crit_fraction:.0%} (of {self.lifetime_days:.1f} days)"
        )

    def observed(self) -> dict[str, object]:
        return {
            "threshold_mode": self.mode,
            "configured_mode": self.configured,
            "lifetime_days": round(self.lifetime_days, 2),
            "days_left": round(self.days_left, 2),
            "share_left": round(self.share_left, 4),
            "tier": self.tier,
        }

    def finding(self, policy: Policy, expiry: str) -> str | None:
        """The tier's finding in the words of the mode that judged; None when the tier is ok."""
        if self.tier == "ok":
            return None
        if self.days_left <= 0:
            return f"critical tier: the certificate expired {-self.days_left:.1f} days ago ({expiry})"
        if self.mode == "days":
            limit = policy.crit_days if self.tier == "critical" else policy.warn_days
            return f"{self.tier} tier: {self.days_left:.1f} days left (expires {expiry}), under {limit}"
        share = policy.crit_fraction if self.tier == "critical" else policy.warn_fraction
        return (
            f"{self.tier} tier: {self.share_left:.0%} of its {self.lifetime_days:.1f}-day lifetime left "
            f"({self.days_left:.1f} days, expires {expiry}), under {share:.0%}"
        )


def lifetime_days(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / 86400


def judge_expiry(cert: x509.Certificate, now: dt.datetime, policy: Policy) -> ExpiryJudgement:
    lifetime = lifetime_days(cert)
    left = days_left(cert, now)
    share = left / lifetime if lifetime > 0 else 0.0
    needs_lifetime = policy.threshold_mode == "days" and lifetime <= policy.warn_days
    mode: ThresholdMode = "lifetime" if policy.threshold_mode == "lifetime" or needs_lifetime else "days"
    tier: Tier
    if left <= 0:
        tier = "critical"
    elif mode == "days":
        tier = "ok" if left > policy.warn_days else "warning" if left > policy.crit_days else "critical"
    else:
        tier = "ok" if share > policy.warn_fraction else "warning" if share > policy.crit_fraction else "critical"
    return ExpiryJudgement(policy.threshold_mode, mode, lifetime, left, share, tier, needs_lifetime)
