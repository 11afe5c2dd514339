"""The suite's own fixtures: the fleet of real test hosts, booted once per session."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.fleet.fleet import Fleet
from tests.scenarios import ALL_SCENARIOS

_FLEET: Fleet | None = None


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (CI cancelling the job) becomes KeyboardInterrupt, so pytest runs every teardown.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    global _FLEET
    if os.geteuid() != 0:
        pytest.fail("the test fleet boots systemd-nspawn containers and needs root")
    previous = signal.signal(signal.SIGTERM, _terminate)
    fleet = Fleet(list(ALL_SCENARIOS))
    _FLEET = fleet
    try:
        fleet.up()
        yield fleet
    finally:
        fleet.down()
        signal.signal(signal.SIGTERM, previous)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FLEET is None or not _FLEET.timings:
        return
    terminalreporter.section("test fleet phases")
    for phase, seconds in _FLEET.timings.items():
        if phase == "base images built":
            terminalreporter.write_line(f"  base images: {int(seconds)} built, the others reused from cache")
        else:
            terminalreporter.write_line(f"  {phase:<24} {seconds:7.2f} s")
