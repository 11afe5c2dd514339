"""certaudit's pytest plugin: hosts from an Ansible inventory, one snapshot per host, outcomes as evidence.

Loaded by the repository's conftest.py. It only acts on test functions declared with
`@control(...)`: everything else (the suite's own tests) runs untouched.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from certaudit import __version__, control_run
from certaudit.audit import AUDIT_KEY, DEFAULT_INVENTORY, DEFAULT_WAIVERS, EVIDENCE_KEY, Audit
from certaudit.controls import Control, control_of
from certaudit.errors import CertauditError, ProbeError, Undeterminable
from certaudit.evidence.run import RunDirectory, SnapshotLog, check_evidence_path, write_evidence
from certaudit.host.facts import HostFacts
from certaudit.inventory import Target
from certaudit.jobs import gate
from certaudit.jobs.fleet import Domain, FleetView, domains_of, owner_of
from certaudit.policy import Policy
from certaudit.readers import shown_text
from certaudit.record import USER_PROPERTY, Evidence, Outcome, Record, is_record_property
from certaudit.redact import MESSAGE_CAP, untrusted
from certaudit.waivers import Waiver

if TYPE_CHECKING:
    # Imported by the runs that use them (--quarterly, --prometheus-textfile, --lifetime-what-if),
    # not by every run's start: the gate uses none.
    from certaudit.evidence.quarterly import QuarterlyDiff

RUN_DIR_KEY = pytest.StashKey[RunDirectory]()
SNAPSHOTS_KEY = pytest.StashKey[SnapshotLog]()
QUARTERLY_DIFF_KEY: pytest.StashKey[QuarterlyDiff] = pytest.StashKey()
USAGE_ERROR_KEY = pytest.StashKey[str]()
# testinfra's `host` on the inventory's hosts, for plain tests and controls alike.
pytest_plugins = ["certaudit.host_fixture"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("certaudit", "certaudit: TLS renewal compliance")
    group.addoption(
        "--inventory",
        default=None,
        metavar="PATH",
        help=f"Ansible-format inventory of the hosts to audit (default: {DEFAULT_INVENTORY})",
    )
    group.addoption("--limit", default=None, metavar="HOSTS", help="comma-separated inventory hosts to audit")
    group.addoption(
        "--shard",
        default=None,
        metavar="I/N",
        help="audit only the I-th of N deterministic parts of the hosts (by a hash of each name); "
        "combine the parts' run directories with `certaudit merge`",
    )
    group.addoption(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="bound on connecting to a host or its TLS endpoint (default: 10)",
    )
    group.addoption(
        "--host-budget",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="time one host may take to yield its facts (default: 120)",
    )
    group.addoption("--evidence", default=None, metavar="PATH", help="write every result and snapshot as JSON here")
    group.addoption(
        "--report-dir",
        default=None,
        metavar="DIR",
        help="write report.html, junit.xml and evidence.json into DIR/<UTC timestamp>-<job>/",
    )
    group.addoption("--job", default="audit", metavar="NAME", help="the job name used in report directories and titles")
    group.addoption(
        "--waivers",
        default=None,
        metavar="PATH",
        help=f"YAML file of waivers (default: {DEFAULT_WAIVERS} when it exists)",
    )
    group.addoption(
        "--signing-key",
        default=os.environ.get("CERTAUDIT_SIGNING_KEY"),
        metavar="PATH",
        help="Ed25519 private key (certaudit keygen) that signs the run's MANIFEST (default: $CERTAUDIT_SIGNING_KEY)",
    )
    group.addoption(
        "--gate",
        action="store_true",
        help="the pre-deploy gate: only the gate controls (as -m gate), CRT-01 failing in its critical tier only, "
        "one line per host",
    )
    group.addoption(
        "--renewal-drill",
        action="store_true",
        help="DRL-01: renew for real (certbot renew --force-renewal) on hosts whose inventory sets "
        "certaudit_drill_ok: true, and prove the hook, the reload and the served certificate. Changes those hosts",
    )
    group.addoption(
        "--prometheus-textfile",
        default=None,
        metavar="PATH",
        help="write certaudit_* metrics for node_exporter's textfile collector to PATH (*.prom), atomically",
    )
    group.addoption(
        "--lifetime-what-if",
        action="append",
        default=None,
        metavar="DAYS",
        help="judge every host as if its next certificate lived DAYS (64d, 45d, 6d; repeat or comma-separate): "
        "will it renew in time, pass the gate, page needlessly? (default with --quarterly until 2028-02-16: "
        "the announced lifetimes still to come)",
    )
    group.addoption(
        "--quarterly",
        action="store_true",
        help="file the run under --report-dir DIR/<YYYY>-Q<n>/ and diff it against the previous quarter's evidence",
    )


def _audit(config: pytest.Config) -> Audit:
    return config.stash[AUDIT_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "control(id): a certaudit control (set by @control)")
    config.addinivalue_line("markers", gate.MARKER_HELP)
    if config.getoption("gate"):
        config.option.markexpr = gate.gate_markexpr(config.option.markexpr or "")
    config.stash[AUDIT_KEY] = Audit(config)  # checks the time bounds, --job and --shard
    audit = config.stash[AUDIT_KEY]
    report_dir = config.getoption("report_dir")
    _check_destinations(config)
    if report_dir and not config.pluginmanager.has_plugin("html"):
        # `make gate` turns pytest-html off (-p no:html: its import is a fifth of the gate's start).
        raise pytest.UsageError(
            "certaudit: --report-dir writes report.html with pytest-html, which is not loaded (-p no:html, or not installed)"
        )
    if report_dir:
        from certaudit.evidence import quarterly

        reports = Path(report_dir) / quarterly.quarter_of(audit.started) if config.getoption("quarterly") else Path(report_dir)
        try:
            run = RunDirectory.create(reports, config.getoption("job"), audit.started)
        except CertauditError as exc:
            raise pytest.UsageError(f"certaudit: --report-dir {exc}") from None
        config.stash[RUN_DIR_KEY] = run
        # Set before pytest-html's and junitxml's own pytest_configure read them (tryfirst).
        config.option.htmlpath = str(run.partial / "report.html")
        config.option.self_contained_html = True
        config.option.xmlpath = str(run.partial / "junit.xml")
        config.option.evidence = str(run.partial / "evidence.json")
    _spool_evidence(config, audit)
    config.pluginmanager.register(ReportTrim(config), "certaudit-report-trim")
    config.pluginmanager.register(HostByHost(audit), "certaudit-host-by-host")
    if getattr(config.option, "htmlpath", None) and not config.pluginmanager.has_plugin("certaudit-html"):
        from certaudit.evidence.report_html import HtmlReport

        config.pluginmanager.register(HtmlReport(config), "certaudit-html")


class HostByHost:
    """A host's controls run one after another, and its facts are let go of after the last.

    pytest would run each control over every host in turn, so every host's facts (90 kB a host)
    would be held from the first control to the last: a thousand hosts' in memory at once. Run
    host by host, the prober gathers a window of hosts ahead of the one judged (Prober.ahead) and
    lets go of each host's facts once its last reader has finished (Audit.finished); the fleet
    controls (FLT-*) come last and judge from the hosts' summaries. The terminal's progress line
    follows: one line per host, not a new one each time the control's file changes."""

    def __init__(self, audit: Audit) -> None:
        self.audit = audit
        self._host_of: dict[str, str] = {}  # node id -> host, for the terminal's lines

    @pytest.hookimpl(trylast=True)  # after pytest's own ordering, and after -k / -m have deselected
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        located: dict[object, tuple[str, int | None]] = {}
        before: list[pytest.Item] = []
        by_host: dict[str, list[pytest.Item]] = {}
        fleet: list[pytest.Item] = []
        after: list[pytest.Item] = []
        for item in items:
            target = _params(item).get("target") if _control_of_item(item) is not None else None
            if isinstance(target, Target):
                by_host.setdefault(target.name, []).append(item)
                self._host_of[item.nodeid] = target.name
                locate(item, located)
            elif isinstance(target, Domain):
                fleet.append(item)
            else:
                (after if by_host or fleet else before).append(item)
        items[:] = [*before, *(item for group in by_host.values() for item in group), *fleet, *after]

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.audit.finished(nodeid)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        needed: tuple[str, ...] = ("write_fspath_result", "currentfspath", "_tw", "_show_progress_info")
        needed += ("_write_progress_information_filling_space",)
        if reporter is None or not all(hasattr(reporter, name) for name in needed):
            return  # another terminal (or another pytest): its own lines, by file
        original = reporter.write_fspath_result
        host_of = self._host_of

        def write_fspath_result(nodeid: str, res: str, **markup: bool) -> None:
            host = host_of.get(nodeid)
            if host is None:
                original(nodeid, res, **markup)
                return
            line = f"host {shown_text(host, 120)}"
            if reporter.currentfspath != line:
                if reporter.currentfspath is not None and reporter._show_progress_info:
                    reporter._write_progress_information_filling_space()
                reporter.currentfspath = line
                reporter._tw.line()
                reporter._tw.write(line + " ")
            reporter._tw.write(res, flush=True, **markup)

        reporter.write_fspath_result = write_fspath_result


