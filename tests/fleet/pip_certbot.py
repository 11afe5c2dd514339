"""certbot installed by pip into a virtualenv, as the EFF's instructions do (`python3 -m venv
/opt/certbot && /opt/certbot/bin/pip install certbot`), built once on the auditing machine and cached.

The test hosts have no network: the virtualenv is made here, with this machine's python3 (3.11,
the same as bookworm's, so the compiled wheels match), for the path it will have on the host, and
laid into the host's overlay. Only `bin/certbot`'s first line names the path, so one build serves
every prefix (/opt/certbot, the snap stand-in's /snap/certbot/<revision>).
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.fleet import image

VERSION = "4.1.1"
# acme is pinned with it: certbot 4.1.1 accepts any acme>=4.1.1, and acme 5 dropped what it uses.
REQUIREMENTS = (f"certbot=={VERSION}", f"acme=={VERSION}")
PYTHON = "/usr/bin/python3"  # bookworm's path and minor version: the host's venv links to it
STAGE_PREFIX = "/opt/certbot"


def _build(target: Path, log: Path) -> None:
    with log.open("ab") as out:
        for argv in (
            [PYTHON, "-m", "venv", "--without-pip", str(target)],
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(target / "bin" / "python"),
                "install",
                "-q",
                "--no-compile",
                *REQUIREMENTS,
            ],
        ):
            out.write(("\n$ " + " ".join(argv) + "\n").encode())
            out.flush()
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
            if done.returncode != 0:
                raise image.ImageBuildError(f"{argv[0]} exited {done.returncode}; see {log}")


def built_venv() -> Path:
    """The cached virtualenv's directory (built under a lock, renamed into place when complete)."""
    root = image.cache_root()
    venv = root / f"pip-certbot-{VERSION}"
    if (venv / ".certaudit-complete").exists():
        return venv
    root.mkdir(parents=True, exist_ok=True)
    with (root / "pip-certbot.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".certaudit-complete").exists():
            return venv
        building = root / f"{venv.name}.building"
        shutil.rmtree(building, ignore_errors=True)
        log = root / f"{venv.name}.log"
        log.write_text(f"building {venv.name} at {time.ctime()}\n")
        _build(building, log)
        _point_scripts(building, str(building / "bin" / "python"), f"{STAGE_PREFIX}/bin/python")
        (building / ".certaudit-complete").write_text(time.ctime() + "\n")
        shutil.rmtree(venv, ignore_errors=True)
        building.rename(venv)
    return venv


def _point_scripts(venv: Path, old: str, new: str) -> None:
    """Rewrite the `#!` line of the venv's scripts from one interpreter path to another."""
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!" + old.encode() + b"\n"):
            script.write_bytes(b"#!" + new.encode() + data[2 + len(old) :])


def lay_venv(root: Path, prefix: str) -> None:
    """Copy the virtualenv to `prefix` in a host's filesystem, its scripts pointing at `prefix`."""
    target = root / prefix.lstrip("/")
    shutil.copytree(built_venv(), target, symlinks=True, ignore=shutil.ignore_patterns(".certaudit-complete", "__pycache__"))
    _point_scripts(target, f"{STAGE_PREFIX}/bin/python", f"{prefix}/bin/python")
