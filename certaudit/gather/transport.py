"""How the probe's one command reaches a host: OpenSSH, an in-process SSH client (paramiko), or locally.

Every path bounds its own time: a connect timeout, and a deadline after which the command is
abandoned and its connection closed (an OpenSSH client is killed with its process group), so a
stalled host holds a pool worker for its own budget and no longer. Nothing outlives the call: no
ControlMaster is started and the in-process connection is closed once the answer is in, so auditing
a fleet of any size costs a bounded number of file descriptors (a few per pool worker).

Which client: an inventory that says `ansible_connection: ssh` gets the OpenSSH client, which
honours everything the operator's ssh does (ProxyJump, certificates, Match blocks, algorithms);
`paramiko` gets the in-process client. Without a choice (Ansible's `smart`), certaudit takes the
in-process client when it can apply every ssh setting of the host (its ssh arguments, ssh_config,
known_hosts) exactly as OpenSSH would, and OpenSSH otherwise. Those files are parsed once per version
of each (ssh_files), not at every login: a known_hosts listing the fleet made each login cost more.
In-process, a host costs one thread and one socket, no process; on this project's 2-core bench an
OpenSSH client cost about 60 ms of CPU a host against 5 ms (bench/README.md has the figures).

Host keys: one rule on every path, OpenSSH's in batch mode. A host key that no known_hosts file
lists, or one that differs from the listed key, is refused, and the error names the host, the key
type and fingerprint it offered, and what to do. The inventory opts out only explicitly:
`StrictHostKeyChecking=accept-new` records a new key in the user's known_hosts file (a changed key is
still refused); `StrictHostKeyChecking=no`, or Ansible's `host_key_checking` set to false, trusts any
key. A host's answer is refused before the probe runs, so nobody on the path can answer for it.

Every path reads the answer within its limit: past `max_output` bytes the reading stops and the
command is ended, so a host that sends gigabytes costs the audit `max_output`, not what it sent.

With CERTAUDIT_ROUND_TRIPS=PATH in the environment, every command sent to a host and every
connection to its TLS endpoint appends one JSON line to PATH: the bench counts round trips with it.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from certaudit.gather import ssh_files

if TYPE_CHECKING:
    from certaudit.inventory import Target

ROUND_TRIPS_ENV = "CERTAUDIT_ROUND_TRIPS"
READ_CHUNK = 256 * 1024
SSH_PORT = 22
STDERR_LIMIT = 64 * 1024  # the tail of stderr kept: enough for any error message
KILL_GONE_S = 1.0
KILL_DRAIN_S = 5.0  # after SIGKILL, how long the pipes may take to close (a process that left the group may hold them)


class TransportError(Exception):
    """The host could not be reached or refused the session: the message says how."""


class DeadlineExceeded(Exception):
    """The host's time budget ran out before its answer was complete."""


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False  # stdout was cut at the output limit


def count_round_trip(host: str, kind: str, via: str = "") -> None:
    """Record one round trip to `host` (kind: command or tls; via: the client) when CERTAUDIT_ROUND_TRIPS names a file."""
    path = os.environ.get(ROUND_TRIPS_ENV)
    if not path:
        return
    line = json.dumps({"host": host, "kind": kind, "via": via, "pid": os.getpid()}) + "\n"
    # One O_APPEND write of a short line is atomic: processes and threads may share the file.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded
    return left


def with_become(target: Target, argv: list[str]) -> list[str]:
    """The command as the host runs it: under `sudo -n` when the inventory asks for become."""
    kwargs = target.connect_kwargs
    if not kwargs.get("sudo"):
        return argv
    user = kwargs.get("sudo_user")
    # -n: a sudo that wants a password fails at once instead of waiting for a terminal.
    return ["sudo", "-n", *(["-u", str(user)] if user else []), "--", *argv]


# How sudo (1.8 and 1.9) says it will not run a command: "sudo: a password is required" under -n,
# "Sorry, user U is not allowed to execute ..." where the sudoers rules do not name the command.
SUDO_REFUSALS = ("sudo: ", "Sorry, user ")


