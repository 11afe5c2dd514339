"""Benchmark (on demand, not part of `make test`): what one host's audit makes the host spend, part by part.

    sudo CERTAUDIT_FLEET_ID=4 .venv/bin/python -m bench.bench_probe_cost [--rounds 20] [--compare-tree /work/main]

Boots one compliant-like bench host (the same as bench_fleet's) under this CERTAUDIT_FLEET_ID and runs,
ROUNDS times each, the parts of a host's audit, over the same in-process ssh client the audit uses:
a login with an empty command (sshd's share), python3's start as the probe runs it, each command the
probe starts (openssl, systemctl, journalctl), the whole probe, and the TLS exchange (handshake,
chain, GET /metrics) with the stand-in service. For each it prints the CPU the host's cgroup spent
(cpu.stat, less the host's idle rate measured beforehand) and the wall time, per round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from bench.bench_fleet import bench_scenarios, load_average, machine
from certaudit.gather.probe import MAX_OUTPUT, encode_script, probe_argv, probe_host
from certaudit.gather.tls import fetch_leaf
from certaudit.gather.transport import run_command
from certaudit.inventory import Target, load_inventory
from tests.fleet import image
from tests.fleet.fleet import Fleet, fleet_id
from tests.fleet.machine import cgroup_dirs


def host_cpu_s(fleet: Fleet, name: str) -> float:
    total = 0
    for directory in cgroup_dirs(fleet.cgroup_group, name):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in (directory / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    total += int(line.split()[1])
    return total / 1e6


def remote(target: Target, argv: list[str]) -> Callable[[], object]:
    def run() -> None:
        result = run_command(target, argv, 10.0, time.monotonic() + 60, MAX_OUTPUT)
        if result.rc != 0:
            sys.exit(f"{shlex.join(argv)[:200]} exited {result.rc}: {result.stderr[-500:]!r}")

    return run


def probe_from(target: Target, script: Path) -> list[str]:
    """The probe's argv with another remote_probe.py (e.g. main's), to compare two probes on the same host."""
    argv = probe_argv(target)
    argv[5:7] = encode_script(script.read_text())  # its source, and its code for a host with this python's magic
    return argv


def probe_of_tree(tree: Path, inventory: Path) -> list[str]:
    """The whole probe argv another checkout (e.g. /work/main) sends this host: its loader, its script
    in its encodings, its parameters; computed by that checkout's own code in a child python."""
    script = (
        "import json, sys\nsys.path.insert(0, sys.argv[1])\n"
        "from certaudit.gather.probe import probe_argv\nfrom certaudit.inventory import load_inventory\n"
        "(target,) = load_inventory(sys.argv[2]).targets\nprint(json.dumps(probe_argv(target)))"
    )
    done = subprocess.run([sys.executable, "-I", "-c", script, str(tree), str(inventory)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{tree}: cannot compute its probe: {done.stderr.strip()[-500:]}")
    argv: list[str] = json.loads(done.stdout)
    return argv


def parts(target: Target) -> list[tuple[str, Callable[[], object]]]:
    policy = target.policy
    tls_key = f"{policy.tls_dir}/key.pem"
    service = policy.service + ".service"
    since = f"@{int(time.time() - 90 * 86400)}"
    probe = probe_argv(target)
    return [
        ("ssh login, empty command (`true`)", remote(target, ["true"])),
        ("python3 -I -S -c pass", remote(target, ["python3", "-I", "-S", "-c", "pass"])),
        ("python3 -I -S, the probe's imports", remote(target, [*probe[:3], "-c", IMPORTS])),
        ("openssl pkey -pubout (one key)", remote(target, ["openssl", "pkey", "-in", tls_key, "-pubout", "-passin", "pass:"])),
        ("systemctl show (4 units)", remote(target, ["systemctl", "show", "--timestamp=unix", "-p", "Id", "--",
                                                      "certbot.timer", "certbot.service", "cron.service", service])),
        ("journalctl -o json -u SERVICE", remote(target, ["journalctl", "--no-pager", "-q", "-o", "json", "-u", service,
                                                          "--since", since])),
        ("TLS: handshake, chain, GET /metrics", lambda: fetch_leaf(target.address, policy.endpoint_port, policy.domain, 10.0)),
        ("the whole probe", lambda: probe_host(target, 10.0)),
    ]  # fmt: skip


IMPORTS = "import _json,_signal,binascii,errno,grp,marshal,os,pwd,select,stat,sys,time,zlib"  # the probe's, and its loader's


def measure(
    fleet: Fleet, name: str, runs: list[Callable[[], object]], rounds: int, idle_rate: float
) -> list[tuple[float, float]]:
    """Median host CPU and wall time of one run of each callable; with several, they take turns
    (A, B, A, B, ...), so a change of the machine's load weighs on each alike."""
    for run in runs:
        run()  # warm: page cache, sshd's first-login work
    cpu: list[list[float]] = [[] for _ in runs]
    wall: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for index, run in enumerate(runs):
            before, start = host_cpu_s(fleet, name), time.monotonic()
            run()
            took = time.monotonic() - start
            cpu[index].append(host_cpu_s(fleet, name) - before - idle_rate * took)
            wall[index].append(took)
    return [(statistics.median(c), statistics.median(w)) for c, w in zip(cpu, wall, strict=True)]


def answer_size(target: Target) -> None:
    """Whether compressing the probe's answer would pay: its size, and what zlib costs to squeeze it
    (timed here, on the auditing machine, as a stand-in for the host's python3)."""
    data = json.dumps(probe_host(target, 10.0)).encode()
    start = time.process_time()
    for _ in range(20):
        packed = zlib.compress(data, 6)
    took = (time.process_time() - start) / 20
    print(f"  the probe's answer: {len(data)} bytes of JSON; zlib -6: {len(packed)} bytes in {took * 1000:.1f} ms of CPU")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=20, help="runs of each part (default: 20)")
    other = parser.add_mutually_exclusive_group()
    other.add_argument("--compare", type=Path, help="another remote_probe.py to measure beside this one (e.g. main's)")
    other.add_argument(
        "--compare-tree",
        type=Path,
        help="another checkout (e.g. /work/main) whose whole probe, loader too, to measure beside this one",
    )
    args = parser.parse_args()
    root = image.cache_root() / f"bench-{fleet_id()}-probe-cost"
    fleet = Fleet(bench_scenarios(1), root=root, pebble=False)
    try:
        fleet.up()
        name = sorted(fleet.hosts)[0]
        inventory_path = fleet.write_inventory(root / "inventory-cost.yml", hosts=[name])
        inventory = load_inventory(str(inventory_path))
        (target,) = inventory.targets
        time.sleep(2)
        idle_start, t0 = host_cpu_s(fleet, name), time.monotonic()
        time.sleep(3)
        idle_rate = (host_cpu_s(fleet, name) - idle_start) / (time.monotonic() - t0)
        measured = parts(target)
        compare = args.compare or args.compare_tree
        if args.compare:  # this probe and the other, taking turns
            measured.append(("the whole probe | " + str(args.compare), remote(target, probe_from(target, args.compare))))
        elif args.compare_tree:
            measured.append(
                ("the whole probe | " + str(args.compare_tree), remote(target, probe_of_tree(args.compare_tree, inventory_path)))
            )
        for label, run in measured[:-2] if compare else measured:
            ((cpu, wall),) = measure(fleet, name, [run], args.rounds, idle_rate)
            print(f"  {label:<40} host CPU {cpu * 1000:6.1f} ms   wall {wall * 1000:6.1f} ms", flush=True)
        if compare:
            for (label, _), (cpu, wall) in zip(
                measured[-2:], measure(fleet, name, [r for _, r in measured[-2:]], args.rounds, idle_rate), strict=True
            ):
                print(f"  {label:<40} host CPU {cpu * 1000:6.1f} ms   wall {wall * 1000:6.1f} ms", flush=True)
        answer_size(target)
    finally:
        fleet.down()
    print(f"\nhost CPU and wall time of one run (median of {args.rounds}); the host's idle rate subtracted")
    print(f"({idle_rate * 1000:.1f} ms a second)")
    print(f"load: {load_average()}")
    print(f"machine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
