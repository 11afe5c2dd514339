"""The test hosts' base images: Debian with systemd, sshd, certbot and cron, one per suite, built once and cached.

Three suites, as a mixed fleet has them: bullseye (Debian 11, certbot 1.12), bookworm (12, certbot 2.1)
and trixie (13, certbot 4.0). An image is a plain directory used read-only as the lower layer of
every host's overlay; only the images some scenario uses are built. It is built under a temporary
name, under a per-image lock (fleets with different ids may build at once), and renamed when
complete, so an interrupted build is never reused. Its name carries a hash of its suite's recipe:
changing the recipe builds a new image of that suite.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SUITE = "bookworm"
BOOTSTRAP_PACKAGES = ("systemd", "systemd-sysv", "dbus", "ca-certificates")
# certbot cannot go through debootstrap's --include (it cannot resolve python3-cffi-backend-api-min),
# so stage two installs it with apt inside the new root.
# (The same names exist in bullseye and trixie: trixie keeps `cron` and `openssh-server` as real packages.)
APT_PACKAGES = ("openssh-server", "certbot", "cron", "python3", "openssl", "iproute2", "procps", "sudo")
# Units that would reach out to the network, or cost inotify instances that many hosts on one
# machine cannot afford (the kernel's default max_user_instances is 128).
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "console-getty.service",
    "getty@.service",
    "systemd-logind.service",
    "systemd-timesyncd.service",
)
SERVICE_USER = "stemedb"
RECIPE_VERSION = "3"


class ImageBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Suite:
    """One Debian release the fleet can boot, and the certbot its archive ships."""

    name: str
    release: str
    certbot: str
    bootstrap_packages: tuple[str, ...] = BOOTSTRAP_PACKAGES
    apt_packages: tuple[str, ...] = APT_PACKAGES


SUITES = {
    suite.name: suite
    for suite in (
        Suite("bullseye", "11", "1.12"),
        Suite(DEFAULT_SUITE, "12", "2.1"),
        Suite("trixie", "13", "4.0"),
    )
}


def suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise ImageBuildError(f"no image recipe for suite {name!r}; known: {', '.join(SUITES)}") from None


def recipe_digest(name: str = DEFAULT_SUITE) -> str:
    """The hash of a suite's recipe (for bookworm the same hash the single-image recipe had, so its cache stays valid)."""
    s = suite(name)
    recipe = repr((RECIPE_VERSION, s.name, s.bootstrap_packages, s.apt_packages, MASKED_UNITS, SERVICE_USER))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def cache_root() -> Path:
    base = os.environ.get("CERTAUDIT_FLEET_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "certaudit", "fleet"
    )
    return Path(base)


def debian_mirror(suite_name: str = DEFAULT_SUITE) -> str:
    """The Debian mirror this machine's own apt sources use."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.exists():
        match = re.search(r"^URIs:\s*(\S+)", deb822.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + re.escape(suite_name) + r"\s", legacy.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def _run(argv: list[str], log: Path) -> None:
    with log.open("ab") as out:
        out.write(("\n$ " + " ".join(argv) + "\n").encode())
        out.flush()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise ImageBuildError(f"{argv[0]} failed with exit {done.returncode}; last lines of {log}:\n" + "\n".join(tail))


def _customise(root: Path) -> None:
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    for wants in (root / "etc/systemd/system").glob("*.wants"):
        for unit in MASKED_UNITS:
            (wants / unit).unlink(missing_ok=True)
    (root / "etc/ssh/sshd_config.d/00-fleet.conf").write_text(
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UseDNS no\nMaxSessions 50\nMaxStartups 200:30:400\n"
    )
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # every host gets its own
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").chmod(0o644)
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)


def ensure_base_image() -> tuple[Path, bool]:
    """The default (bookworm) image; see ensure_image."""
    return ensure_image(DEFAULT_SUITE)


def image_path(suite_name: str) -> Path:
    return cache_root() / f"base-{suite_name}-{recipe_digest(suite_name)}"


def ensure_image(suite_name: str) -> tuple[Path, bool]:
    """Return the cached image of a suite, building it first if needed; the flag says whether it was built."""
    image = image_path(suite_name)
    if (image / ".certaudit-complete").exists():
        return image, False
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"base-{suite_name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another fleet may be building it right now: wait, then reuse
        if (image / ".certaudit-complete").exists():
            return image, False
        _build(suite(suite_name), image)
    for stale in root.glob(f"base-{suite_name}-*"):
        if stale != image and not stale.name.endswith((".log", ".lock")):
            shutil.rmtree(stale, ignore_errors=True)
    return image, True


def _build(s: Suite, image: Path) -> None:
    root = image.parent
    building = root / f"{image.name}.building"
    shutil.rmtree(building, ignore_errors=True)
    log = root / f"{image.name}.log"
    log.write_text(f"building {image.name} at {time.ctime()}\n")
    debs = root / "debs" / s.name  # per suite: debootstrap's cache must not mix releases' packages
    debs.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--cache-dir={debs}",
            "--include=" + ",".join(s.bootstrap_packages),
            s.name,
            str(building),
            debian_mirror(s.name),
        ],
        log,
    )
    shutil.copy("/etc/resolv.conf", building / "etc/resolv.conf")
    script = (
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && "
        "apt-get install -y -q --no-install-recommends " + " ".join(s.apt_packages) + " && "
        f"useradd --system --no-create-home --shell /usr/sbin/nologin {SERVICE_USER} && apt-get clean"
    )
    _run(["chroot", str(building), "/bin/sh", "-c", script], log)
    (building / "etc/resolv.conf").write_text("")
    _customise(building)
    (building / ".certaudit-complete").write_text(time.ctime() + "\n")
    shutil.rmtree(image, ignore_errors=True)
    building.rename(image)
