"""Host by host: a host's controls run together, its facts are let go of after the last, and the
prober gathers only a window of hosts ahead (certaudit/plugin.py HostByHost, Audit.finished,
Prober.ahead), so a thousand hosts' facts are never all in memory at once."""

from __future__ import annotations

import json
import re
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from certaudit.errors import ProbeError
from certaudit.gather import probe
from certaudit.gather.probe import Prober
from certaudit.host.facts import HostFacts
from certaudit.inventory import Target
from certaudit.plugin import locate
from certaudit.policy import Policy
from tests.unit.test_report_html import make_audit_project

pytest_plugins = ["pytester"]

NAMES = ("web-1", "web-2", "web-3", "web-4")
# Four inventory names for this machine (the local connection): one fleet domain of four hosts.
INVENTORY = "all:\n  hosts:\n" + "".join(f"    {name}:\n      ansible_connection: local\n" for name in NAMES)
# Notes, as each test starts, which hosts' facts the audit still holds and how many the prober
# holds or is gathering; with a window of one host ahead.
WATCH = textwrap.dedent(
    """\

    import json
    import pytest
    from certaudit.audit import AUDIT_KEY

    _AUDIT = []


    @pytest.hookimpl(trylast=True)
    def pytest_configure(config):
        config.stash[AUDIT_KEY].prober.ahead = 1
        _AUDIT.append(config.stash[AUDIT_KEY])


    def pytest_runtest_logstart(nodeid):
        audit = _AUDIT[0]
        with open("watch.jsonl", "a") as out:
            out.write(json.dumps([nodeid, sorted(audit.facts), audit.prober._held]) + "\\n")
    """
)


def _host_of(nodeid: str) -> str | None:
    inside = nodeid.rsplit("[", 1)[-1].rstrip("]")
    return inside if inside in NAMES else None


def test_each_host_is_judged_whole_and_let_go_of(pytester: pytest.Pytester) -> None:
    make_audit_project(pytester.path)
    (pytester.path / "inv.yml").write_text(INVENTORY)
    with (pytester.path / "conftest.py").open("a") as conftest:
        conftest.write(WATCH)
    result = pytester.runpytest_subprocess(
        "checks", "--inventory", "inv.yml", "--report-dir", "out", "-p", "no:cacheprovider", timeout=300
    )
    output = "\n".join(result.outlines + result.errlines)
    watched = [json.loads(line) for line in (pytester.path / "watch.jsonl").read_text().splitlines()]
    assert watched, output[-3000:]
    controls = [(nodeid, held, gathering) for nodeid, held, gathering in watched if _host_of(nodeid) or "FLT-" in nodeid]

    # Host by host, in inventory order, each host's controls together; the fleet controls last.
    order = [_host_of(nodeid) for nodeid, _, _ in controls]
    hosts_in_turn = [h for i, h in enumerate(order) if h is not None and (i == 0 or order[i - 1] != h)]
    assert hosts_in_turn == list(NAMES), order
    first_fleet = next(i for i, (nodeid, _, _) in enumerate(controls) if "FLT-" in nodeid)
    assert all("FLT-" in nodeid for nodeid, _, _ in controls[first_fleet:])
    assert {nodeid.split("[")[0].rsplit("::", 1)[-1] for nodeid, _, _ in controls[first_fleet:]} >= {"FLT-01", "FLT-02"}

    # While a host is judged, no earlier host's facts are held, and the prober holds one host at most.
    for nodeid, held, gathering in controls:
        host = _host_of(nodeid)
        assert gathering <= 1, (nodeid, gathering)
        assert set(held) <= ({host} if host else set()), (nodeid, held)

    # The fleet controls judged from the summaries kept as each host came in: all four reached.
    (run,) = [p for p in (pytester.path / "out").iterdir() if p.is_dir()]
    evidence = json.loads((run / "evidence.json").read_text())
    assert evidence["run"]["hosts_reached"] == sorted(NAMES) or evidence.get("hosts_reached") == sorted(NAMES)
    assert sorted(evidence["fleet"]["hosts"]) == sorted(NAMES)
    assert all(summary.get("reached", True) and not summary.get("error") for summary in evidence["fleet"]["hosts"].values())
    fleet_results = [r for r in evidence["results"] if r["control"].startswith("FLT-")]
    by_control = {r["control"]: r for r in fleet_results}
    assert by_control["FLT-01"]["outcome"] in ("pass", "fail"), by_control["FLT-01"]  # judged from the four summaries
    # This machine serves no endpoint under these names: FLT-02 cannot judge, and says why (not a missing summary).
    assert by_control["FLT-02"]["outcome"] == "error" and "cannot connect to web-1" in by_control["FLT-02"]["message"]
    assert not any(word in json.dumps(fleet_results) for word in ("let go of", "not probed", "not reached"))
    # Every host got every host control, judged the same (it is one machine under four names).
    per_host = {name: sorted((r["control"], r["outcome"]) for r in evidence["results"] if r["host"] == name) for name in NAMES}
    assert len(per_host["web-1"]) >= 15 and all(v == per_host["web-1"] for v in per_host.values()), per_host

    # The terminal's progress: one line per host, not one each time the control's file changes.
    progress = [m.group(1) for line in result.outlines if (m := re.match(r"host (\S+) [.FEsx]+ +\[ *\d+%\]$", line))]
    assert progress == list(NAMES), result.outlines
    assert not any(line.startswith("checks/test_keys.py") for line in result.outlines)


