"""Benchmark (on demand, not part of `make test`): how fast the pre-deploy gate decides, for 1 and 20 hosts.

    sudo CERTAUDIT_FLEET_ID=4 .venv/bin/python -m bench.bench_gate [--sizes 1,20] [--rounds 5]

Boots its own fleet (tests/fleet, compliant-like hosts with generated certificates, no ACME server)
under this CERTAUDIT_FLEET_ID, on the addresses 127.<77+id>.4.100 and up, so use an id no test run
holds at the same time. For each size it times, start to exit and as a deploy pipeline runs it, the
gate (`pytest checks --gate`, what `make gate` runs) and, for scale, the full audit of the same
hosts; each ROUNDS times, and prints min, median and max wall time, the median CPU of the process
and its children (user + system: steadier than wall time on a shared machine) and the exit status.
It also times the gate's start alone (`--collect-only`: Python, pytest, plugins, the inventory) and
the import time of its modules (`python -X importtime`, the top-level imports summed), and says whether
the inventory was read without ansible-inventory. Runs as `make gate` would: bytecode cached
(PYTHONDONTWRITEBYTECODE unset) and without hypothesis's pytest plugin (not in an audit's venv).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from certaudit.inventory import static_listing
from tests.fleet.fleet import Fleet, fleet_id
from tests.fleet.scenario import Scenario

REPO = Path(__file__).resolve().parent.parent
# As `make gate` runs it, with the Makefile's GATE_PLUGINS besides (makefile_plugins).
GATE_ARGS = ("--gate", "-q", "--no-header", "--tb=no", "-rN")


def hosts(count: int) -> list[Scenario]:
    return [
        Scenario(f"gate-{i:02d}", f"127.77.4.{100 + i}", "compliant host for the gate bench", audited=False) for i in range(count)
    ]


def bench_env(repo: Path = REPO) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(repo))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users' machines cache bytecode; this sandbox does not
    return env


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(
    argv: list[str], rounds: int, ok: tuple[int, ...] = (0, 1), repo: Path = REPO
) -> tuple[list[float], list[float], set[int]]:
    times, cpu, codes = [], [], set()
    for _ in range(rounds):
        start, spent = time.perf_counter(), children_cpu_s()
        done = subprocess.run(
            argv, cwd=repo, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, env=bench_env(repo)
        )
        times.append(time.perf_counter() - start)
        cpu.append(children_cpu_s() - spent)
        codes.add(done.returncode)
        if done.returncode not in ok:
            sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return times, cpu, codes


def joined(turns: list[tuple[list[float], list[float], set[int]]]) -> tuple[list[float], list[float], set[int]]:
    """Single rounds of timed() as one: their times, CPU times and exit statuses together."""
    return [t for turn in turns for t in turn[0]], [c for turn in turns for c in turn[1]], {s for turn in turns for s in turn[2]}


def import_seconds(argv: list[str]) -> float:
    """The top-level imports of one gate start, summed from `python -X importtime` (-s: pytest would capture it)."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:], "-s"], cwd=REPO, capture_output=True, text=True, check=False, env=bench_env()
    )
    rows = re.findall(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", done.stderr, re.MULTILINE)
    return sum(int(cumulative) for cumulative, name in rows if not name.startswith(" ")) / 1e6


def makefile_plugins(repo: Path) -> list[str]:
    makefile = (repo / "Makefile").read_text()
    found = re.search(r"^GATE_PLUGINS \?= (.*)$", makefile, re.MULTILINE)
    return found.group(1).split() if found else []


def plugin_args() -> list[str]:
    return ["-p", "no:hypothesispytest"] if importlib.util.find_spec("_hypothesis_pytestplugin") else []


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
    parser.add_argument(
        "--compare",
        type=Path,
        help="another checkout (e.g. main's worktree) whose gate is timed as it runs it, taking turns with this one",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the bench boots systemd-nspawn hosts and needs root", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    fleet = Fleet(hosts(max(sizes)), pebble=False)
    rows: list[tuple[int, str, list[float], list[float], set[int]]] = []
    imports: list[tuple[int, float]] = []
    static: list[tuple[int, bool]] = []
    try:
        fleet.up()
        for size in sizes:
            inventory = fleet.write_inventory(fleet.root / f"bench-{size}.yml", hosts=[f"gate-{i:02d}" for i in range(size)])
            base = [
                sys.executable,
                "-m",
                "pytest",
                "checks",
                "--inventory",
                str(inventory),
                "-p",
                "no:cacheprovider",
                *plugin_args(),
            ]
            gate_argv = [*base, *GATE_ARGS, *makefile_plugins(REPO)]
            start = [*gate_argv, "--collect-only"]
            if args.compare:
                # The other checkout's gate (with the arguments its own Makefile gives) and this one take
                # turns, round by round: a change of the machine's load weighs on both alike.
                other = [*base, *GATE_ARGS, *makefile_plugins(args.compare)]
                pairs = [(timed(gate_argv, 1, (0, 1)), timed(other, 1, (0, 1), args.compare)) for _ in range(args.rounds)]
                for label, turns in (("gate", [p[0] for p in pairs]), ("gate, other", [p[1] for p in pairs])):
                    rows.append((size, label, *joined(turns)))
            else:
                rows.append((size, "gate", *timed(gate_argv, args.rounds, (0, 1))))
            for label, argv, ok in (
                ("gate start", start, (0, 1, 2, 5)),  # --collect-only: no verdict, whatever the status says
                ("full audit", [*base, "-q", "--tb=no"], (0, 1)),
            ):
                times, cpu, codes = timed(argv, args.rounds, ok)
                rows.append((size, label, times, cpu, codes))
            imports.append((size, statistics.median(import_seconds(start) for _ in range(args.rounds))))
            static.append((size, static_listing(inventory) is not None))
    finally:
        fleet.down()
    print(f"certaudit gate bench, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, fleet id {fleet_id()}")
    print(f"machine: {machine()}")
    print(f"load: {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f} / {os.getloadavg()[2]:.2f} (1/5/15 min)")
    print(f"{'hosts':>5}  {'command':<11} {'rounds':>6}  {'min s':>6}  {'median s':>8}  {'max s':>6}  {'cpu s':>6}  exit")
    for size, label, times, cpu, codes in rows:
        print(
            f"{size:>5}  {label:<11} {len(times):>6}  {min(times):6.2f}  {statistics.median(times):8.2f}  {max(times):6.2f}"
            f"  {statistics.median(cpu):6.2f}  {','.join(str(c) for c in sorted(codes))}"
        )
    for (size, seconds), (_, read_here) in zip(imports, static, strict=True):
        how = "read here (no ansible-inventory)" if read_here else "read by ansible-inventory"
        print(f"{size:>5}  imports of the gate's start (median, -X importtime): {seconds:.2f} s; inventory {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