def sudo_refusal(target: Target, result: CommandResult) -> str | None:
    """Why sudo refused to run a become command (one line), or None when it ran it (or there was no become).

    sudo refuses with exit status 1 and its message first on stderr; the command never started,
    so its exit status and output say nothing about the host."""
    if not target.connect_kwargs.get("sudo") or result.rc != 1:
        return None
    first = (result.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[0]
    if not first.startswith(SUDO_REFUSALS):
        return None
    user = target.connect_kwargs.get("sudo_user") or "root"
    login = target.variables.get("ansible_user") or "the login"
    return (
        f"sudo refused to run it as {user} for {login} (ansible_become runs `sudo -n`, which never asks for a "
        f"password): {' '.join(first.split())[:300]}"
    )


def run_command(target: Target, argv: list[str], connect_timeout: float, deadline: float, max_output: int) -> CommandResult:
    """Run argv on the target's host; raises TransportError (unreachable) or DeadlineExceeded."""
    command = with_become(target, argv)
    if target.connection == "local":
        count_round_trip(target.name, "command", "local")
        return run_process(command, deadline, max_output)
    if client_for(target) == "inprocess":
        return run_paramiko(target, shlex.join(command), connect_timeout, deadline, max_output)
    count_round_trip(target.name, "command", "openssh")
    result = run_process(openssh_argv(target, shlex.join(command), connect_timeout), deadline, max_output)
    if result.rc == 255 and not result.truncated:  # ssh's own status: the connection failed (the probe never exits 255)
        stderr = result.stderr.decode("utf-8", "replace")
        if HOST_KEY_FAILED in stderr:
            raise TransportError(openssh_host_key_refusal(target, connect_timeout, deadline, stderr))
        raise TransportError(" ".join(stderr.split())[:400] or "ssh exited 255")
    return result


# --- OpenSSH and local processes ------------------------------------------------------------------
def openssh_argv(target: Target, remote_command: str, connect_timeout: float) -> list[str]:
    """The ssh client's argv: the inventory's ssh options first (ssh keeps the first value it reads)."""
    kwargs = target.connect_kwargs
    extra = shlex.split(str(kwargs.get("ssh_extra_args") or ""))
    lowered = " ".join(extra).lower()
    # Ansible's host_key_checking=False comes before the inventory's ssh arguments, as Ansible puts it
    # (ssh keeps the first value it reads): it wins over a StrictHostKeyChecking among them.
    argv = ["ssh", *([] if target.host_key_checking else ["-o", "StrictHostKeyChecking=no"]), *extra]
    if kwargs.get("ssh_config"):
        argv += ["-F", str(kwargs["ssh_config"])]
    user = target.variables.get("ansible_user")
    if user:
        argv += ["-o", f"User={user}"]
    port = target.variables.get("ansible_port")
    if port:
        argv += ["-o", f"Port={port}"]
    if kwargs.get("ssh_identity_file"):
        argv += ["-i", str(kwargs["ssh_identity_file"])]
    if "connecttimeout" not in lowered:
        argv += ["-o", f"ConnectTimeout={max(1, round(connect_timeout))}"]
    if "controlmaster" not in lowered:
        # A master started here would outlive the probe: one lingering process per host.
        argv += ["-o", "ControlMaster=no"]
    return [*argv, "--", target.address, remote_command]


def run_process(argv: list[str], deadline: float, max_output: int) -> CommandResult:
    """Run argv (never through a shell); at the deadline, kill it with its process group.

    stdout is read as it comes and never held beyond max_output + 1 bytes: past that the process
    is killed and the result marked truncated. stderr keeps its last STDERR_LIMIT bytes.
    """
    remaining(deadline)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    except FileNotFoundError:
        raise TransportError(f"{argv[0]} is not installed on the auditing machine") from None
    except OSError as exc:
        raise TransportError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    try:
        stdout, stderr, truncated = _read_process(proc, deadline, max_output)
        if truncated:
            _kill(proc)
        else:
            proc.wait(timeout=remaining(deadline))
    except (subprocess.TimeoutExpired, DeadlineExceeded):
        _kill(proc)
        raise DeadlineExceeded from None
    except BaseException:
        _kill(proc)
        raise
    finally:
        _close_pipes(proc)
    return CommandResult(proc.returncode, stdout, stderr, truncated)


def _read_process(proc: subprocess.Popen[bytes], deadline: float, max_output: int) -> tuple[bytes, bytes, bool]:
    """Both pipes until EOF, the deadline, or stdout over max_output (then (first max_output + 1 bytes, ..., True))."""
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, stdout)
        selector.register(proc.stderr, selectors.EVENT_READ, stderr)
        while selector.get_map():
            for key, _ in selector.select(timeout=remaining(deadline)):
                chunk = os.read(key.fd, READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                buffer += chunk
                if buffer is stdout and len(stdout) > max_output:
                    return _first_bytes(stdout, max_output + 1), bytes(stderr[-STDERR_LIMIT:]), True
                if buffer is stderr and len(stderr) > 2 * STDERR_LIMIT:
                    del stderr[:-STDERR_LIMIT]
            remaining(deadline)
    return bytes(stdout), bytes(stderr[-STDERR_LIMIT:]), False


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    # Read the pipes to EOF, discarding what they hold (never into memory, unlike communicate()): EOF
    # comes once every process of the group has died, so nothing of it outlives the call.
    _drain(proc, time.monotonic() + KILL_DRAIN_S)
    _close_pipes(proc)
    proc.wait()
    # A process of the group closes its pipes a moment before it is gone: wait (briefly) for that too.
    until = time.monotonic() + KILL_GONE_S
    while time.monotonic() < until:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)


