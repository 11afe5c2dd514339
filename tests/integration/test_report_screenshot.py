"""The HTML report as a browser renders it: Debian's chromium, headless, on a real audit's report.html.

The screenshot is kept at tests/artifacts/report-screenshot.png (git-ignored) for a person to look
at; the test asserts it is a real picture and that the rendered DOM (after pytest-html's script has
built the results table) holds the matrix, the expiry horizon and a result's evidence.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from certaudit.evidence.report_html import ROWLESS_OUTCOMES
from certaudit.evidence.report_view import format_value
from tests.unit.test_report_html import AuditOutput, Node, cell_of, parse_html, run_audit_project

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "tests" / "artifacts" / "report-screenshot.png"
QUIET_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail("install Debian's chromium (make test does)")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    require_chromium()
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(CHROMIUM), *QUIET_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def audit_report(pytester: pytest.Pytester) -> AuditOutput:
    # A certificate with 45 days left in the host's TLS directory: CRT-01 passes and draws a bar.
    return run_audit_project(pytester, certificate_days=45)


def test_report_screenshot(pytester: pytest.Pytester, tmp_path: Path) -> None:
    require_chromium()  # a failure, never a skip: the report's rendering is part of the suite
    audit = audit_report(pytester)
    shot = tmp_path / "report-screenshot.png"
    done = chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,2000", audit.report.resolve().as_uri())
    assert shot.exists(), f"chromium wrote no screenshot (exit {done.returncode}):\n{done.stderr[-3000:]}"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000, f"a {len(data)}-byte screenshot is blank or nearly so"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)


def test_rendered_dom_has_matrix_horizon_and_evidence(pytester: pytest.Pytester, tmp_path: Path) -> None:
    require_chromium()
    audit = audit_report(pytester)
    done = chromium(tmp_path / "profile", "--dump-dom", audit.report.resolve().as_uri())
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-3000:]
    dom = parse_html(done.stdout)

    matrix = dom.by_id("certaudit-matrix-table")
    assert [c.text() for c in matrix.find_all("td", "ca-cell")], "the matrix has no cells"
    svg = dom.by_id("certaudit-horizon-svg")
    assert svg.tag == "svg" and len([n for n in svg.find_all("line") if "ca-threshold" in n.attrs.get("class", "")]) == 2
    (bar,) = svg.find_all("rect", "ca-bar")
    assert bar.attrs["data-host"] == "localhost" and 44 < float(bar.attrs["data-days"]) <= 45

    # pytest-html's script builds the results table from its JSON: the rows exist only in the rendered DOM.
    table = dom.by_id("results-table")
    rows = [r for r in table.find_all("tr", "collapsible") if _cell_text(r, "col-control")]
    # Its table holds the results that did not pass or apply (the others are in certaudit's summary).
    results = [r for r in audit.evidence["results"] if r["outcome"] not in ROWLESS_OUTCOMES]
    assert len(rows) == len(results) and results
    record = next(r for r in results if r["observed"])
    (row,) = [
        r for r in rows if _cell_text(r, "col-control") == record["control"] and _cell_text(r, "col-host") == record["host"]
    ]
    key, value = next(iter(record["observed"].items()))
    assert f"{key}: {format_value(value)}" in _cell_text(row, "col-observed")
    # The same evidence as the report file carries for that row.
    (cells_html,) = [c for c in audit.table_rows()[record["nodeid"]] if cell_of(c, "control").text()]
    assert cell_of(cells_html, "observed").text() == _cell_text(row, "col-observed")


def _cell_text(row: Node, css: str) -> str:
    cells = [c for c in row.find_all("td") if css in c.attrs.get("class", "").split()]
    return cells[0].text() if cells else ""
