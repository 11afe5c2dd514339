"""The test fleet: a real ACME CA (pebble) and scenario hosts booted under systemd-nspawn.

`Fleet.up()` takes a lock, sweeps what a crashed earlier run may have left, ensures the cached base
image, starts pebble, lays out and boots the hosts in parallel, runs their after-boot steps (real
certbot issuance) and writes an Ansible inventory for them. `Fleet.down()` always leaves nothing
behind: no container, cgroup, mount or process. Phase timings are kept for the test run's summary.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import yaml

from tests.fleet import image, machine, pki
from tests.fleet.scenario import Scenario, after_boot_commands, layout

PEBBLE_ADDRESS = "127.0.0.1"
PEBBLE_PORT = 14000
READY_TIMEOUT_S = 90.0
INOTIFY_INSTANCES = 8192
SSH_OPTIONS = (
    "-F",
    "/dev/null",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
)


class FleetError(RuntimeError):
    pass


def fleet_id() -> int:
    """CERTAUDIT_FLEET_ID=N (0-9) lets N fleets run side by side: own directory, addresses and pebble port."""
    value = os.environ.get("CERTAUDIT_FLEET_ID", "0")
    if not value.isdigit() or int(value) > 9:
        raise FleetError(f"CERTAUDIT_FLEET_ID={value!r}: expected a digit")
    return int(value)


def fleet_address(address: str) -> str:
    """A scenario's address (127.77.x.y) as this fleet uses it (127.<77+id>.x.y)."""
    octets = address.split(".")
    if octets[:2] != ["127", "77"]:
        raise FleetError(f"scenario address {address} is not in 127.77.0.0/16")
    return ".".join(["127", str(77 + fleet_id()), *octets[2:]])


def default_root() -> Path:
    suffix = f"-{fleet_id()}" if fleet_id() else ""
    return image.cache_root() / f"run{suffix}"


@dataclass
class Host:
    scenario: Scenario
    machine: machine.Machine | None

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def address(self) -> str:
        return self.scenario.address


