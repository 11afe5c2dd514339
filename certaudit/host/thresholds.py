"""Expiry tiers, by days left or by the share of the certificate's lifetime left.

`certaudit_threshold_mode: auto` (the default) picks the rule from the certificate itself:

- a certificate of the runbook's lifetime (Let's Encrypt's 90 days; `RUNBOOK_LIFETIME_FROM_DAYS` or
  longer) is judged by the runbook's days: warning under `certaudit_warn_days` (30), critical under
  `certaudit_crit_days` (7). Today's verdicts on 90-day certificates do not change;
- a shorter one (Let's Encrypt's 64-day certificates from 2027-02-10, 45-day ones from 2028-02-16, its
  6-day `shortlived` profile) by the runbook's days scaled to its lifetime: warning under 30/90 of the
  lifetime left (a third: where certbot 4.0 and later renew by default, as the runbook's 30 days
  are for a 90-day certificate), critical under 7/90. Judged in days, a healthy 64-day certificate
  would sit in the warning tier for a part of every cycle, and a 6-day one forever.

`days` and `lifetime` force one rule for a host (`lifetime` with `certaudit_warn_fraction` 0.33 and
`certaudit_crit_fraction` 0.08). Under `days`, a certificate whose whole lifetime is no longer than
the warning threshold can never pass: it is judged by its lifetime instead, and reported as
needing another mode (REN-04) rather than as a plain failure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from certaudit.host.x509 import days_left
from certaudit.policy import Policy, ThresholdMode

Tier = Literal["ok", "warning", "critical"]
Rule = Literal["days", "lifetime"]

RUNBOOK_LIFETIME_DAYS = 90
# Let's Encrypt's "90-day" certificates live 90 days less a second (notAfter is inclusive); a day of
# slack keeps a CA that backdates notBefore by an hour, or issues for 89 days, under the runbook's days.
RUNBOOK_LIFETIME_FROM_DAYS = 89


@dataclass(frozen=True)
class ExpiryJudgement:
    configured: ThresholdMode  # what the policy says
    mode: Rule  # what judged
    lifetime_days: float
    days_left: float
    share_left: float  # days_left / lifetime_days
    tier: Tier
    needs_lifetime: bool  # days mode, and the whole lifetime is no longer than the warning threshold
    warn_share: float  # the tiers as shares of the lifetime (used when mode is lifetime)
    crit_share: float
    why: str  # which rule applied and why, for the evidence

    @property
    def warn_days(self) -> float:
        return self.warn_share * self.lifetime_days

    @property
    def crit_days(self) -> float:
        return self.crit_share * self.lifetime_days

    def thresholds(self, policy: Policy) -> str:
        if self.mode == "days":
            return f"warning under {policy.warn_days} days left, critical under {policy.crit_days}"
        return (
            f"warning under {self.warn_share:.0%} of the lifetime left, "
            f"critical under {self.crit_share:.0%} (of {self.lifetime_days:.1f} days)"
        )

    def observed(self) -> dict[str, object]:
        return {
            "threshold_mode": self.mode,
            "configured_mode": self.configured,
            "threshold_rule": self.why,
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
        share = self.crit_share if self.tier == "critical" else self.warn_share
        return (
            f"{self.tier} tier: {self.share_left:.0%} of its {self.lifetime_days:.1f}-day lifetime left "
            f"({self.days_left:.1f} days, expires {expiry}), under {share:.0%}"
        )


def lifetime_days(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / 86400


def scaled_shares(policy: Policy) -> tuple[float, float]:
    """The runbook's days as shares of its 90-day lifetime: 30/90 and 7/90 by default."""
    return policy.warn_days / RUNBOOK_LIFETIME_DAYS, policy.crit_days / RUNBOOK_LIFETIME_DAYS


def _rule(lifetime: float, policy: Policy) -> tuple[Rule, float, float, bool, str]:
    """(rule, warning share, critical share, needs another mode, why) for a certificate of `lifetime` days."""
    if policy.threshold_mode == "lifetime":
        why = "certaudit_threshold_mode is lifetime: tiers are shares of the lifetime left"
        return "lifetime", policy.warn_fraction, policy.crit_fraction, False, why
    if policy.threshold_mode == "days":
        if lifetime <= policy.warn_days:
            why = (
                f"certaudit_threshold_mode is days, but the whole lifetime ({lifetime:.1f} days) is no longer than "
                f"the {policy.warn_days}-day warning threshold: judged by share of lifetime"
            )
            return "lifetime", policy.warn_fraction, policy.crit_fraction, True, why
        return "days", 0.0, 0.0, False, "certaudit_threshold_mode is days: the runbook's days"
    if lifetime >= RUNBOOK_LIFETIME_FROM_DAYS:
        days = f"{policy.warn_days} and {policy.crit_days} days"
        why = f"a {lifetime:.1f}-day certificate, the runbook's lifetime: the runbook's {days}"
        return "days", 0.0, 0.0, False, why
    warn, crit = scaled_shares(policy)
    why = (
        f"a {lifetime:.1f}-day certificate, shorter than the runbook's {RUNBOOK_LIFETIME_DAYS} days: the runbook's "
        f"{policy.warn_days} and {policy.crit_days} days scaled to its lifetime ({warn:.0%} and {crit:.0%}: "
        f"{warn * lifetime:.1f} and {crit * lifetime:.1f} days; a third is where certbot 4.0 and later renew by default)"
    )
    return "lifetime", warn, crit, False, why


def judge_numbers(lifetime: float, left: float, policy: Policy) -> ExpiryJudgement:
    """The tier of a certificate of `lifetime` days with `left` days left (the what-if judges ones not yet issued)."""
    mode, warn, crit, needs, why = _rule(lifetime, policy)
    share = left / lifetime if lifetime > 0 else 0.0
    tier: Tier
    if left <= 0:
        tier = "critical"
    elif mode == "days":
        tier = "ok" if left > policy.warn_days else "warning" if left > policy.crit_days else "critical"
    else:
        tier = "ok" if share > warn else "warning" if share > crit else "critical"
    return ExpiryJudgement(policy.threshold_mode, mode, lifetime, left, share, tier, needs, warn, crit, why)


def judge_expiry(cert: x509.Certificate, now: dt.datetime, policy: Policy) -> ExpiryJudgement:
    return judge_numbers(lifetime_days(cert), days_left(cert, now), policy)
