"""testinfra's `host`, reached the way the probe reaches it: one login per host, bounded, counted.

A check written the testinfra way (`host.file(path).mode`) sends one command a call. Here each
command goes over the host's one login, made with the probe's settings (transport.py): the same
client choice, user, port, key, ssh arguments, `sudo -n` for become and host-key trust. The login
is kept for every later test on that host and closed at the end of the run:

- in-process (paramiko): one SSH connection, a new channel a command;
- OpenSSH: one ControlMaster in a private directory, `ssh -O exit` at the end;
- local (only when the inventory says `ansible_connection: local`): a process a command.

Bounds: the login waits at most --connect-timeout; the host's commands together may take
--host-budget. A host that could not be reached, or ran out of its budget, is not tried again: each
of its later tests is an error at once, naming the cause, and no other host waits for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from testinfra.backend.base import BaseBackend

from certaudit.errors import Undeterminable
from certaudit.gather.transport import (
    CommandResult,
    DeadlineExceeded,
    NeedsOpenSSH,
    TransportError,
    client_for,
    count_round_trip,
    openssh_argv,
    paramiko_login,
    read_channel,
    remaining,
    run_process,
    sudo_refusal,
    with_become,
)

if TYPE_CHECKING:
    from certaudit.inventory import Target

MAX_OUTPUT = 16 * 1024 * 1024  # one command's stdout; more is a cut fact, never judged
MAX_STDERR = 64 * 1024
LOG_LIMIT = 50  # commands kept for a test's evidence
LOG_TEXT = 300  # characters of each
T = TypeVar("T")


class HostSession:
    """One host's login for every testinfra test on it; `run` sends one command over it."""

    def __init__(self, target: Target, connect_timeout: float, host_budget: float) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.budget = host_budget
        self.spent = 0.0  # seconds the host's logins and commands took so far
        self.broken: str | None = None  # why the host is not tried again
        self.log: list[str] = []  # the commands of the running test, for its evidence
        self.last: tuple[str, CommandResult] | None = None  # the latest command and its result
        self.client = client_for(target)
        self._ssh: Any = None  # paramiko.SSHClient
        self._control_dir: str | None = None
        self._lock = threading.Lock()

    # --- the login --------------------------------------------------------------------------------
    def login(self) -> None:
        """Connect once; raises Undeterminable (unreachable, refused, out of budget) now and on every later call."""
        with self._lock:
            if self.broken is not None:
                raise Undeterminable(self.broken)
            if self.client == "local" or self._ssh is not None or self._control_dir is not None:
                return
            self._bounded(self._login, "logging in")

    def _login(self, deadline: float) -> None:
        # Counted as the bench counts round trips (kind "login"): one per host, whatever its tests.
        count_round_trip(self.target.name, "login", self.client)
        if self.client == "inprocess":
            self._ssh = paramiko_login(self.target, self.connect_timeout, deadline)
        else:
            self._control_dir = tempfile.mkdtemp(prefix="certaudit-ssh-")
            # The master is started by this first command and kept (ControlPersist) for the others.
            result = self._openssh("true", deadline, counted=False)  # counted as the login
            if result.rc != 0:
                raise TransportError(f"the login's first command exited {result.rc}: {_tail(result.stderr)}")

    # --- commands ---------------------------------------------------------------------------------
    def run(self, command: str) -> CommandResult:
        """Run a shell command (as testinfra writes them) on the host, under `sudo -n` for become."""
        self.login()
        with self._lock:
            if self.broken is not None:
                raise Undeterminable(self.broken)
            result = self._bounded(lambda deadline: self._send(command, deadline), "running a command")
        shown = command if len(command) <= LOG_TEXT else command[: LOG_TEXT - 1] + "…"
        self.last = (shown, result)
        if len(self.log) < LOG_LIMIT:
            self.log.append(f"{shown} (exit {result.rc})")
        if result.truncated:
            raise Undeterminable(f"{self.target.name}: `{shown}` wrote more than {MAX_OUTPUT} bytes: its output was cut")
        refused = sudo_refusal(self.target, result)
        if refused is not None:
            # The command never ran: its exit status 1 is sudo's, not an answer a control may judge.
            raise Undeterminable(f"{self.target.name}: `{shown}` did not run: {refused}")
        return result

    def _send(self, command: str, deadline: float) -> CommandResult:
        argv = with_become(self.target, ["/bin/sh", "-c", command])
        if self.client == "local":
            count_round_trip(self.target.name, "command", "local")
            return run_process(argv, deadline, MAX_OUTPUT)
        wrapped = shlex.join(argv)
        if self.client == "inprocess":
            count_round_trip(self.target.name, "command", "inprocess")
            return _paramiko_exec(self._ssh, wrapped, self.connect_timeout, deadline)
        return self._openssh(wrapped, deadline)

    def _openssh(self, remote_command: str, deadline: float, counted: bool = True) -> CommandResult:
        if counted:
            count_round_trip(self.target.name, "command", "openssh")
        result = run_process(openssh_argv(self._multiplexed(), remote_command, self.connect_timeout), deadline, MAX_OUTPUT)
        if result.rc == 255:  # ssh's own status: the connection failed (sh never exits 255 for testinfra's commands)
            raise TransportError(_tail(result.stderr) or "ssh exited 255")
        return result

    def _multiplexed(self) -> Target:
        """The target with a ControlMaster of its own in front of the inventory's ssh arguments (ssh keeps the first value)."""
        assert self._control_dir is not None
        master = ["-o", "ControlMaster=auto", "-o", f"ControlPath={self._control_dir}/m", "-o", "ControlPersist=yes"]
        extra = str(self.target.connect_kwargs.get("ssh_extra_args") or "")
        kwargs = {**self.target.connect_kwargs, "ssh_extra_args": f"{shlex.join(master)} {extra}".strip()}
        return dataclasses.replace(self.target, connect_kwargs=kwargs)

    def _bounded(self, step: Callable[[float], T], doing: str) -> T:
        """Run step(deadline) within what is left of the host's budget; a failure breaks the host for good."""
        started = time.monotonic()
        deadline = started + max(0.0, self.budget - self.spent)
        try:
            return step(deadline)
        except DeadlineExceeded:
            self.broken = (
                f"{self.target.name}: no answer while {doing}: the host's {self.budget:g} s budget (--host-budget) ran out"
            )
        except TransportError as exc:
            self.broken = f"{self.target.name}: unreachable: {exc}"
        except NeedsOpenSSH as exc:
            self.broken = f"{self.target.name}: the paramiko connection cannot apply this host's ssh settings: {exc}"
        finally:
            self.spent += time.monotonic() - started
        self._drop()
        raise Undeterminable(self.broken)

    # --- the end ----------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None
        if self._control_dir is not None:
            control = f"{self._control_dir}/m"
            if os.path.exists(control):
                # The master ends with its socket; bounded, as every wait here.
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    subprocess.run(
                        ["ssh", "-o", f"ControlPath={control}", "-O", "exit", self.target.address],
                        capture_output=True,
                        timeout=10,
                        check=False,
                        stdin=subprocess.DEVNULL,
                    )
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None


