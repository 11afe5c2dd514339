"""A small SSH server for tests (paramiko's): any public key logs in, and every command gets one fixed answer.

It stands for a host on the path: what key it offers is the test's choice, and its answer can be
endless (a host that floods the probe).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

CHUNK = b"\0" * (256 * 1024)
ANSIBLE_HOST_KEY_VARIABLES = (
    "ANSIBLE_CONFIG", "ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_SSH_HOST_KEY_CHECKING", "ANSIBLE_PARAMIKO_HOST_KEY_CHECKING",
)  # fmt: skip


def isolated_ssh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of our own, no system ssh_config or known_hosts and no Ansible setting from outside:
    only what each test writes counts."""
    from certaudit.gather import transport

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(transport, "SYSTEM_CONFIG", str(tmp_path / "no-system-config"))
    monkeypatch.setattr(transport, "GLOBAL_KNOWN_HOSTS", (str(tmp_path / "no-global-known-hosts"),))
    for name in ANSIBLE_HOST_KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return home


def write_key(path: Path) -> Path:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


@dataclass
class Server:
    port: int
    host_key: paramiko.PKey
    client_key: Path
    commands: list[str]

    def known_hosts_line(self, key: paramiko.PKey | None = None) -> str:
        key = key or self.host_key
        return f"[127.0.0.9]:{self.port} {key.get_name()} {key.get_base64()}\n"


@contextmanager
def ssh_server(tmp_path: Path, answer: bytes = b"{}", endless: bool = False, mute: bool = False) -> Iterator[Server]:
    """Listens on 127.0.0.9; `answer` is every command's stdout (exit 0), or with `endless` zeros until the
    client leaves; with `mute` a request to run a command is never answered while the server runs."""
    host_key = paramiko.Ed25519Key.from_private_key_file(str(write_key(tmp_path / "server_host_key")))
    client_key = write_key(tmp_path / "client_key")
    stop = threading.Event()
    commands: list[str] = []

    class Answer(paramiko.ServerInterface):
        def get_allowed_auths(self, username: str) -> str:
            return "publickey"

        def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
            return paramiko.common.AUTH_SUCCESSFUL

        def check_channel_request(self, kind: str, chanid: int) -> int:
            return paramiko.common.OPEN_SUCCEEDED

        def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
            commands.append(command.decode())
            if mute:
                stop.wait(60)  # the answer never comes while the test runs
                return False
            threading.Thread(target=reply, args=(channel,), daemon=True).start()
            return True

    def reply(channel: paramiko.Channel) -> None:
        # The answer to the exec request goes out once check_channel_exec_request returns: a channel
        # closed before it would look to the client like a refused request.
        time.sleep(0.2)
        try:
            if endless:
                while not stop.is_set() and not channel.closed:
                    channel.sendall(CHUNK)
            else:
                channel.sendall(answer)
                channel.send_exit_status(0)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                channel.close()

    server = socket.socket()
    server.bind(("127.0.0.9", 0))
    server.listen(8)
    sessions: list[paramiko.Transport] = []

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn = server.accept()[0]
            except TimeoutError:
                continue
            session = paramiko.Transport(conn)
            session.add_server_key(host_key)
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                session.start_server(server=Answer())
            sessions.append(session)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield Server(server.getsockname()[1], host_key, client_key, commands)
    finally:
        stop.set()
        thread.join()
        for session in sessions:
            session.close()
        server.close()
