"""One test host: a systemd-nspawn container with real systemd as PID 1, booted over an overlay.

Each container gets its own cgroup subtree (without one, all containers share a cgroup and a
parallel shutdown hangs) and shares the machine's network, with sshd and the TLS service bound to
the host's own loopback address.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_HIERARCHIES = ("systemd", "unified")


class BootError(RuntimeError):
    pass


def cgroup_dirs(group: str, name: str) -> list[Path]:
    """The host's cgroup in each mounted hierarchy, under its fleet's own group."""
    dirs = []
    for hierarchy in CGROUP_HIERARCHIES:
        root = Path("/sys/fs/cgroup") / hierarchy
        if root.is_dir():
            dirs.append(root / group / name)
    return dirs


def remove_cgroup_tree(path: Path) -> None:
    """rmdir a cgroup directory bottom-up (cgroupfs has no recursive removal)."""
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


@contextlib.contextmanager
def mounted_overlay(base: Path, upper: Path, work: Path, target: Path) -> Iterator[Path]:
    """The host's filesystem as it will boot, for laying files out before the first boot."""
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={base},upperdir={upper},workdir={work}", str(target)],
        check=True,
        capture_output=True,
    )
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False, capture_output=True)


@dataclass
class Machine:
    name: str
    address: str
    base: Path
    directory: Path
    group: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def upper(self) -> Path:
        return self.directory / "upper"

    @property
    def log_path(self) -> Path:
        return self.directory / "console.log"

    def start(self) -> None:
        for d in cgroup_dirs(self.group, self.name):
            d.mkdir(parents=True, exist_ok=True)
        procs = " ".join(str(d / "cgroup.procs") for d in cgroup_dirs(self.group, self.name))
        # The shell moves itself into the host's cgroups, then becomes systemd-nspawn.
        script = f'for f in {procs}; do echo $$ > "$f"; done; exec "$@"'
        argv = [
            "/bin/sh",
            "-c",
            script,
            "nspawn",
            "systemd-nspawn",
            "-D",
            str(self.base),
            f"--overlay={self.base}:{self.upper}:/",
            "-M",
            self.name,
            "--register=no",
            "--keep-unit",
            "-b",
            "--console=passive",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM shuts the container down cleanly; a second SIGTERM, then SIGKILL, if it lingers."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                try:
                    proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.process = None
        kill_cgroup(self.group, self.name)
        for d in cgroup_dirs(self.group, self.name):
            remove_cgroup_tree(d)
        with contextlib.suppress(OSError):
            os.rmdir(f"/run/systemd/nspawn/propagate/{self.name}")

    def console_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no console log)"


def kill_cgroup(group: str, name: str) -> None:
    """SIGKILL whatever is still in a host's cgroup: nothing of a test host may outlive the run."""
    for d in cgroup_dirs(group, name):
        for procs in d.rglob("cgroup.procs") if d.is_dir() else ():
            try:
                pids = [int(p) for p in procs.read_text().split()]
            except OSError:
                continue
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        procs.read_text().strip() for d in cgroup_dirs(group, name) if d.is_dir() for procs in d.rglob("cgroup.procs")
    ):
        time.sleep(0.05)


def leftover_cgroups(group: str) -> list[str]:
    names: set[str] = set()
    for hierarchy in CGROUP_HIERARCHIES:
        root = Path("/sys/fs/cgroup") / hierarchy / group
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if p.is_dir())
    return sorted(names)


def remove_group_root(group: str) -> None:
    for hierarchy in CGROUP_HIERARCHIES:
        with contextlib.suppress(OSError):
            (Path("/sys/fs/cgroup") / hierarchy / group).rmdir()