def _drain(proc: subprocess.Popen[bytes], until: float) -> None:
    with selectors.DefaultSelector() as selector:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None and not pipe.closed:
                selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map() and time.monotonic() < until:
            for key, _ in selector.select(timeout=max(0.0, until - time.monotonic())):
                if not os.read(key.fd, READ_CHUNK):
                    selector.unregister(key.fileobj)


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


# --- the in-process SSH client ----------------------------------------------------------------------
# ssh options the in-process client applies as OpenSSH does.
HONOURED = frozenset(
    {"hostname", "user", "port", "identityfile", "identitiesonly", "stricthostkeychecking", "userknownhostsfile",
     "globalknownhostsfile", "connecttimeout"}
)  # fmt: skip
# Options it may leave aside: they change neither which host is reached nor what is trusted, and at
# worst make a login fail (an error, never a pass). Keepalives and batch mode: the deadline bounds
# every wait and nothing ever prompts.
IGNORABLE = frozenset(
    {"loglevel", "batchmode", "serveraliveinterval", "serveralivecountmax", "tcpkeepalive", "sendenv", "hashknownhosts",
     "gssapiauthentication", "gssapidelegatecredentials", "forwardagent", "forwardx11", "forwardx11trusted", "compression",
     "controlmaster", "controlpath", "controlpersist", "visualhostkey", "updatehostkeys", "passwordauthentication",
     "kbdinteractiveauthentication", "challengeresponseauthentication", "preferredauthentications", "addkeystoagent",
     "escapechar", "checkhostip", "numberofpasswordprompts", "verifyhostkeydns", "exitonforwardfailure"}
)  # fmt: skip
FLAGS_WITH_VALUE = {"-o", "-i", "-p", "-l", "-F"}
HARMLESS_FLAGS = {"-q", "-T", "-n", "-x", "-a", "-k", "-C"}
USER_CONFIG = "~/.ssh/config"
SYSTEM_CONFIG = "/etc/ssh/ssh_config"
USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
INCLUDE_DEPTH = 8


class NeedsOpenSSH(Exception):
    """A setting of this host that only the OpenSSH client applies: the reason."""


# StrictHostKeyChecking's values (ssh_config(5), case as ssh ignores it) and what each means in batch
# mode: "yes" refuses a key no known_hosts file lists and a changed one, "accept-new" records a new
# key and refuses a changed one, "no" trusts any key.
STRICT_HOST_KEY_CHECKING = {
    "yes": "yes", "true": "yes", "ask": "yes", "accept-new": "accept-new", "no": "no", "off": "no", "false": "no",
}  # fmt: skip


@dataclass(frozen=True)
class ParamikoSettings:
    hostname: str
    port: int
    user: str
    identities: tuple[str, ...]
    identities_only: bool
    host_keys: str  # yes, accept-new or no: what StrictHostKeyChecking (or Ansible's host_key_checking) says
    known_hosts: tuple[str, ...]
    record_to: str | None = None  # where accept-new records a new key: the first user known_hosts file
    hash_names: bool = False  # HashKnownHosts: the recorded line names the host by its hash