def locate(item: pytest.Item, located: dict[object, tuple[str, int | None]]) -> None:
    """Set `item.location` as pytest makes it, its file and line found once per test function
    (`located`): pytest finds them again for each item, a stat of the source file each (17,000 at
    1,000 hosts, in the thread that judges)."""
    if not isinstance(item, pytest.Function) or not isinstance(getattr(type(item), "location", None), functools.cached_property):
        return  # another pytest: its own location, found its own way
    where = located.get(item.function)
    if where is None:
        path, line, _ = item.location
        located[item.function] = (path, line)
    elif "location" not in item.__dict__:
        item.__dict__["location"] = (*where, item.getmodpath())


class ReportTrim:
    """What pytest's terminal and pytest-html keep of each report until the end, and need not.

    The terminal keeps every report, a passed setup or teardown too (two a test), and its summary of
    failures looks each failure's teardown report up by reading all of those: 2,000 failures among
    17,000 tests (1,000 hosts) cost 68 million comparisons, most of a minute. A passed setup or
    teardown with nothing captured is never shown nor counted by the terminal (its category is
    empty): it is let go once the terminal has seen it. pytest-html keeps each test's reports by
    node id after it has made the test's row from them (at its teardown): they are let go when the
    test has finished (pytest_runtest_logfinish, after every report of it was logged). So is the
    record a control's report carries for JUnit and pytest-html (a few kB of JSON; the run's record
    log keeps it), from the reports the terminal keeps to the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._html_reports: dict[str, Any] | None = None
        self._carrying: list[pytest.TestReport] = []  # this test's reports that carry its record

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if any(map(is_record_property, report.user_properties)):
            self._carrying.append(report)
        if report.when not in ("setup", "teardown") or not report.passed or report.sections:
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        kept = getattr(reporter, "stats", {}).get("", None)
        if isinstance(kept, list) and kept and kept[-1] is report:
            kept.pop()

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        if self._html_reports is None:
            self._html_reports = next(
                (
                    kept
                    for plugin in self.config.pluginmanager.get_plugins()
                    if type(plugin).__module__.startswith("pytest_html.")
                    and isinstance(kept := getattr(plugin, "_reports", None), dict)
                ),
                {},
            )
        self._html_reports.pop(nodeid, None)
        for report in self._carrying:
            report.user_properties = [p for p in report.user_properties if not is_record_property(p)]
        self._carrying.clear()


def _spool_evidence(config: pytest.Config, audit: Audit) -> None:
    """Records and snapshots go to temporary files beside the evidence as they are made, and
    evidence.json is assembled from them at the end: the run's memory does not grow with the fleet."""
    path = config.getoption("evidence")
    if not path:
        return
    # Beside the evidence when its directory is there (the run directory is); --evidence may name
    # one the run makes at its end: the system's temporary directory until then.
    directory = Path(path).parent if Path(path).parent.is_dir() else None
    audit.records.directory = directory
    snapshots = SnapshotLog(directory)
    config.stash[SNAPSHOTS_KEY] = snapshots
    audit.on_facts = snapshots.add


