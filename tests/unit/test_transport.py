"""How the probe reaches a host: which client, with which settings, and that a deadline really ends the wait."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certaudit.errors import ProbeError
from certaudit.gather import probe, transport
from certaudit.gather.probe import Prober, fd_bounded_workers
from certaudit.gather.transport import (
    DeadlineExceeded,
    NeedsOpenSSH,
    client_for,
    count_round_trip,
    inprocess_settings,
    openssh_argv,
    parse_ssh_args,
    run_process,
)
from certaudit.inventory import SSH_BOUNDS, Target, target_for
from tests.unit.sshserver import isolated_ssh_home, ssh_server

FLEET_ARGS = (
    "-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes "
    "-o IdentitiesOnly=yes"
)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of our own and no system ssh_config or known_hosts: only what each test writes counts."""
    home = isolated_ssh_home(tmp_path, monkeypatch)
    return home


def host(**variables: Any) -> Target:
    return target_for("web-1", {"ansible_host": "127.0.0.9", **variables})


# --- ssh's arguments ------------------------------------------------------------------------------------
def test_parse_ssh_args() -> None:
    options, identities, config = parse_ssh_args(
        ["-F", "/dev/null", "-oStrictHostKeyChecking=no", "-o", "User alice", "-i", "/k1", "-i/k2", "-p", "2222", "-q"]
    )
    assert options == {"stricthostkeychecking": "no", "user": "alice", "port": "2222"}
    assert (identities, config) == (["/k1", "/k2"], "/dev/null")
    # The first value of an option wins, as in ssh.
    assert parse_ssh_args(["-o", "Port=1", "-p", "2", "-o", "port=3"])[0] == {"port": "1"}


@pytest.mark.parametrize(
    ("words", "reason"),
    [
        (["-J", "bastion"], "ssh argument '-J'"),
        (["-o"], "ssh argument '-o'"),
        (["-o", "Novalue"], "ssh option 'Novalue'"),
        (["-vT"], "ssh argument '-vT'"),
    ],
)
def test_ssh_args_only_openssh_understands(words: list[str], reason: str) -> None:
    with pytest.raises(NeedsOpenSSH, match=reason):
        parse_ssh_args(words)


# --- which client -------------------------------------------------------------------------------------
def test_the_inventory_choice_is_kept() -> None:
    assert client_for(target_for("localhost", {"ansible_connection": "local"})) == "local"
    assert client_for(host(ansible_connection="ssh", ansible_ssh_common_args=FLEET_ARGS)) == "openssh"
    assert client_for(host(ansible_connection="paramiko")) == "inprocess"


def test_without_a_choice_the_in_process_client_when_it_honours_every_setting() -> None:
    assert client_for(host(ansible_ssh_common_args=FLEET_ARGS)) == "inprocess"
    assert client_for(host(ansible_connection="smart")) == "inprocess"
    assert client_for(host(ansible_ssh_common_args="-o ProxyJump=bastion")) == "openssh"
    assert client_for(host(ansible_ssh_common_args="-o Ciphers=aes256-ctr")) == "openssh"  # a policy only ssh applies


@pytest.mark.parametrize(
    ("config", "client"),
    [
        ("Host 127.*\n  User root\n  IdentityFile ~/.ssh/fleet\n  StrictHostKeyChecking no\n", "inprocess"),
        ("Host *\n  SendEnv LANG LC_*\n  HashKnownHosts yes\n  GSSAPIAuthentication yes\n", "inprocess"),
        ("Host 127.0.0.9\n  ProxyJump bastion\n", "openssh"),
        ("Host other\n  ProxyJump bastion\n", "inprocess"),  # not this host's
        ("Host *\n  CertificateFile ~/.ssh/id-cert.pub\n", "openssh"),
        ("Match host 127.0.0.9\n  User root\n", "openssh"),
        ("Include conf.d/*.conf\n", "openssh"),  # conf.d/proxy.conf below sets ProxyCommand
    ],
)
def test_the_users_ssh_config_decides(home: Path, config: str, client: str) -> None:
    (home / ".ssh" / "conf.d").mkdir()
    (home / ".ssh" / "conf.d" / "proxy.conf").write_text("Host 127.0.0.9\n  ProxyCommand nc %h %p\n")
    (home / ".ssh" / "config").write_text(config)
    assert client_for(host()) == client