def client_for(target: Target) -> str:
    """local, openssh or inprocess.

    An inventory that names `ssh` gets the OpenSSH client it asked for, and `paramiko` the in-process
    one. Without a choice (Ansible's default, `smart`), the in-process client, unless some setting
    of the host (ssh arguments, ssh_config) is one only OpenSSH applies.
    """
    if target.connection in ("local", "paramiko"):
        return "local" if target.connection == "local" else "inprocess"
    if target.variables.get("ansible_connection", "smart") != "smart":
        return "openssh"
    try:
        inprocess_settings(target)
    except NeedsOpenSSH:
        return "openssh"
    return "inprocess"


def parse_ssh_args(tokens: list[str]) -> tuple[dict[str, str], list[str], str | None]:
    """ssh's command-line options: -o settings (the first value of each wins), -i files, the -F file."""
    options: dict[str, str] = {}
    identities: list[str] = []
    config_file: str | None = None
    index = 0
    while index < len(tokens):
        flag = tokens[index]
        if flag in HARMLESS_FLAGS:
            index += 1
            continue
        if flag in FLAGS_WITH_VALUE and index + 1 < len(tokens):
            value, index = tokens[index + 1], index + 2
        elif flag[:2] in FLAGS_WITH_VALUE and len(flag) > 2:
            flag, value, index = flag[:2], flag[2:], index + 1
        else:
            raise NeedsOpenSSH(f"ssh argument {flag!r}")
        if flag == "-o":
            key, sep, setting = value.partition("=") if "=" in value else value.strip().partition(" ")
            if not sep or not key.strip():
                raise NeedsOpenSSH(f"ssh option {value!r}")
            options.setdefault(key.strip().lower(), setting.strip())
        elif flag == "-i":
            identities.append(value)
        elif flag == "-F":
            config_file = value
        else:
            options.setdefault({"-p": "port", "-l": "user"}[flag], value)
    return options, identities, config_file


def config_text(path: Path, base: Path, depth: int = 0) -> str:
    """An ssh_config with its Include lines replaced by the files they name (relative to `base`)."""
    if depth > INCLUDE_DEPTH:
        raise NeedsOpenSSH(f"{path}: Include nested deeper than {INCLUDE_DEPTH}")
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        words = line.strip().replace("=", " ", 1).split()
        if words and words[0].lower() == "match":
            raise NeedsOpenSSH(f"{path}: a Match block")
        if words and words[0].lower() == "include":
            for pattern in words[1:]:
                expanded = Path(os.path.expanduser(pattern))
                full = expanded if expanded.is_absolute() else base / expanded
                for included in sorted(full.parent.glob(full.name)):
                    if included.is_file():
                        lines.append(config_text(included, base, depth + 1))
            continue
        lines.append(line)
    return "\n".join(lines)


_paramiko_import = threading.Lock()


def load_paramiko() -> None:
    """Import paramiko without invoke, which its ssh_config module imports (40 to 60 ms, on the
    probe's path: before the first host's login) only to run a `Match exec` command: certaudit reads
    no Match block in-process (config_text: NeedsOpenSSH), so paramiko never calls it here."""
    if "paramiko" in sys.modules:
        return
    with _paramiko_import:
        if "paramiko" in sys.modules:
            return
        blocked = "invoke" not in sys.modules
        if blocked:
            sys.modules["invoke"] = None  # type: ignore[assignment]  # the import system's "not importable"
        try:
            import paramiko  # noqa: F401
        finally:
            if blocked and sys.modules.get("invoke", False) is None:
                del sys.modules["invoke"]  # importable again by anyone who needs it


def effective_config(address: str, config_file: str | None) -> dict[str, Any]:
    """What the ssh_config files say for this host, OpenSSH's way: -F's file alone, else the user's then the system's."""
    load_paramiko()
    import paramiko

    if config_file:
        files = [(Path(os.path.expanduser(config_file)), Path(os.path.expanduser("~/.ssh")))]
    else:
        files = [
            (Path(os.path.expanduser(USER_CONFIG)), Path(os.path.expanduser("~/.ssh"))),
            (Path(SYSTEM_CONFIG), Path("/etc/ssh")),
        ]
    found: dict[str, Any] = {}
    for path, base in files:
        if not path.is_file():
            continue
        try:
            looked_up = ssh_files.parsed_config(config_text(path, base)).lookup(address)
        except (OSError, paramiko.ssh_exception.ConfigParseError) as exc:
            raise NeedsOpenSSH(f"{path}: {exc}") from None
        for key, value in looked_up.items():
            if key == "identityfile":
                found.setdefault(key, []).extend(value)
            elif key != "hostname" or value != address:  # paramiko fills in hostname itself
                found.setdefault(key, value)
    return found