def _check_destinations(config: pytest.Config) -> None:
    """Every file the run will write, and the key it will sign with, checked before any host is
    touched: a run must not audit the whole fleet (and drill renewals) only to fail at the end."""
    report_dir = config.getoption("report_dir")
    checks: list[tuple[str, str | None, Any]] = [
        ("--prometheus-textfile:", config.getoption("prometheus_textfile"), _check_textfile),
        ("--evidence", None if report_dir else config.getoption("evidence"), lambda p: check_evidence_path(Path(p))),
        ("--signing-key", config.getoption("signing_key") if report_dir else None, _check_signing_key),
    ]
    for option, value, check in checks:
        if not value:
            continue
        try:
            check(value)
        except CertauditError as exc:
            raise pytest.UsageError(f"certaudit: {option} {exc}") from None
    if config.getoption("quarterly") and not report_dir:
        raise pytest.UsageError("certaudit: --quarterly files the run under --report-dir DIR/<YYYY>-Q<n>/: give --report-dir")


def _check_signing_key(path: str) -> None:
    from certaudit.evidence.manifest import check_signing_key

    check_signing_key(Path(path))


def _check_textfile(path: str) -> None:
    from certaudit.jobs import prometheus

    prometheus.check_destination(Path(path))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "waiver" in metafunc.fixturenames:
        waivers = _audit(metafunc.config).waivers()
        entries: list[Waiver | str | None] = [*waivers.entries]
        if waivers.file_problem:
            entries.insert(0, f"{waivers.path}: {waivers.file_problem}")
        ids = [f"#{e.index}-{e.control or 'unknown'}" if isinstance(e, Waiver) else "file" for e in entries]
        metafunc.parametrize("waiver", entries or [None], ids=ids or ["no-waivers"])
    meta = control_of(metafunc.function)
    if meta is None:
        return
    try:
        inventory = _audit(metafunc.config).inventory()
    except CertauditError as exc:
        # pytest 9 turns an exit raised while collecting into a collection error with a traceback:
        # the run stops once collection is over instead (pytest_collection_modifyitems), still
        # before any host is touched.
        metafunc.config.stash[USAGE_ERROR_KEY] = f"certaudit: {exc}"
        return
    if "fleet_view" in metafunc.fixturenames:
        # A fleet control (FLT-*) judges a domain: its "target" is the domain, with all its hosts.
        domains = domains_of(inventory, inventory.every_host)
        shard = _audit(metafunc.config).shard
        if shard is not None:
            # Each shard summarises its own hosts of every domain (evidence.json `fleet`) for the merge,
            # which judges the domain; the shard of its first host records the placeholder it replaces.
            ours = {t.name for t in inventory}
            _audit(metafunc.config).fleet_hosts.update({t.name: t for d in domains for t in d.hosts if t.name in ours})
            domains = [replace(d, sharded=True) for d in domains if shard.holds(owner_of(d))]
        metafunc.parametrize("target", domains, ids=[d.name for d in domains])
        return
    # With `host` (module-scoped, as testinfra's), the target is too: each host's tests then run together.
    scope: Literal["module"] | None = "module" if "host" in metafunc.fixturenames else None
    metafunc.parametrize("target", list(inventory), ids=[t.name for t in inventory], scope=scope)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    usage_error = config.stash.get(USAGE_ERROR_KEY, None)
    if usage_error is not None:
        pytest.exit(usage_error, returncode=pytest.ExitCode.USAGE_ERROR)
    # A shard can hold no host at all: its controls then have no target and nothing to run.
    empty = [i for i in items if _control_of_item(i) is not None and not isinstance(_params(i).get("target"), Target | Domain)]
    if empty:
        # Nothing for them to judge here (no host in the shard, no domain of several hosts): not "not run".
        audit = config.stash[AUDIT_KEY]
        audit.without_subject.update(meta.id for i in empty if (meta := _control_of_item(i)) is not None)
        gone = {id(i) for i in empty}
        items[:] = [i for i in items if id(i) not in gone]
        config.hook.pytest_deselected(items=empty)
    for item in items:
        meta = _control_of_item(item)
        if meta is None:
            continue
        target: Target | Domain = item.callspec.params["target"]  # type: ignore[attr-defined]
        # Test ids read like KEY-01[web-1]: the control id, not the function name.
        _rename(item, f"{meta.id}[{target.name}]")
        item.keywords[meta.id] = True
        item.add_marker(pytest.mark.control(meta.id))
        if meta.gate:
            item.add_marker(getattr(pytest.mark, gate.MARKER))
        _short_repr_of_certaudit_errors(item)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """A control that asks only for certaudit's own fixtures runs without pytest's fixture
    machinery, with the same reports (certaudit/control_run.py); any other test as pytest runs it."""
    # Decided now, not at collection: a plugin or conftest after certaudit's may still mark an item then.
    if isinstance(item, pytest.Function) and control_run.runs_fast(item):
        return control_run.run(item, nextitem)
    return None


