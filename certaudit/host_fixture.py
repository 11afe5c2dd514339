"""testinfra's `host` fixture on the inventory's hosts: a check written the testinfra way audits the fleet.

Without this, `def test_x(host)` beside certaudit's controls would run on the auditing machine
whatever `--inventory` says (testinfra's default host is local). With certaudit's plugin loaded,
`host` is parametrised over the same targets as the built-in controls (test ids `test_x[web-1]`)
and reaches each the way the probe does (gather/testinfra_backend.py): one login per host, kept
for all its tests and closed at the end of the run.

A test with `@control(...)` is a control like any other (the plugin names, judges and records it);
one without appears in the evidence under its node id, with the same outcomes. A failing assertion
records its compared values as the observation and the expectation; every test records the
commands it sent.

testinfra keeps its own `host` only when the run asks for testinfra's host selection
(`--ansible-inventory` or `--connection`, as bench/baseline does) and gives no `--inventory`.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import inspect
import os
import textwrap
import traceback
import types
from collections.abc import Generator
from typing import Any

import pytest

from certaudit.audit import AUDIT_KEY, EVIDENCE_KEY, Audit
from certaudit.controls import control_of
from certaudit.errors import CertauditError, Undeterminable
from certaudit.gather.testinfra_backend import CertauditBackend, HostSession
from certaudit.inventory import Target
from certaudit.plugin import USAGE_ERROR_KEY, _short_repr_of_certaudit_errors, settled_outcome
from certaudit.record import USER_PROPERTY, Evidence, Record, _plain

SESSIONS_KEY = pytest.StashKey[dict[str, HostSession]]()
HOSTS_KEY = pytest.StashKey[dict[str, Any]]()  # the testinfra Host of each inventory host
COMPARE_KEY = pytest.StashKey[list[tuple[str, Any, Any]]]()  # the running host test's failed comparisons
CHECK_KEY = pytest.StashKey[dict[str, dict[str, Any]]]()  # what a host test observed and expected
MAX_ASSERTS = 20  # assert statements kept as a test's expectation
TESTINFRA_SELECTION = ("ansible_inventory", "connection")  # testinfra's own options for choosing hosts


def _host(request: pytest.FixtureRequest, target: Target) -> Any:
    """testinfra's Host for the inventory host `target`, logged in once for all its tests."""
    import testinfra.host

    session = _session(request.config, target)
    session.login()  # unreachable: an error for each of this host's tests, at once after the first
    hosts = request.config.stash[HOSTS_KEY]
    if target.name not in hosts:
        # One Host a run: testinfra asks a host's system (uname, os-release) once per Host, not per module.
        hosts[target.name] = testinfra.host.Host(CertauditBackend(session))
    return hosts[target.name]


def _host_fixture() -> types.ModuleType:
    """A plugin holding only `host`; registered only when certaudit chooses the hosts, it then overrides testinfra's."""
    holder = types.ModuleType(f"{__name__}.host")
    holder.host = pytest.fixture(scope="module", name="host")(_host)  # type: ignore[attr-defined]
    return holder


def _owns_hosts(config: pytest.Config) -> bool:
    return not any(config.getoption(name, None) for name in TESTINFRA_SELECTION)


def pytest_configure(config: pytest.Config) -> None:
    chosen = [f"--{n.replace('_', '-')}" for n in TESTINFRA_SELECTION if config.getoption(n, None)]
    if chosen and config.getoption("inventory", None):
        raise pytest.UsageError(
            f"certaudit: --inventory and testinfra's {' '.join(chosen)} both choose the hosts: give one of them"
        )
    config.stash[SESSIONS_KEY] = {}
    config.stash[HOSTS_KEY] = {}
    if _owns_hosts(config):
        config.pluginmanager.register(_host_fixture(), "certaudit-host-fixture")


def _session(config: pytest.Config, target: Target) -> HostSession:
    sessions = config.stash[SESSIONS_KEY]
    if target.name not in sessions:
        sessions[target.name] = HostSession(target, config.getoption("connect_timeout"), config.getoption("host_budget"))
    return sessions[target.name]


