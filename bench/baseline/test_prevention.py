"""The StemeDB runbook's prevention checks, written the way a testinfra suite usually is.

One testinfra call per fact: `host.file(path).mode`, `host.service(name).is_running`,
`host.check_output(...)`. Each of those sends one command to the host. This is the bench's
baseline (bench/bench_fleet.py): the same checks certaudit's seven controls make, with the
runbook's values as constants.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import socket
import ssl
from typing import Any

DOMAIN = "stemedb.example.com"
SERVICE = "stemedb-api"
SERVICE_USER = "stemedb"
TLS_DIR = "/etc/stemedb/tls"
LE = "/etc/letsencrypt"
HOOK = f"{LE}/renewal-hooks/deploy/reload-stemedb.sh"
PORT = 18180
WARN_DAYS = 30
MIN_RENEW_BEFORE_DAYS = 30


def _address(host: Any) -> str:
    """Where the host's endpoint listens: its ansible_host (an ansible:// host) or its ssh address."""
    backend = host.backend
    if hasattr(backend, "get_variables"):
        return str(backend.get_variables().get("ansible_host", backend.host))
    return str(backend.hostname)


def test_renewal_is_scheduled(host: Any) -> None:
    """REN-01: certbot.timer enabled, active, and due within 24 h (or a cron entry runs certbot renew)."""
    timer = host.service("certbot.timer")
    if timer.is_enabled and timer.is_running:
        # systemd 252 prints this timestamp formatted, whatever --timestamp says: read it in UTC.
        next_run = host.check_output("TZ=UTC systemctl show -p NextElapseUSecRealtime --value certbot.timer")
        due = dt.datetime.strptime(next_run, "%a %Y-%m-%d %H:%M:%S UTC").replace(tzinfo=dt.UTC)
        assert due - dt.datetime.now(dt.UTC) < dt.timedelta(hours=24)
    else:
        cron = host.file("/etc/cron.d/certbot-renew")
        assert cron.exists
        assert "certbot" in cron.content_string and "renew" in cron.content_string


def test_deploy_hook_reloads_the_service(host: Any) -> None:
    """REN-02: an executable, root-owned, not group/world-writable hook that reloads the service."""
    hook = host.file(HOOK)
    assert hook.is_file
    assert hook.user == "root"
    mode = hook.mode
    assert mode & 0o111, f"{HOOK} is not executable"
    assert not mode & 0o022, f"{HOOK} is writable by group or others"
    assert f"systemctl reload {SERVICE}" in hook.content_string


def test_renewal_window_is_pinned(host: Any) -> None:
    """REN-03: renew_before_expiry is at least 30 days."""
    conf = host.file(f"{LE}/renewal/{DOMAIN}.conf").content_string
    match = re.search(r"^\s*renew_before_expiry\s*=\s*(\d+)\s*days?\s*$", conf, re.MULTILINE)
    assert match, "renew_before_expiry is not set"
    assert int(match.group(1)) >= MIN_RENEW_BEFORE_DAYS


def test_private_key_is_private(host: Any) -> None:
    """KEY-01: the key is 0600 or stricter and owned by the service; archived keys closed to others."""
    key = host.file(f"{TLS_DIR}/key.pem")
    assert key.is_file
    assert key.mode & ~0o600 == 0
    assert key.user == SERVICE_USER
    assert key.group == SERVICE_USER
    archive = f"{LE}/archive/{DOMAIN}"
    for name in host.file(archive).listdir():
        if name.startswith("privkey"):
            assert host.file(f"{archive}/{name}").mode & 0o077 == 0, name


def test_certificate_belongs_to_the_service(host: Any) -> None:
    """KEY-02: the certificate is 0644 and owned by the service user."""
    cert = host.file(f"{TLS_DIR}/cert.pem")
    assert cert.mode == 0o644
    assert cert.user == SERVICE_USER


def test_certificate_does_not_expire_soon(host: Any) -> None:
    """CRT-01: more than 30 days left."""
    end = host.check_output("openssl x509 -noout -enddate -in %s", f"{TLS_DIR}/cert.pem").split("=", 1)[1]
    not_after = dt.datetime.strptime(end, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)
    assert (not_after - dt.datetime.now(dt.UTC)).days > WARN_DAYS


def test_endpoint_serves_the_certificate_on_disk(host: Any) -> None:
    """LIVE-01: the endpoint presents the certificate on disk (same SHA-256 fingerprint)."""
    disk = host.check_output("openssl x509 -noout -fingerprint -sha256 -in %s", f"{TLS_DIR}/cert.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    address = _address(host)
    with (
        socket.create_connection((address, PORT), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=DOMAIN) as tls,
    ):
        served = tls.getpeercert(binary_form=True)
    assert served is not None
    assert disk.split("=", 1)[1].replace(":", "").lower() == hashlib.sha256(served).hexdigest()
