"""certaudit's report view: the page a person opens, for one run (report.html) or a merged one.

One renderer for both: certaudit.evidence.report_html (the pytest-html plugin of a run) and
certaudit.evidence.merge.merged_report (the page of `certaudit merge`) hand it the run's results
one at a time (`ReportData.add`, one pass over audit.records or the merged evidence's results) and
the run's context (hosts expected, reached and unreachable, policies, metadata).

What a person sees first is what needs action: the hosts with a finding or an error, each with its
failing controls (message, observed, expected); then the compliant hosts as counts that expand; the
host × control matrix, one row per distinct row of outcomes (a host alone in its row is named; a
row of many hosts says how many and lists them when opened), so it fits a 1366-pixel window for
1,000 or 10,000 hosts; and a filter by control, outcome and host over every result.

Why the page renders its bulk itself: pytest-html writes one row per test, with its evidence as
HTML, into one JSON attribute its script turns into DOM on load. For 1,000 hosts that is 17,000
rows, 61 MB and 46 s in Chromium. So the report drops pytest-html's rows for results that passed or
did not apply (report_html's pytest_html_results_table_row hook; its table keeps the failures,
errors, waivers and tests that are not controls), and this module renders the rest compactly:
every result's observed and expected values are in the page as one blob per host (a
`<script type="application/gzip+base64">`: the host's results as JSON, gzip'd, in base64, a tenth of
the bytes), inflated and parsed by the browser only when one of its rows is opened (a file:// page
cannot fetch), and every one of them stays in evidence.json. The page's index (hosts, controls,
each host's row of outcomes) is plain JSON in a `<script type="application/json">`.

Everything a host or an inventory can influence is text: escaped with `html.escape` in markup,
JSON with `<`, `>` and `&` as \\u escapes (so `</script>` in a value cannot end the index, and
base64 has no `<` at all), and put into the page by the script with textContent, never innerHTML.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from certaudit.record import Record
from certaudit.redact import untrusted

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


# --- the run's results, gathered in one pass --------------------------------------------------------
ACTION_OUTCOMES = frozenset({"fail", "error"})
# Outcome -> its one-letter code in the page's index (the filter and the lists the script fills).
CODES = {"pass": "p", "fail": "f", "error": "e", "waived": "w", "not applicable": "n"}
NOT_RUN_CODE = "-"
UNKNOWN_CODE = "?"
ACTION_CODES = frozenset({"f", "e", UNKNOWN_CODE})
# A host's details blob: its results as JSON, gzip'd and in base64 (see `packed`): a tenth of the
# bytes, which is what lets 10,000 hosts' page load in seconds.
BLOB_TYPE = "application/gzip+base64"
TIP_CAP = 300  # characters of a message's first line kept for a matrix cell's tooltip
# Failing results rendered as markup (open on load); a host past them gets its rows from its blob
# when opened, so a fleet where everything fails still makes a page of bounded markup.
ACTION_STATIC_RESULTS = 600
ACTION_OPEN = 25  # hosts listed open on load (the rest are a line each, opened with a click)
HOSTS_LISTED = 50  # up to this many hosts, the hosts section lists the reached ones too
HORIZON_BARS = 60  # bars of the expiry horizon: past this many hosts, those nearest expiry

Catalog = Mapping[str, tuple[str, bool]]  # control id -> (title, gate)
GATE_MARK = "<br><small>gate</small>"


def code_of(outcome: str | None) -> str:
    if outcome is None:
        return NOT_RUN_CODE
    return CODES.get(outcome, UNKNOWN_CODE)


def severity(outcome: str) -> int:
    return SEVERITY.get(outcome, 6)  # an outcome this module does not know counts as the worst


def json_for_script(value: Any) -> str:
    """JSON to sit inside <script type="application/json">: `<`, `>` and `&` as \\u escapes, so no
    value (a host's `</script>` or `<!--`) can end the element or start markup; ASCII only, so
    a lone surrogate from a host is an escape, not a byte the page cannot encode."""
    dumped = json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)
    return dumped.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass
class Pair:
    """One (host, control) pair: its most severe outcome, how many results it had, and the first
    line of that result's message (the matrix cell's tooltip)."""

    outcome: str
    count: int
    tip: str


@dataclass
class HostData:
    name: str
    pairs: dict[str, Pair] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)  # each result's JSON, for the host's blob
    # The details of the host's results so far, compressed once the records moved on to another
    # host (a run's records come host by host): a fleet's details are held compressed, not as text.
    sealed: bytes = b""
    action: list[Record] = field(default_factory=list)  # its failing results, while kept as markup
    fails: int = 0
    errors: int = 0
    lazy: bool = False  # its failing results are rendered from its blob when opened
    crt: tuple[str, str] | None = None  # the first CRT-01 result's outcome and message line
    days_left: float | None = None

    @property
    def needs_action(self) -> bool:
        return any(code_of(p.outcome) in ACTION_CODES for p in self.pairs.values())

    def seal(self) -> None:
        """Compress the details gathered so far (the JSON array's inside, comma-joined)."""
        if self.details:
            inside = ",".join([*self._unsealed(), *self.details])
            self.sealed, self.details = zlib.compress(inside.encode(), 6), []

    def _unsealed(self) -> list[str]:
        return [zlib.decompress(self.sealed).decode()] if self.sealed else []

    def all_details(self) -> list[str]:
        """Every result's JSON text, in the order added (JSON texts joined by commas, each a chunk)."""
        return [*self._unsealed(), *self.details]


class ReportData:
    """What the page needs of every result, gathered in one pass (`add`): per host, each pair's
    worst outcome and each result's details as JSON text; the failing results themselves only up
    to ACTION_STATIC_RESULTS. No other copy of a record is held."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.titles: dict[str, tuple[str, bool]] = dict(catalog or {})
        self.fixes: dict[str, str] = {}
        self.hosts: dict[str, HostData] = {}
        self.results = 0
        self._kept = 0
        self._last: HostData | None = None  # the host of the last record added

    def add_all(self, records: Iterable[Record]) -> ReportData:
        for record in records:
            self.add(record)
        return self

    def add(self, record: Record) -> None:
        self.results += 1
        self.titles.setdefault(record.control, (record.title, record.gate))
        fix = self.fixes.setdefault(record.control, record.fix)
        host = self.hosts.get(record.host)
        if host is None:
            host = self.hosts[record.host] = HostData(record.host)
        if self._last is not None and self._last is not host:
            self._last.seal()  # records moved on to another host: the last one's details compressed
        self._last = host
        pair = host.pairs.get(record.control)
        if pair is None:
            host.pairs[record.control] = Pair(record.outcome, 1, _tip(record))
        else:
            pair.count += 1
            if severity(record.outcome) > severity(pair.outcome):
                pair.outcome, pair.tip = record.outcome, _tip(record)
        detail = {k: v for k, v in record.__dict__.items() if k not in ("host", "title", "gate", "fix")}
        if record.fix != fix:
            detail["fix"] = record.fix
        host.details.append(json_for_script(detail))
        if record.control == EXPIRY_CONTROL and host.crt is None:
            host.crt = (record.outcome, first_line(record.message))
            host.days_left = _days(record.observed)
        if record.outcome in ACTION_OUTCOMES:
            host.fails += record.outcome == "fail"
            host.errors += record.outcome == "error"
            if host.lazy or self._kept >= ACTION_STATIC_RESULTS:
                host.lazy = True
                host.action.clear()
            else:
                self._kept += 1
                host.action.append(record)

    @property
    def controls(self) -> list[str]:
        return sorted(self.titles)

    def all_hosts(self, expected: Iterable[str] = ()) -> list[str]:
        return sorted(set(expected) | set(self.hosts))

    def row_codes(self, host: str, controls: Sequence[str]) -> str:
        data = self.hosts.get(host)
        pairs = data.pairs if data is not None else {}
        return "".join(code_of(pairs[c].outcome) if c in pairs else NOT_RUN_CODE for c in controls)


def _tip(record: Record) -> str:
    return first_line(record.message)[:TIP_CAP]


def _days(observed: Any) -> float | None:
    value = observed.get("days_left") if isinstance(observed, dict) else None
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return number if number is not None and math.isfinite(number) else None


def days_left_of(records: Iterable[Record]) -> dict[str, float | None]:
    """Each host's days left, from its first CRT-01 record's observation (None when it has none)."""
    found: dict[str, float | None] = {}
    for record in records:
        if record.control == EXPIRY_CONTROL and found.get(record.host) is None:
            found[record.host] = _days(record.observed)
    return found


# --- what needs action ------------------------------------------------------------------------------
def action_hosts(data: ReportData) -> list[HostData]:
    """Hosts with a finding or an error: those with a finding first, then those with errors only
    (an unreachable host), each group by name."""
    found = [h for h in data.hosts.values() if h.needs_action]
    return sorted(found, key=lambda h: (0 if h.fails else 1, h.name))


def _action_row(record: Record, titles: Mapping[str, tuple[str, bool]]) -> str:
    title = titles.get(record.control, (record.title, record.gate))[0]
    if record.findings:
        said = '<ul class="ca-findings">' + "".join(f"<li>{text(f)}</li>" for f in record.findings) + "</ul>"
    else:
        said = f'<div class="ca-msg">{text(record.message)}</div>'
    return (
        f'<tr data-control="{attr(record.control)}"><th scope="row">{text(record.control)}<br>'
        f'<span class="ca-title">{text(title)}</span></th><td>{outcome_badge(record.outcome)}{said}</td>'
        f'<td class="ca-obs">{render_kv(record.observed)}</td><td class="ca-exp">{render_kv(record.expected)}</td></tr>'
    )


ACTION_HEAD = "<thead><tr><th>Control</th><th>Outcome and message</th><th>Observed</th><th>Expected</th></tr></thead>"


def render_action(data: ReportData, index: Mapping[str, int]) -> str:
    """(1) Hosts with a finding or an error, each with its failing controls."""
    hosts = action_hosts(data)
    if not hosts:
        return (
            '<section class="ca-section" id="certaudit-action"><h3>Needs action</h3>'
            "<p>No host has a finding or an error.</p></section>"
        )
    items: list[str] = []
    for host in hosts:
        failing = sorted(c for c, p in host.pairs.items() if code_of(p.outcome) in ACTION_CODES)
        counts = ", ".join(f"{n} {label}" for n, label in ((host.fails, "FAIL"), (host.errors, "ERROR")) if n)
        summary = (
            f'<summary><span class="ca-act-host">{text(host.name)}</span> {text(counts or "other outcome")}: '
            f"{text(', '.join(failing))}</summary>"
        )
        if host.lazy:
            body, opened = '<div class="ca-lazy">(shown from the page\'s data when opened)</div>', ""
        else:
            rows = "".join(_action_row(r, data.titles) for r in host.action)
            table = f'<table class="ca-table ca-act-table">{ACTION_HEAD}<tbody>{rows}</tbody></table>'
            body, opened = table, " open" if len(items) < ACTION_OPEN else ""
        items.append(
            f'<details class="ca-act" data-host="{attr(host.name)}" data-ca-host="{index[host.name]}"{opened}>'
            f"{summary}{body}</details>"
        )
    with_findings = sum(1 for h in hosts if h.fails)
    lead = (
        f"{len(hosts)} host(s) with a finding or an error: {with_findings} with a finding (listed first), "
        f"{len(hosts) - with_findings} with errors only. Each lists its failing controls; every result of a host "
        "is in the filter below."
    )
    return f'<section class="ca-section" id="certaudit-action"><h3>Needs action</h3><p>{text(lead)}</p>{"".join(items)}</section>'


def compliance_groups(data: ReportData, hosts: Sequence[str], controls: Sequence[str]) -> dict[str, list[str]]:
    """Hosts without a finding or an error: `pass` (every control passed or did not apply),
    `waived` (a control waived); and `none`: hosts without any result."""
    groups: dict[str, list[str]] = {"pass": [], "waived": [], "none": []}
    for host in hosts:
        codes = set(data.row_codes(host, controls))
        if codes & ACTION_CODES:
            continue
        if codes <= {NOT_RUN_CODE}:
            groups["none"].append(host)
        elif "w" in codes:
            groups["waived"].append(host)
        else:
            groups["pass"].append(host)
    return groups


COMPLIANT_TEXT = {
    "pass": "host(s) compliant: every control passed or did not apply",
    "waived": "host(s) compliant with a waiver: a control waived, the others passed or did not apply",
    "none": "host(s) without any result (not reached by any control, or deselected)",
}


def render_nav(data: ReportData, groups: Mapping[str, Sequence[str]]) -> str:
    """The page at a glance, each part a link: what needs action, what does not, the rest."""
    needing = sum(1 for h in data.hosts.values() if h.needs_action)
    links = (
        ("certaudit-action", f"{needing} host(s) need action"),
        ("certaudit-compliant", f"{len(groups['pass']) + len(groups['waived'])} compliant"),
        ("certaudit-matrix", "host × control matrix"),
        ("certaudit-explore", "filter every result"),
        ("certaudit-hosts", "hosts expected and reached"),
        ("certaudit-horizon", "expiry horizon"),
        ("certaudit-run", "run"),
    )
    items = " · ".join(f'<a href="#{anchor}">{text(label)}</a>' for anchor, label in links)
    return f'<p class="ca-nav" id="certaudit-nav">{items}</p>'


def render_compliant(groups: Mapping[str, Sequence[str]]) -> str:
    """(2) The hosts that need nothing, as counts that expand into their names."""
    items = "".join(
        f'<li><details class="ca-names" data-ca-fill="{kind}"><summary><span class="ca-count" data-group="{kind}">'
        f"{len(groups[kind])}</span> {text(COMPLIANT_TEXT[kind])}</summary></details></li>"
        for kind in ("pass", "waived", "none")
    )
    return (
        '<section class="ca-section" id="certaudit-compliant"><h3>Compliant hosts</h3>'
        f'<ul class="ca-counts ca-comp">{items}</ul></section>'
    )


# --- the host × control matrix ------------------------------------------------------------------------
def matrix_patterns(data: ReportData, hosts: Sequence[str], controls: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The matrix's rows: each distinct row of outcomes with its hosts (by name), rows with a
    finding or an error first, then the most common."""
    by_codes: dict[str, list[str]] = {}
    for host in hosts:
        by_codes.setdefault(data.row_codes(host, controls), []).append(host)
    return sorted(by_codes.items(), key=lambda item: (not set(item[0]) & ACTION_CODES, -len(item[1]), item[1][0]))


def _cell(data: ReportData, control: str, hosts: Sequence[str]) -> str:
    host = data.hosts.get(hosts[0])
    pair = host.pairs.get(control) if host is not None else None
    if pair is None:
        label, css = NOT_RUN
        tip = f"{control} did not run on {hosts[0]}"
    else:
        label, css = outcome_label(pair.outcome)
        tip = pair.tip or f"{control} on {hosts[0]}: {label}"
        if pair.count > 1:
            tip += f" (and {pair.count - 1} more result(s) for this pair)"
    more = f"<sup>+{pair.count - 1}</sup>" if pair is not None and pair.count > 1 and len(hosts) == 1 else ""
    if len(hosts) > 1:
        tip = f"{control}: {label} on {len(hosts)} hosts"
        return f'<td class="ca-cell {css}" data-control="{attr(control)}" title="{attr(tip)}">{text(label)}</td>'
    return (
        f'<td class="ca-cell {css}" data-control="{attr(control)}" data-host="{attr(hosts[0])}" title="{attr(tip)}">'
        f"{text(label)}{more}</td>"
    )


def matrix_section(data: ReportData, hosts: Sequence[str], patterns: Sequence[tuple[str, list[str]]] | None = None) -> str:
    """(3) The host × control matrix: one row per distinct row of outcomes. A host alone in its row
    is named; a row of several hosts says how many and lists them when opened. Cells are the
    outcome as text, with colour and border style; the header stays in view when scrolling."""
    controls = data.controls
    if not data.results:
        return (
            '<section class="ca-section" id="certaudit-matrix"><h3>Results by host and control</h3>'
            "<p>No control ran.</p></section>"
        )
    patterns = matrix_patterns(data, hosts, controls) if patterns is None else patterns
    head = "".join(
        f'<th scope="col" title="{attr(data.titles[c][0])}">{text(c)}{GATE_MARK if data.titles[c][1] else ""}</th>'
        for c in controls
    )
    rows = []
    for number, (_, members) in enumerate(patterns):
        if len(members) == 1:
            row_head = f'<th scope="row" class="ca-host">{text(members[0])}</th>'
        else:
            row_head = (
                f'<th scope="row" class="ca-host ca-group"><details class="ca-names" data-ca-fill="pattern" '
                f'data-ca-pattern="{number}"><summary>{len(members)} hosts</summary></details></th>'
            )
        rows.append(f"<tr>{row_head}{''.join(_cell(data, c, members) for c in controls)}</tr>")
    legend = "".join(
        f"<div><b>{text(c)}</b>{' (gate)' if data.titles[c][1] else ''}: {text(data.titles[c][0])}</div>" for c in controls
    )
    key = " ".join(f'<span class="ca-badge {css}">{text(label)}</span>' for label, css in [*OUTCOMES.values(), NOT_RUN])
    lead = f"{len(hosts)} host(s) in {len(patterns)} distinct row(s) of outcomes; rows with a finding or an error first."
    return (
        '<section class="ca-section" id="certaudit-matrix"><h3>Results by host and control</h3>'
        f"<p>{text(lead)}</p>"
        '<table class="ca-matrix" id="certaudit-matrix-table"><colgroup><col class="ca-col-host"></colgroup>'
        '<thead><tr><th scope="col">host</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<div class="ca-key">Key: {key}</div><div class="ca-legend">{legend}</div></section>'
    )


def render_matrix(records: Iterable[Record], hosts: Iterable[str] = (), catalog: Catalog | None = None) -> str:
    """The matrix of these records (see matrix_section); `catalog` (the controls loaded in the run)
    adds a NOT RUN column for a control that ran nowhere."""
    data = ReportData(catalog).add_all(records)
    return matrix_section(data, data.all_hosts(hosts))


def counts_section(data: ReportData, hosts: Sequence[str]) -> str:
    """(4) How many (host, control) pairs of the matrix ended in each outcome."""
    controls = data.controls
    counts: Counter[str] = Counter()
    for host in hosts:
        pairs = data.hosts[host].pairs if host in data.hosts else {}
        counts.update(pairs[c].outcome if c in pairs else "not run" for c in controls)
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
        f'<p>{len(hosts) * len(controls)} host × control results:</p><ul class="ca-counts">{"".join(items)}</ul></section>'
    )