def _first(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "")), None)


def inprocess_settings(target: Target) -> ParamikoSettings:
    """The connection OpenSSH would make to this host; raises NeedsOpenSSH when it cannot be made in-process."""
    kwargs = target.connect_kwargs
    chosen = target.connection != "paramiko"  # certaudit's choice, not the inventory's: it must honour everything
    arguments = ssh_files.split_arguments(str(kwargs.get("ssh_extra_args") or ""))
    options, arg_identities, config_file = parse_ssh_args(list(arguments))
    config = effective_config(target.address, config_file or kwargs.get("ssh_config"))
    if chosen:
        for key in sorted({*options, *config}):
            if key not in HONOURED and key not in IGNORABLE:
                raise NeedsOpenSSH(f"ssh option {key}")
    known = _first(options.get("userknownhostsfile"), config.get("userknownhostsfile"))
    global_known = _first(options.get("globalknownhostsfile"), config.get("globalknownhostsfile"))
    known_hosts = [
        *(str(known).split() if known else USER_KNOWN_HOSTS),
        *(str(global_known).split() if global_known else GLOBAL_KNOWN_HOSTS),
    ]
    known_hosts = [os.path.expanduser(p) for p in known_hosts if p != "/dev/null"]
    for path in known_hosts:
        # Markers paramiko does not read: a revoked key or a host CA must be judged by OpenSSH.
        if ssh_files.has_markers(path):
            raise NeedsOpenSSH(f"{path}: @revoked or @cert-authority lines")
        # Host patterns paramiko does not match: it would call a host they list unknown (safe, but wrong).
        if chosen and ssh_files.has_patterns(path):
            raise NeedsOpenSSH(f"{path}: hosts named by pattern")
    host_keys = host_key_mode(target, _first(options.get("stricthostkeychecking"), config.get("stricthostkeychecking")))
    user_files = [os.path.expanduser(p) for p in (str(known).split() if known else USER_KNOWN_HOSTS)]
    identity = kwargs.get("ssh_identity_file")
    identities = [*arg_identities, *([identity] if identity else []), *config.get("identityfile", [])]
    hostname = str(_first(options.get("hostname"), config.get("hostname"), target.address)).replace("%h", target.address)
    user = _first(options.get("user"), target.variables.get("ansible_user"), config.get("user"), getpass.getuser())
    port = _first(options.get("port"), target.variables.get("ansible_port"), config.get("port"), SSH_PORT)
    try:
        port_number = int(str(port))
    except ValueError:
        raise NeedsOpenSSH(f"port {port!r}") from None
    return ParamikoSettings(
        hostname=hostname,
        port=port_number,
        user=str(user),
        identities=tuple(os.path.expanduser(str(i)) for i in identities),
        identities_only=str(_first(options.get("identitiesonly"), config.get("identitiesonly")) or "no").lower() == "yes",
        host_keys=host_keys,
        known_hosts=tuple(known_hosts),
        record_to=user_files[0] if user_files[0] != "/dev/null" else None,
        hash_names=str(_first(options.get("hashknownhosts"), config.get("hashknownhosts")) or "no").lower() == "yes",
    )


def host_key_mode(target: Target, strict: Any) -> str:
    """yes, accept-new or no for this host: Ansible's host_key_checking=False first (as Ansible puts
    StrictHostKeyChecking=no before the inventory's ssh arguments), then StrictHostKeyChecking, then
    OpenSSH's default in batch mode: refuse what is not known."""
    if not target.host_key_checking:
        return "no"
    if strict in (None, ""):
        return "yes"
    mode = STRICT_HOST_KEY_CHECKING.get(str(strict).lower())
    if mode is None:
        raise NeedsOpenSSH(f"StrictHostKeyChecking {strict!r}")
    return mode