def test_an_ssh_config_given_with_f_replaces_the_users(home: Path, tmp_path: Path) -> None:
    (home / ".ssh" / "config").write_text("Host *\n  ProxyJump bastion\n")
    (tmp_path / "fleet.conf").write_text("Host *\n  User root\n")
    assert client_for(host(ansible_ssh_common_args=f"-F {tmp_path / 'fleet.conf'}")) == "inprocess"
    assert client_for(host()) == "openssh"


def test_known_hosts_markers_paramiko_cannot_read(home: Path) -> None:
    (home / ".ssh" / "known_hosts").write_text("@cert-authority *.example.com ssh-ed25519 AAAA\n")
    assert client_for(host()) == "openssh"
    (home / ".ssh" / "known_hosts").write_text("127.0.0.9 ssh-ed25519 AAAA\n")
    assert client_for(host()) == "inprocess"
    # OpenSSH reads a marker after blanks too; paramiko would skip the line and trust a revoked key.
    (home / ".ssh" / "known_hosts").write_text("127.0.0.9 ssh-ed25519 AAAA\n\t @revoked 127.0.0.9 ssh-ed25519 AAAA\n")
    assert client_for(host()) == "openssh"


@pytest.mark.parametrize(
    ("line", "client"),
    [
        ("*.example.com ssh-ed25519 AAAA\n", "openssh"),
        ("web-1,10.0.0.? ssh-ed25519 AAAA\n", "openssh"),
        ("  127.0.0.*,!127.0.0.10 ssh-ed25519 AAAA\n", "openssh"),
        ("[127.0.0.9]:2222,web-1 ssh-ed25519 AAAA\n", "inprocess"),
        ("|1|c2FsdA==|aGFzaA== ssh-ed25519 AAAA\n", "inprocess"),  # hashed: compared, never a pattern
        ("# *.example.com is ours\n127.0.0.9 ssh-ed25519 AAAA\n", "inprocess"),
    ],
)
def test_known_hosts_patterns_paramiko_cannot_match(home: Path, line: str, client: str) -> None:
    """OpenSSH matches host patterns in known_hosts; paramiko compares names only and would refuse a
    host a pattern lists as unknown, so certaudit leaves such a host to OpenSSH (unless told paramiko)."""
    (home / ".ssh" / "known_hosts").write_text(line)
    assert client_for(host()) == client
    assert client_for(host(ansible_connection="paramiko")) == "inprocess"


def test_in_process_settings_follow_openssh_precedence(home: Path) -> None:
    (home / ".ssh" / "config").write_text(
        "Host 127.0.0.9\n  HostName 127.0.0.10\n  User fromconfig\n  Port 2200\n  IdentityFile ~/.ssh/cfgkey\n"
    )
    settings = inprocess_settings(host(ansible_user="frominventory", ansible_ssh_private_key_file="/inv/key"))
    assert (settings.hostname, settings.user, settings.port) == ("127.0.0.10", "frominventory", 2200)
    assert settings.identities == ("/inv/key", str(home / ".ssh" / "cfgkey"))
    assert settings.host_keys == "yes"  # OpenSSH in batch mode refuses a host it does not know
    assert settings.known_hosts == (
        str(home / ".ssh/known_hosts"),
        str(home / ".ssh/known_hosts2"),
        *transport.GLOBAL_KNOWN_HOSTS,
    )
    ours = inprocess_settings(host(ansible_user="frominventory", ansible_ssh_common_args="-o User=fromargs -p 2201"))
    assert (ours.user, ours.port) == ("fromargs", 2201)
    fleet = inprocess_settings(host(ansible_ssh_common_args=FLEET_ARGS))
    assert fleet.host_keys == "no" and fleet.identities_only
    assert fleet.known_hosts == tuple(transport.GLOBAL_KNOWN_HOSTS)  # /dev/null: no user file at all