def _short_repr_of_certaudit_errors(item: pytest.Item) -> None:
    """An unreachable host or an undeterminable fact is reported by its message, not a traceback.

    pytest formats a traceback for every error before any hook sees the report, parsing source
    files for each frame: about 50 ms of CPU an item, which a fleet with many unreachable hosts
    pays once per control and host (the report keeps only the message anyway).
    """
    original = item._repr_failure_py

    def repr_failure_py(excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> object:
        if excinfo.errisinstance(CertauditError):
            return str(excinfo.value)
        if isinstance(excinfo.value, pytest.fail.Exception) and not excinfo.value.pytrace:
            # A control's findings (pytest.fail(pytrace=False)): pytest would filter the traceback,
            # a stat of each frame's file, to show the message alone.
            return str(excinfo.value)
        return original(excinfo, style=style)

    setattr(item, "_repr_failure_py", repr_failure_py)  # noqa: B010


def _params(item: pytest.Item) -> dict[str, object]:
    callspec = getattr(item, "callspec", None)
    return dict(callspec.params) if callspec is not None else {}


def _rename(item: pytest.Item, name: str) -> None:
    """Give an item a new name and the node id that follows from it (pytest 9 keeps it in _id, 8 in _nodeid)."""
    item.name = name
    parent = item.parent
    if parent is None:
        return
    # Private attributes either way: set by name, so the type checker does not pin one pytest version.
    if hasattr(parent, "id") and hasattr(item, "_id"):
        setattr(item, "_id", parent.id.child(name))  # noqa: B010
    else:
        setattr(item, "_nodeid", f"{parent.nodeid}::{name}")  # noqa: B010


def pytest_collection_finish(session: pytest.Session) -> None:
    if USAGE_ERROR_KEY in session.config.stash or session.config.option.collectonly:
        return  # the run is stopping, or only lists the tests: no host is touched
    targets: dict[str, Target] = {}
    readers: dict[str, str] = {}  # node id -> the host whose facts the item reads
    for item in session.items:
        # A control that takes `host` only needs no snapshot: its host is not probed for it.
        if _control_of_item(item) is not None and "facts" in getattr(item, "fixturenames", ()):
            target = item.callspec.params["target"]  # type: ignore[attr-defined]
            targets.setdefault(target.name, target)
            readers[item.nodeid] = target.name
        elif _control_of_item(item) is not None and "fleet_view" in getattr(item, "fixturenames", ()):
            domain: Domain = item.callspec.params["target"]  # type: ignore[attr-defined]
            for host in () if domain.sharded else domain.hosts:  # queued after the run's own hosts (FLT-* run last)
                targets.setdefault(host.name, host)
    for name, target in _audit(session.config).fleet_hosts.items():  # a shard's hosts of a fleet domain
        targets.setdefault(name, target)
    _audit(session.config).expect(readers)
    if hasattr(session.config, "workerinput"):
        # An xdist worker collects every item and runs some: hosts it never judges would never be
        # let go of and would hold the window shut. Each worker probes as before, every host at once.
        _audit(session.config).prober.ahead = 0
    if targets:
        # In the order the items read them (host by host, pytest_collection_modifyitems), a
        # window of hosts ahead of the one judged.
        _audit(session.config).prober.start(targets.values())


def _control_of_item(item: pytest.Item) -> Control | None:
    return control_of(getattr(item, "function", None)) if isinstance(item, pytest.Function) else None


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def policy(target: Target) -> Policy:
    """The host's policy: runbook defaults and its certaudit_* inventory variables."""
    return target.policy


@pytest.fixture
def evidence(request: pytest.FixtureRequest, target: Target) -> Evidence:
    meta = control_of(request.function)
    if meta is None:
        raise CertauditError(f"{request.node.nodeid}: the evidence fixture serves @control functions only")
    return control_run.start_evidence(request.node, meta, target)


@pytest.fixture
def fleet_view(request: pytest.FixtureRequest, target: Domain, evidence: Evidence) -> FleetView:
    """The summaries of every host of the domain (Audit.summary_of), and why any is missing."""
    audit = _audit(request.config)
    ours = {t.name for t in audit.inventory()}
    hosts = () if target.sharded else target.hosts  # a shard's domain is judged by the merge
    summaries = {h.name: audit.summary_of(h, of_run=h.name in ours) for h in hosts}
    return FleetView.of_summaries(target, summaries, {}, audit.prober.connect_timeout)


@pytest.fixture
def gate_mode(request: pytest.FixtureRequest) -> bool:
    """Whether this is a gate run (--gate or -m gate): CRT-01 then fails in its critical tier only."""
    return _audit(request.config).gate


@pytest.fixture
def facts(request: pytest.FixtureRequest, target: Target, evidence: Evidence) -> HostFacts:
    """The host's snapshot, shared by every control on that host (gathered once, concurrently)."""
    return _audit(request.config).facts_of(target)


# --- running and reporting ------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    result = yield
    control_run.fail_on_findings(pyfuncitem)
    return result


def _outcome(report: pytest.TestReport, call: pytest.CallInfo[None]) -> tuple[Outcome, str]:
    """The outcome and its message, redacted and bounded: it quotes ssh, openssl and the host."""
    outcome, message = _raw_outcome(report, call)
    return outcome, untrusted(message, MESSAGE_CAP)


def settled_outcome(report: pytest.TestReport, call: pytest.CallInfo[None]) -> tuple[Outcome, str]:
    """The outcome and its redacted message, with the report made to say the same (for controls
    and plain host tests alike)."""
    outcome, message = _outcome(report, call)
    if outcome == "error" and report.when == "call":
        # A fact that could not be determined is an error, not a failure: pytest calls a failure
        # outside the call phase an error, in its summary, JUnit and HTML alike.
        report.when = "setup"
        report.longrepr = message
    elif outcome in ("error", "fail"):
        report.longrepr = message  # what junit.xml, report.html and the terminal show: the redacted text
    return outcome, message


def _raw_outcome(report: pytest.TestReport, call: pytest.CallInfo[None]) -> tuple[Outcome, str]:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        return "not applicable", reason.removeprefix("Skipped: ")
    if report.passed:
        return "pass", ""
    excinfo = call.excinfo
    if excinfo is None:
        return "error", str(report.longrepr)
    if excinfo.errisinstance((Undeterminable, ProbeError, CertauditError)):
        return "error", str(excinfo.value)
    if report.when == "call" and excinfo.errisinstance((AssertionError, pytest.fail.Exception)):
        return "fail", str(excinfo.value)
    # Anything else means the control could not judge: never a pass, and not a finding about the host.
    return "error", f"certaudit could not judge this control: {excinfo.exconly()}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    try:
        return _recorded(item, call, report)
    finally:
        # The item's last report: its evidence is in the record log now. Items live as long as the
        # session, so what they keep would grow with the fleet.
        if report.when == "teardown" and EVIDENCE_KEY in item.stash:
            del item.stash[EVIDENCE_KEY]


def _recorded(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> pytest.TestReport:
    """The report, with the control's record made, logged and attached to it (for controls)."""
    meta = _control_of_item(item)
    if meta is None or (report.when == "teardown" and report.passed) or (report.when == "setup" and report.passed):
        return report
    target: Target | Domain = item.callspec.params["target"]  # type: ignore[attr-defined]
    outcome, message = settled_outcome(report, call)
    waiver = _audit(item.config).waivers().find(meta.id, target.name) if outcome in ("fail", "pass") else None
    if waiver is not None and outcome == "pass":
        waiver.matched_passing.append(item.name)
    elif waiver is not None:
        # A covered failure is reported as pytest reports an expected failure: xfailed, with the waiver.
        outcome = "waived"
        waiver.covered.append(item.name)
        report.outcome = "skipped"
        report.wasxfail = (
            f"waived by {waiver.label}: {waiver.reason} (approved by {waiver.approver}, "
            f"ticket {waiver.ticket}, expires {waiver.expires})"
        )
    ev = item.stash.get(EVIDENCE_KEY, None)
    # Every value below is redacted and bounded already: the message by settled_outcome, the
    # observations, findings and notes by Evidence as they were recorded.
    record = Record.of_bounded(
        control=meta.id,
        title=meta.title,
        host=target.name,
        outcome=outcome,
        message=message,
        observed=ev.observed if ev else {},
        expected=ev.expected if ev else {},
        findings=(ev.findings if ev and ev.findings else []) or _first_line_of(message, outcome),
        notes=ev.notes if ev else [],
        fix=meta.fix,
        gate=meta.gate,
        nodeid=item.nodeid,
        started=dt.datetime.fromtimestamp(call.start, dt.UTC).isoformat(),
        duration_s=round(call.duration, 4),
        waiver=waiver.as_dict() if waiver is not None and outcome == "waived" else None,
    )
    text = record.to_json()
    report.user_properties.append((USER_PROPERTY, text))
    _audit(item.config).records.append(record, text)
    return report


def _first_line_of(message: str, outcome: Outcome) -> list[str]:
    """A failure without findings (an assert in a control): its message's first line is the finding."""
    return [untrusted(message.splitlines()[0])] if outcome == "fail" and message else []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    audit = session.config.stash.get(AUDIT_KEY, None)
    if audit is None:
        return
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not session.config.option.collectonly:
        _summarise_fleet_hosts(audit)
    audit.settle_all()
    audit.prober.shutdown()
    inventory = audit.inventory_if_loaded()
    empty_shard = audit.shard is not None and inventory is not None and not inventory.targets
    if empty_shard and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = exitstatus = pytest.ExitCode.OK  # an empty shard is a complete one
    config = session.config
    # Only an audit that ran every selected control to its end is sealed: a usage error, a crash,
    # an interrupt, -x or --maxfail, or --collect-only leave the run directory `.partial`.
    audit.exit_status = int(exitstatus)
    audit.complete = (
        exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        and not session.shouldstop
        and not session.shouldfail
        and not config.option.collectonly
        and USAGE_ERROR_KEY not in config.stash
    )
    path = config.getoption("evidence")
    if path and (audit.records or RUN_DIR_KEY in config.stash or audit.shard is not None):
        write_evidence(Path(path), audit, exitstatus, config.stash.get(SNAPSHOTS_KEY, None))
    _finish_jobs(session, audit)


def _summarise_fleet_hosts(audit: Audit) -> None:
    """A shard's hosts of a fleet domain that no control of the shard read: their snapshots, so
    the evidence's fleet summaries (what the merge judges the domain on) hold every one of them."""
    for target in audit.fleet_hosts.values():
        if target.name not in audit.reached and target.name not in audit.probe_errors:
            audit.summary_of(target)  # not reached: recorded in audit.probe_errors, and the summary says so


def _finish_jobs(session: pytest.Session, audit: Audit) -> None:
    """The quarterly diff (into the run directory, before it is sealed) and the Prometheus textfile."""
    config = session.config
    run = config.stash.get(RUN_DIR_KEY, None)
    if config.getoption("quarterly") and run is not None and (run.partial / "evidence.json").exists():
        from certaudit.evidence import quarterly

        try:
            config.stash[QUARTERLY_DIFF_KEY] = quarterly.write_diff(run.partial, run.final, Path(config.getoption("report_dir")))
        except (CertauditError, OSError) as exc:
            audit.job_problems.append(f"quarterly diff not written: {exc}")
    textfile = config.getoption("prometheus_textfile")
    if textfile and session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        # An interrupted run's partial results must not pass for the fleet's state: the old file
        # stays, and its certaudit_last_run_timestamp_seconds ages.
        status = int(session.exitstatus)
        audit.job_problems.append(f"--prometheus-textfile: not written, the run did not complete (exit {status})")
    elif textfile:
        inventory = audit.inventory_if_loaded()
        from certaudit.jobs import prometheus

        policies = {t.name: t.policy for t in inventory} if inventory else {}
        text = prometheus.render(audit.records, audit.expiries, policies, dt.datetime.now(dt.UTC))
        try:
            prometheus.write_textfile(Path(textfile), text)
        except CertauditError as exc:
            audit.job_problems.append(f"--prometheus-textfile: {exc}")
    if audit.job_problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After every plugin wrote its file (pytest-html and junitxml write at session finish): seal the
    run, then let go of the run's record and snapshot logs."""
    try:
        _write_summary(config)
        _seal(config)
    finally:
        audit = config.stash.get(AUDIT_KEY, None)
        if audit is not None:
            audit.records.close()
        snapshots = config.stash.get(SNAPSHOTS_KEY, None)
        if snapshots is not None:
            snapshots.close()


def _write_summary(config: pytest.Config) -> None:
    """certaudit's summary into report.html (report_html.HtmlReport.write_summary): a page that
    lacks it is not sealed."""
    html = config.pluginmanager.get_plugin("certaudit-html")
    if html is None or not hasattr(html, "write_summary"):
        return
    try:
        html.write_summary()
    except OSError as exc:
        audit = config.stash.get(AUDIT_KEY, None)
        if audit is not None:
            audit.complete = False
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"certaudit: report.html: the summary was not written: {exc}", red=True)


def _seal(config: pytest.Config) -> None:
    audit = config.stash.get(AUDIT_KEY, None)
    run = config.stash.get(RUN_DIR_KEY, None)
    if audit is None or run is None or not run.partial.exists():
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter is not None else lambda line, **_: None
    if not audit.complete:
        status = "" if audit.exit_status is None else f" (exit {audit.exit_status})"
        write(f"certaudit: the run did not complete{status}: not sealed, its files stay in {run.partial}", red=True)
        return
    key = config.getoption("signing_key")
    try:
        final = run.finish(Path(key) if key else None)
    except CertauditError as exc:
        write(f"certaudit: the run was not sealed: {exc}; its files stay in {run.partial}", red=True)
        return
    signed = " (signed)" if key else ""
    write(f"certaudit: evidence of run {audit.run_id} in {final}{signed}")
    # pytest-html and junitxml named the files in `.partial`, which is gone now: their final paths.
    for label, name in (("html report", "report.html"), ("junit xml", "junit.xml"), ("evidence", "evidence.json")):
        path = final.absolute() / name  # --report-dir may be relative; a file URI never is
        if path.is_file():
            write(f"certaudit: {label}: {path.as_uri() if name.endswith('.html') else path}")


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None, None, None]:
    """pytest-html's and junitxml's "generated ... file" lines name the run's `.partial` directory,
    renamed once the run is sealed: they are left out, and the final paths printed after sealing."""
    run = terminalreporter.config.stash.get(RUN_DIR_KEY, None)
    audit = terminalreporter.config.stash.get(AUDIT_KEY, None)
    if run is None or audit is None or not audit.complete:  # an incomplete run stays where they say
        yield
        _certaudit_summary(terminalreporter)
        return
    original = terminalreporter.write_sep
    partial = str(run.partial)

    def write_sep(sep: str, title: str | None = None, **markup: Any) -> None:
        if title is None or partial not in title:
            original(sep, title, **markup)

    setattr(terminalreporter, "write_sep", write_sep)  # noqa: B010
    try:
        yield
    finally:
        del terminalreporter.write_sep  # the class's own again
    _certaudit_summary(terminalreporter)


