"""Which certbot release a host runs, and when that release renews a certificate on its own.

certbot's renewal point moved between releases (its CHANGELOG; `storage.RenewableCert.should_autorenew`
before 4.0, `renewal.should_autorenew` and `_default_renewal_time` after):

- before 4.0: with no `renew_before_expiry`, certbot renews 30 days before notAfter (the default
  `renew_before_expiry = 30 days`);
- 4.0 and later: with no `renew_before_expiry`, it renews when a third of the certificate's lifetime
  is left, or half of it when the lifetime is under 10 days;
- 4.1 and later: when the CA answers ACME Renewal Information (ARI), certbot renews at the time the
  CA suggests; the lifetime default applies only when ARI gave no answer. ARI can move the point
  either way, so an audit can prove only the point certbot computes without it.

A set `renew_before_expiry` wins over the default in every release (and, from 4.1, is combined with
ARI: whichever comes first). `RenewalPoint` says which rule gave the point, for the evidence.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

__all__ = [
    "ARI_SINCE",
    "LIFETIME_DEFAULT_SINCE",
    "CertbotVersion",
    "RenewalPoint",
    "default_renewal_point",
    "parse_version",
]

LIFETIME_DEFAULT_SINCE = (4, 0)
ARI_SINCE = (4, 1)
LEGACY_DEFAULT = dt.timedelta(days=30)
SHORT_LIFETIME = dt.timedelta(days=10)

_VERSION = re.compile(r"(?a)(\d{1,4})\.(\d{1,4})(?:\.(\d{1,4}))?")

CertbotVersion = tuple[int, int, int]


def parse_version(text: str) -> CertbotVersion | None:
    """`certbot 2.1.0`, `2.1.0`, `4.0.0-1` → (major, minor, patch); None for anything else."""
    match = _VERSION.search(text)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


@dataclass(frozen=True)
class RenewalPoint:
    """When certbot first tries to renew a certificate, and by which rule."""

    at: dt.datetime  # the first moment certbot's renewal check answers yes
    before_expiry: dt.timedelta  # notAfter - at
    rule: str  # in words, for the evidence
    ari_may_move: bool  # certbot >= 4.1: the CA's ARI answer may move `at` either way

    @property
    def days_before_expiry(self) -> float:
        return self.before_expiry.total_seconds() / 86400


def default_renewal_point(version: CertbotVersion, not_before: dt.datetime, not_after: dt.datetime) -> RenewalPoint:
    """When `version` renews a certificate with no `renew_before_expiry` set."""
    ari = version[:2] >= ARI_SINCE
    if version[:2] < LIFETIME_DEFAULT_SINCE:
        return RenewalPoint(
            not_after - LEGACY_DEFAULT,
            LEGACY_DEFAULT,
            f"certbot {_shown(version)} renews 30 days before expiry when renew_before_expiry is not set",
            ari,
        )
    lifetime = not_after - not_before
    if lifetime < SHORT_LIFETIME:
        at, share = not_before + lifetime / 2, "half"
    else:
        at, share = not_before + lifetime * 2 / 3, "a third"
    rule = (
        f"certbot {_shown(version)} renews when {share} of the lifetime is left "
        f"({lifetime.total_seconds() / 86400:.1f} days) when renew_before_expiry is not set"
    )
    if ari:
        rule += "; the CA's renewal information (ARI) may move it"
    return RenewalPoint(at, not_after - at, rule, ari)


def _shown(version: CertbotVersion) -> str:
    return ".".join(str(part) for part in version)
