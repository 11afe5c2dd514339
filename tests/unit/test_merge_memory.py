"""`certaudit merge` and `certaudit verify` of a large run stay within a memory bound (issue 16).

Two shards of 500 hosts each, 17 results a host with observations of a real run's size, about as
much evidence as a 1,000-host audit writes (tens of megabytes). Each command runs in a child
process, and its peak resident memory is read from the kernel (its own VmHWM), not timed. A merge
that held the parts' documents (json.loads of every part, then the merged one dumped whole) needs
several times the evidence's size; the streaming merge holds one element at a time and an index.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from certaudit.evidence.manifest import write_manifest
from certaudit.jobs.shard import shard_index

REPO = Path(__file__).resolve().parents[2]
HOSTS = 1000
CONTROLS = [f"CTL-{i:02d}" for i in range(17)]
# The bound, over the interpreter with certaudit, cryptography and jsonschema imported: measured on
# 2026-11-29 as the child's own high-water mark, the streaming merge peaked at 77 MB on these parts
# and verify at 48 MB; the merge that held the documents needed several times the parts' 33 MB.
PEAK_MB = 150
PEM = "-----BEGIN CERTIFICATE-----\n" + ("MIIB" * 16 + "\n") * 14 + "-----END CERTIFICATE-----\n"


def result(host: str, control: str) -> dict[str, Any]:
    return {
        "control": control, "title": f"{control} title", "host": host, "outcome": "pass", "message": "",
        "observed": {"certificate": PEM, "subject": f"CN={host}", "days_left": 60.5, "lines": [f"line {i}" for i in range(20)]},
        "expected": {"min_days": 30}, "findings": [], "notes": ["a note of a real size, quoting a host's file line"],
        "fix": "renew it", "gate": False, "nodeid": f"checks/test_x.py::{control}[{host}]",
        "started": "2026-11-28T00:00:00+00:00", "duration_s": 0.01, "waiver": None,
    }  # fmt: skip


def snapshot(host: str) -> dict[str, Any]:
    files = {f"/etc/x/{i}": {"path": f"/etc/x/{i}", "content_sha256": "0" * 64, "content_size": 10} for i in range(30)}
    return {"probe_version": 1, "hostname": host, "time": 0.0, "systemd": True, "files": files, "listings": {},
            "public_keys": {}, "units": {"certbot.timer": {"ActiveState": "active"}}, "accounts": {}}  # fmt: skip


def part(directory: Path, hosts: list[str], index: int, count: int) -> Path:
    directory.mkdir()
    run = {
        "run_id": f"{index:032x}", "job": "nightly", "started": "2026-11-28T02:00:00+00:00",
        "finished": "2026-11-28T02:01:00+00:00", "operator": "ci@runner", "ci_job": None, "certaudit_version": "0.1.0",
        "certaudit_commit": None, "inventory": "inv.yml", "inventory_sha256": "a" * 64, "waivers_file": None,
        "hosts_expected": hosts, "hosts_reached": hosts, "policies": {}, "versions": {"pytest": "9"}, "exit_status": 0,
        "shard": {"index": index, "count": count, "inventory_hosts": HOSTS},
    }  # fmt: skip
    document = {
        "$schema": "https://certaudit.invalid/schema/evidence-v1.json", "schema_version": 1, "run": run,
        "results": [result(h, c) for h in hosts for c in CONTROLS], "unreachable": {},
        "waivers": {"file": None, "file_problem": None, "entries": [], "unused": []},
        "snapshots": {h: snapshot(h) for h in hosts},
    }  # fmt: skip
    (directory / "evidence.json").write_text(json.dumps(document, sort_keys=True))
    write_manifest(directory)
    return directory


# The child reports its own high-water mark as it exits. Not wait4's ru_maxrss: the kernel counts in
# it the memory the child shared with this process between fork and exec, so a test session grown
# large (a fleet's run) would be charged to the merge (338 MB measured so, for a 160 MB merge).
PEAK_REPORTER = """
import atexit, runpy, sys
def report():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    sys.stderr.write("certaudit-test-peak-kb=" + kb + "\\n")
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def peak_mb(module: str, *args: str) -> tuple[float, str]:
    """Run `python -m module args` in a child process; its own peak resident memory (MB) and its output."""
    argv = [sys.executable, "-c", PEAK_REPORTER, module, *args]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, stdin=subprocess.DEVNULL, check=False)
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    assert done.returncode == 0, output[-2000:]
    peaks = re.findall(r"certaudit-test-peak-kb=(\d+)", output)
    assert peaks, output[-2000:]
    return int(peaks[-1]) / 1024, output


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("parts")
    names = [f"host-{i:04d}" for i in range(HOSTS)]
    return [part(root / f"part-{k}", [n for n in names if shard_index(n, 2) == k], k, 2) for k in (1, 2)]


def test_merge_and_verify_of_a_thousand_hosts_stay_under_the_bound(parts: list[Path], tmp_path: Path) -> None:
    size_mb = sum((p / "evidence.json").stat().st_size for p in parts) / 1e6
    assert size_mb > 30, "the parts hold as much as a 1,000-host run's evidence (written compact)"
    out = tmp_path / "merged"
    merge_peak, output = peak_mb("certaudit.cli", "merge", *map(str, parts), "--out", str(out))
    assert f"{HOSTS} hosts, {HOSTS * len(CONTROLS)} results, exit status 0" in output
    verify_peak, output = peak_mb("certaudit.cli", "verify", str(out))
    assert merge_peak < PEAK_MB, f"merge of {size_mb:.0f} MB of evidence peaked at {merge_peak:.0f} MB"
    assert verify_peak < PEAK_MB, f"verify peaked at {verify_peak:.0f} MB"
    with (out / "evidence.json").open("rb") as merged:
        head = merged.read(4096)
    # Written as a run writes it (evidence/run.py): a result a line.
    assert head.startswith(b'{\n "$schema": "https://certaudit.invalid/schema/evidence-v1.json",\n "results": [\n  {"control": ')
