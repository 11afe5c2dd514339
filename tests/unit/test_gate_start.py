"""The gate's start: `make gate` leaves pytest-html and xdist unloaded (it writes no report), and a run
that would need pytest-html without it says so in one line instead of writing half a run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_gate import _gate_run, _outcomes

REPO = Path(__file__).resolve().parents[2]
pytest_plugins = ["pytester"]


def test_make_gate_turns_off_the_report_plugins() -> None:
    makefile = (REPO / "Makefile").read_text()
    gate_line = next(line for line in makefile.splitlines() if line.startswith("\t$(BIN)/pytest") and "--gate" in line)
    assert "$(GATE_PLUGINS)" in gate_line
    assert "GATE_PLUGINS ?= -p no:html -p no:xdist" in makefile.splitlines()


def test_the_gate_decides_alike_without_pytest_html(pytester: pytest.Pytester) -> None:
    ret, output, evidence = _gate_run(
        pytester, 60, "--gate", "-q", "--no-header", "--tb=no", "-rN", "-p", "no:html", "-p", "no:xdist"
    )
    assert ret == 0, output[-3000:]
    assert _outcomes(evidence) == {"CRT-01": "pass", "KEY-01": "pass", "LIVE-01": "pass"}
    assert "GATE PASS localhost (CRT-01 pass: 60.0 days, KEY-01 pass, LIVE-01 pass)" in output
    assert "Traceback" not in output


def test_a_report_without_pytest_html_is_a_usage_error(pytester: pytest.Pytester) -> None:
    ret, output, _ = _gate_run(pytester, 60, "--gate", "-p", "no:html", "--report-dir", "reports")
    assert ret == pytest.ExitCode.USAGE_ERROR, output[-3000:]
    message = "certaudit: --report-dir writes report.html with pytest-html, which is not loaded (-p no:html, or not installed)"
    assert message in output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert not (pytester.path / "reports").exists()