@dataclass
class Fleet:
    scenarios: list[Scenario]
    root: Path = field(default_factory=default_root)
    pebble: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    _lock: IO[str] | None = field(default=None, repr=False)
    _pebble: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.scenarios = [replace(s, address=fleet_address(s.address)) for s in self.scenarios]
        self.pebble_port = PEBBLE_PORT + 10 * fleet_id()

    @property
    def acme_directory(self) -> str:
        return f"https://{PEBBLE_ADDRESS}:{self.pebble_port}/dir"

    # --- paths -------------------------------------------------------------------------------
    @property
    def cgroup_group(self) -> str:
        return f"certaudit-{self.root.name}"

    @property
    def key_path(self) -> Path:
        return image.cache_root() / "keys" / "id_ed25519"

    @property
    def ssh_config_path(self) -> Path:
        """For clients that read an ssh_config rather than options (paramiko): the test hosts' keys are new each run."""
        return self.key_path.parent / "ssh_config"

    @property
    def inventory_path(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def pebble_ca_path(self) -> Path:
        return self.root / "pebble" / "ca.pem"

    @property
    def pebble_issuer_path(self) -> Path:
        return self.root / "pebble" / "issuer-roots.pem"

    def ssh_argv(self, address: str, command: str, connect_timeout: int = 5) -> list[str]:
        return [
            "ssh",
            *SSH_OPTIONS,
            "-i",
            str(self.key_path),
            "-o",
            f"ConnectTimeout={connect_timeout}",
            f"root@{address}",
            command,
        ]

    def ssh(self, name: str, command: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command on a fleet host as root (test harness only)."""
        done = subprocess.run(
            self.ssh_argv(self.hosts[name].address, command),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and done.returncode != 0:
            raise FleetError(f"{name}: `{command}` exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}")
        return done

    # --- lifecycle ---------------------------------------------------------------------------
    def up(self) -> None:
        self._take_lock()
        sweep(self.root, self.cgroup_group)
        self._prepare_machine()
        with self._timed("base images"):
            bases, built = self._ensure_images()
        self.timings["base images built"] = float(built)
        if self.pebble:
            with self._timed("pebble"):
                self._start_pebble()
        with self._timed("layout"):
            self._layout_all(bases)
        booted = [h for h in self.hosts.values() if h.machine is not None]
        with self._timed(f"boot of {len(booted)} hosts"):
            for host in booted:
                assert host.machine is not None
                host.machine.start()
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(self._wait_ready, booted))
        with self._timed("after-boot steps"), ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self._after_boot, booted))
        self.write_inventory(self.inventory_path)

    def down(self) -> None:
        with self._timed("teardown"):
            running = [h.machine for h in self.hosts.values() if h.machine is not None]
            with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
                list(pool.map(lambda m: m.stop(), running))
            self._stop_pebble()
            sweep(self.root, self.cgroup_group)
        self._release_lock()

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.timings[phase] = time.monotonic() - start

    def _take_lock(self) -> None:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.root.with_name(self.root.name + ".lock")
        lock = lock_path.open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise FleetError(f"another test run holds {lock_path}; wait for it to finish") from None
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _prepare_machine(self) -> None:
        # Every booted host holds several inotify instances; the default of 128 runs out at ~15 hosts.
        knob = Path("/proc/sys/fs/inotify/max_user_instances")
        with contextlib.suppress(OSError, ValueError):
            if int(knob.read_text()) < INOTIFY_INSTANCES:
                knob.write_text(str(INOTIFY_INSTANCES))
        self.key_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.key_path.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "certaudit-fleet", "-f", str(self.key_path)],
                check=True,
                capture_output=True,
            )
        self.ssh_config_path.write_text(
            f"Host 127.*\n  User root\n  IdentityFile {self.key_path}\n  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        )

    def _start_pebble(self) -> None:
        directory = self.root / "pebble"
        directory.mkdir(parents=True, exist_ok=True)
        cert, key, ca = pki.server_identity(PEBBLE_ADDRESS)
        (directory / "cert.pem").write_bytes(cert)
        (directory / "key.pem").write_bytes(key)
        self.pebble_ca_path.write_bytes(ca)
        config = {
            "pebble": {
                "listenAddress": f"{PEBBLE_ADDRESS}:{self.pebble_port}",
                "managementListenAddress": f"{PEBBLE_ADDRESS}:{self.pebble_port + 1}",
                "certificate": str(directory / "cert.pem"),
                "privateKey": str(directory / "key.pem"),
                "httpPort": 5002,
                "tlsPort": 5001,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (directory / "config.json").write_text(json.dumps(config))
        env = dict(os.environ, PEBBLE_VA_ALWAYS_VALID="1", PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        with (directory / "pebble.log").open("wb") as log:
            self._pebble = subprocess.Popen(
                ["pebble", "-config", str(directory / "config.json")],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (directory / "pid").write_text(f"{self._pebble.pid}\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._pebble.poll() is not None:
                raise FleetError(f"pebble exited {self._pebble.returncode}: {(directory / 'pebble.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection((PEBBLE_ADDRESS, self.pebble_port), timeout=0.5):
                break
            time.sleep(0.1)
        else:
            raise FleetError("pebble did not listen within 20 s")

    def _stop_pebble(self) -> None:
        if self._pebble is not None and self._pebble.poll() is None:
            self._pebble.send_signal(signal.SIGTERM)
            try:
                self._pebble.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._pebble.kill()
                self._pebble.wait()
        self._pebble = None

    def _ensure_images(self) -> tuple[dict[str, Path], int]:
        """The image of every suite a booted scenario uses (only those are built), and how many were built."""
        suites = sorted({s.image for s in self.scenarios if s.booted})
        for name in suites:
            image.suite(name)  # an unknown suite fails here, before any build
        bases, built = {}, 0
        for name in suites:
            bases[name], fresh = image.ensure_image(name)
            built += fresh
        return bases, built

    def _layout_all(self, bases: dict[str, Path]) -> None:
        authorized_key = self.key_path.with_suffix(".pub").read_text()
        pebble_ca = self.pebble_ca_path.read_bytes() if self.pebble else None
        for scenario in self.scenarios:
            if scenario.name in self.hosts:
                raise FleetError(f"two scenarios are named {scenario.name!r}")
            if not scenario.booted:
                self.hosts[scenario.name] = Host(scenario, None)
                continue
            directory = self.root / "hosts" / scenario.name
            base = bases[scenario.image]
            self.hosts[scenario.name] = Host(
                scenario, machine.Machine(scenario.name, scenario.address, base, directory, self.cgroup_group)
            )

        def lay(host: Host) -> None:
            assert host.machine is not None
            d = host.machine.directory
            with machine.mounted_overlay(host.machine.base, d / "upper", d / "work", d / "root") as root:
                layout(host.scenario, root, authorized_key, pebble_ca)
            shutil.rmtree(d / "work", ignore_errors=True)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lay, [h for h in self.hosts.values() if h.machine is not None]))

    def _wait_ready(self, host: Host) -> None:
        assert host.machine is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        argv = self.ssh_argv(host.address, "systemctl is-system-running --wait; systemctl is-active stemedb-api", 2)
        while time.monotonic() < deadline:
            if not host.machine.alive():
                raise FleetError(f"{host.name}: systemd-nspawn exited\n{host.machine.console_tail()}")
            done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, timeout=60)
            if done.returncode != 255:
                state, _, service = done.stdout.strip().partition("\n")
                if state in ("running", "degraded") and (service.strip() == "active" or not host.scenario.service_starts):
                    return
                failed = self.ssh(host.name, "systemctl --failed --no-legend; journalctl -u stemedb-api -n 20", check=False)
                raise FleetError(f"{host.name}: system {state!r}, stemedb-api {service!r}\n{failed.stdout}")
            time.sleep(0.1)
        raise FleetError(f"{host.name}: not reachable over ssh within {READY_TIMEOUT_S} s\n{host.machine.console_tail()}")

    def _after_boot(self, host: Host) -> None:
        for command in after_boot_commands(host.scenario, self.acme_directory):
            self.ssh(host.name, command, timeout=180)

    # --- inventory ---------------------------------------------------------------------------
    def write_inventory(self, path: Path, hosts: list[str] | None = None, extra_vars: dict[str, Any] | None = None) -> Path:
        """An Ansible inventory for (some of) the fleet's hosts, with each scenario's certaudit_* variables."""
        names = hosts if hosts is not None else list(self.hosts)
        inventory = {
            "all": {
                "vars": {
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(self.key_path),
                    "ansible_ssh_common_args": " ".join(SSH_OPTIONS),
                    **(extra_vars or {}),
                },
                "hosts": {
                    name: {"ansible_host": self.hosts[name].address, **self.hosts[name].scenario.inventory_vars} for name in names
                },
            }
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(inventory, sort_keys=False))
        return path


def sweep(root: Path, cgroup_group: str) -> None:
    """Remove what any run left under `root`: containers, cgroups, mounts, pebble, host directories."""
    with contextlib.suppress(OSError, ValueError):
        pid = int((root / "pebble" / "pid").read_text())
        # Only the pebble this harness started: its command line names our config file.
        if str(root / "pebble" / "config.json").encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)
    for name in machine.leftover_cgroups(cgroup_group):
        machine.kill_cgroup(cgroup_group, name)
        for d in machine.cgroup_dirs(cgroup_group, name):
            machine.remove_cgroup_tree(d)
    machine.remove_group_root(cgroup_group)
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(root) + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
