"""Benchmark (on demand, not part of `make test`): how fast the pre-deploy gate decides, for 1 and 20 hosts.

    sudo CERTAUDIT_FLEET_ID=4 /tmp/v/bin/python -m bench.bench_gate [--sizes 1,20] [--rounds 5]

Boots its own fleet (tests/fleet, compliant-like hosts with generated certificates, no ACME server)
under this CERTAUDIT_FLEET_ID, on the addresses 127.<77+id>.4.100 and up, so use an id no test run
holds at the same time. For each size it times, start to exit and as a deploy pipeline runs it, the
gate (`pytest checks --gate`, what `make gate` runs) and, for scale, the full audit of the same
hosts; each ROUNDS times, and prints min, median and max wall time and the exit status.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.fleet.fleet import Fleet, fleet_id
from tests.fleet.scenario import Scenario

REPO = Path(__file__).resolve().parent.parent
GATE_ARGS = ("--gate", "-q", "--no-header", "--tb=no", "-rN")


def hosts(count: int) -> list[Scenario]:
    return [
        Scenario(f"gate-{i:02d}", f"127.77.4.{100 + i}", "compliant host for the gate bench", audited=False) for i in range(count)
    ]


def timed(argv: list[str], rounds: int) -> tuple[list[float], set[int]]:
    times, codes = [], set()
    for _ in range(rounds):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
        codes.add(done.returncode)
        if done.returncode not in (0, 1):
            sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return times, codes


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,20", help="comma-separated fleet sizes (default: 1,20)")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each command (default: 5)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the bench boots systemd-nspawn hosts and needs root", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    fleet = Fleet(hosts(max(sizes)), pebble=False)
    rows = []
    try:
        fleet.up()
        for size in sizes:
            inventory = fleet.write_inventory(fleet.root / f"bench-{size}.yml", hosts=[f"gate-{i:02d}" for i in range(size)])
            base = [sys.executable, "-m", "pytest", "checks", "--inventory", str(inventory), "-p", "no:cacheprovider"]
            for label, argv in (("gate", [*base, *GATE_ARGS]), ("full audit", [*base, "-q", "--tb=no"])):
                times, codes = timed(argv, args.rounds)
                rows.append((size, label, times, codes))
    finally:
        fleet.down()
    print(f"certaudit gate bench, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, fleet id {fleet_id()}")
    print(f"machine: {machine()}")
    print(f"{'hosts':>5}  {'command':<11} {'rounds':>6}  {'min s':>6}  {'median s':>8}  {'max s':>6}  exit")
    for size, label, times, codes in rows:
        print(
            f"{size:>5}  {label:<11} {len(times):>6}  {min(times):6.2f}  {statistics.median(times):8.2f}  {max(times):6.2f}"
            f"  {','.join(str(c) for c in sorted(codes))}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