# --- the prober's window (pure logic: the gathering itself is stood in for) --------------------------
class _Gathering:
    """Stands in for probe.gather: notes the order hosts are gathered in, and may hold them back."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.lock = threading.Lock()

    def __call__(
        self, target: Target, connect_timeout: float, deadline: float | None = None, budget: float | None = None
    ) -> HostFacts:
        with self.lock:
            self.order.append(target.name)
        now = time.time()
        return HostFacts(target.name, now, now, True, {}, {}, {}, {}, "", None, None, None, None)


def _targets(count: int) -> list[Target]:
    return [Target(f"h{i}", "127.0.0.1", "ssh", Policy()) for i in range(count)]


def _settle(prober: Prober) -> None:
    for _ in range(200):
        with prober._lock:
            if all(job.future is None or job.future.done() for job in prober._jobs.values()):
                return
        time.sleep(0.01)


@pytest.fixture
def gathering(monkeypatch: pytest.MonkeyPatch) -> _Gathering:
    """probe.gather stood in for, for every prober the test makes."""
    stand_in = _Gathering()
    monkeypatch.setattr(probe, "gather", stand_in)
    return stand_in


@pytest.fixture
def prober_of() -> Iterator[Callable[[int, int], Prober]]:
    """Makes probers of `workers` threads and a window of `ahead`; each is shut down after the test."""
    made: list[Prober] = []

    def make(workers: int, ahead: int) -> Prober:
        made.append(Prober(workers=workers, ahead=ahead))
        return made[-1]

    yield make
    for prober in made:
        prober.shutdown()


def test_the_prober_gathers_a_window_ahead_and_never_a_host_twice(
    gathering: _Gathering, prober_of: Callable[[int, int], Prober]
) -> None:
    targets = _targets(8)
    prober = prober_of(2, 3)
    prober.start(targets)
    _settle(prober)
    assert gathering.order == ["h0", "h1", "h2"]  # the window, in the order given
    # A host asked for is gathered at once, window or not; it is not gathered again when its turn comes.
    assert prober.facts(targets[6]).host == "h6"
    prober.release("h0")
    prober.release("h0")  # let go of twice: the window moves once
    _settle(prober)
    assert gathering.order == ["h0", "h1", "h2", "h6"]  # four held (h1, h2, h6, and the one asked for)
    for name in ("h1", "h2", "h6"):
        prober.release(name)
    _settle(prober)
    assert gathering.order == ["h0", "h1", "h2", "h6", "h3", "h4", "h5"]
    # Let go of means gone: asking again is an error naming the host, never a second probe.
    with pytest.raises(ProbeError, match=r"host h0: its facts were let go of"):
        prober.facts(targets[0])
    assert gathering.order.count("h0") == 1


def test_without_a_window_every_host_is_gathered_at_once(gathering: _Gathering, prober_of: Callable[[int, int], Prober]) -> None:
    prober = prober_of(4, 0)
    prober.start(_targets(6))
    _settle(prober)
    assert sorted(gathering.order) == [f"h{i}" for i in range(6)]


def test_facts_of_a_host_whose_probe_failed_are_its_error(
    monkeypatch: pytest.MonkeyPatch, prober_of: Callable[[int, int], Prober]
) -> None:
    def refused(target: Target, *args: Any, **kwargs: Any) -> HostFacts:
        raise ProbeError(f"host {target.name}: cannot connect: refused")

    monkeypatch.setattr(probe, "gather", refused)
    (target,) = _targets(1)
    with pytest.raises(ProbeError, match="cannot connect: refused"):
        prober_of(1, 1).facts(target)


def test_a_host_let_go_of_while_queued_is_never_probed(gathering: _Gathering, prober_of: Callable[[int, int], Prober]) -> None:
    # Every control of h1 ended before asking for its facts (none applied, say): it is let go of in the queue.
    targets = _targets(3)
    prober = prober_of(1, 1)
    prober.start(targets)
    prober.release("h1")
    _settle(prober)
    assert gathering.order == ["h0"]
    prober.release("h0")
    _settle(prober)
    assert gathering.order == ["h0", "h2"]  # the window skipped h1, and is not held shut by it
    with pytest.raises(ProbeError, match=r"host h1: its facts were let go of"):
        prober.facts(targets[1])
    assert "h1" not in gathering.order


def test_a_controls_location_is_found_once_and_is_pytests_own(pytester: pytest.Pytester) -> None:
    source = textwrap.dedent(
        """\
        import pytest


        def helper():
            pass


        @pytest.mark.parametrize("host", ["web-1", "web-2", "web-3"])
        def test_a(host):
            pass


        @pytest.mark.parametrize("host", ["web-1", "web-2"])
        def test_b(host):
            pass
        """
    )
    path = pytester.makepyfile(test_located=source)
    expected = [item.location for item in pytester.getitems(path)]
    items = pytester.getitems(path)
    located: dict[object, tuple[str, int | None]] = {}
    for item in items:
        locate(item, located)
    assert [item.location for item in items] == expected
    assert expected[0][1:] == (7, "test_a[web-1]") and expected[3][1:] == (12, "test_b[web-1]")  # 0-based
    assert len(located) == 2  # found once for each function
    assert sum("location" in item.__dict__ for item in items) == len(items)
