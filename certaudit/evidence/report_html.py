"""certaudit's HTML audit report: pytest-html 4 hooks that put the audit's evidence first.

The report is the evidence an auditor reads a year from now, printed or on screen: what was checked
(the controls), on which hosts (expected and reached), when and by whom (the run's metadata), and
what was seen (each result's observed and expected values). pytest-html builds the page; this
plugin adds, above its results table, a host × control matrix, the counts per outcome, the hosts
expected and reached, a certificate expiry horizon (inline SVG) and the run's metadata, and adds
the evidence columns to the results table.

Everything a host or an inventory can influence is escaped with `html.escape` here: pytest-html
inserts summary blocks and table cells as HTML, unescaped.

Registered by certaudit's plugin when an HTML report is written:
`config.pluginmanager.register(HtmlReport(config), "certaudit-html")`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from html import escape
from typing import Any

import pytest

from certaudit.audit import AUDIT_KEY, Audit
from certaudit.controls import REGISTRY
from certaudit.evidence import lifetime_report
from certaudit.evidence.run import run_metadata
from certaudit.record import USER_PROPERTY, Record
from certaudit.redact import untrusted

PLUGIN_NAME = "certaudit-html"
EXPIRY_CONTROL = "CRT-01"
DEFAULT_WARN_DAYS = 30
DEFAULT_CRIT_DAYS = 7
MIN_AXIS_DAYS = 90
# A white outline under SVG label text keeps it legible where it crosses a threshold line.
HALO = 'paint-order="stroke" stroke="#fff" stroke-width="3" stroke-linejoin="round"'

# Outcome -> (text shown, CSS class). The text carries the outcome on its own (black and white print).
OUTCOMES: dict[str, tuple[str, str]] = {
    "pass": ("PASS", "ca-o-pass"),
    "fail": ("FAIL", "ca-o-fail"),
    "waived": ("WAIVED", "ca-o-waived"),
    "not applicable": ("N/A", "ca-o-na"),
    "error": ("ERROR", "ca-o-error"),
}
NOT_RUN = ("NOT RUN", "ca-o-notrun")
# Which record a matrix cell shows when a (host, control) pair has several (e.g. a failure and a
# teardown error): the most severe.
SEVERITY = {"fail": 5, "error": 4, "waived": 3, "not applicable": 2, "pass": 1}

# Labels of certaudit.evidence.run.run_metadata's keys; a key not listed here is shown as it is.
METADATA_LABELS = {
    "run_id": "Run id",
    "job": "Job",
    "started": "Started (UTC)",
    "finished": "Finished (UTC)",
    "operator": "Run by (user@machine)",
    "ci_job": "CI job",
    "certaudit_version": "certaudit version",
    "certaudit_commit": "certaudit commit",
    "inventory": "Inventory",
    "inventory_sha256": "Inventory SHA-256",
    "waivers_file": "Waivers file",
    "hosts_expected": "Hosts expected",
    "hosts_reached": "Hosts reached",
    "policies": "Policy",
    "versions": "Software versions",
    "exit_status": "Exit status",
    "shard": "Shard (--shard: index of count, of the inventory's hosts)",
}

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


# --- text helpers ----------------------------------------------------------------------------------
def text(value: object) -> str:
    """Escaped text for HTML content and attributes; line breaks kept as <br> (never a raw newline)."""
    return escape(str(value), quote=True).replace("\r\n", "\n").replace("\n", "<br>")


def attr(value: object) -> str:
    """Escaped text for an attribute value, on one line."""
    return escape(" ".join(str(value).split()), quote=True)


def first_line(message: str) -> str:
    for line in message.splitlines():
        if line.strip():
            return line.strip()
    return ""


def format_value(value: Any) -> str:
    """A value as the report shows it: strings as they are, anything else (nested too) as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "), default=str)
    except (TypeError, ValueError):
        return str(value)


def render_kv(values: Mapping[str, Any] | None) -> str:
    """`key: value` lines, escaped; nested values as JSON."""
    if not values:
        return ""
    items = (
        f'<div class="ca-kv"><span class="ca-k">{text(key)}</span>: <span class="ca-v">{text(format_value(value))}</span></div>'
        for key, value in values.items()
    )
    return "".join(items)


