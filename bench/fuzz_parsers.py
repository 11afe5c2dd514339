"""Fuzz run (on demand, not part of `make test`): every parser of host content, at scale.

    .venv/bin/python -m bench.fuzz_parsers [--examples N] [--only SUBSTRING]

Drives the properties of tests/unit/test_properties_parsers.py (renewal conf, interval syntax,
crontab, PEM bundles, unit state, deploy hooks, the probe's answer) with hypothesis, N cases each
(default 10000) instead of the test suite's 200, and prints how many cases each ran. A property
that fails prints hypothesis' smallest failing case and the run exits 1. Nothing is written: no
example database.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.unit.test_properties_parsers import TARGETS, Target


def run(target: Target, examples: int) -> int:
    """Run one property for `examples` cases; return how many cases really ran."""
    count = 0

    def counted(check: Callable[[Any], None]) -> Callable[[Any], None]:
        def call(value: Any) -> None:
            nonlocal count
            count += 1
            check(value)

        return call

    fuzz = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )(given(target.strategy)(counted(target.check)))
    fuzz()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="cases per parser (default: 10000)")
    parser.add_argument("--only", default="", help="run only the parsers whose name contains this text")
    args = parser.parse_args(argv)
    warnings.simplefilter("error")  # as in the audit and the suite (pyproject's filterwarnings = error)
    total = 0
    failed = []
    start = time.monotonic()
    for target in TARGETS:
        if args.only not in target.name:
            continue
        began = time.monotonic()
        try:
            count = run(target, args.examples)
        except Exception as exc:  # the property's failure, with hypothesis' smallest example
            print(f"FAIL {target.name}: {type(exc).__name__}: {exc}", flush=True)
            failed.append(target.name)
            continue
        total += count
        print(f"ok   {target.name}: {count} cases in {time.monotonic() - began:.1f} s", flush=True)
    print(f"fuzz: {total} cases over {len(TARGETS)} parsers in {time.monotonic() - start:.1f} s, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
