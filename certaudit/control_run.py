"""A control's run on one host, without pytest's fixture machinery: the same reports, at a fraction of the cost.

pytest runs a test in three phases, each through its own hook (capture, logging, skipping and the
fixtures' SetupState wrap each one) and each resolving fixtures through a request object: about
0.8 ms of the auditing machine's CPU for a test that does nothing, 17 items a host (bench/README.md,
"The per-item floor"). A control's fixtures are certaudit's own and known (`target`, `facts`,
`policy`, `evidence`, `gate_mode`): for a control that asks for nothing else, this module makes
those values itself and still goes through pytest's reporting hooks (logstart, makereport,
logreport, logfinish) for setup, call and teardown, so the terminal, JUnit, pytest-html and
certaudit's own records see the same reports as before.

An item takes this path only when nothing could tell the difference (`runs_fast`): every fixture it
uses is certaudit's, not overridden; no mark but certaudit's; no debugger, --setup-show or
--setup-only. Anything else (a plain testinfra test, DRL-01's drill fixture, FLT-*'s fleet view, a
user's fixture or autouse fixture, a skip or xfail mark) runs through pytest's own protocol. What it
leaves out for the controls it runs: output capture (controls print nothing) and log capture per
phase, the PYTEST_CURRENT_TEST variable, and other plugins' pytest_runtest_setup/call/teardown.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from certaudit.audit import AUDIT_KEY, EVIDENCE_KEY
from certaudit.controls import Control, control_of
from certaudit.inventory import Target
from certaudit.jobs import gate
from certaudit.record import Evidence

FAST_ALLOWED_KEY = pytest.StashKey[bool]()  # the run's options allow it (decided once)
# The fixtures a control may use and still run here: certaudit's own (pytest adds `request`).
OWN_FIXTURES = frozenset({"target", "facts", "policy", "evidence", "gate_mode", "request"})
OWN_ARGUMENTS = frozenset({"target", "facts", "policy", "evidence", "gate_mode"})
OWN_MARKERS = frozenset({"control", gate.MARKER})  # the marks certaudit itself puts on a control
PLUGIN_MODULE = "certaudit.plugin"
# Options under which pytest's protocol does something this one does not (stop, show, skip the call).
PROTOCOL_OPTIONS = ("usepdb", "trace", "setupshow", "setuponly", "setupplan")


def start_evidence(item: pytest.Item, meta: Control, target: Target) -> Evidence:
    """The control's evidence for this host, kept on the item; pytest.skip when the control does not
    apply to the host (applicability decided before any fact is asked for, with its reason)."""
    record = Evidence(meta, target.name)
    item.stash[EVIDENCE_KEY] = record
    reason = meta.reason_not_applicable(target.policy)
    if reason:
        pytest.skip(reason)
    return record


def fast_allowed(config: pytest.Config) -> bool:
    allowed = config.stash.get(FAST_ALLOWED_KEY, None)
    if allowed is None:
        allowed = config.stash[FAST_ALLOWED_KEY] = not any(config.getoption(name, False) for name in PROTOCOL_OPTIONS)
    return allowed


def runs_fast(item: pytest.Item) -> bool:
    """Whether `item` is a control this module can run exactly as pytest would (module docstring)."""
    if not isinstance(item, pytest.Function) or control_of(item.function) is None or not fast_allowed(item.config):
        return False
    if not hasattr(item.session, "_setupstate"):  # pytest's private SetupState, whose teardown the path still runs
        return False
    callspec = getattr(item, "callspec", None)
    if callspec is None or not isinstance(callspec.params.get("target"), Target):
        return False
    if not set(item.fixturenames) <= OWN_FIXTURES or any(m.name not in OWN_MARKERS for m in item.iter_markers()):
        return False
    info = getattr(item, "_fixtureinfo", None)
    definitions: dict[str, Any] = getattr(info, "name2fixturedefs", None) or {}
    for name in item.fixturenames:
        if name in ("target", "request"):
            continue
        defs = definitions.get(name, ())
        # Exactly one definition, certaudit's: a conftest that overrides `policy` takes pytest's path.
        if len(defs) != 1 or getattr(defs[0].func, "__module__", None) != PLUGIN_MODULE:
            return False
    argnames = getattr(info, "argnames", None)
    return isinstance(argnames, tuple) and set(argnames) <= OWN_ARGUMENTS and not _is_coroutine(item.obj)


def _is_coroutine(function: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function)


def run(item: pytest.Function, nextitem: pytest.Item | None) -> bool:
    """pytest_runtest_protocol for a control that runs_fast: logstart, setup, call, teardown, logfinish."""
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    arguments: dict[str, Any] = {}
    try:
        setup = _phase(item, "setup", lambda: arguments.update(_arguments(item)))
        if setup.passed:
            _phase(item, "call", lambda: _call(item, arguments))
        if item.session.shouldfail or item.session.shouldstop:
            nextitem = None
        _phase(item, "teardown", lambda: item.session._setupstate.teardown_exact(nextitem))
    finally:
        # As pytest's protocol: what the item held for its run goes with it.
        setattr(item, "_request", False)  # noqa: B010
        item.funcargs = None  # type: ignore[assignment]
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _phase(item: pytest.Function, when: str, action: Callable[[], object]) -> pytest.TestReport:
    reraise: tuple[type[BaseException], ...] = (pytest.exit.Exception, KeyboardInterrupt)
    call = pytest.CallInfo.from_call(action, when=when, reraise=reraise)  # type: ignore[arg-type]
    report: pytest.TestReport = item.ihook.pytest_runtest_makereport(item=item, call=call)
    item.ihook.pytest_runtest_logreport(report=report)
    return report


def _arguments(item: pytest.Function) -> dict[str, Any]:
    """The fixtures' values, made as the plugin's fixtures make them and in their order: the
    evidence (and applicability) before the facts, so a control that does not apply never waits."""
    __tracebackhide__ = True
    target = item.callspec.params["target"]
    assert isinstance(target, Target)  # runs_fast checked it
    audit = item.config.stash[AUDIT_KEY]
    meta = control_of(item.function)
    assert meta is not None  # runs_fast checked it
    values: dict[str, Any] = {"target": target}
    if "evidence" in item.fixturenames:
        try:
            values["evidence"] = start_evidence(item, meta, target)
        except pytest.skip.Exception as skipped:
            # As pytest does for a skip raised by a fixture: reported at the control, not at certaudit's line.
            skipped._use_item_location = True
            raise
    for name in item._fixtureinfo.argnames:
        if name == "facts":
            values[name] = audit.facts_of(target)
        elif name == "policy":
            values[name] = target.policy
        elif name == "gate_mode":
            values[name] = audit.gate
    return {name: values[name] for name in item._fixtureinfo.argnames}


def _call(item: pytest.Function, arguments: dict[str, Any]) -> None:
    """The control itself, then its findings as one failure."""
    __tracebackhide__ = True
    item.obj(**arguments)
    fail_on_findings(item)


def fail_on_findings(item: pytest.Item) -> None:
    """A control that recorded findings fails with all of them, once its function has returned (on
    either path: here, and the plugin's pytest_pyfunc_call for pytest's own)."""
    __tracebackhide__ = True
    record = item.stash.get(EVIDENCE_KEY, None)
    if record is not None and record.findings:
        pytest.fail(record.failure_message(), pytrace=False)
