"""certaudit's HTML audit report: pytest-html 4 hooks that put what needs action first.

The report is the evidence an auditor reads a year from now, printed or on screen: what was checked
(the controls), on which hosts (expected and reached), when and by whom (the run's metadata), and
what was seen (each result's observed and expected values). pytest-html builds the page; above its
results table this plugin puts certaudit.evidence.report_view's summary, the same renderer the
merged report (`certaudit merge`) uses: the hosts with a finding or an error and their failing
controls, the compliant hosts as counts, the host × control matrix, the counts per outcome, a filter
over every result, the hosts expected and reached, a certificate expiry horizon (inline SVG) and the
run's metadata.

pytest-html's per-row output is what does not scale (one row of HTML per test in one JSON attribute,
17,000 for 1,000 hosts): so this plugin drops pytest-html's rows for results that passed or did not
apply (`pytest_html_results_table_row` empties their cells, which pytest-html takes as "no row").
Its table keeps the failures, errors and waivers, with the evidence columns this plugin adds, and
the tests that are not controls. Every result, passing ones too, stays reachable from the page (the
filter and each host's details blob) and stays in evidence.json. pytest-html's own outcome counts
therefore count only the rows it shows; certaudit's counts are above them.

Everything a host or an inventory can influence is escaped with `html.escape` here: pytest-html
inserts summary blocks and table cells as HTML, unescaped.

Registered by certaudit's plugin when an HTML report is written:
`config.pluginmanager.register(HtmlReport(config), "certaudit-html")`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from certaudit.audit import AUDIT_KEY, Audit
from certaudit.controls import REGISTRY
from certaudit.evidence import lifetime_report
from certaudit.evidence.report_view import (
    METADATA_LABELS,
    ReportData,
    RunContext,
    exit_status_text,
    format_value,
    outcome_badge,
    render_kv,
    summary_parts,
    text,
)
from certaudit.evidence.run import run_metadata
from certaudit.record import Record, is_record_property

PLUGIN_NAME = "certaudit-html"
# Results whose pytest-html row is dropped: the bulk of a healthy fleet, reachable from the summary.
ROWLESS_OUTCOMES = frozenset({"pass", "not applicable"})

# Header cells this plugin adds to pytest-html's results table, after its Result and Test columns.
COLUMNS = (
    ("control", "Control", True),
    ("title", "Title", False),
    ("host", "Host", True),
    ("outcome", "Outcome", True),
    ("observed", "Observed", False),
    ("expected", "Expected", False),
    ("fix", "Fix", False),
)
COLUMN_AT = 2


# --- records ---------------------------------------------------------------------------------------
_RECORD_FIELDS = {f.name for f in fields(Record)}


def record_from_json(raw: object) -> Record | None:
    """A Record from its JSON text (a report's user property); None when it is not one."""
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not {"control", "host", "outcome"} <= data.keys():
        return None
    try:
        return Record(**{k: v for k, v in data.items() if k in _RECORD_FIELDS})
    except TypeError:
        return None


def record_of(report: pytest.TestReport) -> Record | None:
    """The certaudit record a report carries (see plugin.pytest_runtest_makereport), if any."""
    for prop in getattr(report, "user_properties", None) or ():
        if is_record_property(prop):
            return record_from_json(prop[1])
    return None


def _rowless(report: pytest.TestReport) -> bool:
    """A control's pass or N/A, told from the report alone (its record's outcome, without reading the record)."""
    carries_record = any(map(is_record_property, report.user_properties or ()))
    # A pass passes; an N/A is skipped and a waived failure is skipped too, but as pytest's xfail.
    return carries_record and (report.passed or (report.skipped and not hasattr(report, "wasxfail")))


def _metadata_value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return "\n".join(f"{k}: {format_value(v)}" for k, v in value.items()) if value else "(none)"
    return format_value(value)


def run_metadata_rows(audit: Audit) -> list[tuple[str, str]]:
    """run_metadata(audit) as (label, value) rows; a key not known here is shown as it is."""

    rows: list[tuple[str, str]] = []
    for key, value in run_metadata(audit).items():
        label = METADATA_LABELS.get(key, key)
        if key == "policies" and isinstance(value, dict):
            distinct = {json.dumps(p, sort_keys=True, default=str) for p in value.values()}
            if len(distinct) == 1 and len(value) > 1:
                rows.append((f"{label} (all {len(value)} hosts)", _metadata_value(next(iter(value.values())))))
            elif not value:
                rows.append((label, "(none)"))
            else:
                rows.extend((f"{label} of {host}", _metadata_value(policy)) for host, policy in value.items())
            continue
        rows.append((label, _metadata_value(value)))
    return rows


# --- results table ---------------------------------------------------------------------------------
def header_cells() -> list[str]:
    return [
        f'<th class="sortable" data-column-type="{name}">{label}</th>' if sortable else f"<th>{label}</th>"
        for name, label, sortable in COLUMNS
    ]


def _outcome_details(record: Record) -> str:
    parts = [outcome_badge(record.outcome)]
    if record.findings:
        parts.append('<ul class="ca-findings">' + "".join(f"<li>{text(f)}</li>" for f in record.findings) + "</ul>")
    elif record.outcome != "pass" and record.message:
        parts.append(f'<div class="ca-msg">{text(record.message)}</div>')
    waiver = getattr(record, "waiver", None)
    if isinstance(waiver, dict) and waiver:
        parts.append(f'<div class="ca-waiver"><b>waiver</b>{render_kv(waiver)}</div>')
    parts.extend(f'<div class="ca-note">note: {text(n)}</div>' for n in record.notes)
    if record.started:
        parts.append(f'<div class="ca-when">judged {text(record.started)} ({record.duration_s:g} s)</div>')
    return "".join(parts)


def result_cells(record: Record | None) -> list[str]:
    """The cells this plugin adds to a results-table row (empty for a test that is not a control)."""
    if record is None:
        return [f'<td class="col-{name}"></td>' for name, _, _ in COLUMNS]
    gate = ' <span class="ca-gate">gate</span>' if record.gate else ""
    return [
        f'<td class="col-control">{text(record.control)}</td>',
        f'<td class="col-title">{text(record.title)}{gate}</td>',
        f'<td class="col-host">{text(record.host)}</td>',
        f'<td class="col-outcome">{_outcome_details(record)}</td>',
        f'<td class="col-observed">{render_kv(record.observed)}</td>',
        f'<td class="col-expected">{render_kv(record.expected)}</td>',
        f'<td class="col-fix">{text(record.fix)}</td>',
    ]


def summary_html(audit: Audit, exitstatus: int | None) -> str:
    """Everything this plugin puts above pytest-html's summary, for one audit: one pass over its records."""
    return "".join(summary_html_parts(audit, exitstatus))


def summary_html_parts(audit: Audit, exitstatus: int | None) -> Iterator[str]:
    """summary_html, section by section (report_view.summary_parts)."""
    inventory = audit._inventory
    targets = list(inventory.targets) if inventory is not None else []
    expected = [t.name for t in targets]
    ran: set[str] = set()
    data = ReportData()
    for record in audit.records:
        ran.add(record.control)
        data.add(record)
    for control in REGISTRY.values():  # a control loaded that ran nowhere: a NOT RUN column
        if control.id in ran or control.id not in audit.without_subject:
            data.titles.setdefault(control.id, (control.title, control.gate))
            data.fixes.setdefault(control.id, control.fix)
    rows = run_metadata_rows(audit)
    if exitstatus is not None and not any(label == METADATA_LABELS["exit_status"] for label, _ in rows):
        rows.append((METADATA_LABELS["exit_status"], exit_status_text(exitstatus)))
    meta = dict(rows)
    reached = set(audit.reached)
    lead = (
        f"Job {meta.get('Job', '?')}, run by {meta.get(METADATA_LABELS['operator'], '?')}, "
        f"started {meta.get(METADATA_LABELS['started'], '?')}; inventory {meta.get('Inventory', '?')}: "
        f"{len(expected)} host(s) expected, {len(reached & set(expected))} reached; "
        f"{data.results} result(s)."
    )
    context = RunContext(
        expected=expected,
        reached=reached,
        unreachable=dict(audit.probe_errors),
        thresholds={t.name: (t.policy.warn_days, t.policy.crit_days) for t in targets},
        metadata=rows,
    )
    return summary_parts(data, context, lead)


# --- the plugin --------------------------------------------------------------------------------------
class HtmlReport:
    """pytest-html 4 hooks for certaudit's report. Hook implementations are optional: registering
    this without pytest-html (e.g. `-p no:html`) is harmless."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._summary_for: int | None = None  # the exit status the summary is written for, once asked

    def placeholder(self) -> str:
        audit = self._audit()
        return f"<!--certaudit-summary-{audit.run_id if audit is not None else ''}-->"

    def _audit(self) -> Audit | None:
        return self.config.stash.get(AUDIT_KEY, None)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        audit = self._audit()
        started = audit.started if audit is not None else dt.datetime.now(dt.UTC)
        job = self.config.getoption("job", "audit")
        # pytest-html's template escapes the title.
        report.title = f"certaudit {job} report, {started.astimezone(dt.UTC).date().isoformat()} (UTC)"

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        # Called once, from pytest-html's own pytest_sessionfinish (trylast): every record is in.
        audit = self._audit()
        if audit is None:
            return
        exitstatus = session.exitstatus if isinstance(session.exitstatus, int) else None
        # A place for the summary, written into the page pytest-html wrote (write_summary): for a
        # fleet it is megabytes, which pytest-html's template would copy into its page twice more.
        self._summary_for = exitstatus
        prefix.insert(0, self.placeholder())
        prefix.insert(1, lifetime_report.render_section(audit.lifetimes, audit.what_if_rows() if audit.lifetimes else []))

    def write_summary(self) -> None:
        """Stream the summary into report.html at its place (after pytest-html wrote the page, before
        the run is sealed); raises OSError when the page cannot be read or written."""
        audit, path = self._audit(), getattr(self.config.option, "htmlpath", None)
        if audit is None or not path or not Path(path).is_file():
            return
        page = Path(path)
        head, found, tail = page.read_text(encoding="utf-8").partition(self.placeholder())
        if not found:
            return  # pytest-html did not ask for the summary (its session did not finish)
        written = page.with_name(f".{page.name}.{audit.run_id}")
        try:
            with written.open("w", encoding="utf-8") as out:
                out.write(head)
                for part in summary_html_parts(audit, self._summary_for):
                    out.write(part)
                out.write(tail)
            os.replace(written, page)
        finally:
            written.unlink(missing_ok=True)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells[COLUMN_AT:COLUMN_AT] = header_cells()

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        if report.when in ("setup", "teardown") and report.passed and not report.sections:
            # pytest-html keeps no row for a passed setup or teardown with nothing captured: said at
            # once, its work on the row (17,000 controls make 34,000 such reports) is not done.
            cells.clear()
            return
        if _rowless(report):
            # No row for a pass or an N/A (a phase that failed keeps its row): 17,000 of them made the
            # page unloadable. The summary's matrix, filter and blobs carry them (module docstring).
            cells.clear()
            return
        record = record_of(report)
        # pytest-html puts the node id into its Test cell unescaped: escape it (host names are in it).
        for index, cell in enumerate(cells):
            if isinstance(cell, str) and cell.startswith('<td class="col-testId">'):
                test_id = report.nodeid if report.when == "call" else f"{report.nodeid}::{report.when}"
                cells[index] = f'<td class="col-testId">{text(test_id)}</td>'
        cells[COLUMN_AT:COLUMN_AT] = result_cells(record)
