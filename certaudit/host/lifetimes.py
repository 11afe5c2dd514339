"""When a host renews a certificate of a given lifetime, and whether that fits the lifetime.

Shared by REN-03 (the window against the certificate the host has) and the lifetime what-if (the
same host against the certificate it will get). The renewal point is `renew_before_expiry` where
it is pinned, otherwise the default of the host's certbot release (certbot/release.py); the run
gap is how long certbot may wait for its next run (cadence.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from certaudit.errors import Undeterminable
from certaudit.host.cadence import RunGap, run_gap
from certaudit.host.certbot.release import CertbotVersion, default_renewal_point, parse_version
from certaudit.host.facts import HostFacts
from certaudit.host.schedule import TIMER, renewal_schedule, scheduled_certbot
from certaudit.policy import Policy

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def certbot_version_of(facts: HostFacts) -> CertbotVersion | None:
    """The certbot release the host's renewal scheduler runs, read by the probe from its package
    metadata (host/certbot/install.py); None when it cannot be told, and then the inventory's
    certaudit_certbot_version answers (`host_certbot_version`)."""
    try:
        return scheduled_certbot(facts, renewal_schedule(facts)).version
    except Undeterminable:
        return None


def host_certbot_version(facts: HostFacts, policy: Policy) -> tuple[CertbotVersion | None, str]:
    """The host's certbot release and where it was read from ("" when unknown)."""
    found = certbot_version_of(facts)
    if found is not None:
        return found, "the host's certbot"
    if policy.certbot_version is not None:
        return parse_version(policy.certbot_version), "certaudit_certbot_version"
    return None, ""


@dataclass(frozen=True)
class RenewalWindow:
    """How long before expiry certbot renews a certificate of `lifetime_days`; None when unknown."""

    before_expiry_days: float | None
    rule: str  # which rule gave it, or why it is unknown
    pinned: bool
    ari_may_move: bool = False


def renewal_window(pinned_days: float | None, version: CertbotVersion | None, lifetime_days: float) -> RenewalWindow:
    if pinned_days is not None:
        return RenewalWindow(pinned_days, f"renew_before_expiry pinned at {pinned_days:g} days", True)
    if version is None:
        return RenewalWindow(None, "renew_before_expiry is not set and the host's certbot release is unknown", False)
    point = default_renewal_point(version, EPOCH, EPOCH + dt.timedelta(days=lifetime_days))
    return RenewalWindow(point.days_before_expiry, point.rule, False, point.ari_may_move)


def window_problems(before_days: float, lifetime_days: float, gap_hours: float | None) -> list[str]:
    """What is wrong with renewing `before_days` before expiry a certificate of `lifetime_days`,
    run by a schedule whose longest gap is `gap_hours` (None: unknown, only the lifetime is judged)."""
    if before_days >= lifetime_days:
        return [
            f"the renewal window ({before_days:.4g} days) is as long as the {lifetime_days:.3g}-day certificate or longer: "
            "certbot renews it on every run, against the CA's duplicate-certificate limit (5 a week)"
        ]
    if gap_hours is None:
        return []
    gap_days = gap_hours / 24
    if before_days < gap_days:
        return [
            f"the renewal window ({before_days:.4g} days) is shorter than the {gap_hours:g} h between certbot's runs: "
            "certbot may not run at all between the renewal point and expiry"
        ]
    if before_days < 2 * gap_days:
        return [
            f"the renewal window ({before_days:.4g} days) is shorter than two of the {gap_hours:g} h between certbot's "
            "runs: one failed or late run and the certificate expires before the next"
        ]
    if lifetime_days - before_days < gap_days:
        return [
            f"the renewal window ({before_days:.4g} days) leaves {lifetime_days - before_days:.2g} days of the "
            f"{lifetime_days:.3g}-day certificate before it is due, less than the {gap_hours:g} h between certbot's "
            "runs: certbot renews it on every run, against the CA's duplicate-certificate limit (5 a week)"
        ]
    return []


def host_run_gap(facts: HostFacts) -> RunGap | None:
    """The longest gap between certbot's runs on the host's effective schedule (None: none, or unknown)."""
    proof = renewal_schedule(facts).proof
    if proof is None:
        return None
    unit = None
    if not proof.entries:
        try:
            unit = facts.unit(TIMER)
        except Undeterminable:
            return None
    return run_gap(proof, unit)
