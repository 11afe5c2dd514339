"""Host keys: one rule on every path (the in-process client, whether the inventory named it or certaudit
chose it, and OpenSSH), against an SSH server that stands for a host on the path."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from certaudit.errors import InventoryError, ProbeError
from certaudit.gather import probe, transport
from certaudit.gather.transport import TransportError, client_for, run_command
from certaudit.inventory import Target, host_key_checking, target_for
from tests.unit.sshserver import Server, isolated_ssh_home, ssh_server, write_key

CONNECTIONS = {"paramiko": "inprocess", "smart": "inprocess", "ssh": "openssh"}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME, system ssh_config and global known_hosts of our own; no Ansible setting from outside."""
    home = isolated_ssh_home(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with ssh_server(tmp_path, answer=b'{"ok": true}') as running:
        yield running


def other_key(tmp_path: Path) -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key_file(str(write_key(tmp_path / "other_host_key")))


def host(server: Server, connection: str, known_hosts: Path, options: str = "", **variables: Any) -> Target:
    # ssh reads the account's home from the password database, not HOME: every file is named here.
    args = (
        f"-F /dev/null -o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR "
        f"-o IdentitiesOnly=yes {options}"
    )
    target = target_for("web-1", {
        "ansible_host": "127.0.0.9", "ansible_port": server.port, "ansible_user": "root", "ansible_connection": connection,
        "ansible_ssh_private_key_file": str(server.client_key), "ansible_ssh_common_args": args, **variables,
    })  # fmt: skip
    assert client_for(target) == CONNECTIONS[connection]
    return target


def run(target: Target) -> transport.CommandResult:
    return run_command(target, ["true"], 10, time.monotonic() + 30, 1024)


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_an_unknown_key_is_refused_naming_the_key_and_what_to_do(server: Server, tmp_path: Path, connection: str) -> None:
    target = host(server, connection, tmp_path / "known_hosts")
    with pytest.raises(ProbeError) as caught:
        probe.probe_host(target, 10)
    assert str(caught.value) == (
        f"host web-1 (127.0.0.9): cannot connect: host key verification failed: 127.0.0.9 port {server.port} offered "
        f"an ssh-ed25519 key {server.host_key.fingerprint}, which no known_hosts file lists; refused, since anyone on "
        "the path could answer with it. Compare it with the host's own key (on the host: ssh-keygen -lf "
        f"/etc/ssh/ssh_host_ed25519_key.pub), then add that key to known_hosts (a line '[127.0.0.9]:{server.port} "
        "ssh-ed25519 <base64 key>'), or let certaudit record the key it is offered with StrictHostKeyChecking=accept-new"
    )
    assert server.commands == []  # refused before any login: the host never saw the probe
    assert not (tmp_path / "known_hosts").exists()


@pytest.mark.parametrize("connection", CONNECTIONS)
@pytest.mark.parametrize("strict", ["", "-o StrictHostKeyChecking=accept-new"])
def test_a_changed_key_is_refused(server: Server, tmp_path: Path, connection: str, strict: str) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.known_hosts_line(other_key(tmp_path)))
    with pytest.raises(TransportError) as caught:
        run(host(server, connection, known_hosts, strict))
    message = str(caught.value)
    known = "another ED25519 key (at " if connection == "ssh" else "an ssh-ed25519 key SHA256:"
    assert known in message  # which known key it contradicts
    assert message.startswith(
        f"host key verification failed: 127.0.0.9 port {server.port} offered an ssh-ed25519 key "
        f"{server.host_key.fingerprint}, but known_hosts lists "
    ), message
    assert "refused: the host was reinstalled or someone else answers in its place" in message
    assert f"ssh-keygen -R '[127.0.0.9]:{server.port}'" in message
    assert server.commands == []
    assert len(known_hosts.read_text().splitlines()) == 1  # nothing recorded beside the old key


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_a_known_key_is_trusted(server: Server, tmp_path: Path, connection: str) -> None:
    (tmp_path / "known_hosts").write_text(server.known_hosts_line())
    assert run(host(server, connection, tmp_path / "known_hosts")).stdout == b'{"ok": true}'


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_accept_new_records_the_key_as_openssh_does(server: Server, tmp_path: Path, connection: str) -> None:
    known_hosts = tmp_path / "known_hosts"
    target = host(server, connection, known_hosts, "-o StrictHostKeyChecking=accept-new")
    assert run(target).stdout == b'{"ok": true}'
    ((name, key_type, key),) = [line.split() for line in known_hosts.read_text().splitlines()]
    assert (name, key_type, key) == (f"[127.0.0.9]:{server.port}", "ssh-ed25519", server.host_key.get_base64())
    assert run(target).rc == 0  # now known: nothing more is recorded
    assert len(known_hosts.read_text().splitlines()) == 1