def _uses_certaudit_host(item_or_metafunc: Any) -> bool:
    """Whether a test takes certaudit's `host`: not a `host` of its own (a conftest's, or parametrised directly)."""
    definition = getattr(item_or_metafunc, "definition", item_or_metafunc)
    info = getattr(definition, "_fixtureinfo", None)
    if info is None or "host" not in info.names_closure or "target" not in info.names_closure:
        return False
    defs = info.name2fixturedefs.get("host") or ()
    if not defs or getattr(defs[-1].func, "__wrapped__", defs[-1].func) is not _host:
        return False
    return not any("host" in _argnames(mark) for mark in definition.iter_markers("parametrize"))


def _argnames(mark: pytest.Mark) -> list[str]:
    names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
    return [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)


# --- collection -------------------------------------------------------------------------------------
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A plain test using `host`: once per inventory host (a control is parametrised by the plugin)."""
    if not _uses_certaudit_host(metafunc) or control_of(metafunc.function) is not None:
        return
    audit: Audit = metafunc.config.stash[AUDIT_KEY]
    try:
        inventory = audit.inventory()
    except CertauditError as exc:
        metafunc.config.stash[USAGE_ERROR_KEY] = f"certaudit: {exc}"  # the plugin stops the run after collection
        return
    # Module scope, as testinfra's own `host`: a module's fixtures built on it keep working.
    metafunc.parametrize("target", list(inventory), ids=[t.name for t in inventory], scope="module")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A shard with no host leaves a plain host test without a target: nothing to run, as for a control.
    empty = [
        i for i in items if _uses_certaudit_host(i) and control_of(_function(i)) is None and not isinstance(_target(i), Target)
    ]
    if empty:
        gone = {id(i) for i in empty}
        items[:] = [i for i in items if id(i) not in gone]
        config.hook.pytest_deselected(items=empty)
    for item in items:
        if _is_plain_host_test(item):
            _short_repr_of_certaudit_errors(item)


def _function(item: pytest.Item) -> object:
    return getattr(item, "function", None)


def _target(item: pytest.Item) -> object:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("target") if callspec is not None else None


def _is_plain_host_test(item: pytest.Item) -> bool:
    return (
        isinstance(item, pytest.Function)
        and _uses_certaudit_host(item)
        and control_of(item.function) is None
        and isinstance(_target(item), Target)
    )


# --- running: what the test sent and what its assertion compared ------------------------------------
def pytest_runtest_setup(item: pytest.Item) -> None:
    target = _target(item)
    if _uses_certaudit_host(item) and isinstance(target, Target):
        _session(item.config, target).log = []  # the commands of this test, setup included
        item.config.stash[COMPARE_KEY] = []


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    """Keep the values a failing assertion compared (pytest asks for their explanation as it fails)."""
    compared = config.stash.get(COMPARE_KEY, None)
    if compared is not None:
        compared.append((op, left, right))
    return None


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Innermost: a control's failed assertion becomes its finding, which the plugin then reports as a built-in's."""
    target = _target(pyfuncitem)
    if not _uses_certaudit_host(pyfuncitem) or not isinstance(target, Target):
        return (yield)
    failed: AssertionError | None = None
    try:
        return (yield)
    except (AssertionError, RuntimeError) as exc:
        if _raised_by_testinfra(exc):
            # testinfra's own check of a command's status (check_output, file.content): what the test
            # needed could not be read (permission denied, no such file): not a finding, an error.
            hosts = pyfuncitem.config.stash[HOSTS_KEY]
            raise Undeterminable(hosts[target.name].backend.failed_command()) from None
        if not isinstance(exc, AssertionError):
            raise
        failed = exc
        evidence = _keep_check(pyfuncitem, target, failed)
        if evidence is None:
            raise
        evidence.require(False, _finding(failed, pyfuncitem))
        return None
    finally:
        if failed is None:
            _keep_check(pyfuncitem, target, None)
        pyfuncitem.config.stash[COMPARE_KEY] = []


