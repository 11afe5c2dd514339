"""The gate's start: `make gate` leaves pytest-html and xdist unloaded (it writes no report), and a run
that would need pytest-html without it says so in one line instead of writing half a run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_gate import _gate_run, _outcomes

REPO = Path(__file__).resolve().parents[2]
pytest_plugins = ["pytester"]


GATE_PLUGINS = "-p no:html -p no:html_fixtures -p no:metadata -p no:xdist -p no:xdist.looponfail"
# Written by a plugin of the test: every module the gate imported (at its end), and how many objects
# the cyclic garbage collector leaves aside once the start is over (when the controls begin).
MODULES_PLUGIN = """
import gc
import sys


def pytest_collection_finish(session):
    with open("frozen.txt", "w") as out:
        out.write(str(gc.get_freeze_count()))


def pytest_unconfigure(config):
    with open("modules.txt", "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
"""


def test_make_gate_turns_off_the_report_plugins() -> None:
    makefile = (REPO / "Makefile").read_text()
    gate_line = next(line for line in makefile.splitlines() if line.startswith("\t$(BIN)/pytest") and "--gate" in line)
    assert "$(GATE_PLUGINS)" in gate_line
    assert f"GATE_PLUGINS ?= {GATE_PLUGINS}" in makefile.splitlines()


def test_the_gate_decides_alike_without_pytest_html(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(gate_modules=MODULES_PLUGIN)
    ret, output, evidence = _gate_run(
        pytester, 60, "--gate", "-q", "--no-header", "--tb=no", "-rN", *GATE_PLUGINS.split(), "-p", "gate_modules"
    )
    assert ret == 0, output[-3000:]
    assert _outcomes(evidence) == {"CRT-01": "pass", "KEY-01": "pass", "LIVE-01": "pass"}
    assert "GATE PASS localhost (CRT-01 pass: 60.0 days, KEY-01 pass, LIVE-01 pass)" in output
    assert "Traceback" not in output
    # A plugin has an entry point for each name it registers: -p no:html alone still loaded pytest-html's
    # html_fixtures, and -p no:xdist xdist.looponfail with execnet.
    packages = {name.split(".")[0] for name in (pytester.path / "modules.txt").read_text().split()}
    assert not packages & {"pytest_html", "pytest_metadata", "xdist", "execnet", "jinja2"}
    # Nor what only other jobs' controls read: each is imported by the control that uses it.
    modules = set((pytester.path / "modules.txt").read_text().split())
    unused = {
        "certaudit.jobs.drill",
        "certaudit.host.metrics",
        "certaudit.host.certbot.hooks",
        "certaudit.host.certbot.command_hooks",
        "certaudit.host.renewal_runs",
        "certaudit.host.certbot.log",
        "configobj",
        "configargparse",
        "configparser",  # no ansible.cfg to read
    }
    assert not modules & unused
    # The start's objects (pytest, its plugins, certaudit: they live until the exit) are out of the
    # collector's way: pytest's full collection at its end, and the interpreter's, skip them.
    assert int((pytester.path / "frozen.txt").read_text()) > 10_000


def test_a_report_without_pytest_html_is_a_usage_error(pytester: pytest.Pytester) -> None:
    ret, output, _ = _gate_run(pytester, 60, "--gate", "-p", "no:html", "--report-dir", "reports")
    assert ret == pytest.ExitCode.USAGE_ERROR, output[-3000:]
    message = "certaudit: --report-dir writes report.html with pytest-html, which is not loaded (-p no:html, or not installed)"
    assert message in output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert not (pytester.path / "reports").exists()
