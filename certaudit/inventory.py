"""Ansible-format inventories: which hosts to audit, how to reach them, and each one's policy.

The inventory is read with `ansible-inventory --list` (as testinfra does), so group_vars, host_vars
and every inventory format Ansible knows work; a plain static YAML file, the common case, is read here
to the same result without Ansible's start-up cost (static_listing). Connection values are validated and quoted here:
testinfra's own Ansible bridge passes `ansible_ssh_common_args` to a shell unquoted, so certaudit
makes every connection itself (certaudit/gather/transport.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
import re
import selectors
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from certaudit.errors import InventoryError
from certaudit.policy import Policy, PolicyError, policy_for, port_number
from certaudit.readers import ReadError, check_yaml, shown_text
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
    # Every host of the inventory file, before --limit and --shard: a domain's fleet (FLT-*) is all of them.
    whole: tuple[Target, ...] = ()

    @property
    def every_host(self) -> tuple[Target, ...]:
        return self.whole or self.targets

    def __iter__(self) -> Iterator[Target]:
        return iter(self.targets)


def _bad(host: str, variable: str, value: Any, why: str) -> InventoryError:
    # The host name is inventory text too: a newline or 100,000 characters in it stay out of the message.
    return InventoryError(value_error(shown_text(host, 80), variable, value, why))


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
    if port is not None and port_number(port) is None:
        raise _bad(name, "ansible_port", port, "expected a TCP port from 1 to 65535")
    if port is not None:
        port = port_number(port)
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


def _ansible_cfg_candidates() -> list[Path]:
    """Where Ansible looks for its ansible.cfg, in its order: ANSIBLE_CONFIG, ./ansible.cfg unless the
    directory is world-writable, ~/.ansible.cfg, /etc/ansible/ansible.cfg (the first that exists wins)."""
    candidates = []
    if "ANSIBLE_CONFIG" in os.environ:
        path = Path(os.path.expanduser(os.environ["ANSIBLE_CONFIG"]))
        candidates.append(path / "ansible.cfg" if path.is_dir() else path)
    with contextlib.suppress(OSError):
        if not os.stat(os.getcwd()).st_mode & stat.S_IWOTH:
            candidates.append(Path.cwd() / "ansible.cfg")
    return [*candidates, Path(os.path.expanduser("~/.ansible.cfg")), Path("/etc/ansible/ansible.cfg")]


def _checking_in_ansible_cfg(connection: str) -> tuple[str, Any] | None:
    """host_key_checking from the ansible.cfg Ansible would read (see _ansible_cfg_candidates)."""
    for path in _ansible_cfg_candidates():
        if not (path.is_file() and os.access(path, os.R_OK)):
            continue
        import configparser  # here: most audits' machines have no ansible.cfg, and every start asks

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


# Bounds on what the inventory may be. Ansible parses the inventory itself, so certaudit checks
# each file it will read (kind, size, YAML alias expansion) before handing it over, and bounds
# ansible-inventory's time and output: an inventory script or plugin may still do anything else.
INVENTORY_TIMEOUT_S = 120
MAX_INVENTORY_FILE_BYTES = 16 * 1024 * 1024
MAX_INVENTORY_FILES = 10_000
MAX_INVENTORY_OUTPUT_BYTES = 256 * 1024 * 1024
_STDERR_KEPT = 64 * 1024


def _inventory_files(path: Path) -> list[Path]:
    """The files Ansible reads for this inventory: the file itself (or every file below the
    directory), and the group_vars/ and host_vars/ beside it."""
    roots = [path]
    if not path.is_dir():
        roots += [p for p in (path.parent / "group_vars", path.parent / "host_vars") if p.exists()]
    files: list[Path] = []
    for root in roots:
        if not root.is_dir():
            files.append(root)
            continue
        for directory, _subdirs, names in os.walk(root):
            files += [Path(directory) / n for n in sorted(names)]
            if len(files) > MAX_INVENTORY_FILES:
                raise InventoryError(
                    f"inventory {shown_text(str(path), 300)}: more than {MAX_INVENTORY_FILES} files to read, "
                    "more than a real inventory holds"
                )
    return files


def check_inventory_files(path: Path) -> None:
    """Refuse, before Ansible reads it, an inventory file that is not a regular file (a FIFO would
    block ansible-inventory), is too large, or whose YAML aliases expand past the bound."""
    for file in _inventory_files(path):
        try:
            # An INI inventory or a script is not YAML: Ansible's YAML parser refuses it too, and it has no alias.
            check_yaml(file, MAX_INVENTORY_FILE_BYTES, yaml_only=False)
        except ReadError as exc:
            raise InventoryError(f"inventory {exc}") from None


def _run_bounded(argv: list[str], timeout: float, limit: int) -> tuple[int, bytes, bytes]:
    """(status, stdout, the start of stderr) of argv, killed (with everything it started) when it
    runs past `timeout` or writes more than `limit` bytes: an inventory script's child holding
    the pipe open cannot make the wait endless either."""
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, killed whole
        env=dict(os.environ, ANSIBLE_VERBOSITY="0", ANSIBLE_NOCOLOR="1", ANSIBLE_INVENTORY_UNPARSED_FAILED="1"),
    )
    assert process.stdout is not None and process.stderr is not None
    out: list[bytes] = []
    err: list[bytes] = []
    sizes = {"out": 0, "err": 0}
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, "out")
    selector.register(process.stderr, selectors.EVENT_READ, "err")
    problem = ""
    try:
        while selector.get_map() and not problem:
            left = deadline - time.monotonic()
            if left <= 0:
                problem = f"did not finish within {timeout:g} s"
                break
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                sizes[key.data] += len(chunk)
                if key.data == "out":
                    out.append(chunk)
                    if sizes["out"] > limit:
                        problem = f"wrote more than {limit} bytes"
                elif sizes["err"] <= _STDERR_KEPT:
                    err.append(chunk)
        if problem:
            raise InventoryError(problem)
        try:
            status = process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise InventoryError(f"did not finish within {timeout:g} s") from None
    finally:
        selector.close()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()
        process.stderr.close()
    return status, b"".join(out), b"".join(err)[:_STDERR_KEPT]


def _ansible_list(path: str) -> Any:
    shown = shown_text(path, 300)
    try:
        status, stdout, stderr = _run_bounded(
            [_ansible_inventory(), "-i", path, "--list"], INVENTORY_TIMEOUT_S, MAX_INVENTORY_OUTPUT_BYTES
        )
    except FileNotFoundError:
        raise InventoryError("ansible-inventory is not installed (pip install ansible-core)") from None
    except InventoryError as exc:
        raise InventoryError(f"ansible-inventory reading {shown} {exc}") from None
    if status != 0:
        message = shown_text(" ".join(stderr.decode("utf-8", "replace").split()), 500)
        raise InventoryError(f"ansible-inventory could not read {shown}: {message}")
    try:
        return json.loads(stdout)
    except (ValueError, RecursionError) as exc:
        raise InventoryError(f"ansible-inventory gave unreadable output for {shown}: {shown_text(str(exc), 200)}") from None


# --- Static YAML inventories, read here -------------------------------------------------------------
# ansible-inventory costs about 0.6 s of start-up, more than the gate's whole budget for one host. An
# inventory that is one plain YAML file (groups, children, hosts, vars; no host ranges, ports, tags,
# templates, plugins, group_vars/host_vars, ansible.cfg or ANSIBLE_* settings that could change how
# Ansible reads it) means exactly what this reader makes of it: it builds the document
# `ansible-inventory --list` prints, with Ansible's rules (tests/unit/test_static_inventory.py checks
# both against each other). Anything else, or any doubt, goes to ansible-inventory.
STATIC_SUFFIXES = (".yml", ".yaml")
STATIC_GROUP_KEYS = frozenset({"vars", "children", "hosts"})
STATIC_GROUP_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# No `[a:b]` range, no `:port`: Ansible expands those, this reader does not.
STATIC_HOST_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
TEMPLATE_MARKERS = ("{{", "{%", "{#")


class _NeedsAnsible(Exception):
    """This inventory is not one the static reader is sure to read as Ansible does."""


def _plain_value(value: Any, depth: int = 0) -> None:
    """Accept only what YAML gives Ansible and JSON gives back unchanged: no dates, bytes or templates."""
    if depth > 50:
        raise _NeedsAnsible("nested too deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise _NeedsAnsible("a float that JSON cannot hold")
    if value is None or isinstance(value, (bool, int, float)):
        return
    if isinstance(value, str):
        if any(marker in value for marker in TEMPLATE_MARKERS):
            raise _NeedsAnsible("a template")
        return
    if isinstance(value, list):
        for item in value:
            _plain_value(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NeedsAnsible("a key that is not a string")
            _plain_value(key, depth + 1)
            _plain_value(item, depth + 1)
        return
    raise _NeedsAnsible(f"a {type(value).__name__} value")


def _variables(variables: dict[str, Any]) -> None:
    """Inventory variables: plain values under names Ansible keeps accepting (ansible-core 2.19
    deprecates any other name, to be refused from 2.23)."""
    for name in variables:
        if not isinstance(name, str) or not STATIC_GROUP_RE.fullmatch(name):
            raise _NeedsAnsible(f"variable name {name!r}")
    _plain_value(variables)


@dataclass
class _Group:
    vars: dict[str, Any] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    parents: set[str] = field(default_factory=set)


class _StaticReader:
    """Ansible's YAML inventory plugin and its reconcile step, for the plain documents it accepts."""

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {"all": _Group(), "ungrouped": _Group(parents={"all"})}
        self.groups["all"].children.append("ungrouped")
        self.host_vars: dict[str, dict[str, Any]] = {}

    def group(self, name: Any) -> _Group:
        if not isinstance(name, str) or not STATIC_GROUP_RE.fullmatch(name) or name == "ungrouped":
            raise _NeedsAnsible(f"group name {name!r}")
        return self.groups.setdefault(name, _Group())

    def parse_group(self, name: str, spec: Any) -> None:
        group = self.group(name)
        if spec is None:
            return
        if not isinstance(spec, dict) or set(spec) - STATIC_GROUP_KEYS:
            raise _NeedsAnsible(f"group {name!r} is not vars, children and hosts only")
        for key, section in spec.items():  # in the document's order, as Ansible reads them
            if section is None:
                continue
            if not isinstance(section, dict):
                raise _NeedsAnsible(f"{key} of group {name!r} is not a mapping")
            if key == "vars":
                _variables(section)
                group.vars.update(section)
            elif key == "children":
                for child, child_spec in section.items():
                    if child == "all":
                        raise _NeedsAnsible("`all` as a child group")
                    self.parse_group(child, child_spec)
                    self.add_child(name, child)
            else:
                for host, variables in section.items():
                    self.add_host(name, host, variables)

    def add_child(self, parent: str, child: str) -> None:
        if child == parent or child in self.ancestors(parent):
            raise _NeedsAnsible(f"group {child!r} under itself")
        if child not in self.groups[parent].children:
            self.groups[parent].children.append(child)
        self.groups[child].parents.add(parent)

    def add_host(self, group: str, host: Any, variables: Any) -> None:
        if not isinstance(host, str) or not STATIC_HOST_RE.fullmatch(host) or host in self.groups:
            raise _NeedsAnsible(f"host name {host!r}")
        if variables is not None and not isinstance(variables, dict):
            raise _NeedsAnsible(f"vars of host {host!r} are not a mapping")
        _variables(variables or {})
        if group not in self.groups or host not in self.groups[group].hosts:
            self.groups[group].hosts.append(host)
        self.host_vars.setdefault(host, {}).update(variables or {})

    def ancestors(self, name: str) -> set[str]:
        found: set[str] = set()
        todo = [name]
        while todo:
            for parent in self.groups[todo.pop()].parents:
                if parent not in found:
                    found.add(parent)
                    todo.append(parent)
        return found

    def depth(self, name: str, memo: dict[str, int]) -> int:
        """Ansible's group depth: the longest path from `all`."""
        if name not in memo:
            parents = self.groups[name].parents
            memo[name] = 0 if not parents else 1 + max(self.depth(p, memo) for p in parents)
        return memo[name]

    def listing(self) -> dict[str, Any]:
        """What `ansible-inventory --list` prints for this inventory (hostvars merged as Ansible merges them)."""
        if set(self.host_vars) & set(self.groups):
            raise _NeedsAnsible("a host and a group of the same name")
        for name, group in self.groups.items():  # reconcile: a group without parent belongs to all
            if name != "all" and not group.parents:
                self.add_child("all", name)
        all_hosts = set(self.groups["all"].hosts)
        self.groups["all"].hosts = []
        in_groups = {h for name, g in self.groups.items() if name != "all" for h in g.hosts}
        self.groups["ungrouped"].hosts = sorted(all_hosts - in_groups, key=list(self.host_vars).index)
        memo: dict[str, int] = {}
        hostvars: dict[str, dict[str, Any]] = {}
        for host, own in self.host_vars.items():
            direct = [name for name, g in self.groups.items() if host in g.hosts] or ["all"]
            mine = {"all"} | set(direct) | {a for d in direct for a in self.ancestors(d)}
            merged: dict[str, Any] = {}
            for name in sorted(mine, key=lambda n: (self.depth(n, memo), n)):
                merged.update(self.groups[name].vars)
            hostvars[host] = {**merged, **own}
        if any("ansible_group_priority" in g.vars for g in self.groups.values()):
            raise _NeedsAnsible("ansible_group_priority orders the groups")
        listing: dict[str, Any] = {"_meta": {"hostvars": hostvars}}
        for name, group in self.groups.items():
            entry = {k: v for k, v in (("children", group.children), ("hosts", group.hosts)) if v}
            listing[name] = entry
        return listing