def _keep_check(item: pytest.Function, target: Target, failed: AssertionError | None) -> Evidence | None:
    """The test's observation (commands sent, compared value) and expectation, for its record; a control's Evidence."""
    observed: dict[str, Any] = {"commands": list(_session(item.config, target).log)}
    expected: dict[str, Any] = {"asserts": list(asserts_of(item.function))}
    compared = item.config.stash.get(COMPARE_KEY, [])
    if failed is not None:
        statement = _statement(failed, item)
        if statement:
            expected["failed"] = statement
        if compared:
            op, left, right = compared[-1]  # the comparison that failed is the last one explained
            observed["value"] = _plain(left)
            expected.update(comparison=op, value=_plain(right))
    meta = control_of(item.function)
    if meta is None:
        item.stash[CHECK_KEY] = {"observed": observed, "expected": expected}
        return None
    evidence = item.stash.get(EVIDENCE_KEY, None)
    if evidence is None:  # a control that takes `host` only: its record still shows what it saw
        evidence = item.stash[EVIDENCE_KEY] = Evidence(meta, target.name)
    evidence.observe(**{k: v for k, v in observed.items() if k not in evidence.observed})
    evidence.expect(**{k: v for k, v in expected.items() if k not in evidence.expected})
    return evidence


@functools.cache
def asserts_of(function: Any) -> tuple[str, ...]:
    """The assert statements of a test, as written: what a pass proves held."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return ()
    # As written (0o644 stays 0o644), one line each.
    found = [
        " ".join((ast.get_source_segment(source, n.test) or "").split()) for n in ast.walk(tree) if isinstance(n, ast.Assert)
    ]
    return tuple(found[:MAX_ASSERTS])


def _finding(exc: AssertionError, item: pytest.Function) -> str:
    """A failed assertion as a control's finding: the assertion's own message, else the statement that failed."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    statement = _statement(exc, item).removeprefix("assert ").strip()
    if first and not first.startswith("assert "):
        return first  # the author's message (assert ..., "message")
    return f"{statement} does not hold ({first})" if statement and first else statement or first or "an assertion failed"


def _raised_by_testinfra(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and f"{os.sep}testinfra{os.sep}" in frames[-1].filename


def _statement(exc: AssertionError, item: pytest.Function) -> str:
    """The source line of the failing assert, in the test's own file."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(item.path)]
    return (frames[-1].line or "") if frames else ""


# --- reporting: a plain host test's record ---------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not _is_plain_host_test(item) or (report.passed and report.when != "call"):
        return report
    target = _target(item)
    assert isinstance(target, Target)
    # As for a control: a host that could not be judged is an error in every report, and what the
    # reports show is the redacted message.
    outcome, message = settled_outcome(report, call)
    check: dict[str, dict[str, Any]] = item.stash.get(CHECK_KEY, {"observed": {}, "expected": {}})
    assert isinstance(item, pytest.Function)
    record = Record(
        control=plain_id(item),
        title=_title(item),
        host=target.name,
        outcome=outcome,
        message=message,
        observed=check["observed"],
        expected=check["expected"],
        findings=[message.splitlines()[0]] if outcome == "fail" and message else [],
        nodeid=item.nodeid,
        started=dt.datetime.fromtimestamp(call.start, dt.UTC).isoformat(),
        duration_s=round(call.duration, 4),
    )
    report.user_properties.append((USER_PROPERTY, record.to_json()))
    item.config.stash[AUDIT_KEY].records.append(record)
    return report


def plain_id(item: pytest.Function) -> str:
    """A plain test's name in the evidence: its node id without the host (`checks/test_x.py::test_y`)."""
    return item.nodeid[: len(item.nodeid) - len(item.name)] + item.originalname


def _title(item: pytest.Function) -> str:
    doc = (item.function.__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else item.originalname


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every login of the run is closed here, once no test needs it."""
    for host_session in session.config.stash.get(SESSIONS_KEY, {}).values():
        host_session.close()
