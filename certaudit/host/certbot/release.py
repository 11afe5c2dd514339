"""Which certbot release a host runs, and when that release renews a certificate on its own.

certbot's renewal point moved between releases. Checked against certbot's own record:

- before 4.0: with no `renew_before_expiry`, certbot renews 30 days before notAfter
  (`storage.RenewableCert.should_autorenew` falls back to `constants.RENEWER_DEFAULTS
  ["renew_before_expiry"]`, "30 days");
- 4.0 and later: with no `renew_before_expiry`, it renews when a third of the certificate's lifetime
  is left, or half of it when the lifetime is under 10 days (CHANGELOG 4.0.0, 2025-04-07:
  "Certificates now renew with 1/3rd of lifetime left (or 1/2 of lifetime left, if the lifetime is
  shorter than 10 days) ... The config field renew_before_expiry still overrides this default";
  pull request #10207; `lifetime.total_seconds() < 10 * 86400`, so exactly 10 days is a third);
- 4.1 and later: `certbot renew` asks the CA for ACME Renewal Information (ARI) (CHANGELOG 4.1.0,
  pull request #10272, now `renewal.should_autorenew`): it renews once the CA's suggested time has
  passed; with `renew_before_expiry` set it also renews inside that window (whichever comes first,
  so ARI only brings a pinned point earlier); with none set, the lifetime default applies only
  when ARI gave no answer (`elif renewal_time is None`), so an answer replaces the default and may
  move it either way. An audit can prove only the point certbot computes without ARI.
- 4.1 and later no longer write `# renew_before_expiry = 30 days` as the first line of a new
  renewal conf (pull request #10306, merged 2025-06-02, before 4.1.0: `make_renewal_configobj`
  sets no initial comment); earlier releases wrote it (`write_renewal_config`'s
  `config.initial_comment`). The comment never set anything: a conf without it is not a sign of
  an edit.

A set `renew_before_expiry` wins over the default in every release. `RenewalPoint` says which rule
gave the point, for the evidence.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

__all__ = [
    "ARI_SINCE",
    "COMMENTED_DEFAULT_UNTIL",
    "LIFETIME_DEFAULT_SINCE",
    "CertbotVersion",
    "RenewalPoint",
    "default_renewal_point",
    "parse_version",
    "shown",
    "writes_commented_default",
]

LIFETIME_DEFAULT_SINCE = (4, 0)
ARI_SINCE = (4, 1)
COMMENTED_DEFAULT_UNTIL = (4, 1)  # releases before this write `# renew_before_expiry = 30 days` into a new conf
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


def writes_commented_default(version: CertbotVersion) -> bool:
    """Whether `version` starts a new renewal conf with `# renew_before_expiry = 30 days`."""
    return version[:2] < COMMENTED_DEFAULT_UNTIL


def shown(version: CertbotVersion) -> str:
    return _shown(version)
