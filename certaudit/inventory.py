"""Ansible-format inventories: which hosts to audit, how to reach them, and each one's policy.

The inventory is read with `ansible-inventory --list` (as testinfra does), so group_vars, host_vars
and every inventory format Ansible knows work. Connection values are validated and quoted here:
testinfra's own Ansible bridge passes `ansible_ssh_common_args` to a shell unquoted, so certaudit
makes every connection itself (certaudit/gather/transport.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from certaudit.errors import InventoryError
from certaudit.policy import Policy, PolicyError, policy_for
from certaudit.redact import value_error

CONNECTIONS = {"ssh": "ssh", "smart": "ssh", "paramiko": "paramiko", "paramiko_ssh": "paramiko", "local": "local"}
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$")
USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Whatever the inventory says, a stalled connection must not hold the audit: keepalives end it.
SSH_BOUNDS = ("-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2", "-o", "BatchMode=yes")
MAX_ANSIBLE_CFG = 1024 * 1024  # an ansible.cfg is read this far at most


@dataclass(frozen=True)
class Target:
    """One host to audit: its inventory name, how to reach it, its policy and groups."""

    name: str
    address: str
    connection: str  # ssh, paramiko or local
    policy: Policy
    groups: tuple[str, ...] = ()
    spec: str = ""
    connect_kwargs: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict, repr=False)
    host_key_checking: bool = True  # Ansible's host_key_checking: False trusts any host key (see host_key_checking)


@dataclass(frozen=True)
class Inventory:
    path: str
    targets: tuple[Target, ...]

    def __iter__(self) -> Iterator[Target]:
        return iter(self.targets)


def _bad(host: str, variable: str, value: Any, why: str) -> InventoryError:
    return InventoryError(value_error(host, variable, value, why))


def _address(host: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(host, "ansible_host", value, "expected a host name or IP address")
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    # A leading "-" would be read by ssh as an option (-oProxyCommand=...): never a host name.
    if not HOSTNAME_RE.fullmatch(value):
        raise _bad(host, "ansible_host", value, "expected a host name (letters, digits, '.', '-', '_') or an IP address")
    return value


# ssh(1)'s options that take an argument (its getopt string "B:b:c:D:E:e:F:I:i:J:L:l:m:O:o:P:p:Q:R:S:W:w:").
SSH_OPTIONS_WITH_ARGUMENT = frozenset("BbcDEeFIiJLlmOoPpQRSWw")


def _not_an_option(words: list[str]) -> str | None:
    """Why these words are not ssh options only, or None. A word that is neither an option nor an
    option's argument is read by ssh as the host to connect to, and the words after it as the
    command to run there: ssh args must never choose the host or the command."""
    i = 0
    while i < len(words):
        word = words[i]
        shown = repr(word) if len(word) <= 60 else repr(word[:57]) + "..."
        if word in ("-", "--"):
            return f"{shown} would end ssh's options, and the next word choose the host"
        if not word.startswith("-"):
            return f"ssh would read {shown} as the host to connect to"
        for at, letter in enumerate(word[1:], start=1):
            if letter in SSH_OPTIONS_WITH_ARGUMENT:
                if at == len(word) - 1:  # the argument is the next word
                    i += 1
                    if i == len(words):
                        return f"ssh option {word} lacks its argument"
                break
        i += 1
    return None


def _ssh_args(host: str, variables: Mapping[str, Any]) -> str:
    tokens: list[str] = []
    for name in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        value = variables.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or CONTROL_CHARS.search(value):
            raise _bad(host, name, value, "expected ssh options on one line")
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise _bad(host, name, value, f"not valid shell-style words ({exc})") from None
        stray = _not_an_option(words)
        if stray is not None:
            raise _bad(host, name, value, f"{stray}: only ssh options may be given here")
        tokens += words
    # Quoted word by word: the values reach ssh as arguments, never as shell syntax.
    return shlex.join([*tokens, *SSH_BOUNDS])


def target_for(name: str, variables: Mapping[str, Any], groups: tuple[str, ...] = ()) -> Target:
    """Validate one inventory host and turn it into a Target; raises InventoryError naming the value."""
    if not HOSTNAME_RE.fullmatch(name) and not _is_ip(name):
        raise _bad(name, "inventory host name", name, "expected letters, digits, '.', '-', '_'")
    try:
        policy = policy_for(name, variables, groups)
    except PolicyError as exc:
        raise InventoryError(str(exc)) from None
    connection_name = variables.get("ansible_connection", "ssh")
    if not isinstance(connection_name, str) or connection_name not in CONNECTIONS:
        raise _bad(name, "ansible_connection", connection_name, f"certaudit connects with {', '.join(sorted(CONNECTIONS))}")
    connection = CONNECTIONS[str(connection_name)]
    address = _address(name, variables.get("ansible_host", name))
    if connection == "local":
        return Target(name, address, "local", policy, groups, "local://", {}, dict(variables))
    user = variables.get("ansible_user")
    if user is not None and (not isinstance(user, str) or not USER_RE.fullmatch(user)):
        raise _bad(name, "ansible_user", user, "expected a user name")
    port = variables.get("ansible_port")
    if port is not None and (isinstance(port, bool) or not str(port).isdigit() or not 0 < int(port) < 65536):
        raise _bad(name, "ansible_port", port, "expected a TCP port from 1 to 65535")
    for password in ("ansible_password", "ansible_ssh_pass"):
        if password in variables:
            raise _bad(name, password, "", "password logins are not supported; use an ssh key")
    kwargs: dict[str, Any] = {"controlpersist": 0}
    key_variable = "ansible_ssh_private_key_file" if variables.get("ansible_ssh_private_key_file") else "ansible_private_key_file"
    key = variables.get(key_variable)
    if key is not None:
        if not isinstance(key, str) or CONTROL_CHARS.search(key):
            raise _bad(name, key_variable, key, "expected a path")
        kwargs["ssh_identity_file"] = os.path.expanduser(key)
    if variables.get("ansible_become") in (True, "true", "True", "yes", 1):
        kwargs["sudo"] = True
        become_user = variables.get("ansible_become_user")
        if become_user is not None:
            if not isinstance(become_user, str) or not USER_RE.fullmatch(become_user):
                raise _bad(name, "ansible_become_user", become_user, "expected a user name")
            kwargs["sudo_user"] = become_user
    # The in-process client applies the ssh arguments as OpenSSH would, for a `paramiko` connection too
    # (StrictHostKeyChecking among them): they must be as safe there.
    kwargs["ssh_extra_args"] = _ssh_args(name, variables)
    host_part = f"[{address}]" if _is_ip(address) and ":" in address else address
    spec = f"{connection}://{user + '@' if user else ''}{host_part}{':' + str(port) if port else ''}"
    checking = host_key_checking(name, variables, connection)
    return Target(name, address, connection, policy, groups, spec, kwargs, dict(variables), checking)


# Ansible's host_key_checking, where Ansible reads it for each connection plugin (the last one set in
# each list wins, as in Ansible's config manager): variables, then environment, then ansible.cfg.
_CHECKING_VARS = {
    "ssh": ("ansible_host_key_checking", "ansible_ssh_host_key_checking"),
    "paramiko": ("ansible_host_key_checking", "ansible_ssh_host_key_checking", "ansible_paramiko_host_key_checking"),
}
_CHECKING_ENV = {
    "ssh": ("ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_SSH_HOST_KEY_CHECKING"),
    "paramiko": ("ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_SSH_HOST_KEY_CHECKING", "ANSIBLE_PARAMIKO_HOST_KEY_CHECKING"),
}
_CHECKING_INI = {"ssh": ("defaults", "ssh_connection"), "paramiko": ("defaults", "paramiko_connection")}
_TRUE = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE = frozenset({"n", "no", "off", "0", "false", "f"})


def host_key_checking(host: str, variables: Mapping[str, Any], connection: str) -> bool:
    """Ansible's host_key_checking for this host (default True). A value that is not a boolean stops
    the run: Ansible would read it as False, silently turning the check off."""
    found: tuple[str, Any] | None = None
    for name in _CHECKING_VARS[connection]:
        if variables.get(name) is not None:
            found = (name, variables[name])
    if found is None:
        for name in _CHECKING_ENV[connection]:
            if os.environ.get(name) is not None:
                found = (f"environment variable {name}", os.environ[name])
    if found is None:
        found = _checking_in_ansible_cfg(connection)
    if found is None:
        return True
    source, value = found
    word = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _bad(host, source, value, "expected true or false")


def _checking_in_ansible_cfg(connection: str) -> tuple[str, Any] | None:
    """host_key_checking from the ansible.cfg Ansible would read (ANSIBLE_CONFIG, ./ansible.cfg unless the
    directory is world-writable, ~/.ansible.cfg, /etc/ansible/ansible.cfg: the first that exists)."""
    import configparser
    import stat

    candidates = []
    if "ANSIBLE_CONFIG" in os.environ:
        path = Path(os.path.expanduser(os.environ["ANSIBLE_CONFIG"]))
        candidates.append(path / "ansible.cfg" if path.is_dir() else path)
    with contextlib.suppress(OSError):
        if not os.stat(os.getcwd()).st_mode & stat.S_IWOTH:
            candidates.append(Path.cwd() / "ansible.cfg")
    candidates += [Path(os.path.expanduser("~/.ansible.cfg")), Path("/etc/ansible/ansible.cfg")]
    for path in candidates:
        if not (path.is_file() and os.access(path, os.R_OK)):
            continue
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
        try:
            with path.open(encoding="utf-8", errors="replace") as text:
                parser.read_string(text.read(MAX_ANSIBLE_CFG + 1)[:MAX_ANSIBLE_CFG])
        except configparser.Error as exc:
            raise InventoryError(f"{path}: cannot read it as Ansible does: {' '.join(str(exc).split())[:200]}") from None
        found = None
        for section in _CHECKING_INI[connection]:
            if parser.has_option(section, "host_key_checking"):
                found = (f"{path} [{section}] host_key_checking", parser.get(section, "host_key_checking"))
        return found
    return None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _groups_of(data: Mapping[str, Any]) -> dict[str, set[str]]:
    membership: dict[str, set[str]] = {}

    def walk(group: str, seen: tuple[str, ...]) -> None:
        if group in seen:
            return
        node = data.get(group) or {}
        for host in node.get("hosts", []):
            membership.setdefault(host, set()).add(group)
        for child in node.get("children", []):
            walk(child, (*seen, group))
            for groups in membership.values():
                if child in groups:
                    groups.add(group)

    walk("all", ())
    return membership


def _ansible_inventory() -> str:
    """ansible-inventory from the same environment as certaudit, so an unactivated venv works."""
    beside = Path(sys.executable).parent / "ansible-inventory"
    return str(beside) if beside.exists() else "ansible-inventory"


def load_inventory(path: str, limit: Iterator[str] | None = None) -> Inventory:
    """Read an inventory with ansible-inventory and validate every host before any is touched."""
    if not os.path.exists(path):
        raise InventoryError(f"inventory {path} does not exist")
    try:
        done = subprocess.run(
            [_ansible_inventory(), "-i", path, "--list"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, ANSIBLE_VERBOSITY="0", ANSIBLE_NOCOLOR="1", ANSIBLE_INVENTORY_UNPARSED_FAILED="1"),
        )
    except FileNotFoundError:
        raise InventoryError("ansible-inventory is not installed (pip install ansible-core)") from None
    except subprocess.TimeoutExpired:
        raise InventoryError(f"ansible-inventory did not read {path} within 120 s") from None
    if done.returncode != 0:
        message = " ".join(done.stderr.split())[:500]
        raise InventoryError(f"ansible-inventory could not read {path}: {message}")
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"ansible-inventory gave unreadable output for {path}: {exc}") from None
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    membership = _groups_of(data)
    names = sorted(membership)
    if limit is not None:
        wanted = set(limit)
        unknown = wanted - set(names)
        if unknown:
            raise InventoryError(f"inventory {path} has no host named {', '.join(sorted(unknown))}")
        names = [n for n in names if n in wanted]
    if not names:
        raise InventoryError(f"inventory {path} lists no hosts")
    targets = tuple(target_for(name, hostvars.get(name) or {}, tuple(sorted(membership[name] - {"all"}))) for name in names)
    return Inventory(path, targets)


def targets_from_specs(specs: list[str], ssh_config: str | None = None, ssh_identity_file: str | None = None) -> Inventory:
    """testinfra's --hosts (ssh://user@host, local://...), each with the default policy.

    testinfra's --ssh-config and --ssh-identity-file apply to them, as they do in testinfra.
    """
    targets = []
    for spec in specs:
        scheme, sep, rest = spec.partition("://")
        if not sep:
            scheme, rest = "ssh", spec
        variables: dict[str, Any] = {"ansible_connection": scheme}
        if scheme != "local":
            user, at, hostport = rest.rpartition("@")
            host, colon, port = hostport.partition(":")
            variables["ansible_host"] = host
            if at:
                variables["ansible_user"] = user
            if colon:
                variables["ansible_port"] = port
            name = host
        else:
            name = "localhost"
        target = target_for(name, variables)
        if scheme != "local":
            extra = {"ssh_config": ssh_config, "ssh_identity_file": ssh_identity_file}
            target = replace(target, connect_kwargs={**target.connect_kwargs, **{k: v for k, v in extra.items() if v}})
        targets.append(target)
    return Inventory("--hosts", tuple(targets))
