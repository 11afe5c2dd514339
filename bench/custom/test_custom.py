"""Five plain testinfra checks of a compliant bench host: one command each (testinfra adds its uname and os-release).

Run with certaudit's `host` (`--inventory`: one login per host) or with testinfra's own
(`--hosts=ansible://all --ansible-inventory=...`): the same functions, the same hosts.
"""

from __future__ import annotations

from typing import Any


def test_passwd_is_world_readable(host: Any) -> None:
    assert host.file("/etc/passwd").mode == 0o644


def test_certificate_mode(host: Any) -> None:
    assert host.file("/etc/stemedb/tls/cert.pem").mode == 0o644


def test_key_mode(host: Any) -> None:
    assert host.file("/etc/stemedb/tls/key.pem").mode == 0o600


def test_key_owner(host: Any) -> None:
    assert host.file("/etc/stemedb/tls/key.pem").user == "stemedb"


def test_sshd_takes_keys_only(host: Any) -> None:
    assert "\nPasswordAuthentication yes" not in host.file("/etc/ssh/sshd_config").content_string