@pytest.mark.parametrize("connection", CONNECTIONS)
@pytest.mark.parametrize(
    ("options", "variables", "environment"),
    [
        ("-o StrictHostKeyChecking=no", {}, {}),
        # Ansible's host_key_checking=False wins over the inventory's ssh arguments, as Ansible orders them.
        ("-o StrictHostKeyChecking=yes", {"ansible_host_key_checking": False}, {}),
        ("", {}, {"ANSIBLE_HOST_KEY_CHECKING": "False"}),
    ],
    ids=["strict-no", "ansible-variable", "ansible-environment"],
)
def test_an_explicit_opt_out_trusts_the_key(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connection: str, options: str,
    variables: dict[str, Any], environment: dict[str, str],
) -> None:  # fmt: skip
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert run(host(server, connection, tmp_path / "known_hosts", options, **variables)).stdout == b'{"ok": true}'


# --- Ansible's host_key_checking ---------------------------------------------------------------------
def test_host_key_checking_is_read_where_ansible_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert host_key_checking("h", {}, "ssh") is True  # Ansible's default
    (tmp_path / "ansible.cfg").write_text("[defaults]\nhost_key_checking = False\n")
    assert host_key_checking("h", {}, "ssh") is False  # ./ansible.cfg
    (tmp_path / "other.cfg").write_text("[defaults]\nhost_key_checking = True\n[paramiko_connection]\nhost_key_checking = no\n")
    monkeypatch.setenv("ANSIBLE_CONFIG", str(tmp_path / "other.cfg"))  # the first file found is the only one read
    assert host_key_checking("h", {}, "ssh") is True
    assert host_key_checking("h", {}, "paramiko") is False  # the plugin's own section comes after [defaults]
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "no")  # the environment over ansible.cfg
    assert host_key_checking("h", {}, "ssh") is False
    monkeypatch.setenv("ANSIBLE_SSH_HOST_KEY_CHECKING", "yes")  # the last of the plugin's variables wins
    assert host_key_checking("h", {}, "ssh") is True
    assert host_key_checking("h", {"ansible_host_key_checking": "false"}, "ssh") is False  # inventory variables first
    assert host_key_checking("h", {"ansible_paramiko_host_key_checking": False}, "ssh") is True  # not the ssh plugin's


@pytest.mark.parametrize("value", ["maybe", "", "Fals", 2])
def test_a_host_key_checking_that_is_no_boolean_stops_the_run(value: Any) -> None:
    # Ansible reads such a value as False: the check would be off without anyone saying so.
    with pytest.raises(InventoryError) as caught:
        target_for("web-1", {"ansible_host": "127.0.0.9", "ansible_host_key_checking": value})
    assert str(caught.value).startswith(f"host web-1: ansible_host_key_checking = {value!r}".replace("'", "")[:30])
    assert str(caught.value).endswith("cannot be used: expected true or false")


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_testinfra_host_sessions_follow_the_same_rule(server: Server, tmp_path: Path, connection: str) -> None:
    """One transport, one trust rule: testinfra's `host` logs in through certaudit, never around it."""
    from certaudit.errors import Undeterminable
    from certaudit.gather.testinfra_backend import HostSession

    refused = HostSession(host(server, connection, tmp_path / "known_hosts"), 10, 30)
    with pytest.raises(Undeterminable, match=r"(?i)host key verification failed"):
        refused.login()
    refused.close()
    assert server.commands == []  # refused before any login
    trusting = HostSession(host(server, connection, tmp_path / "known_hosts", "-o StrictHostKeyChecking=accept-new"), 10, 30)
    try:
        trusting.login()
    finally:
        trusting.close()
    assert server.host_key.get_base64() in (tmp_path / "known_hosts").read_text()


