"""Each host's policy: the runbook's values, overridden by the inventory's `certaudit_*` variables.

A value that cannot be used stops the run before any host is touched, with a message that names
the variable, the host and the value (`PolicyError`).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from certaudit.redact import value_error

Renewal = Literal["certbot", "custom-ca"]
ThresholdMode = Literal["auto", "days", "lifetime"]
CERTBOT_VERSION_RE = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}(\.[0-9]{1,4})?", re.ASCII)

# A domain name as certbot accepts it (a leading wildcard label allowed), and a systemd unit or
# account name: conservative sets, so a value can never smuggle shell syntax into a path or a unit.
DOMAIN_RE = re.compile(r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
UNIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.@-]{0,199}$")
ACCOUNT_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\$?$")
PATH_RE = re.compile(r"^/[^\x00-\x1f\x7f]*$")
# Numbers as text (an INI inventory gives every value as text) in ASCII digits only: str.isdigit()
# accepts "²" and "١", which int() refuses or reads, and int() also takes " 7 " and "1_0".
WHOLE_RE = re.compile(r"[0-9]{1,9}", re.ASCII)
ENDPOINT_RE = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r":(?P<port>[0-9]{1,5})",
    re.ASCII,
)
DECIMAL_RE = re.compile(r"[0-9]{0,9}\.?[0-9]{1,9}", re.ASCII)


class PolicyError(ValueError):
    """An inventory value certaudit cannot use; the message names variable, host and value."""


@dataclass(frozen=True)
class Policy:
    domain: str = "stemedb.example.com"
    service: str = "stemedb-api"
    service_user: str = "stemedb"
    service_group: str = "stemedb"
    tls_dir: str = "/etc/stemedb/tls"
    endpoint_port: int = 18180
    renewal: Renewal = "certbot"
    letsencrypt_dir: str = "/etc/letsencrypt"
    deploy_hook: str = "/etc/letsencrypt/renewal-hooks/deploy/reload-stemedb.sh"
    warn_days: int = 30
    crit_days: int = 7
    min_renew_before_days: int = 30
    # REN-03: whether the window certbot computes itself when renew_before_expiry is not set (30
    # days before 4.0, a third of the lifetime from 4.0) may satisfy the control. The runbook reads
    # "pinned, at least 30 days" (False); True judges certbot's own window by the installed release.
    accept_certbot_default_window: bool = False
    # The renewal drill (`--renewal-drill`) renews for real, so only on hosts marked for it.
    drill_ok: bool = False
    acme_ca_bundle: str | None = None  # REQUESTS_CA_BUNDLE for the drill's certbot (a private ACME CA)
    # Expiry tiers: `auto` judges a certificate of the runbook's 90 days by its days and a shorter
    # one by the runbook's days scaled to its lifetime; `days` and `lifetime` force one rule (the
    # fractions are the runbook's 30 and 7 days of a 90-day lifetime).
    threshold_mode: ThresholdMode = "auto"
    warn_fraction: float = 0.33
    crit_fraction: float = 0.08
    ca_bundle: str | None = None  # PEM roots the served chain must reach (CRT-03); None: the system's
    prometheus_config: str = "/etc/prometheus/prometheus.yml"
    # The fleet controls (FLT-*): whether this host renews its domain itself (False: it receives
    # the certificate from the domain's one renewer), the balancer or VIP outsiders reach the
    # domain on (host:port), and how much older than the newest issuance a served certificate may be.
    renews: bool = True
    public_endpoint: str | None = None
    fleet_window_days: int = 1
    # The certbot release the host runs (e.g. 4.0.0), until the probe records it: its default
    # renewal point is what the lifetime what-if judges an unpinned window by.
    certbot_version: str | None = None
    groups: tuple[str, ...] = ()  # the host's inventory groups (MON-02 applies to `prometheus`), not a variable

    # --- derived paths -----------------------------------------------------------------------
    @property
    def tls_cert(self) -> str:
        return posixpath.join(self.tls_dir, "cert.pem")

    @property
    def tls_key(self) -> str:
        return posixpath.join(self.tls_dir, "key.pem")

    @property
    def live_dir(self) -> str:
        return posixpath.join(self.letsencrypt_dir, "live", self.domain)

    @property
    def archive_dir(self) -> str:
        return posixpath.join(self.letsencrypt_dir, "archive", self.domain)

    @property
    def renewal_conf(self) -> str:
        return posixpath.join(self.letsencrypt_dir, "renewal", f"{self.domain}.conf")

    @property
    def deploy_hooks_dir(self) -> str:
        return posixpath.join(self.letsencrypt_dir, "renewal-hooks", "deploy")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PREFIX = "certaudit_"
PROMETHEUS_GROUP = "prometheus"  # the inventory group of Prometheus servers (MON-02)
FIELDS = {f.name for f in fields(Policy)} - {"groups"}


def _fail(host: str, variable: str, value: Any, why: str) -> PolicyError:
    return PolicyError(value_error(host, PREFIX + variable, value, why))


def whole_number(value: Any) -> int | None:
    """An int, or text of ASCII digits, as an int; None for anything else (a bool too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and WHOLE_RE.fullmatch(value):
        return int(value)
    return None


def port_number(value: Any) -> int | None:
    """A TCP port from 1 to 65535 (an int, or its ASCII digits), or None."""
    port = whole_number(value)
    return port if port is not None and 0 < port < 65536 else None


def _endpoint(host: str, name: str, value: Any) -> str:
    """host:port (a DNS name or IPv4 address, or [IPv6]:port): where the auditing machine connects."""
    match = ENDPOINT_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None or port_number(match.group("port")) is None:
        raise _fail(host, name, value, "expected host:port of the balancer or VIP, such as lb.example.com:443")
    return str(value)


def _days(host: str, name: str, value: Any) -> int:
    days = whole_number(value)
    if days is None:
        raise _fail(host, name, value, "expected a whole number of days")
    if not 0 < days <= 3650:
        raise _fail(host, name, value, "expected a number of days from 1 to 3650")
    return days


def _text(host: str, name: str, value: Any, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _fail(host, name, value, f"expected {what}")
    return value


def _path(host: str, name: str, value: Any) -> str:
    text = _text(host, name, value, PATH_RE, "an absolute path without control characters")
    if len(text) > 1024:
        raise _fail(host, name, value, "path longer than 1024 characters")
    return posixpath.normpath(text)


def _flag(host: str, name: str, value: Any) -> bool:
    # An INI inventory gives every value as text; YAML gives a real boolean.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "false", "no"):
        return value.lower() in ("true", "yes")
    raise _fail(host, name, value, "expected true or false")


def _fraction(host: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(host, name, value, "expected a share of the lifetime between 0 and 1, such as 0.33")
    if isinstance(value, str) and not DECIMAL_RE.fullmatch(value):
        raise _fail(host, name, value, "expected a share of the lifetime between 0 and 1, such as 0.33")
    share = float(value)
    if not 0 < share < 1:  # NaN and infinities too
        raise _fail(host, name, value, "expected a share of the lifetime between 0 and 1, such as 0.33")
    return share


def policy_for(host: str, variables: Mapping[str, Any], groups: Iterable[str] = ()) -> Policy:
    """The policy of one host from its inventory variables (and groups); unknown certaudit_* names are errors too."""
    given = {k[len(PREFIX) :]: v for k, v in variables.items() if k.startswith(PREFIX)}
    values: dict[str, Any] = {}
    for name, value in given.items():
        if name in ("domain",):
            values[name] = _text(host, name, value, DOMAIN_RE, "a DNS name such as stemedb.example.com").lower()
            if len(value) > 253:  # DNS's own bound; longer would also overflow a file name on the host
                raise _fail(host, name, value, "a DNS name is at most 253 characters")
        elif name == "service":
            values[name] = _text(host, name, value, UNIT_RE, "a systemd unit name such as stemedb-api").removesuffix(".service")
        elif name in ("service_user", "service_group"):
            values[name] = _text(host, name, value, ACCOUNT_RE, "a user or group name such as stemedb")
        elif name in ("tls_dir", "letsencrypt_dir", "deploy_hook"):
            values[name] = _path(host, name, value)
        elif name == "endpoint_port":
            port = port_number(value)
            if port is None:
                raise _fail(host, name, value, "expected a TCP port from 1 to 65535")
            values[name] = port
        elif name == "renewal":
            if value not in ("certbot", "custom-ca"):
                raise _fail(host, name, value, "expected certbot or custom-ca")
            values[name] = value
        elif name in ("warn_days", "crit_days", "min_renew_before_days", "fleet_window_days"):
            values[name] = _days(host, name, value)
        elif name == "public_endpoint":
            values[name] = _endpoint(host, name, value)
        elif name in ("drill_ok", "renews", "accept_certbot_default_window"):
            values[name] = _flag(host, name, value)
        elif name == "acme_ca_bundle":
            values[name] = _path(host, name, value)
        elif name == "threshold_mode":
            if value not in ("auto", "days", "lifetime"):
                raise _fail(host, name, value, "expected auto, days or lifetime")
            values[name] = value
        elif name in ("warn_fraction", "crit_fraction"):
            values[name] = _fraction(host, name, value)
        elif name == "ca_bundle":
            values[name] = _path(host, name, value)
            if not os.path.isfile(values[name]):
                raise _fail(host, name, value, "no such file on the auditing machine (a PEM bundle of trusted roots)")
        elif name == "certbot_version":
            if not isinstance(value, str) or not CERTBOT_VERSION_RE.fullmatch(value):
                raise _fail(host, name, value, "expected certbot's release as MAJOR.MINOR[.PATCH], such as 4.0.0")
            values[name] = value
        elif name == "prometheus_config":
            values[name] = _path(host, name, value)
        elif name not in EXTENSION_VARIABLES:
            known = ", ".join(sorted(PREFIX + f for f in FIELDS | EXTENSION_VARIABLES))
            raise _fail(host, name, value, f"unknown variable (known: {known})")
    policy = Policy(**values, groups=tuple(groups))
    if policy.crit_days >= policy.warn_days:
        raise _fail(host, "crit_days", policy.crit_days, f"must be below certaudit_warn_days ({policy.warn_days})")
    if policy.crit_fraction >= policy.warn_fraction:
        raise _fail(
            host, "crit_fraction", policy.crit_fraction, f"must be below certaudit_warn_fraction ({policy.warn_fraction})"
        )
    return policy


# certaudit_* variables read by other parts of certaudit than the policy, accepted here.
EXTENSION_VARIABLES: set[str] = set()