def render_counts(records: Iterable[Record], hosts: Iterable[str] = (), catalog: Catalog | None = None) -> str:
    data = ReportData(catalog).add_all(records)
    return counts_section(data, data.all_hosts(hosts))


# --- the filter -------------------------------------------------------------------------------------
FILTER_OUTCOMES = (("fe", "FAIL or ERROR"), ("", "any outcome"), ("f", "FAIL"), ("e", "ERROR"), ("w", "WAIVED"),
                   ("n", "N/A"), ("p", "PASS"), ("-", "NOT RUN"), ("?", "other"))  # fmt: skip


def render_explorer(controls: Sequence[str], titles: Mapping[str, tuple[str, bool]]) -> str:
    """(5) Every result, by control, outcome and host: the page's script lists the matches from
    the index and shows a result's details (from its host's blob) when its row is opened."""
    control_options = "".join(f'<option value="{attr(c)}">{text(c)}: {text(titles[c][0])}</option>' for c in controls)
    outcome_options = "".join(f'<option value="{attr(v)}">{text(label)}</option>' for v, label in FILTER_OUTCOMES)
    return (
        '<section class="ca-section" id="certaudit-explore"><h3>Every result: filter by control, outcome and host</h3>'
        '<form id="ca-filter" class="ca-filter" onsubmit="return false">'
        f'<label>Control <select id="ca-f-control"><option value="">any control</option>{control_options}</select></label> '
        f'<label>Outcome <select id="ca-f-outcome">{outcome_options}</select></label> '
        '<label>Host <input id="ca-f-host" type="search" placeholder="part of a host name" size="28"></label></form>'
        '<p id="ca-f-status">The filter needs JavaScript; every result is also in evidence.json.</p>'
        '<table class="ca-table ca-f-table" id="ca-f-table"><thead><tr><th>Host</th><th>Control</th><th>Outcome</th>'
        "<th>Message (open a row: message, observed and expected values, fix)</th>"
        '</tr></thead><tbody id="ca-f-rows"></tbody></table>'
        '<button type="button" id="ca-f-more" hidden>show more</button></section>'
    )


