"""Scenario hosts of shorter certificate lifetimes ([lifetimes]): 127.77.11.x.

Let's Encrypt's 90-day certificates become 64-day ones on 2027-02-10 and 45-day ones on 2028-02-16;
its `shortlived` profile issues 6-day ones. Each lifetime is on a host renewing on its certbot's
defaults (no renew_before_expiry; Debian 12's certbot 2.1 renews 30 days before expiry: the probe
reads the release from the package the timer runs) and on one
pinned to the runbook's 30 days (the 90-day pinned host is `compliant`). Besides: a 6-day host
whose certbot.timer runs once a week, and a 64-day host pinned at 512 hours, the point certbot 4.0
renews a 64-day certificate by default. `lt-64-pinned` is also a Prometheus server with alert rules
relative to the lifetime (MON-02 proves them with promtool). No host runs certbot after boot:
several are inside their window, and a generated lineage's account does not exist (REN-05 is not
judged here).
"""

from __future__ import annotations

import datetime as dt

from tests.fleet.scenario import HostFile, Scenario
from tests.scenarios_catalog import PROMETHEUS_CONFIG, RULES_PATH, promtool_binary


def _address(n: int) -> str:
    return f"127.77.11.{n}"


ACCEPT_CERTBOT_WINDOW = {"certaudit_accept_certbot_default_window": True}
LIFETIME_RULES = """\
groups:
  - name: stemedb-tls-lifetime
    rules:
      - alert: CertificateExpiringWarning
        expr: >-
          stemedb_tls_cert_expiry_seconds <
          (stemedb_tls_cert_not_after_timestamp_seconds - stemedb_tls_cert_not_before_timestamp_seconds) / 3
        for: 1h
        labels:
          severity: warning
      - alert: CertificateExpiringSoon
        expr: >-
          stemedb_tls_cert_expiry_seconds <
          (stemedb_tls_cert_not_after_timestamp_seconds - stemedb_tls_cert_not_before_timestamp_seconds) * 7 / 90
        for: 1h
        labels:
          severity: critical
"""
PROMETHEUS_LIFETIME = (
    HostFile("/etc/prometheus/prometheus.yml", data=PROMETHEUS_CONFIG.encode()),
    HostFile(RULES_PATH, data=LIFETIME_RULES.encode()),
    HostFile("/usr/bin/promtool", mode=0o755, produce=promtool_binary),
)
# Once a week, on tomorrow's weekday: its next run is always within REN-01's 24 hours of the
# audit, so the weekly cadence is all that differs from a compliant host.
TOMORROW = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%a")
WEEKLY_TIMER = HostFile(
    "/etc/systemd/system/certbot.timer.d/50-weekly.conf",
    data=f"[Timer]\nOnCalendar=\nOnCalendar={TOMORROW} *-*-* 00:00:00\nRandomizedDelaySec=0\n".encode(),
)


def _host(name: str, n: int, description: str, lifetime: float, left: float, rbe: str | None, **more: object) -> Scenario:
    return Scenario(
        name,
        _address(n),
        description,
        lifetime_days=lifetime,
        days_left=left,
        renew_before_expiry=rbe,
        **more,  # type: ignore[arg-type]
    )


SCENARIOS: list[Scenario] = [
    _host("lt-90-defaults", 10, "90-day certificate, renewing on certbot 2.1's defaults", 90, 60, None),
    _host("lt-64-defaults", 11, "64-day certificate, renewing on certbot 2.1's defaults", 64, 40, None),
    _host(
        "lt-64-pinned",
        12,
        "64-day certificate with 25 days left, pinned to 30 days; a Prometheus server with lifetime-relative rules",
        64,
        25,
        "30 days",
        files=PROMETHEUS_LIFETIME,
    ),
    _host("lt-45-defaults", 13, "45-day certificate, renewing on certbot 2.1's defaults", 45, 20, None),
    _host("lt-45-pinned", 14, "45-day certificate, pinned to 30 days", 45, 35, "30 days"),
    _host("lt-6-defaults", 15, "6-day certificate, renewing on certbot 2.1's defaults", 6, 4, None),
    _host("lt-6-pinned", 16, "6-day certificate, pinned to 30 days", 6, 5.5, "30 days"),
    _host(
        "lt-6-weekly",
        17,
        "6-day certificate pinned to 3 days; certbot.timer runs once a week",
        6,
        4,
        "3 days",
        files=(WEEKLY_TIMER,),
    ),
    _host("lt-64-third", 18, "64-day certificate pinned to 512 hours (a third: certbot 4.0's point)", 64, 30, "512 hours"),
    # Debian 13's certbot 4.0 on its own defaults (a third of the lifetime left, half under 10 days),
    # accepted as the window (certaudit_accept_certbot_default_window): what a healthy host looks like
    # once certbot computes the window from the lifetime.
    _host(
        "lt-45-certbot4",
        19,
        "45-day certificate, renewing on Debian 13's certbot 4.0 defaults (a third of the lifetime)",
        45,
        20,
        None,
        image="trixie",
        inventory_vars=ACCEPT_CERTBOT_WINDOW,
    ),
    _host(
        "lt-6-certbot4",
        20,
        "6-day certificate, renewing on Debian 13's certbot 4.0 defaults (half the lifetime under 10 days)",
        6,
        4,
        None,
        image="trixie",
        inventory_vars=ACCEPT_CERTBOT_WINDOW,
    ),
]
PROMETHEUS_HOSTS = ("lt-64-pinned",)