def outcome_label(outcome: str) -> tuple[str, str]:
    """(text, CSS class) of an outcome; an unknown outcome shows as itself, upper-cased."""
    return OUTCOMES.get(outcome, (outcome.upper() or "?", "ca-o-unknown"))


def outcome_badge(outcome: str) -> str:
    label, css = outcome_label(outcome)
    return f'<span class="ca-badge {css}">{text(label)}</span>'


def days_text(days: float) -> str:
    return f"{days:.1f}"


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
        # A tuple in-process, a list once serialized (xdist).
        if isinstance(prop, tuple | list) and len(prop) == 2 and prop[0] == USER_PROPERTY:
            return record_from_json(prop[1])
    return None


@dataclass(frozen=True)
class Cell:
    """One (host, control) pair of the matrix: the record it shows and how many it had."""

    record: Record | None
    count: int = 0

    @property
    def outcome(self) -> str | None:
        return self.record.outcome if self.record else None


Catalog = Mapping[str, tuple[str, bool]]  # control id -> (title, gate)


def matrix_of(
    records: Iterable[Record], hosts: Iterable[str] = (), catalog: Catalog | None = None
) -> tuple[list[str], list[str], dict[tuple[str, str], Cell]]:
    """Hosts (sorted: those given and those with records), control ids (sorted: those of the
    catalog and those with records) and each pair's cell; a pair without a record did not run."""
    by_pair: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        by_pair.setdefault((record.host, record.control), []).append(record)
    all_hosts = sorted(set(hosts) | {h for h, _ in by_pair})
    controls = sorted({c for _, c in by_pair} | set(catalog or {}))
    cells: dict[tuple[str, str], Cell] = {}
    for host in all_hosts:
        for control in controls:
            found = by_pair.get((host, control), [])
            worst = max(found, key=lambda r: SEVERITY.get(r.outcome, 6), default=None)
            cells[(host, control)] = Cell(worst, len(found))
    return all_hosts, controls, cells


# --- summary sections ------------------------------------------------------------------------------
def render_matrix(records: Sequence[Record], hosts: Iterable[str] = (), catalog: Catalog | None = None) -> str:
    """(a) The host × control matrix: each cell's outcome as text, with colour and border style.

    `catalog` (the controls loaded in this run) adds a NOT RUN column for a control that ran nowhere.
    """
    all_hosts, controls, cells = matrix_of(records, hosts, catalog)
    if not records:
        return (
            '<section class="ca-section" id="certaudit-matrix"><h3>Results by host and control</h3>'
            "<p>No control ran.</p></section>"
        )
    titles: dict[str, tuple[str, bool]] = dict(catalog or {})
    for record in records:
        titles.setdefault(record.control, (record.title, record.gate))
    head = "".join(
        f'<th scope="col" title="{attr(titles[c][0])}">{text(c)}{"<br><small>gate</small>" if titles[c][1] else ""}</th>'
        for c in controls
    )
    rows = []
    for host in all_hosts:
        tds = []
        for control in controls:
            cell = cells[(host, control)]
            if cell.record is None:
                label, css = NOT_RUN
                tip = f"{control} did not run on {host}"
            else:
                label, css = outcome_label(cell.record.outcome)
                tip = first_line(cell.record.message) or f"{control} on {host}: {label}"
                if cell.count > 1:
                    tip += f" (and {cell.count - 1} more result(s) for this pair)"
            more = f"<sup>+{cell.count - 1}</sup>" if cell.count > 1 else ""
            tds.append(
                f'<td class="ca-cell {css}" data-control="{attr(control)}" data-host="{attr(host)}" title="{attr(tip)}">'
                f"{text(label)}{more}</td>"
            )
        rows.append(f'<tr><th scope="row" class="ca-host">{text(host)}</th>{"".join(tds)}</tr>')
    legend = "".join(f"<div><b>{text(c)}</b>{' (gate)' if titles[c][1] else ''}: {text(titles[c][0])}</div>" for c in controls)
    key = " ".join(f'<span class="ca-badge {css}">{text(label)}</span>' for label, css in [*OUTCOMES.values(), NOT_RUN])
    return (
        '<section class="ca-section" id="certaudit-matrix"><h3>Results by host and control</h3>'
        '<table class="ca-matrix" id="certaudit-matrix-table"><thead><tr><th scope="col">host</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<div class="ca-key">Key: {key}</div><div class="ca-legend">{legend}</div></section>'
    )


