"""Benchmark (on demand, not part of the tests): the cost of one host's snapshot on this machine.

    .venv/bin/python bench/probe_local.py [ROUNDS]

Prints the probe's wall time (min / median / max over ROUNDS) and the size of its answer, for the
local connection, which is the floor under any remote host's cost.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from certaudit.gather.probe import probe_command, probe_host
from certaudit.inventory import target_for


def main(rounds: int) -> None:
    target = target_for("localhost", {"ansible_connection": "local"})
    timings = []
    size = 0
    for _ in range(rounds):
        start = time.perf_counter()
        document = probe_host(target, connect_timeout=10)
        timings.append(time.perf_counter() - start)
        size = len(json.dumps(document))
    print(f"probe (local connection), {rounds} rounds")
    print(
        f"  wall time   min {min(timings) * 1000:7.1f} ms   median {statistics.median(timings) * 1000:7.1f} ms"
        f"   max {max(timings) * 1000:7.1f} ms"
    )
    print(f"  command     {len(probe_command(target))} bytes, 1 round trip")
    print(f"  answer      {size} bytes of JSON")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