# --- hosts expected and reached -----------------------------------------------------------------------
def render_hosts(expected: Sequence[str], reached: Iterable[str], probe_errors: Mapping[str, str]) -> str:
    """(6) Hosts the inventory lists against hosts whose facts were gathered; why the others were
    not. Past HOSTS_LISTED hosts, the reached ones are a count (each is in the matrix and filter)."""
    reached_set = set(reached)
    everyone = sorted(set(expected) | reached_set | set(probe_errors))
    listed = everyone if len(everyone) <= HOSTS_LISTED else [h for h in everyone if h not in reached_set]
    expected_set = set(expected)
    rows = []
    for host in listed:
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
        in_inventory = "yes" if host in expected_set else "no (not in the inventory)"
        rows.append(
            f'<tr><th scope="row">{text(host)}</th><td>{text(in_inventory)}</td>'
            f'<td><span class="ca-badge {css}">{text(status)}</span></td><td>{text(why)}</td></tr>'
        )
    if len(listed) < len(everyone):
        rows.append(
            f'<tr><th scope="row">{len(everyone) - len(listed)} hosts</th><td></td>'
            '<td><span class="ca-badge ca-o-pass">reached</span></td>'
            "<td>facts gathered (each is in the matrix and the filter)</td></tr>"
        )
    unreached = [h for h in expected if h not in reached_set]
    shown = ", ".join(sorted(unreached)[:HOSTS_LISTED]) + (
        f" and {len(unreached) - HOSTS_LISTED} more" if len(unreached) > HOSTS_LISTED else ""
    )
    lead = (
        f"{len(expected)} host(s) expected (inventory), {len(reached_set & expected_set)} reached"
        + (f"; not reached: {shown}" if unreached else "")
        + "."
    )
    return (
        '<section class="ca-section" id="certaudit-hosts"><h3>Hosts expected and reached</h3>'
        f"<p>{text(lead)}</p>"
        '<table class="ca-table" id="certaudit-hosts-table"><thead><tr><th>host</th><th>in inventory</th>'
        f"<th>status</th><th>detail</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


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


def horizon_hosts(hosts: Sequence[str], days: Mapping[str, float | None]) -> tuple[list[str], str]:
    """The hosts the horizon draws, and what it leaves out: all of them up to HORIZON_BARS; past
    that, the HORIZON_BARS nearest expiry (a bar per host of 10,000 would be a page of bars)."""
    if len(hosts) <= HORIZON_BARS:
        return list(hosts), ""
    known = sorted((d, h) for h in hosts if (d := days.get(h)) is not None)
    shown = [h for _, h in known[:HORIZON_BARS]]
    unknown = len(hosts) - len(known)
    rest = len(known) - len(shown)
    cut = f" The {len(shown)} hosts nearest expiry of {len(hosts)}"
    if rest:
        cut += f"; the other {rest} have at least {days_text(known[len(shown)][0])} days left"
    if unknown:
        cut += f"; {unknown} without days left (see their {EXPIRY_CONTROL} cell in the matrix)"
    return shown, cut + "."


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
    hosts, cut = horizon_hosts(hosts, days)
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
        f"<p>Days left on each host's certificate ({EXPIRY_CONTROL}'s observation), axis 0 to {axis_max:g} days.{text(cut)}</p>"
        f"{''.join(parts)}{legend}</section>"
    )