def _static_suitable(path: Path) -> bool:
    """Whether nothing beside the file's text could change what Ansible makes of it."""
    if path.suffix not in STATIC_SUFFIXES or any(name.startswith("ANSIBLE_") for name in os.environ):
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o111:  # an executable file is an inventory script to Ansible
        return False
    if any(os.path.lexists(path.parent / d) for d in ("group_vars", "host_vars")):
        return False
    return not any(os.path.lexists(c) for c in _ansible_cfg_candidates())


def static_listing(path: Path) -> dict[str, Any] | None:
    """The `ansible-inventory --list` document of a plain static YAML inventory, read here; None
    when only Ansible itself can be trusted to read it."""
    if not _static_suitable(path):
        return None
    try:
        text = check_yaml(path, MAX_INVENTORY_FILE_BYTES, yaml_only=False)
        if text is None:
            return None
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 (a safe loader)
        if not isinstance(data, dict) or not data:
            return None
        reader = _StaticReader()
        for name, spec in data.items():
            reader.parse_group(name, spec)
        return reader.listing()
    except (_NeedsAnsible, ReadError, yaml.YAMLError, RecursionError):
        return None


def load_inventory(path: str, limit: Iterator[str] | None = None) -> Inventory:
    """Read an inventory with ansible-inventory and validate every host before any is touched."""
    shown = shown_text(path, 300)
    if not os.path.exists(path):
        raise InventoryError(f"inventory {shown} does not exist")
    check_inventory_files(Path(path))
    data = static_listing(Path(path))
    if data is None:
        data = _ansible_list(path)
    if not isinstance(data, dict):
        raise InventoryError(f"ansible-inventory gave unreadable output for {shown}: not a JSON object")
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    membership = _groups_of(data)
    names = sorted(membership)
    if limit is not None:
        wanted = set(limit)
        unknown = wanted - set(names)
        if unknown:
            listed = ", ".join(shown_text(n, 80) for n in sorted(unknown)[:5])
            more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
            raise InventoryError(f"inventory {shown} has no host named {listed}{more}")
        if not wanted:
            raise InventoryError(f"inventory {shown} lists no hosts")
    if not names:
        raise InventoryError(f"inventory {shown} lists no hosts")
    # Every host is read and checked, limited or not: the fleet controls judge a domain's hosts together.
    whole = tuple(target_for(name, hostvars.get(name) or {}, tuple(sorted(membership[name] - {"all"}))) for name in names)
    targets = whole if limit is None else tuple(t for t in whole if t.name in wanted)
    return Inventory(path, targets, whole)


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
