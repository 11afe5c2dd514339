"""Inventory and policy: every unusable value stops the run with variable, host and value named."""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest

from certaudit.errors import InventoryError
from certaudit.inventory import load_inventory, target_for, targets_from_specs
from certaudit.policy import Policy, PolicyError, policy_for


def test_defaults_are_the_runbooks() -> None:
    policy = policy_for("web-1", {})
    assert policy == Policy()
    assert (policy.domain, policy.service, policy.tls_key) == ("stemedb.example.com", "stemedb-api", "/etc/stemedb/tls/key.pem")
    assert (policy.warn_days, policy.crit_days, policy.min_renew_before_days) == (30, 7, 30)
    assert policy.renewal_conf == "/etc/letsencrypt/renewal/stemedb.example.com.conf"


def test_variables_override_defaults() -> None:
    policy = policy_for(
        "web-1",
        {
            "certaudit_domain": "API.Example.org",
            "certaudit_endpoint_port": "8443",
            "certaudit_warn_days": 21,
            "certaudit_tls_dir": "/srv/tls/",
            "ansible_host": "x",
        },
    )
    assert (policy.domain, policy.endpoint_port, policy.warn_days, policy.tls_dir) == ("api.example.org", 8443, 21, "/srv/tls")


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("certaudit_warn_days", -3, "expected a number of days from 1 to 3650"),
        ("certaudit_warn_days", "thirty", "expected a whole number of days"),
        ("certaudit_crit_days", True, "expected a whole number of days"),
        ("certaudit_tls_dir", "etc/stemedb/tls", "expected an absolute path"),
        ("certaudit_tls_dir", "/etc/x\n/y", "expected an absolute path"),
        ("certaudit_endpoint_port", 70000, "expected a TCP port from 1 to 65535"),
        ("certaudit_endpoint_port", 0, "expected a TCP port from 1 to 65535"),
        ("certaudit_domain", "stemedb.example.com; rm -rf /", "expected a DNS name"),
        ("certaudit_domain", "../../etc", "expected a DNS name"),
        ("certaudit_service", "stemedb-api; reboot", "expected a systemd unit name"),
        ("certaudit_service_user", "$(id)", "expected a user or group name"),
        ("certaudit_renewal", "acme", "expected certbot or custom-ca"),
        ("certaudit_warn_dayz", 30, "unknown variable"),
    ],
)
def test_unusable_values_are_named(variable: str, value: Any, why: str) -> None:
    with pytest.raises(PolicyError) as raised:
        policy_for("web-1", {variable: value})
    message = str(raised.value)
    assert message.startswith(f"host web-1: {variable} = {value!r} cannot be used: ")
    assert why in message


def test_crit_must_be_below_warn() -> None:
    with pytest.raises(
        PolicyError, match=r"host h: certaudit_crit_days = 30 cannot be used: must be below certaudit_warn_days \(30\)"
    ):
        policy_for("h", {"certaudit_crit_days": 30})


def test_ssh_arguments_are_quoted_word_by_word() -> None:
    target = target_for(
        "web-1",
        {
            "ansible_host": "10.0.0.1",
            "ansible_user": "audit",
            "ansible_ssh_common_args": "-o 'ProxyCommand=ssh -W %h:%p bastion' -o Port=2222",
        },
    )
    args = target.connect_kwargs["ssh_extra_args"]
    assert shlex.split(args)[:4] == ["-o", "ProxyCommand=ssh -W %h:%p bastion", "-o", "Port=2222"]
    assert "ServerAliveInterval=5" in args
    assert target.spec == "ssh://audit@10.0.0.1"
    assert target.connect_kwargs["controlpersist"] == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ansible_host", "-oProxyCommand=touch /tmp/pwned"),
        ("ansible_host", "web 1"),
        ("ansible_host", "web;id"),
        ("ansible_user", "root -oProxyCommand=x"),
        ("ansible_port", "22; id"),
        ("ansible_connection", "winrm"),
        ("ansible_ssh_common_args", "-o 'unterminated"),
        ("ansible_ssh_common_args", "-o A=b\n-o C=d"),
    ],
)
def test_hostile_connection_values_are_refused(variable: str, value: str) -> None:
    with pytest.raises(InventoryError, match=rf"^host web-1: {variable} = .* cannot be used: "):
        target_for("web-1", {variable: value})


def test_passwords_are_refused_without_echoing_them() -> None:
    with pytest.raises(InventoryError) as raised:
        target_for("web-1", {"ansible_password": "hunter2"})
    assert "hunter2" not in str(raised.value)


def test_local_and_testinfra_specs() -> None:
    assert target_for("localhost", {"ansible_connection": "local"}).spec == "local://"
    (one, two) = targets_from_specs(["ssh://root@127.0.0.5:2222", "local://"]).targets
    assert (one.name, one.spec) == ("127.0.0.5", "ssh://root@127.0.0.5:2222")
    assert (two.name, two.spec) == ("localhost", "local://")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(textwrap.dedent(text))
    return path


def test_inventory_reads_groups_and_group_vars(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          vars: {certaudit_warn_days: 40}
          children:
            prometheus:
              hosts:
                mon-1: {ansible_host: 127.0.0.9}
              vars: {certaudit_crit_days: 10}
            api:
              hosts:
                api-1: {ansible_host: 127.0.0.8, certaudit_renewal: custom-ca}
        """,
    )
    inventory = load_inventory(str(path))
    by_name = {t.name: t for t in inventory}
    assert sorted(by_name) == ["api-1", "mon-1"]
    assert by_name["mon-1"].groups == ("prometheus",)
    assert (by_name["mon-1"].policy.warn_days, by_name["mon-1"].policy.crit_days) == (40, 10)
    assert by_name["api-1"].policy.renewal == "custom-ca"


def test_inventory_value_error_names_host_variable_and_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          hosts:
            api-1: {ansible_host: 127.0.0.8, certaudit_endpoint_port: 70000}
        """,
    )
    with pytest.raises(InventoryError, match=r"^host api-1: certaudit_endpoint_port = 70000 cannot be used: expected a TCP port"):
        load_inventory(str(path))


def test_missing_and_unparsable_inventories(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="does not exist"):
        load_inventory(str(tmp_path / "nope.yml"))
    bad = tmp_path / "bad.yml"
    bad.write_text("all: [unclosed\n")
    with pytest.raises(InventoryError, match=r"ansible-inventory could not read .*bad\.yml"):
        load_inventory(str(bad))


def test_limit_names_unknown_hosts(tmp_path: Path) -> None:
    path = write(tmp_path, "all:\n  hosts:\n    a: {ansible_connection: local}\n")
    with pytest.raises(InventoryError, match="has no host named zzz"):
        load_inventory(str(path), iter(["zzz"]))