# --- the ssh files, parsed once a version --------------------------------------------------------------
def other_hosts(count: int, key: paramiko.PKey) -> str:
    return "".join(f"10.1.{i // 256}.{i % 256} {key.get_name()} {key.get_base64()}\n" for i in range(count))


def counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, file_argument: int) -> list[str]:
    """Every call of owner.name, by the file it was given (its positional argument `file_argument`)."""
    calls: list[str] = []
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(args[file_argument]))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_a_fleet_s_known_hosts_and_identity_are_parsed_once_not_at_each_login(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paramiko parses every line of known_hosts (a key object a line, each checked against the lines
    before it): once a login, a known_hosts listing a fleet made its audit quadratic."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(other_hosts(300, other_key(tmp_path)) + server.known_hosts_line())
    loads = counting(monkeypatch, paramiko.HostKeys, "load", 1)  # a method: after self
    keys = counting(monkeypatch, paramiko.Ed25519Key, "from_private_key_file", 0)  # a bound classmethod
    target = host(server, "smart", known_hosts)
    for _ in range(4):
        assert run(target).stdout == b'{"ok": true}'
    assert loads == [str(known_hosts)]
    assert keys == [str(server.client_key)]
    assert len(server.commands) == 4


@pytest.mark.parametrize("connection", ["paramiko", "smart"])
def test_a_host_key_replaced_during_the_run_is_judged_by_the_new_file(server: Server, tmp_path: Path, connection: str) -> None:
    """A known_hosts edited between two logins is read again, even when the edit keeps its size and
    falls within one tick of the file system's clock (a key replaced by another of its type)."""
    known_hosts = tmp_path / "known_hosts"
    fleet = other_hosts(50, other_key(tmp_path))
    target = host(server, connection, known_hosts)
    known_hosts.write_text(fleet + server.known_hosts_line())
    assert run(target).rc == 0
    replaced = fleet + server.known_hosts_line(other_key(tmp_path))
    assert len(replaced) == len(known_hosts.read_text())
    known_hosts.write_text(replaced)
    with pytest.raises(TransportError, match="but known_hosts lists an ssh-ed25519 key SHA256:"):
        run(target)
    known_hosts.write_text(fleet + server.known_hosts_line())
    assert run(target).rc == 0
    assert len(server.commands) == 2


@pytest.mark.parametrize(
    ("text", "marked"),
    [
        ("@cert-authority *.example.com ssh-ed25519 AAAA\n", True),  # on the first line
        ("web-1 ssh-ed25519 AAAA\n@revoked * ssh-ed25519 BBBB\n", True),
        ("web-1 ssh-ed25519 AAAA\n \t@revoked * ssh-ed25519 BBBB\n", True),  # OpenSSH skips blanks before it
        ("web-1 ssh-ed25519 AAAA # root@web-1\nweb-2 ssh-ed25519 BBBB\n", False),  # an @ inside a line
        ("#@revoked * ssh-ed25519 BBBB\n", False),  # a comment
        ("", False),
    ],
)
@pytest.mark.parametrize("chunk", [1, 2, 3, 1 << 20])
def test_markers_are_found_wherever_the_reading_s_chunks_fall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, marked: bool, chunk: int
) -> None:
    from certaudit.gather import ssh_files

    monkeypatch.setattr(ssh_files, "READ_CHUNK", chunk)
    (tmp_path / "known_hosts").write_text(text)
    assert ssh_files.has_markers(str(tmp_path / "known_hosts")) is marked
    assert ssh_files.has_markers(str(tmp_path / "absent")) is False
