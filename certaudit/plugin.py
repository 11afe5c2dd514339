"""certaudit's pytest plugin: hosts from an Ansible inventory, one snapshot per host, outcomes as evidence.

Loaded by the repository's conftest.py. It only acts on test functions declared with
`@control(...)`: everything else (the suite's own tests) runs untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Generator
from pathlib import Path

import pytest

from certaudit import __version__
from certaudit.controls import Control, control_of
from certaudit.errors import CertauditError, ProbeError, Undeterminable
from certaudit.evidence import USER_PROPERTY, Evidence, Outcome, Record
from certaudit.facts import HostFacts
from certaudit.inventory import Inventory, Target, load_inventory, targets_from_specs
from certaudit.policy import Policy
from certaudit.probe import Prober
from certaudit.run import RunDirectory, run_metadata, write_evidence
from certaudit.waivers import Waiver, Waivers, load_waivers

DEFAULT_INVENTORY = "inventories/local.yml"
DEFAULT_WAIVERS = "inventories/waivers.yml"
__all__ = ["AUDIT_KEY", "Audit", "run_metadata"]
EVIDENCE_KEY = pytest.StashKey[Evidence]()
RECORD_KEY = pytest.StashKey[Record]()
AUDIT_KEY = pytest.StashKey["Audit"]()


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


class Audit:
    """Session state: the inventory, the prober, and every record written."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._inventory: Inventory | None = None
        self.prober = Prober(
            connect_timeout=config.getoption("connect_timeout"),
            host_budget=config.getoption("host_budget"),
        )
        self.records: list[Record] = []
        self.started = dt.datetime.now(dt.UTC)
        self.facts: dict[str, HostFacts] = {}
        self.probe_errors: dict[str, str] = {}
        self.run_id = uuid.uuid4().hex
        self.run_dir: RunDirectory | None = None
        self._waivers: Waivers | None = None

    def inventory_if_loaded(self) -> Inventory | None:
        return self._inventory

    def waivers(self) -> Waivers:
        if self._waivers is None:
            given = self.config.getoption("waivers")
            path = Path(given) if given else Path(self.config.rootpath) / DEFAULT_WAIVERS
            self._waivers = load_waivers(path, self.started.date())
            if given and not path.exists():
                self._waivers.path, self._waivers.file_problem = given, "does not exist"
        return self._waivers

    def inventory(self) -> Inventory:
        if self._inventory is None:
            specs = self.config.getoption("hosts", None)
            path = self.config.getoption("inventory")
            limit = self.config.getoption("limit")
            if specs and not path:
                self._inventory = targets_from_specs(
                    [s for s in specs.split(",") if s],
                    ssh_config=self.config.getoption("ssh_config", None),
                    ssh_identity_file=self.config.getoption("ssh_identity_file", None),
                )
            else:
                path = path or str(Path(self.config.rootpath) / DEFAULT_INVENTORY)
                names = [n.strip() for n in limit.split(",") if n.strip()] if limit else None
                self._inventory = load_inventory(path, iter(names) if names else None)
        return self._inventory

    def facts_of(self, target: Target) -> HostFacts:
        if target.name in self.probe_errors:
            raise ProbeError(self.probe_errors[target.name])
        try:
            facts = self.prober.facts(target)
        except ProbeError as exc:
            self.probe_errors[target.name] = str(exc)
            raise
        self.facts[target.name] = facts
        return facts


