"""The pre-deploy gate: which runs are gate runs, its one line per host, and real gate runs on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certaudit.jobs.gate import HostVerdict, expression_selects_gate, gate_markexpr, summary, verdicts
from certaudit.record import Record
from tests.unit.jobs_project import make_project, tls_endpoint, write_tls_dir

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("markexpr", "gate_run"),
    [
        ("gate", True),
        ("gate and control", True),
        ("(gate) and not fleet", True),
        ("", False),
        ("not gate", False),
        ("control", False),
        ("gate or control", False),  # selects every control: a full run, not the gate
        ("gate and", False),  # malformed: pytest reports it itself
    ],
)
def test_which_marker_expressions_make_a_gate_run(markexpr: str, gate_run: bool) -> None:
    assert expression_selects_gate(markexpr) is gate_run


def test_gate_option_narrows_the_users_own_expression() -> None:
    assert gate_markexpr("") == "gate"
    assert gate_markexpr("not slow") == "(not slow) and gate"
    assert expression_selects_gate(gate_markexpr("not slow"))


def _record(control: str, host: str, outcome: str, **extra: object) -> Record:
    return Record(control=control, title="t", host=host, outcome=outcome, gate=True, **extra)  # type: ignore[arg-type]


def test_one_line_per_host_with_days_for_crt01() -> None:
    records = [
        _record("KEY-01", "web-1", "pass"),
        _record("CRT-01", "web-1", "pass", observed={"days_left": 59.996, "tier": "ok"}),
        _record("LIVE-01", "web-1", "pass"),
        _record("KEY-01", "web-2", "pass"),
        _record("CRT-01", "web-2", "pass", observed={"days_left": 20.0, "tier": "warning"}),
        _record("LIVE-01", "web-2", "waived", waiver={"ticket": "OPS-1"}),
        _record("KEY-01", "web-3", "fail", findings=["/etc/stemedb/tls/key.pem is mode 0644: it grants more than 0600"]),
        _record("CRT-01", "web-3", "fail", observed={"days_left": 4.98, "tier": "critical"}, findings=["critical tier: ..."]),
        _record("LIVE-01", "web-3", "not applicable"),
        Record(control="REN-01", title="t", host="web-1", outcome="fail", gate=False),  # not a gate control
    ]
    found = verdicts(records, ["web-3", "web-2", "web-1"])
    assert found == [
        HostVerdict(
            "web-3",
            False,
            "GATE FAIL web-3 (KEY-01 fail: /etc/stemedb/tls/key.pem is mode 0644: it grants more than 0600, "
            "CRT-01 fail: 5.0 days, critical tier, LIVE-01 not applicable)",
        ),
        HostVerdict("web-2", True, "GATE PASS web-2 (KEY-01 pass, CRT-01 pass: 20.0 days, warning tier, LIVE-01 waived (OPS-1))"),
        HostVerdict("web-1", True, "GATE PASS web-1 (KEY-01 pass, CRT-01 pass: 60.0 days, LIVE-01 pass)"),
    ]
    assert summary(found) == "GATE FAIL: 1 of 3 hosts blocks the deploy (web-3)"
    assert summary(found[1:]) == "GATE PASS: 2 hosts, every gate control passes"
    assert summary([]) == "GATE FAIL: no gate control ran on any host"


def test_an_unreachable_host_is_one_cause_said_once() -> None:
    cause = "host down (127.77.0.250): cannot connect: ssh: connect to host 127.77.0.250 port 22: Connection refused"
    records = [_record(c, "down", "error", message=cause) for c in ("KEY-01", "CRT-01", "LIVE-01")]
    (verdict,) = verdicts(records, ["down"])
    assert verdict == HostVerdict("down", False, f"GATE FAIL down (KEY-01, CRT-01, LIVE-01 error: {cause})")
    # A long cause is cut at one line's worth.
    (verdict,) = verdicts([_record(c, "down", "error", message=cause * 2) for c in ("KEY-01", "CRT-01")], ["down"])
    assert verdict.line == f"GATE FAIL down (KEY-01, CRT-01 error: {(cause * 2)[:109]}…)"


# --- real gate runs of the audit, on this machine ---------------------------------------------------
def _gate_run(pytester: pytest.Pytester, days_left: float, *args: str) -> tuple[int, str, dict[str, object]]:
    tls = pytester.path / "tls"
    write_tls_dir(tls, days_left)
    with tls_endpoint(tls) as port:
        make_project(pytester.path, tls, port)
        result = pytester.runpytest_subprocess(
            "checks", "--inventory", "inv.yml", "--evidence", "ev.json", "-p", "no:cacheprovider", *args, timeout=120
        )
    output = "\n".join(result.outlines + result.errlines)
    written = pytester.path / "ev.json"
    evidence = json.loads(written.read_text()) if written.exists() else {}
    return int(result.ret), output, evidence


def _outcomes(evidence: dict[str, object]) -> dict[str, str]:
    results = evidence["results"]
    assert isinstance(results, list)
    return {r["control"]: r["outcome"] for r in results}


def test_gate_passes_a_compliant_host_and_runs_only_gate_controls(pytester: pytest.Pytester) -> None:
    ret, output, evidence = _gate_run(pytester, 60, "--gate")
    assert ret == 0, output[-3000:]
    assert _outcomes(evidence) == {"CRT-01": "pass", "KEY-01": "pass", "LIVE-01": "pass"}
    assert "GATE PASS localhost (CRT-01 pass: 60.0 days, KEY-01 pass, LIVE-01 pass)" in output
    assert "GATE PASS: 1 host, every gate control passes" in output
    assert "Traceback" not in output


def test_a_warning_tier_certificate_does_not_block_the_deploy(pytester: pytest.Pytester) -> None:
    ret, output, evidence = _gate_run(pytester, 20, "-m", "gate")
    assert ret == 0, output[-3000:]
    assert "GATE PASS localhost (CRT-01 pass: 20.0 days, warning tier, KEY-01 pass, LIVE-01 pass)" in output
    results = evidence["results"]
    assert isinstance(results, list)
    (crt,) = [r for r in results if r["control"] == "CRT-01"]
    assert crt["outcome"] == "pass" and crt["observed"]["tier"] == "warning"
    assert crt["expected"]["gate"] == "more than 7 days: only the critical tier stops a deploy"
    assert len(crt["notes"]) == 1 and crt["notes"][0].endswith("under 30: not a gate failure"), crt["notes"]


def test_the_same_certificate_fails_the_full_audit(pytester: pytest.Pytester) -> None:
    """Outside the gate, the warning tier is a finding, and no gate line is printed."""
    ret, output, evidence = _gate_run(pytester, 20, "-k", "CRT-01")
    assert ret == 1, output[-3000:]
    assert _outcomes(evidence) == {"CRT-01": "fail"}
    assert "GATE" not in output


def test_a_critical_tier_certificate_blocks_the_deploy(pytester: pytest.Pytester) -> None:
    ret, output, evidence = _gate_run(pytester, 5, "--gate", "-q", "--no-header", "--tb=no", "-rN")
    assert ret == 1, output[-3000:]
    assert _outcomes(evidence) == {"CRT-01": "fail", "KEY-01": "pass", "LIVE-01": "pass"}
    assert "GATE FAIL localhost (CRT-01 fail: 5.0 days, critical tier, KEY-01 pass, LIVE-01 pass)" in output
    assert "GATE FAIL: 1 of 1 host blocks the deploy (localhost)" in output


def test_a_gate_that_runs_nothing_does_not_pass(pytester: pytest.Pytester) -> None:
    """A selection that leaves no gate control (a -k typo) must not let a deploy through."""
    ret, output, _ = _gate_run(pytester, 60, "--gate", "-k", "CRT-1")
    assert ret == pytest.ExitCode.NO_TESTS_COLLECTED, output[-2000:]
    assert "GATE FAIL: no gate control ran on any host" in output


def test_gate_marker_is_registered(pytester: pytest.Pytester) -> None:
    make_project(pytester.path, Path("/nonexistent"), 1)
    result = pytester.runpytest_subprocess("--markers", "-p", "no:cacheprovider")
    assert any(line.startswith("@pytest.mark.gate: a control the pre-deploy gate runs") for line in result.outlines)