def render_metadata(rows: Sequence[tuple[str, str]]) -> str:
    """(e) The run's metadata as a definition table."""
    body = "".join(f'<tr><th scope="row">{text(label)}</th><td>{text(value)}</td></tr>' for label, value in rows)
    return (
        '<section class="ca-section" id="certaudit-run"><h3>Run</h3>'
        f'<table class="ca-table ca-deflist" id="certaudit-run-table"><tbody>{body}</tbody></table></section>'
    )


# --- the page's own style --------------------------------------------------------------------------
STYLE = """
<style>
.certaudit { color: #111; font-size: 13px; max-width: 1320px; }
.certaudit h3 { font-size: 15px; color: #000; margin: 18px 0 6px; }
.certaudit p { margin: 4px 0; }
.ca-lead { font-size: 14px; }
/* The matrix fits a 1366-pixel window whatever the controls: fixed layout, the host column at most
   a sixth of it, labels that wrap, and a header that stays in view. */
.ca-matrix { border-collapse: separate; border-spacing: 2px; table-layout: fixed; width: 100%; }
.ca-matrix col.ca-col-host { width: 16%; }
.ca-matrix th { padding: 3px 2px; text-align: center; color: #000; font-size: 11px; overflow-wrap: anywhere; }
.ca-matrix thead th { position: sticky; top: 0; background: #fff; z-index: 1; }
.ca-matrix th.ca-host { text-align: left; font-weight: normal; }
.ca-cell { padding: 4px 1px; text-align: center; font-size: 11px; overflow-wrap: anywhere; }
/* What is off screen is not laid out until scrolled to: the page opens in time at 10,000 hosts. */
.certaudit .ca-section, .ca-act, .ca-results { content-visibility: auto; contain-intrinsic-size: auto 400px; }
.ca-act { contain-intrinsic-size: auto 30px; }
html.ca-all-visible .ca-section, html.ca-all-visible .ca-act,
html.ca-all-visible .ca-results { content-visibility: visible; }
.ca-names summary, .ca-act summary { cursor: pointer; }
.ca-names ul { list-style: none; padding: 0; margin: 2px 0; columns: 4 180px; font-size: 12px; }
.ca-act { margin: 4px 0; border-left: 4px solid #000; padding-left: 6px; }
.ca-act summary { font-size: 13px; }
.ca-act-host { font-weight: bold; }
.ca-act-table { width: 100%; table-layout: fixed; }
.ca-act-table th:first-child { width: 16%; }
.ca-act-table td, .ca-f-table td { overflow-wrap: anywhere; }
.ca-obs, .ca-exp, .ca-detail .ca-kvs { font-family: monospace; font-size: 11px; }
.ca-title { font-weight: normal; font-size: 11px; }
.ca-filter label { margin-right: 12px; }
.ca-f-table { width: 100%; table-layout: fixed; }
.ca-f-table tr.ca-f-row { cursor: pointer; }
.ca-f-table tr.ca-f-row:hover { background: #f3f3f3; }
.ca-detail pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 2px 0; }
.ca-detail h4 { margin: 6px 0 2px; font-size: 12px; }
.ca-linkish { background: none; border: none; padding: 0; color: #0645ad; text-decoration: underline;
  cursor: pointer; font: inherit; }
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
#results-table td.col-testId { min-width: 110px; }
#results-table td.col-title { min-width: 100px; }
#results-table td.col-outcome { min-width: 150px; }
#results-table td.col-observed { min-width: 160px; }
#results-table td.col-expected { min-width: 120px; }
#results-table td.col-fix { min-width: 110px; }
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


# --- the page's script ------------------------------------------------------------------------------
# Plain JavaScript, inline (no network): it reads the index once, a host's blob only when one of its
# rows is opened, and puts every host-given string into the page with textContent. With
# `#ca-measure` in the address it writes the load time and the page's width into <html> (bench and
# tests); `#filter:control=..&outcome=..&host=..` sets the filter.
SCRIPT = r"""
<script>
(function () {
  "use strict";
  var started = performance.now(), ready = 0;
  var index = JSON.parse(document.getElementById("certaudit-index").textContent);
  var LABEL = {p: "PASS", f: "FAIL", e: "ERROR", w: "WAIVED", n: "N/A", "-": "NOT RUN", "?": "OTHER"};
  var CSS = {p: "ca-o-pass", f: "ca-o-fail", e: "ca-o-error", w: "ca-o-waived", n: "ca-o-na",
             "-": "ca-o-notrun", "?": "ca-o-unknown"};
  var CODE = {"pass": "p", "fail": "f", "error": "e", "waived": "w", "not applicable": "n"};
  var PAGE = 200;
  var blobs = {};
  function el(tag, cls, txt) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (txt !== undefined && txt !== null) e.textContent = String(txt);
    return e;
  }
  // A host's blob: base64 of gzip'd JSON, inflated by the browser's own DecompressionStream
  // (no library, no network); a promise of the host's results, made once.
  function inflate(b64) {
    var bin = atob(b64.trim()), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(JSON.parse);
  }
  function resultsOf(h) {
    if (!(h in blobs)) {
      var s = document.getElementById("certaudit-host-" + h);
      blobs[h] = s ? inflate(s.textContent) : Promise.resolve([]);
    }
    return blobs[h];
  }
  function shown(v) { return typeof v === "string" ? v : JSON.stringify(v); }
  function kv(title, obj, into) {
    if (!obj || typeof obj !== "object" || !Object.keys(obj).length) return;
    into.appendChild(el("h4", null, title));
    var box = el("div", "ca-kvs");
    Object.keys(obj).forEach(function (k) {
      var line = el("div", "ca-kv");
      line.appendChild(el("span", "ca-k", k));
      line.appendChild(document.createTextNode(": "));
      line.appendChild(el("span", "ca-v", shown(obj[k])));
      box.appendChild(line);
    });
    into.appendChild(box);
  }
  function badge(code) { return el("span", "ca-badge " + (CSS[code] || CSS["?"]), LABEL[code] || "?"); }
  function controlInfo(id) {
    for (var i = 0; i < index.controls.length; i++) if (index.controls[i][0] === id) return index.controls[i];
    return [id, "", false, ""];
  }
  function detailView(r) {
    var d = el("div", "ca-detail");
    d.appendChild(badge(CODE[r.outcome] || "?"));
    d.appendChild(document.createTextNode(" " + r.control + " " + controlInfo(r.control)[1]));
    if (r.findings && r.findings.length) {
      var ul = el("ul", "ca-findings");
      r.findings.forEach(function (f) { ul.appendChild(el("li", null, f)); });
      d.appendChild(ul);
    }
    if (r.message) { d.appendChild(el("h4", null, "message")); d.appendChild(el("pre", "ca-msg", r.message)); }
    kv("observed", r.observed, d);
    kv("expected", r.expected, d);
    kv("waiver", r.waiver, d);
    (r.notes || []).forEach(function (n) { d.appendChild(el("div", "ca-note", "note: " + n)); });
    var fix = r.fix !== undefined ? r.fix : controlInfo(r.control)[3];
    if (fix) { d.appendChild(el("h4", null, "fix")); d.appendChild(el("div", null, fix)); }
    var when = r.started ? ", judged " + r.started + " (" + r.duration_s + " s)" : "";
    d.appendChild(el("div", "ca-when", (r.nodeid || "") + when));
    return d;
  }
  function hostButton(i) {
    var b = el("button", "ca-linkish", index.hosts[i]);
    b.type = "button";
    b.addEventListener("click", function () { setFilter("", "", index.hosts[i]); });
    return b;
  }
  function fillNames(box, members) {
    var ul = el("ul");
    members.forEach(function (i) { var li = el("li"); li.appendChild(hostButton(i)); ul.appendChild(li); });
    box.appendChild(ul);
  }
  function fillAction(box, h) {
    var table = el("table", "ca-table ca-act-table"), body = el("tbody");
    table.appendChild(body);
    box.appendChild(table);
    resultsOf(h).then(function (rs) {
      rs.forEach(function (r) {
        var c = CODE[r.outcome] || "?";
        if (c !== "f" && c !== "e" && c !== "?") return;
        var tr = el("tr"), td = el("td");
        tr.dataset.control = r.control;
        td.appendChild(detailView(r));
        tr.appendChild(td);
        body.appendChild(tr);
      });
    });
  }
  document.addEventListener("toggle", function (ev) {
    var d = ev.target;
    if (!d.open || d.dataset.caFilled) return;
    if (d.dataset.caFill === "pattern") fillNames(d, index.patterns[+d.dataset.caPattern]);
    else if (d.dataset.caFill) fillNames(d, index.groups[d.dataset.caFill] || []);
    else if (d.classList.contains("ca-act") && d.querySelector(".ca-lazy")) fillAction(d, +d.dataset.caHost);
    else return;
    d.dataset.caFilled = "1";
  }, true);

  var fControl = document.getElementById("ca-f-control"), fOutcome = document.getElementById("ca-f-outcome");
  var fHost = document.getElementById("ca-f-host"), rowsBox = document.getElementById("ca-f-rows");
  var status = document.getElementById("ca-f-status"), more = document.getElementById("ca-f-more");
  var matches = [], shownCount = 0;
  function matchesOf() {
    var found = [], want = fOutcome.value, needle = fHost.value.trim().toLowerCase();
    var columns = [];
    index.controls.forEach(function (c, j) { if (!fControl.value || c[0] === fControl.value) columns.push(j); });
    for (var h = 0; h < index.hosts.length; h++) {
      if (needle && index.hosts[h].toLowerCase().indexOf(needle) < 0) continue;
      var row = index.rows[h];
      for (var k = 0; k < columns.length; k++) {
        var code = row.charAt(columns[k]);
        if (want === "fe" ? (code === "f" || code === "e") : (!want || code === want)) found.push([h, columns[k], code]);
      }
    }
    return found;
  }
  function resultRow(m) {
    var tr = el("tr", "ca-f-row"), control = index.controls[m[1]][0];
    tr.dataset.host = index.hosts[m[0]];
    tr.dataset.control = control;
    tr.appendChild(el("td", null, index.hosts[m[0]]));
    tr.appendChild(el("td", null, control));
    var td = el("td"); td.appendChild(badge(m[2])); tr.appendChild(td);
    var said = el("td");
    tr.appendChild(said);
    function ofPair() {
      if (m[2] === "-") return Promise.resolve([]);
      return resultsOf(m[0]).then(function (all) { return all.filter(function (r) { return r.control === control; }); });
    }
    said.textContent = "open";  // the host's blob is inflated when its row is opened, not to list it
    tr.addEventListener("click", function () {
      var next = tr.nextSibling;
      if (next && next.classList.contains("ca-f-detail")) { next.remove(); return; }
      var dtr = el("tr", "ca-f-detail"), dtd = el("td");
      dtd.colSpan = 4;
      dtr.appendChild(dtd);
      tr.parentNode.insertBefore(dtr, tr.nextSibling);
      ofPair().then(function (rs) {
        said.textContent = rs.length ? (rs[0].message || "").split("\n")[0] : "";
        if (!rs.length) dtd.textContent = control + " did not run on " + index.hosts[m[0]] + ".";
        rs.forEach(function (r) { dtd.appendChild(detailView(r)); });
      });
    });
    return tr;
  }
  function showMore() {
    var end = Math.min(matches.length, shownCount + PAGE);
    for (; shownCount < end; shownCount++) rowsBox.appendChild(resultRow(matches[shownCount]));
    status.textContent = matches.length + " result(s) match; " + shownCount +
      " shown. Open a row for its observed and expected values.";
    more.hidden = shownCount >= matches.length;
  }
  function apply() {
    matches = matchesOf();
    shownCount = 0;
    while (rowsBox.firstChild) rowsBox.removeChild(rowsBox.firstChild);
    showMore();
  }
  function setFilter(control, outcome, host) {
    fControl.value = control; fOutcome.value = outcome; fHost.value = host;
    apply();
    document.getElementById("certaudit-explore").scrollIntoView();
  }
  [fControl, fOutcome].forEach(function (e) { e.addEventListener("change", apply); });
  fHost.addEventListener("input", apply);
  more.addEventListener("click", showMore);
  var hash = decodeURIComponent(location.hash || "");
  if (hash.indexOf("#filter:") === 0) {
    var params = {};
    hash.slice(8).split("&").forEach(function (p) { var i = p.indexOf("="); if (i > 0) params[p.slice(0, i)] = p.slice(i + 1); });
    fControl.value = params.control || ""; fOutcome.value = params.outcome !== undefined ? params.outcome : "fe";
    fHost.value = params.host || "";
    if (params.open !== undefined) setTimeout(function () { var r = rowsBox.querySelector("tr.ca-f-row"); if (r) r.click(); }, 0);
  }
  apply();
  ready = performance.now();
  if (location.hash.indexOf("ca-measure") >= 0) {
    window.addEventListener("load", function () {
      var root = document.documentElement;
      var loaded = performance.now();
      root.setAttribute("data-ca-loaded-ms", loaded.toFixed(0));
      // The width of the whole page laid out, sections off screen too (content-visibility off).
      root.classList.add("ca-all-visible");
      root.setAttribute("data-ca-width", String(root.scrollWidth));
      var nav = performance.getEntriesByType("navigation")[0] || {};
      root.setAttribute("data-ca-timing", "parsed " + (nav.domInteractive || 0).toFixed(0) + " script " + started.toFixed(0) +
        " ready " + ready.toFixed(0) + " loaded " + loaded.toFixed(0));
      // Then every blob, inflated and parsed (tests read this with --virtual-time-budget).
      var all = [];
      for (var h = 0; h < index.hosts.length; h++) if (document.getElementById("certaudit-host-" + h)) all.push(resultsOf(h));
      Promise.all(all).then(function (found) {
        var results = found.reduce(function (n, rs) { return n + rs.length; }, 0);
        root.setAttribute("data-ca-blobs-parsed", found.length + " " + results);
      }, function (err) { root.setAttribute("data-ca-blobs-parsed", "error " + err); });
    });
  }
})();
</script>
"""


# --- the page -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunContext:
    """What the page shows of the run beside its results."""

    expected: Sequence[str]
    reached: Iterable[str]
    unreachable: Mapping[str, str]
    thresholds: Mapping[str, tuple[int, int]]
    metadata: Sequence[tuple[str, str]]


def expiry_reasons(data: ReportData, hosts: Sequence[str], reached: set[str], unreachable: Mapping[str, str]) -> dict[str, str]:
    """Why a host has no bar: not reached, CRT-01 did not run, or CRT-01's outcome and message."""
    reasons: dict[str, str] = {}
    for host in hosts:
        crt = data.hosts[host].crt if host in data.hosts else None
        if host in unreachable and host not in reached:
            reasons[host] = "host not reached"
        elif crt is None:
            reasons[host] = f"{EXPIRY_CONTROL} did not run"
        else:
            reasons[host] = f"{EXPIRY_CONTROL} {outcome_label(crt[0])[0]}: {crt[1]}"
    return reasons