def test_a_paramiko_connection_refuses_unknown_keys_unless_told() -> None:
    """It used to keep testinfra's trust (any key accepted): anyone on the path could answer the probe."""
    assert inprocess_settings(host(ansible_connection="paramiko")).host_keys == "yes"
    # The inventory's ssh arguments apply to it as to the in-process client certaudit chooses.
    assert inprocess_settings(host(ansible_connection="paramiko", ansible_ssh_common_args=FLEET_ARGS)).host_keys == "no"


def test_openssh_argv() -> None:
    target = host(ansible_user="root", ansible_port=2222, ansible_ssh_private_key_file="/k", ansible_ssh_common_args=FLEET_ARGS)
    argv = openssh_argv(target, "python3 -c pass", 7.4)
    assert argv == [
        "ssh", *FLEET_ARGS.split(), *SSH_BOUNDS, "-o", "User=root", "-o", "Port=2222", "-i", "/k",
        "-o", "ConnectTimeout=7", "-o", "ControlMaster=no", "--", "127.0.0.9", "python3 -c pass",
    ]  # fmt: skip
    own = openssh_argv(host(ansible_ssh_common_args="-o ConnectTimeout=3 -o ControlMaster=auto"), "true", 10)
    assert "ConnectTimeout=10" not in own and "ControlMaster=no" not in own


def test_become_runs_the_command_under_sudo() -> None:
    assert transport.with_become(host(ansible_become=True), ["python3", "-c", "x"]) == ["sudo", "-n", "--", "python3", "-c", "x"]
    assert transport.with_become(host(ansible_become=True, ansible_become_user="audit"), ["id"]) == [
        "sudo", "-n", "-u", "audit", "--", "id"
    ]  # fmt: skip
    assert transport.with_become(host(), ["id"]) == ["id"]


# --- deadlines -----------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_deadline_kills_the_process_and_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    with pytest.raises(DeadlineExceeded):
        run_process(["sh", "-c", f"sleep 60 & echo $$ $! > {pids}; wait"], time.monotonic() + 1.0, 1024)
    shell, child = (int(p) for p in pids.read_text().split())
    assert not _alive(shell) and not _alive(child)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a host that hangs after connect)."""
    server = socket.socket()
    server.bind(("127.0.0.9", 0))
    server.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    done.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _ssh_children() -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        if comm == "ssh" and ppid == os.getpid():
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("connection", ["smart", "ssh"])
def test_the_host_budget_ends_a_host_that_never_answers(silent_server: int, connection: str) -> None:
    target = host(ansible_connection=connection, ansible_port=silent_server, ansible_user="root",
                  ansible_ssh_common_args="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null")  # fmt: skip
    # The connect timeout alone would wait 60 s: the budget of 1 s must end it, and free the worker.
    prober = Prober(connect_timeout=60, host_budget=1, workers=1)
    with pytest.raises(ProbeError) as caught:
        prober.facts(target)
    assert str(caught.value) == "host web-1: no facts within the per-host budget of 1 s"
    prober.shutdown()
    assert _ssh_children() == []


def test_an_unreachable_host_is_an_error_naming_the_cause() -> None:
    with pytest.raises(ProbeError) as caught:
        probe.gather(host(ansible_port=1), connect_timeout=5)
    assert str(caught.value) == "host web-1 (127.0.0.9): cannot connect: connect to host 127.0.0.9 port 1: Connection refused"


# --- counting and file descriptors ---------------------------------------------------------------------
def test_round_trips_are_counted_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count_round_trip("web-1", "command", "inprocess")  # not asked: nothing written anywhere
    monkeypatch.setenv(transport.ROUND_TRIPS_ENV, str(tmp_path / "trips.jsonl"))
    count_round_trip("web-1", "command", "inprocess")
    count_round_trip("web-1", "tls")
    lines = [json.loads(line) for line in (tmp_path / "trips.jsonl").read_text().splitlines()]
    assert [(e["host"], e["kind"], e["via"]) for e in lines] == [("web-1", "command", "inprocess"), ("web-1", "tls", "")]


@pytest.mark.parametrize(
    ("limits", "workers", "raised_to"),
    [((1024, 1024), 32, None), ((128, 128), 8, None), ((70, 70), 1, None), ((256, 4096), 32, 320), ((256, 300), 29, 300)],
)
def test_the_pool_fits_the_file_descriptor_limit(
    monkeypatch: pytest.MonkeyPatch, limits: tuple[int, int], workers: int, raised_to: int | None
) -> None:
    raised: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: limits)
    monkeypatch.setattr(resource, "setrlimit", lambda _, value: raised.append(value))
    assert fd_bounded_workers(32) == workers
    assert raised == ([(raised_to, limits[1])] if raised_to else [])


@pytest.fixture
def mute_ssh_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An SSH server that lets anyone in and then never answers the request to run a command."""
    with ssh_server(tmp_path, mute=True) as server:
        yield server.port, server.client_key