def paramiko_login(target: Target, connect_timeout: float, deadline: float) -> Any:
    """One login to the host with the probe's settings and certaudit's one host-key rule.

    Returns the connected paramiko client (the caller closes it, which closes its socket); raises
    TransportError naming the host and the cause, or DeadlineExceeded. Used by the probe and by
    testinfra's `host` fixture alike, so both trust exactly the same keys.
    """
    load_paramiko()
    import paramiko

    try:
        settings = inprocess_settings(target)
    except NeedsOpenSSH as exc:  # only for a connection the inventory named paramiko
        raise TransportError(f"the paramiko connection cannot apply this host's ssh settings: {exc}") from None
    where = f"connect to host {settings.hostname} port {settings.port}"
    try:
        sock = socket.create_connection((settings.hostname, settings.port), timeout=min(connect_timeout, remaining(deadline)))
    except TimeoutError:
        raise TransportError(f"{where}: Connection timed out") from None
    except OSError as exc:
        raise TransportError(f"{where}: {exc.strerror or exc}") from None
    # paramiko writes each SSH packet in several small sends: without TCP_NODELAY, Nagle's
    # algorithm and the peer's delayed ACK add about 40 ms to every exchange.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = paramiko.SSHClient()
    # paramiko bounds each step of the login, but not a server that stalls between them: at the
    # deadline the connection is closed under it, which ends every wait.
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), client.close)
    watchdog.daemon = True
    watchdog.start()
    try:
        if settings.host_keys != "no":  # "no": no key is looked up, so none can be "changed" either
            # Each file parsed once per version (accept-new appends to record_to itself, a new version).
            ssh_files.add_known_keys(client, settings.hostname, settings.port, settings.known_hosts)
        # A key that known_hosts lists differently is refused by paramiko itself (BadHostKeyException).
        client.set_missing_host_key_policy(_missing_key_policy(settings))
        step = min(connect_timeout, remaining(deadline))
        # The first identity loaded once per run, as paramiko would load it at each login; it is tried
        # first, then the others, as ssh does. One paramiko cannot load without help is left to it.
        first = ssh_files.identity(settings.identities[0]) if settings.identities else None
        others = list(settings.identities[1:] if first is not None else settings.identities)
        client.connect(
            settings.hostname,
            port=settings.port,
            username=settings.user,
            pkey=first,
            key_filename=cast(Any, others or None),  # a list: each is tried, as ssh does
            timeout=step,
            banner_timeout=step,
            auth_timeout=step,
            channel_timeout=step,
            sock=sock,
            look_for_keys=not settings.identities,
            allow_agent=not settings.identities_only,
        )
        return client
    except BaseException as exc:
        client.close()
        sock.close()
        raise paramiko_error(exc, settings, connect_timeout, deadline) from None
    finally:
        watchdog.cancel()


def paramiko_error(exc: BaseException, settings: ParamikoSettings, connect_timeout: float, deadline: float) -> BaseException:
    """What a paramiko failure means for the audit: the host-key refusal, a login refused, or the budget spent."""
    import paramiko

    where = f"connect to host {settings.hostname} port {settings.port}"
    if isinstance(exc, UnknownHostKey):
        return TransportError(unknown_key_message(settings.hostname, settings.port, exc.key_type, exc.fingerprint))
    if isinstance(exc, paramiko.BadHostKeyException):
        offered, known = exc.key, exc.expected_key
        return TransportError(
            changed_key_message(
                settings.hostname, settings.port, offered.get_name(), offered.fingerprint,
                f"an {known.get_name()} key {known.fingerprint}",
            )
        )  # fmt: skip
    if isinstance(exc, HostKeyNotRecorded):
        return TransportError(f"{where}: {exc}")
    if isinstance(exc, paramiko.AuthenticationException):
        return TransportError(f"{where}: Permission denied ({exc})")
    if not isinstance(exc, TimeoutError | paramiko.SSHException | OSError | EOFError):
        return exc
    # paramiko reports a wait it gave up (the banner, the key exchange) as its own error: past the
    # deadline, whatever it says, the host used up its budget.
    if time.monotonic() >= deadline:
        return DeadlineExceeded()
    if isinstance(exc, TimeoutError):
        return TransportError(f"{where}: no answer within {connect_timeout:g} s")
    if isinstance(exc, paramiko.SSHException) and str(exc).startswith(HANDSHAKE_UNFINISHED):
        # Which of the two paramiko says depends on which of its threads gives up first.
        return TransportError(f"{where}: no SSH banner and key exchange within {connect_timeout:g} s")
    if isinstance(exc, paramiko.SSHException):
        return TransportError(f"{where}: {exc}")
    return TransportError(f"{where}: {getattr(exc, 'strerror', None) or exc}")