def _certaudit_summary(terminalreporter: pytest.TerminalReporter) -> None:
    audit = terminalreporter.config.stash.get(AUDIT_KEY, None)
    if audit is not None:
        _jobs_summary(terminalreporter, audit)
    if audit is None or audit._waivers is None:
        return
    waivers = audit.waivers()
    unused = waivers.unused()
    if unused or waivers.findings():
        terminalreporter.section("certaudit waivers")
    for problem in waivers.findings():
        terminalreporter.write_line(f"FINDING {problem}")
    for waiver in unused:
        passing = f" (its control passes on {', '.join(waiver.matched_passing)})" if waiver.matched_passing else ""
        terminalreporter.write_line(f"UNUSED  {waiver.label} covers no failure in this run{passing}: remove it")


def _jobs_summary(terminalreporter: pytest.TerminalReporter, audit: Audit) -> None:
    for problem in audit.job_problems:
        terminalreporter.write_line(f"certaudit: {problem}", red=True)
    if audit.lifetimes and audit.records:
        from certaudit.jobs import whatif

        terminalreporter.section("certaudit lifetime what-if")
        for line in whatif.summary(audit.what_if_rows()):
            terminalreporter.write_line(f"certaudit: {line}")
    diff = audit.config.stash.get(QUARTERLY_DIFF_KEY, None)
    if diff is not None:
        from certaudit.evidence import quarterly

        terminalreporter.section("certaudit quarterly diff")
        for line in quarterly.render(diff):
            terminalreporter.write_line(line)
        if not audit.config.getoption("signing_key"):
            terminalreporter.write_line("certaudit: this quarterly run is NOT signed (no --signing-key or CERTAUDIT_SIGNING_KEY)")
    if audit.gate:
        inventory = audit.inventory_if_loaded()
        domains = [d.name for d in domains_of(inventory, inventory.every_host)] if inventory else []
        verdicts = gate.verdicts(audit.records, [t.name for t in inventory] if inventory else [], domains)
        terminalreporter.section("certaudit gate")
        for verdict in verdicts:
            terminalreporter.write_line(verdict.line, green=verdict.passed, red=not verdict.passed)
        terminalreporter.write_line(gate.summary(verdicts), bold=True)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    audit = config.stash.get(AUDIT_KEY, None)
    if audit is None or audit._inventory is None:
        return None
    shard = f" (shard {audit.shard} of {audit.inventory_hosts})" if audit.shard is not None else ""
    return [f"certaudit {__version__}: inventory {audit._inventory.path}, {len(audit._inventory.targets)} hosts{shard}"]