def render_counts(records: Sequence[Record], hosts: Iterable[str] = (), catalog: Catalog | None = None) -> str:
    """(b) How many (host, control) pairs of the matrix ended in each outcome."""
    _, _, cells = matrix_of(records, hosts, catalog)
    counts = Counter(cell.outcome or "not run" for cell in cells.values())
    items = []
    for outcome in ("pass", "fail", "waived", "not applicable", "error"):
        label, css = OUTCOMES[outcome]
        items.append(
            f'<li><span class="ca-badge {css}">{text(label)}</span> '
            f'<span class="ca-count" data-outcome="{attr(outcome)}">{counts.pop(outcome, 0)}</span></li>'
        )
    for outcome, count in sorted(counts.items()):  # not run, and any outcome this module does not know
        label, css = NOT_RUN if outcome == "not run" else outcome_label(outcome)
        items.append(
            f'<li><span class="ca-badge {css}">{text(label)}</span> '
            f'<span class="ca-count" data-outcome="{attr(outcome)}">{count}</span></li>'
        )
    return (
        '<section class="ca-section" id="certaudit-counts"><h3>Outcomes</h3>'
        f'<p>{len(cells)} host × control results:</p><ul class="ca-counts">{"".join(items)}</ul></section>'
    )


def render_hosts(expected: Sequence[str], reached: Iterable[str], probe_errors: Mapping[str, str]) -> str:
    """(c) Hosts the inventory lists against hosts whose facts were gathered; why the others were not."""
    reached_set = set(reached)
    rows = []
    for host in sorted(set(expected) | reached_set | set(probe_errors)):
        if host in reached_set:
            status, css, why = "reached", "ca-o-pass", "facts gathered"
        elif host in probe_errors:
            status, css, why = "UNREACHED", "ca-o-error", untrusted(probe_errors[host])
        else:
            status, css, why = (
                "NOT PROBED",
                "ca-o-notrun",
                "no control needed its facts in this run (deselected or not applicable)",
            )
        listed = "yes" if host in expected else "no (not in the inventory)"
        rows.append(
            f'<tr><th scope="row">{text(host)}</th><td>{text(listed)}</td>'
            f'<td><span class="ca-badge {css}">{text(status)}</span></td><td>{text(why)}</td></tr>'
        )
    unreached = [h for h in expected if h not in reached_set]
    lead = (
        f"{len(expected)} host(s) expected (inventory), {len(reached_set & set(expected))} reached"
        + (f"; not reached: {', '.join(sorted(unreached))}" if unreached else "")
        + "."
    )
    return (
        '<section class="ca-section" id="certaudit-hosts"><h3>Hosts expected and reached</h3>'
        f"<p>{text(lead)}</p>"
        '<table class="ca-table" id="certaudit-hosts-table"><thead><tr><th>host</th><th>in inventory</th>'
        f"<th>status</th><th>detail</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def days_left_of(records: Iterable[Record]) -> dict[str, float | None]:
    """Each host's days left, from its CRT-01 record's observation (None when it has none)."""
    found: dict[str, float | None] = {}
    for record in records:
        if record.control != EXPIRY_CONTROL:
            continue
        value = record.observed.get("days_left") if isinstance(record.observed, dict) else None
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is not None and not math.isfinite(number):
            number = None
        if found.get(record.host) is None:
            found[record.host] = number
    return found


def _tier(days: float, warn: float, crit: float) -> str:
    # As CRT-01 judges: ok above warn, warning above crit, critical at or under crit.
    return "ok" if days > warn else "warning" if days > crit else "critical"


def _tick_step(axis_max: float) -> int:
    for step in (10, 15, 30, 60, 90, 180, 365, 730):
        if axis_max / step <= 12:
            return step
    return math.ceil(axis_max / 12 / 365) * 365


def _short(name: str, limit: int = 26) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def render_horizon(
    hosts: Sequence[str],
    days: Mapping[str, float | None],
    thresholds: Mapping[str, tuple[int, int]] | None = None,
    reasons: Mapping[str, str] | None = None,
) -> str:
    """(d) Certificate expiry horizon: one bar per host, its length the days left, as inline SVG.

    `thresholds` maps a host to its policy's (warn_days, crit_days). The lines are drawn at them
    when every host has the same, else at the runbook's 30 and 7; each bar is filled by its own
    host's tier, with a pattern as well as a colour, and labelled with its days as text.
    """
    thresholds = thresholds or {}
    reasons = reasons or {}
    distinct = set(thresholds.values())
    warn, crit = next(iter(distinct)) if len(distinct) == 1 else (DEFAULT_WARN_DAYS, DEFAULT_CRIT_DAYS)
    note = " (the runbook's: the hosts' policies differ, and each bar is filled by its own host's)" if len(distinct) > 1 else ""
    known = [d for d in (days.get(h) for h in hosts) if d is not None]
    axis_max = float(max(MIN_AXIS_DAYS, math.ceil(max(known, default=0))))
    width, left, right = 1000, 200, 190
    plot = width - left - right
    top, row_h, bar_h = 44, 26, 16
    bottom = top + max(len(hosts), 1) * row_h
    height = bottom + 44

    def x(d: float) -> float:
        return round(left + plot * min(max(d, 0.0), axis_max) / axis_max, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="certaudit-horizon-svg" class="ca-horizon" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12" aria-labelledby="ca-horizon-title">',
        '<title id="ca-horizon-title">Certificate expiry horizon: days left per host</title>',
        "<defs>"
        '<pattern id="ca-fill-warning" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="#f0ad4e"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#000" stroke-width="1.5"/></pattern>'
        '<pattern id="ca-fill-critical" patternUnits="userSpaceOnUse" width="6" height="6">'
        '<rect width="6" height="6" fill="#d9534f"/><path d="M0 0L6 6M6 0L0 6" stroke="#000" stroke-width="1.2"/></pattern>'
        "</defs>",
    ]
    step = _tick_step(axis_max)
    tick = 0
    while tick <= axis_max:
        parts.append(
            f'<line class="ca-grid" x1="{x(tick)}" y1="{top - 4}" x2="{x(tick)}" y2="{bottom}" stroke="#ddd" stroke-width="1"/>'
            f'<line x1="{x(tick)}" y1="{bottom}" x2="{x(tick)}" y2="{bottom + 5}" stroke="#000"/>'
            f'<text x="{x(tick)}" y="{bottom + 18}" text-anchor="middle">{tick}</text>'
        )
        tick += step
    if (axis_max - (tick - step)) * plot / axis_max > 24:  # label the axis end unless a tick is there
        parts.append(f'<text x="{x(axis_max)}" y="{bottom + 18}" text-anchor="middle">{axis_max:g}</text>')
    parts.append(
        f'<line x1="{left}" y1="{bottom}" x2="{x(axis_max)}" y2="{bottom}" stroke="#000" stroke-width="1.5"/>'
        f'<text x="{left + plot / 2}" y="{bottom + 36}" text-anchor="middle">days left until the certificate expires</text>'
    )
    # Threshold lines under the bars; the critical label ends at its line, the warning one starts at
    # its line, so the two never overlap however close they are.
    for kind, days_at, anchor, dy, dash, stroke_w in (
        ("warning", warn, "start", top - 24, "8 4", 2),
        ("critical", crit, "end", top - 10, "none", 2.5),
    ):
        parts.append(
            f'<line class="ca-threshold ca-threshold-{kind}" data-days="{days_at}" x1="{x(days_at)}" y1="{dy - 10}" '
            f'x2="{x(days_at)}" y2="{bottom}" stroke="#000" stroke-width="{stroke_w}" stroke-dasharray="{dash}"/>'
            f'<text x="{x(days_at) + (4 if anchor == "start" else -4)}" y="{dy}" text-anchor="{anchor}" font-weight="bold">'
            f"{kind} {days_at} d</text>"
        )
    for index, host in enumerate(hosts):
        y = top + index * row_h + (row_h - bar_h) / 2
        mid = y + bar_h / 2 + 4
        parts.append(
            f'<text class="ca-bar-host" x="{left - 8}" y="{mid}" text-anchor="end">'
            f"<title>{text(host)}</title>{text(_short(host))}</text>"
        )
        value = days.get(host)
        if value is None:
            why = reasons.get(host, f"no {EXPIRY_CONTROL} days_left")
            parts.append(
                f'<rect x="{left}" y="{y}" width="{plot}" height="{bar_h}" fill="none" stroke="#999" stroke-dasharray="3 3"/>'
                f'<text class="ca-bar-label" data-host="{attr(host)}" {HALO} x="{left + 6}" y="{mid}" font-style="italic">'
                f"<title>{text(why)}</title>unknown ({text(_short(why, 110))})</text>"
            )
            continue
        host_warn, host_crit = thresholds.get(host, (warn, crit))
        tier = _tier(value, host_warn, host_crit)
        fill = {"ok": "#5cb85c", "warning": "url(#ca-fill-warning)", "critical": "url(#ca-fill-critical)"}[tier]
        bar_w = round(x(value) - left, 1)
        label = f"{days_text(value)} days ({tier.upper() if tier != 'ok' else 'ok'})"
        if value <= 0:
            label = f"EXPIRED {days_text(-value)} days ago"
        parts.append(
            f'<rect class="ca-bar ca-tier-{tier}" data-host="{attr(host)}" data-days="{days_text(value)}" x="{left}" y="{y}" '
            f'width="{bar_w}" height="{bar_h}" fill="{fill}" stroke="#000" stroke-width="1"/>'
            f'<text class="ca-bar-label" data-host="{attr(host)}" {HALO} x="{left + bar_w + 6}" y="{mid}" '
            f'font-weight="{"normal" if tier == "ok" else "bold"}">{text(label)}</text>'
        )
    parts.append("</svg>")
    legend = (
        '<div class="ca-key">Fill: <span class="ca-swatch ca-sw-ok"></span> ok (more than the warning threshold) '
        '<span class="ca-swatch ca-sw-warning"></span> warning (hatched) '
        '<span class="ca-swatch ca-sw-critical"></span> critical (cross-hatched); '
        f"lines: warning at {warn} days (dashed), critical at {crit} days (solid){text(note)}.</div>"
    )
    return (
        '<section class="ca-section" id="certaudit-horizon"><h3>Certificate expiry horizon</h3>'
        f"<p>Days left on each host's certificate ({EXPIRY_CONTROL}'s observation), axis 0 to {axis_max:g} days.</p>"
        f"{''.join(parts)}{legend}</section>"
    )


def render_metadata(rows: Sequence[tuple[str, str]]) -> str:
    """(e) The run's metadata as a definition table."""
    body = "".join(f'<tr><th scope="row">{text(label)}</th><td>{text(value)}</td></tr>' for label, value in rows)
    return (
        '<section class="ca-section" id="certaudit-run"><h3>Run</h3>'
        f'<table class="ca-table ca-deflist" id="certaudit-run-table"><tbody>{body}</tbody></table></section>'
    )


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


# --- the page's own style --------------------------------------------------------------------------
STYLE = """
<style>
.certaudit { color: #111; font-size: 13px; max-width: 1400px; }
.certaudit h3 { font-size: 15px; color: #000; margin: 18px 0 6px; }
.certaudit p { margin: 4px 0; }
.ca-lead { font-size: 14px; }
.ca-matrix { border-collapse: separate; border-spacing: 3px; }
.ca-matrix th { padding: 4px 8px; text-align: center; color: #000; }
.ca-matrix th.ca-host { text-align: left; }
.ca-cell { min-width: 64px; padding: 6px 8px; text-align: center; font-size: 13px; }
.ca-badge { display: inline-block; padding: 1px 6px; margin: 1px 0; font-size: 12px; }
.ca-o-pass { background: #cfe8d2; border: 1px solid #2e7d32; color: #0b3d12; }
.ca-o-fail { background: #f5c6cb; border: 3px solid #000; color: #000; font-weight: bold; }
.ca-o-error { background: #ffe08a; border: 2px dashed #000; color: #000; font-style: italic; }
.ca-o-waived { background: #d6d8f0; border: 2px dotted #000; color: #000; }
.ca-o-na { background: #ececec; border: 1px solid #888; color: #333; }
.ca-o-notrun, .ca-o-unknown { background: #fff; border: 1px dotted #888; color: #555; }
.ca-key, .ca-legend { margin-top: 6px; color: #222; }
.ca-legend div { margin: 1px 0; }
.ca-counts { list-style: none; padding: 0; margin: 4px 0; display: flex; flex-wrap: wrap; gap: 14px; }
.ca-count { font-size: 16px; font-weight: bold; color: #000; }
.ca-table { border-collapse: collapse; margin: 4px 0; }
.ca-table th, .ca-table td { border: 1px solid #bbb; padding: 4px 8px; text-align: left; vertical-align: top; color: #111; }
.ca-deflist th { background: #f3f3f3; white-space: nowrap; }
.ca-deflist td { font-family: monospace; font-size: 12px; word-break: break-all; }
.ca-horizon { max-width: 100%; height: auto; display: block; }
.ca-swatch { display: inline-block; width: 22px; height: 10px; border: 1px solid #000; vertical-align: middle; }
.ca-sw-ok { background: #5cb85c; }
.ca-sw-warning { background: repeating-linear-gradient(45deg, #f0ad4e 0 3px, #000 3px 4px); }
.ca-sw-critical { background: repeating-linear-gradient(45deg, #d9534f 0 3px, #000 3px 4px),
  repeating-linear-gradient(-45deg, #d9534f 0 3px, #000 3px 4px); }
#results-table { color: #222; }
#results-table td.col-observed, #results-table td.col-expected { font-family: monospace; font-size: 11px; }
#results-table td { overflow-wrap: anywhere; }
#results-table td.col-testId { min-width: 140px; }
#results-table td.col-title { min-width: 140px; }
#results-table td.col-outcome { min-width: 200px; }
#results-table td.col-observed { min-width: 220px; }
#results-table td.col-expected { min-width: 160px; }
#results-table td.col-fix { min-width: 150px; }
.ca-kv { margin: 1px 0; }
.ca-k { font-weight: bold; }
.ca-findings { margin: 4px 0; padding-left: 16px; }
.ca-msg, .ca-note, .ca-waiver { margin-top: 3px; }
.ca-when { margin-top: 3px; color: #555; font-size: 11px; }
.ca-gate { border: 1px solid #000; padding: 0 3px; font-size: 10px; }
@media print {
  @page { size: A4 landscape; margin: 12mm; }
  body { min-width: 0; color: #000; font-size: 10px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .filters, .collapse, p.filter, .summary__reload, .summary__spacer, .logexpander, .media,
  #environment-header::after, .sortable:after { display: none !important; }
  a { color: #000; }
  .ca-section { break-inside: avoid; }
  .ca-matrix, .ca-table, #results-table tbody { break-inside: avoid; }
  #results-table thead { display: table-header-group; }
  #results-table, #results-table td, #results-table th { color: #000; border-color: #666; }
  #results-table { font-size: 9px; }
  #results-table td.col-testId, #results-table td.col-title, #results-table td.col-fix { min-width: 90px; }
  #results-table td.col-outcome, #results-table td.col-observed { min-width: 140px; }
  #results-table td.col-expected { min-width: 110px; }
  #results-table td.col-observed, #results-table td.col-expected { font-size: 8.5px; }
  .ca-horizon { width: 100%; }
  .logwrapper { max-height: none !important; overflow: visible !important; }
  .logwrapper .log { top: 0; height: auto; white-space: pre-wrap; font-size: 8.5px; }
}
</style>
"""


EXIT_MEANINGS = {
    0: "compliant: every control passed, waived or did not apply",
    1: "findings or errors",
    2: "interrupted: the results are incomplete",
    3: "internal error",
    4: "usage error",
    5: "no test collected",
}


def exit_status_text(status: int) -> str:
    meaning = EXIT_MEANINGS.get(int(status))
    return f"{int(status)} ({meaning})" if meaning else str(int(status))


def summary_html(audit: Audit, exitstatus: int | None) -> str:
    """Everything this plugin puts above pytest-html's summary, for one audit."""
    inventory = audit._inventory
    targets = list(inventory.targets) if inventory is not None else []
    expected = [t.name for t in targets]
    records = list(audit.records)
    hosts = sorted(set(expected) | {r.host for r in records})
    thresholds = {t.name: (t.policy.warn_days, t.policy.crit_days) for t in targets}
    days = days_left_of(records)
    reasons: dict[str, str] = {}
    for host in hosts:
        crt = [r for r in records if r.host == host and r.control == EXPIRY_CONTROL]
        if host in audit.probe_errors and host not in audit.facts:
            reasons[host] = "host not reached"
        elif not crt:
            reasons[host] = f"{EXPIRY_CONTROL} did not run"
        else:
            reasons[host] = f"{EXPIRY_CONTROL} {outcome_label(crt[0].outcome)[0]}: {first_line(crt[0].message)}"
    ran = {r.control for r in records}
    catalog = {c.id: (c.title, c.gate) for c in REGISTRY.values() if c.id in ran or c.id not in audit.without_subject}
    rows = run_metadata_rows(audit)
    if exitstatus is not None and not any(label == METADATA_LABELS["exit_status"] for label, _ in rows):
        rows.append((METADATA_LABELS["exit_status"], exit_status_text(exitstatus)))
    meta = dict(rows)
    lead = (
        f"Job {meta.get('Job', '?')}, run by {meta.get(METADATA_LABELS['operator'], '?')}, "
        f"started {meta.get(METADATA_LABELS['started'], '?')}; inventory {meta.get('Inventory', '?')}: "
        f"{len(expected)} host(s) expected, {len(set(audit.facts) & set(expected))} reached; "
        f"{len(records)} result(s)."
    )
    return (
        f'{STYLE}<div class="certaudit" id="certaudit-summary"><h2>certaudit audit evidence</h2>'
        f'<p class="ca-lead">{text(lead)}</p>'
        f"{render_matrix(records, hosts, catalog)}"
        f"{render_counts(records, hosts, catalog)}"
        f"{render_hosts(expected, audit.facts.keys(), audit.probe_errors)}"
        f"{render_horizon(hosts, days, thresholds, reasons)}"
        f"{render_metadata(rows)}</div>"
    )


# --- the plugin --------------------------------------------------------------------------------------
class HtmlReport:
    """pytest-html 4 hooks for certaudit's report. Hook implementations are optional: registering
    this without pytest-html (e.g. `-p no:html`) is harmless."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

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
        prefix.insert(0, summary_html(audit, exitstatus))
        prefix.insert(1, lifetime_report.render_section(audit.lifetimes, audit.what_if_rows() if audit.lifetimes else []))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells[COLUMN_AT:COLUMN_AT] = header_cells()

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        # pytest-html puts the node id into its Test cell unescaped: escape it (host names are in it).
        for index, cell in enumerate(cells):
            if isinstance(cell, str) and cell.startswith('<td class="col-testId">'):
                test_id = report.nodeid if report.when == "call" else f"{report.nodeid}::{report.when}"
                cells[index] = f'<td class="col-testId">{text(test_id)}</td>'
        cells[COLUMN_AT:COLUMN_AT] = result_cells(record_of(report))