# paramiko's words for a server that accepted the connection but never finished the handshake.
HANDSHAKE_UNFINISHED = ("Error reading SSH protocol banner", "No existing session")


def run_paramiko(target: Target, command: str, connect_timeout: float, deadline: float, max_output: int) -> CommandResult:
    client = paramiko_login(target, connect_timeout, deadline)
    # The command's own wait is bounded the same way: at the deadline the connection is closed under it.
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), client.close)
    watchdog.daemon = True
    watchdog.start()
    try:
        transport = client.get_transport()
        if transport is None or not transport.is_active():
            raise TransportError("the host closed the connection after the login")
        channel = transport.open_session(timeout=min(connect_timeout, remaining(deadline)))
        count_round_trip(target.name, "command", "inprocess")
        channel.exec_command(command)
        stdout, truncated = read_channel(channel, deadline, max_output, stderr=False)
        if truncated:  # no use waiting for the rest, nor for an exit status: the session is closed below
            return CommandResult(-1, stdout, b"", True)
        stderr, _ = read_channel(channel, deadline, STDERR_LIMIT, stderr=True)
        if not channel.status_event.wait(timeout=remaining(deadline)):
            raise DeadlineExceeded
        return CommandResult(channel.recv_exit_status(), stdout, stderr, truncated)
    except (TransportError, DeadlineExceeded):
        raise
    except BaseException as exc:
        raise paramiko_error(exc, inprocess_settings(target), connect_timeout, deadline) from None
    finally:
        watchdog.cancel()
        client.close()


def read_channel(channel: Any, deadline: float, limit: int, stderr: bool) -> tuple[bytes, bool]:
    """One stream of the channel until EOF, or its first limit + 1 bytes (True: there was more)."""
    data = bytearray()
    receive = channel.recv_stderr if stderr else channel.recv
    while True:
        channel.settimeout(remaining(deadline))
        chunk = receive(READ_CHUNK)
        if not chunk:
            return bytes(data), False
        data += chunk
        if len(data) > limit:
            return _first_bytes(data, limit + 1), True


def _first_bytes(data: bytearray, size: int) -> bytes:
    """data's first `size` bytes as one copy (a slice of the bytearray would be a second)."""
    with memoryview(data) as view:
        return bytes(view[:size])


# --- host keys ----------------------------------------------------------------------------------------
HOST_KEY_FAILED = "Host key verification failed."
_SERVER_KEY_RE = re.compile(r"^debug1: Server host key: (\S+) (SHA256:[A-Za-z0-9+/]+)", re.MULTILINE)
_OFFENDING_RE = re.compile(r"^Offending (\S+) key in (\S+):(\d+)", re.MULTILINE)
_KEY_FILES = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa", "rsa-sha2-256": "rsa", "rsa-sha2-512": "rsa", "ssh-dss": "dsa"}
_record_lock = threading.Lock()


class UnknownHostKey(Exception):
    """The host offered a key that no known_hosts file lists, and nothing says to trust it."""

    def __init__(self, key_type: str, fingerprint: str) -> None:
        super().__init__(key_type, fingerprint)
        self.key_type = key_type
        self.fingerprint = fingerprint


class HostKeyNotRecorded(Exception):
    """accept-new could not record the new key: not trusted, since no later run could tell it changed."""


def _host_file(key_type: str) -> str:
    kind = _KEY_FILES.get(key_type, "ecdsa" if key_type.startswith("ecdsa") else key_type.removeprefix("ssh-"))
    return f"/etc/ssh/ssh_host_{kind}_key.pub"


def _host_label(hostname: str, port: int) -> str:
    return hostname if port == SSH_PORT else f"[{hostname}]:{port}"


