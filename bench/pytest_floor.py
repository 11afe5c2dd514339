"""Benchmark (on demand, no fleet, no root): what pytest itself costs a test that does nothing.

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m bench.pytest_floor [--tests 17000] [--rounds 3]

A 1,000-host audit is 17,000 pytest items (17 controls a host). This times, in a temporary
directory, a file of that many parametrised tests whose body is `pass`, run by this venv's pytest:

- pytest's own protocol (setup, call and teardown through their hooks and fixtures), without and
  with JUnit and pytest-html, the reports an audit writes;
- a protocol like certaudit's for its controls (certaudit/control_run.py): no fixture machinery and
  no setup/call/teardown hooks, the same makereport and logreport hooks for each phase, without and
  with JUnit and pytest-html.

Each figure is the CPU of the whole process (user + system, start and collection included), the
median of ROUNDS runs, and that CPU divided by the number of tests. Not a test: nothing asserts a
time. It shows the floor under an audit's CPU a host that no work of certaudit's can go below
while each control on each host is a pytest item (bench/README.md, "The per-item floor").
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TESTS = textwrap.dedent(
    """\
    import pytest

    @pytest.mark.parametrize("i", range({count}))
    def test_nothing(i):
        pass
    """
)
# The phases as control_run.run makes them: a CallInfo a phase, then makereport and logreport.
LIKE_CONTROL_RUN = textwrap.dedent(
    """\
    import pytest

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(item, nextitem):
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for when in ("setup", "call", "teardown"):
            action = (lambda: item.obj(**item.callspec.params)) if when == "call" else (lambda: None)
            call = pytest.CallInfo.from_call(action, when=when)
            report = ihook.pytest_runtest_makereport(item=item, call=call)
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True
    """
)
VARIANTS: list[tuple[str, bool, list[str]]] = [
    ("pytest's protocol", False, []),
    ("pytest's protocol, JUnit + pytest-html", False, ["--junitxml=junit.xml", "--html=report.html", "--self-contained-html"]),
    ("certaudit's protocol", True, []),
    ("certaudit's protocol, JUnit + pytest-html", True, ["--junitxml=junit.xml", "--html=report.html", "--self-contained-html"]),
]


def cpu_of(argv: list[str], cwd: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users' machines cache bytecode; this sandbox does not
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=17000, help="tests in the file (default: 17000, 1,000 hosts)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant; the median is kept (default: 3)")
    args = parser.parse_args()
    print(f"{args.tests} tests that do nothing, pytest from {sys.executable}, load {os.getloadavg()[0]:.2f}")
    print(f"{'variant':<45} {'CPU s':>7} {'ms a test':>10}")
    for label, like_control_run, extra in VARIANTS:
        with tempfile.TemporaryDirectory(prefix="certaudit-floor-") as tmp:
            root = Path(tmp)
            (root / "pytest.ini").write_text("[pytest]\n")
            (root / "test_floor.py").write_text(TESTS.format(count=args.tests))
            if like_control_run:
                (root / "conftest.py").write_text(LIKE_CONTROL_RUN)
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:hypothesispytest"]
            cpu = statistics.median(cpu_of([*argv, *extra, "test_floor.py"], root) for _ in range(args.rounds))
        print(f"{label:<45} {cpu:7.2f} {cpu / args.tests * 1000:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