class CertauditBackend(BaseBackend):  # type: ignore[misc]  # testinfra has no type information
    """testinfra's backend over a HostSession: its test id is the inventory name, as for the built-in controls."""

    NAME = "certaudit"

    def __init__(self, session: HostSession) -> None:
        super().__init__(session.target.name)
        self.session = session

    def get_pytest_id(self) -> str:
        return self.session.target.name

    def failed_command(self) -> str:
        """The latest command, as a reason a check could not read what it needs."""
        if self.session.last is None:
            return f"{self.session.target.name}: a command failed"
        command, result = self.session.last
        return f"{self.session.target.name}: `{command}` exited {result.rc}: {_tail(result.stderr) or 'no message'}"

    def get_sudo_command(self, command: str, sudo_user: str | None) -> str:
        """`with host.sudo():` as become: `sudo -n`, which fails at once where sudo wants a password."""
        user = ["-u", sudo_user] if sudo_user else []
        return shlex.join(["sudo", "-n", *user, "--", "/bin/sh", "-c", command])

    def run(self, command: str, *args: str, **kwargs: Any) -> Any:
        text = self.get_command(command, *args)
        result = self.session.run(text)
        return self.result(result.rc, self.encode(text), result.stdout, result.stderr)


def _tail(stderr: bytes) -> str:
    return " ".join(stderr.decode("utf-8", "replace").split())[:400]


# --- the in-process login: transport.paramiko_login, the probe's own (same settings, same host-key rule) ---


def _paramiko_exec(client: Any, command: str, connect_timeout: float, deadline: float) -> CommandResult:
    """One command on a new channel of the host's connection; at the deadline the channel is closed under it."""
    import paramiko

    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise TransportError("the host closed the connection")
    try:
        channel = transport.open_session(timeout=min(connect_timeout, remaining(deadline)))
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise TransportError(f"could not open a channel: {exc}") from None
    # exec_command waits for the server's reply without a bound of its own.
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), channel.close)
    watchdog.daemon = True
    watchdog.start()
    try:
        channel.exec_command(command)
        stdout, truncated = read_channel(channel, deadline, MAX_OUTPUT, stderr=False)
        stderr, _ = read_channel(channel, deadline, MAX_STDERR, stderr=True)
        if not channel.status_event.wait(timeout=remaining(deadline)):
            raise DeadlineExceeded
        return CommandResult(channel.recv_exit_status(), stdout, stderr, truncated)
    except (TimeoutError, paramiko.SSHException, OSError, EOFError) as exc:
        if time.monotonic() >= deadline:
            raise DeadlineExceeded from None
        raise TransportError(f"the connection failed: {exc}") from None
    finally:
        watchdog.cancel()
        channel.close()