def unknown_key_message(hostname: str, port: int, key_type: str, fingerprint: str) -> str:
    """The refusal of a key no known_hosts file lists: the host, the key offered, and what to do."""
    return (
        f"host key verification failed: {hostname} port {port} offered an {key_type} key {fingerprint}, which no "
        f"known_hosts file lists; refused, since anyone on the path could answer with it. Compare it with the host's "
        f"own key (on the host: ssh-keygen -lf {_host_file(key_type)}), then add that key to known_hosts "
        f"(a line '{_host_label(hostname, port)} {key_type} <base64 key>'), or let certaudit record the key it is "
        f"offered with StrictHostKeyChecking=accept-new"
    )


def changed_key_message(hostname: str, port: int, key_type: str, fingerprint: str, known: str) -> str:
    """The refusal of a key that differs from the one known_hosts lists."""
    return (
        f"host key verification failed: {hostname} port {port} offered an {key_type} key {fingerprint}, but "
        f"known_hosts lists {known} for it; refused: the host was reinstalled or someone else answers in its place. "
        f"Compare the offered key with the host's own (on the host: ssh-keygen -lf {_host_file(key_type)}); if "
        f"they match, remove the old key (ssh-keygen -R '{_host_label(hostname, port)}') and add the new one"
    )


def _missing_key_policy(settings: ParamikoSettings) -> Any:
    """What the in-process client does with a key no known_hosts file lists: refuse it (yes), record
    it in the user's known_hosts as OpenSSH does (accept-new), or take it (no)."""
    import paramiko

    class Decide(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            if settings.host_keys == "no":
                return
            if settings.host_keys == "yes":
                raise UnknownHostKey(key.get_name(), key.fingerprint)
            if settings.record_to is not None:  # UserKnownHostsFile /dev/null: OpenSSH records nowhere
                name = paramiko.HostKeys.hash_host(hostname) if settings.hash_names else hostname
                record_host_key(settings.record_to, f"{name} {key.get_name()} {key.get_base64()}\n")

    return Decide()


def record_host_key(path: str, line: str) -> None:
    """Append one known_hosts line (one O_APPEND write, under a lock: hosts are probed concurrently)."""
    try:
        with _record_lock:
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
    except OSError as exc:
        raise HostKeyNotRecorded(
            f"StrictHostKeyChecking=accept-new cannot record the new host key in {path}: {exc.strerror or exc}; refused"
        ) from None


def openssh_host_key_refusal(target: Target, connect_timeout: float, deadline: float, stderr: str) -> str:
    """ssh refused the host's key: the same refusal, naming the key it was offered.

    ssh names the offered key only in its debug output: the same connection is made once more with
    -v (it stops at the same refusal, before any login; within the host's own deadline) to read it.
    """
    argv = openssh_argv(target, "true", connect_timeout)
    argv.insert(argv.index("--"), "-v")  # after the inventory's options: a -q among them would silence it
    try:
        diagnosis = run_process(argv, deadline, STDERR_LIMIT).stderr.decode("utf-8", "replace")
    except (TransportError, DeadlineExceeded):
        diagnosis = ""
    text = f"{stderr}\n{diagnosis}"
    offered = _SERVER_KEY_RE.search(diagnosis)
    hostname, port = _ssh_peer(diagnosis, target.address)
    if offered is None:
        return (
            f"host key verification failed: ssh refused the key {hostname} offered ({' '.join(stderr.split())[:300]}). "
            f"Compare it with the host's own key and add that to known_hosts, or set StrictHostKeyChecking=accept-new"
        )
    key_type, fingerprint = offered.groups()
    offending = _OFFENDING_RE.search(text)
    if offending is not None or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        known = f"another {offending.group(1)} key (at {offending.group(2)}:{offending.group(3)})" if offending else "another key"
        return changed_key_message(hostname, port, key_type, fingerprint, known)
    return unknown_key_message(hostname, port, key_type, fingerprint)


def _ssh_peer(debug: str, address: str) -> tuple[str, int]:
    """The host name and port ssh connected to (its ssh_config may name another than the inventory)."""
    found = re.search(r"^debug1: Connecting to (\S+) \[[^\]]*\] port (\d+)\.", debug, re.MULTILINE)
    return (found.group(1), int(found.group(2))) if found else (address, SSH_PORT)