def data_parts(data: ReportData, hosts: Sequence[str], groups: Mapping[str, Sequence[str]],
               patterns: Sequence[tuple[str, list[str]]]) -> Iterator[str]:  # fmt: skip
    """The index (controls, hosts, each host's row of outcome codes, the lists the page expands)
    and one blob per host with its results' details, all as application/json: never run."""
    number = {h: i for i, h in enumerate(hosts)}
    controls = data.controls
    index = {
        "controls": [[c, data.titles[c][0], data.titles[c][1], data.fixes.get(c, "")] for c in controls],
        "hosts": list(hosts),
        "rows": [data.row_codes(h, controls) for h in hosts],
        "groups": {kind: [number[h] for h in members] for kind, members in groups.items()},
        "patterns": [[number[h] for h in members] for _, members in patterns],
    }
    yield f'<script type="application/json" id="certaudit-index">{json_for_script(index)}</script>'
    for host in hosts:
        found = data.hosts.get(host)
        if found is not None:
            yield (
                f'<script type="{BLOB_TYPE}" class="ca-details" id="certaudit-host-{number[host]}">'
                f"{packed(found.all_details())}</script>"
            )


def packed(details: Sequence[str]) -> str:
    """A host's results' details as the page carries them: the JSON array, gzip'd (mtime 0: the
    same results make the same page), in base64, whose alphabet holds no `<`."""
    array = f"[{','.join(details)}]".encode()
    return base64.b64encode(gzip.compress(array, compresslevel=6, mtime=0)).decode("ascii")