def _audit(config: pytest.Config) -> Audit:
    return config.stash[AUDIT_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "control(id): a certaudit control (set by @control)")
    config.stash[AUDIT_KEY] = Audit(config)
    audit = config.stash[AUDIT_KEY]
    report_dir = config.getoption("report_dir")
    if report_dir:
        run = RunDirectory.create(Path(report_dir), config.getoption("job"), audit.started)
        audit.run_dir = run
        # Set before pytest-html's and junitxml's own pytest_configure read them (tryfirst).
        config.option.htmlpath = str(run.partial / "report.html")
        config.option.self_contained_html = True
        config.option.xmlpath = str(run.partial / "junit.xml")
        config.option.evidence = str(run.partial / "evidence.json")
    if getattr(config.option, "htmlpath", None) and not config.pluginmanager.has_plugin("certaudit-html"):
        from certaudit.report_html import HtmlReport

        config.pluginmanager.register(HtmlReport(config), "certaudit-html")


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
        # Stop before any host is touched, with the message and no traceback.
        pytest.exit(f"certaudit: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    metafunc.parametrize("target", list(inventory), ids=[t.name for t in inventory])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        meta = _control_of_item(item)
        if meta is None:
            continue
        target: Target = item.callspec.params["target"]  # type: ignore[attr-defined]
        # Test ids read like KEY-01[web-1]: the control id, not the function name.
        _rename(item, f"{meta.id}[{target.name}]")
        item.keywords[meta.id] = True
        item.add_marker(pytest.mark.control(meta.id))


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
    targets: dict[str, Target] = {}
    for item in session.items:
        if _control_of_item(item) is not None:
            target = item.callspec.params["target"]  # type: ignore[attr-defined]
            targets.setdefault(target.name, target)
    if targets:
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
    record = Evidence(meta, target.name)
    request.node.stash[EVIDENCE_KEY] = record
    # Applicability is decided before any fact is asked for, with its reason.
    reason = meta.reason_not_applicable(target.policy)
    if reason:
        pytest.skip(reason)
    return record


@pytest.fixture
def facts(request: pytest.FixtureRequest, target: Target, evidence: Evidence) -> HostFacts:
    """The host's snapshot, shared by every control on that host (gathered once, concurrently)."""
    return _audit(request.config).facts_of(target)


# --- running and reporting ------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    result = yield
    record = pyfuncitem.stash.get(EVIDENCE_KEY, None)
    if record is not None and record.findings:
        pytest.fail(record.failure_message(), pytrace=False)
    return result


def _outcome(report: pytest.TestReport, call: pytest.CallInfo[None]) -> tuple[Outcome, str]:
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
    meta = _control_of_item(item)
    if meta is None or (report.when == "teardown" and report.passed) or (report.when == "setup" and report.passed):
        return report
    target: Target = item.callspec.params["target"]  # type: ignore[attr-defined]
    outcome, message = _outcome(report, call)
    if outcome == "error" and report.when == "call":
        # A fact that could not be determined is an error, not a failure: pytest calls a failure
        # outside the call phase an error, in its summary, JUnit and HTML alike.
        report.when = "setup"
        report.longrepr = message
    elif outcome == "error":
        report.longrepr = message
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
    record = Record(
        control=meta.id,
        title=meta.title,
        host=target.name,
        outcome=outcome,
        message=message,
        observed=ev.observed if ev else {},
        expected=ev.expected if ev else {},
        findings=(ev.findings if ev and ev.findings else []) or ([message.splitlines()[0]] if outcome == "fail" else []),
        notes=ev.notes if ev else [],
        fix=meta.fix,
        gate=meta.gate,
        nodeid=item.nodeid,
        started=dt.datetime.fromtimestamp(call.start, dt.UTC).isoformat(),
        duration_s=round(call.duration, 4),
        waiver=waiver.as_dict() if waiver is not None and outcome == "waived" else None,
    )
    item.stash[RECORD_KEY] = record
    report.user_properties.append((USER_PROPERTY, record.to_json()))
    _audit(item.config).records.append(record)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    audit = session.config.stash.get(AUDIT_KEY, None)
    if audit is None:
        return
    audit.prober.shutdown()
    path = session.config.getoption("evidence")
    if path and (audit.records or audit.run_dir is not None):
        write_evidence(Path(path), audit, exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After every plugin wrote its file (pytest-html and junitxml write at session finish): seal the run."""
    audit = config.stash.get(AUDIT_KEY, None)
    if audit is None or audit.run_dir is None or not audit.run_dir.partial.exists():
        return
    key = config.getoption("signing_key")
    final = audit.run_dir.finish(Path(key) if key else None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        signed = " (signed)" if key else ""
        reporter.write_line(f"certaudit: evidence of run {audit.run_id} in {final}{signed}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    audit = terminalreporter.config.stash.get(AUDIT_KEY, None)
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


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    audit = config.stash.get(AUDIT_KEY, None)
    if audit is None or audit._inventory is None:
        return None
    return [f"certaudit {__version__}: inventory {audit._inventory.path}, {len(audit._inventory.targets)} hosts"]