def test_the_budget_ends_a_host_that_never_runs_the_command(mute_ssh_server: tuple[int, Path]) -> None:
    port, key = mute_ssh_server
    target = host(ansible_port=port, ansible_user="root", ansible_ssh_private_key_file=str(key),
                  ansible_ssh_common_args="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null")  # fmt: skip
    assert client_for(target) == "inprocess"
    prober = Prober(connect_timeout=60, host_budget=1, workers=1)
    with pytest.raises(ProbeError) as caught:
        prober.facts(target)
    assert str(caught.value) == "host web-1: no facts within the per-host budget of 1 s"
    # The worker itself gave up at the deadline: its connection closed, its thread free for the next host.
    future = prober._jobs["web-1"].future
    assert future is not None and future.done()
    prober.shutdown()


# --- the answer's cap ----------------------------------------------------------------------------------
def _flood(path: str, size: str, tmp_path: Path) -> dict[str, Any]:
    """tests/unit/flood_probe.py in a process of its own: the error, and the peak memory it cost."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.flood_probe", path, size, str(tmp_path)],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize(("path", "size"), [("local", "700M"), ("ssh", "endless"), ("paramiko", "endless")])
def test_an_answer_over_the_cap_is_cut_while_it_is_read(tmp_path: Path, path: str, size: str) -> None:
    """A host that sends 700 MB (or never stops) costs the audit about the cap, and ends in error naming it.

    Reading everything first and cutting after raised the audit's peak memory by what the host sent
    (1.5 GB for 700 MB), or kept reading an endless answer until the host's budget ran out.
    """
    result = _flood(path, size, tmp_path)
    name = "localhost" if path == "local" else "flood"
    assert result["message"] == f"host {name}: the probe's answer is over the 64 MB cap (67108864 bytes); reading stopped there"
    cap_mb = probe.MAX_OUTPUT / (1024 * 1024)
    # The answer's first cap + 1 bytes in the buffer that read them, and one copy handed to the probe.
    assert result["peak_mb"] - result["before_mb"] < 2 * cap_mb + 32, result


def test_a_server_that_never_sends_its_banner_is_named_the_same_whichever_paramiko_thread_gives_up() -> None:
    # paramiko says "Error reading SSH protocol banner" or "No existing session" for the same stall,
    # depending on which of its threads times out first: certaudit says one thing for both.
    listener = socket.socket()
    listener.bind(("127.0.0.9", 0))
    listener.listen(4)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        args = "-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
        port = listener.getsockname()[1]
        target = host(ansible_port=port, ansible_user="root", ansible_connection="paramiko", ansible_ssh_common_args=args)
        with pytest.raises(transport.TransportError) as caught:
            transport.run_command(target, ["true"], 1, time.monotonic() + 30, 1024)
        assert str(caught.value) == (
            f"connect to host 127.0.0.9 port {listener.getsockname()[1]}: no SSH banner and key exchange within 1 s"
        )
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_paramiko_is_loaded_without_invoke_which_stays_importable(tmp_path: Path) -> None:
    """invoke (40 to 60 ms of the first login's wait) serves paramiko's `Match exec` only, which
    certaudit never reads in-process; anyone else may still import it."""
    config = tmp_path / "ssh_config"
    config.write_text("Host 127.0.0.9\n  User auditor\n")
    script = (
        "import sys\n"
        "from certaudit.gather import transport\n"
        f"found = transport.effective_config('127.0.0.9', {str(config)!r})\n"
        "loaded = 'paramiko' in sys.modules, 'invoke' in sys.modules\n"
        "import invoke\n"
        "print(found, loaded, invoke.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "{'user': 'auditor'} (True, False) invoke"