def unpacked(blob: str) -> list[dict[str, Any]]:
    """`packed`'s inverse (tests, and anyone reading a report's details without a browser)."""
    found: list[dict[str, Any]] = json.loads(gzip.decompress(base64.b64decode(blob)))
    return found


def render_summary(data: ReportData, run: RunContext, lead: str) -> str:
    """Everything certaudit puts above pytest-html's table (or the merged page's), for one run."""
    return "".join(summary_parts(data, run, lead))


def summary_parts(data: ReportData, run: RunContext, lead: str) -> Iterator[str]:
    """render_summary's text, section by section, each made when asked for: a writer streams a
    fleet's page (report_html.HtmlReport.write_summary) instead of holding it as one string."""
    expected = list(run.expected)
    reached = set(run.reached)
    hosts = data.all_hosts(expected)
    number = {h: i for i, h in enumerate(hosts)}
    controls = data.controls
    groups = compliance_groups(data, hosts, controls)
    patterns = matrix_patterns(data, hosts, controls)
    days = {h: data.hosts[h].days_left if h in data.hosts else None for h in hosts}
    reasons = expiry_reasons(data, hosts, reached, run.unreachable)
    yield (
        f'{STYLE}<div class="certaudit" id="certaudit-summary"><h2>certaudit audit evidence</h2>'
        f'<p class="ca-lead">{text(lead)}</p>{render_nav(data, groups)}'
    )
    yield render_action(data, number)
    yield render_compliant(groups)
    yield matrix_section(data, hosts, patterns)
    yield counts_section(data, hosts)
    yield render_explorer(controls, data.titles)
    yield render_hosts(expected, reached, run.unreachable)
    yield render_horizon(hosts, days, run.thresholds, reasons)
    yield render_metadata(run.metadata)
    yield from data_parts(data, hosts, groups, patterns)
    yield f"{SCRIPT}</div>"
