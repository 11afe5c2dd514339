"""The HTML audit report: real pytest + pytest-html runs of the audit, and the rendering helpers.

The end-to-end tests run the audit (`pytest checks --inventory inv.yml --report-dir out --job
nightly`) in a pytester directory holding a copy of checks/, a one-host local inventory and a
conftest.py that loads certaudit's plugin and registers the report plugin, then read report.html
next to the evidence.json of the same run.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certaudit.evidence import report_html, report_view
from certaudit.evidence.report_html import HtmlReport, record_from_json, record_of, result_cells, run_metadata_rows
from certaudit.evidence.report_view import (
    format_value,
    render_counts,
    render_horizon,
    render_hosts,
    render_kv,
    render_matrix,
    render_metadata,
    text,
)
from certaudit.record import USER_PROPERTY, Record

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "<script>alert(1)</script>"
OUTCOME_TEXT = {"pass": "PASS", "fail": "FAIL", "waived": "WAIVED", "not applicable": "N/A", "error": "ERROR"}
RUNBOOK_CONTROLS = ["CRT-01", "KEY-01", "KEY-02", "LIVE-01", "REN-01", "REN-02", "REN-03"]

INVENTORY = "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
CONFTEST = textwrap.dedent(
    """\
    pytest_plugins = ["certaudit.plugin"]


    def pytest_configure(config):
        if not config.pluginmanager.has_plugin("certaudit-html"):
            from certaudit.evidence.report_html import HtmlReport

            config.pluginmanager.register(HtmlReport(config), "certaudit-html")
    """
)
# A control whose message, findings, observations and title carry markup, as a hostile host could.
HOSTILE_CHECK = textwrap.dedent(
    '''\
    from certaudit.controls import control
    from certaudit.record import Evidence


    @control("XSS-01", title="Escape <b>everything</b> a host says", source="tests")
    def test_hostile(evidence: Evidence) -> None:
        """Rationale: observed values come from hosts and must never become markup in the report.

        Check: the report shows this control's strings as text, escaped, wherever they appear.

        Fix: escape them.
        """
        evidence.observe(banner="<script>alert(1)</script>", nested={"x": "<img src=x onerror=alert(2)>"})
        evidence.expect(banner="\\" onmouseover=\\"alert(3)")
        evidence.note("<script>alert(1)</script> in a note")
        evidence.require(False, "<script>alert(1)</script> & friends")
    '''
)


# --- a small HTML tree, enough to read the report ---------------------------------------------------
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str, css: str | None = None) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag and (css is None or css in n.attrs.get("class", "").split())]

    def by_id(self, ident: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident}"
        return found[0]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def cells(self) -> list[Node]:
        return [c for c in self.children if isinstance(c, Node) and c.tag in ("td", "th")]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(markup: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(markup)
    builder.close()
    return builder.root


def cell_of(cells: list[str], column: str) -> Node:
    """The parsed <td class="col-COLUMN"> among a row's cell HTML strings."""
    for cell in cells:
        node = parse_html(cell).find_all("td")
        if node and f"col-{column}" in node[0].attrs.get("class", "").split():
            return node[0]
    raise AssertionError(f"no col-{column} cell in {cells}")


# --- running the audit ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditOutput:
    ret: int
    output: str
    report: Path
    html: str
    tree: Node
    evidence: dict[str, Any]

    def table_rows(self) -> dict[str, list[list[str]]]:
        """pytest-html's results-table rows (cell HTML), per node id, from the JSON the page renders."""
        blob = self.tree.by_id("data-container").attrs["data-jsonblob"]
        tests: dict[str, list[dict[str, Any]]] = json.loads(blob)["tests"]
        return {nodeid: [entry["resultsTableRow"] for entry in entries] for nodeid, entries in tests.items()}


def write_certificate(tls_dir: Path, days: float) -> None:
    """A self-signed cert.pem (expiring in `days`) and its key.pem, as a service's TLS directory holds them."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stemedb.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Issued 60 days ago: a lifetime over 30 days, so CRT-01 judges it in days (REN-04).
        .not_valid_before(now - dt.timedelta(days=60))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("stemedb.example.com")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    tls_dir.mkdir(parents=True, exist_ok=True)
    (tls_dir / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = tls_dir / "key.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)


def make_audit_project(root: Path, extra_checks: dict[str, str] | None = None, certificate_days: float | None = None) -> None:
    """conftest.py (certaudit + the report plugin), inv.yml (this machine) and a copy of checks/ in root.

    With certificate_days, the host's certaudit_tls_dir is a directory of root holding a certificate
    that expires in that many days (so CRT-01 has days left to show).
    """
    shutil.copytree(REPO / "checks", root / "checks", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name, source in (extra_checks or {}).items():
        (root / "checks" / name).write_text(source)
    inventory = INVENTORY
    if certificate_days is not None:
        write_certificate(root / "tls", certificate_days)
        inventory += f"      certaudit_tls_dir: {json.dumps(str(root / 'tls'))}\n"
    (root / "inv.yml").write_text(inventory)
    (root / "conftest.py").write_text(CONFTEST)


def run_audit_project(
    pytester: pytest.Pytester, extra_checks: dict[str, str] | None = None, certificate_days: float | None = None
) -> AuditOutput:
    make_audit_project(pytester.path, extra_checks, certificate_days)
    result = pytester.runpytest_subprocess(
        "checks", "--inventory", "inv.yml", "--report-dir", "out", "--job", "nightly", "-p", "no:cacheprovider", timeout=300
    )
    output = "\n".join(result.outlines + result.errlines)
    reports = sorted((pytester.path / "out").rglob("report.html"))
    assert len(reports) == 1, f"expected one report.html under out/, found {reports}\n{output[-3000:]}"
    report = reports[0]
    evidence_path = report.parent / "evidence.json"
    assert evidence_path.exists(), f"no evidence.json beside {report}\n{output[-3000:]}"
    html = report.read_text(encoding="utf-8")
    return AuditOutput(int(result.ret), output, report, html, parse_html(html), json.loads(evidence_path.read_text()))


def index_of(tree: Node) -> dict[str, Any]:
    """The page's index blob, with each control's fix by id under `fixes`."""
    index: dict[str, Any] = json.loads(tree.by_id("certaudit-index").text())
    index["fixes"] = {c[0]: c[3] for c in index["controls"]}
    return index


def host_details(tree: Node) -> dict[str, list[dict[str, Any]]]:
    """Each host's details blob (every result's observed, expected, message...), by host name."""
    hosts = index_of(tree)["hosts"]
    found = {}
    for number, name in enumerate(hosts):
        blob = [n for n in tree.find_all("script") if n.attrs.get("id") == f"certaudit-host-{number}"]
        if blob:
            assert blob[0].attrs["type"] == "application/gzip+base64"
            found[name] = report_view.unpacked(blob[0].text())
    return found


BLOB_RE = re.compile(rb'<script type="application/gzip\+base64" class="ca-details" id="certaudit-host-\d+">([^<]*)</script>')


def with_details(raw: bytes) -> bytes:
    """A report.html's bytes followed by every host blob's results as plain JSON: what a scan for
    secrets must read, since the blobs are gzip'd (a secret in one would not show in the raw bytes)."""
    found = [json.dumps(report_view.unpacked(m.decode()), ensure_ascii=False) for m in BLOB_RE.findall(raw)]
    return raw + "\n".join(found).encode()


def matrix_row(tree: Node, host: str) -> list[Node]:
    table = tree.by_id("certaudit-matrix-table")
    for row in table.find_all("tr"):
        cells = row.cells()
        if cells and cells[0].tag == "th" and cells[0].text().strip() == host:
            return cells[1:]
    raise AssertionError(f"no matrix row for {host}")


def matrix_columns(tree: Node) -> list[str]:
    head = tree.by_id("certaudit-matrix-table").find_all("thead")[0].find_all("th")
    return [str(th.children[0]).strip() for th in head[1:]]  # the id, before the "gate" mark


# --- end to end --------------------------------------------------------------------------------------
def test_report_of_a_real_audit(pytester: pytest.Pytester) -> None:
    run = run_audit_project(pytester)
    assert run.ret in (0, 1), run.output[-3000:]  # compliant, or findings: never a crash
    assert "Traceback" not in run.output

    # The title: job and date.
    title = run.tree.find_all("title")[0].text()
    assert "certaudit nightly report" in title
    assert title == f"certaudit nightly report, {run.evidence['run']['started'][:10]} (UTC)"

    # The matrix: localhost with one cell per control, each the outcome evidence.json has.
    results = {r["control"]: r for r in run.evidence["results"] if r["host"] == "localhost"}
    # Every control of checks/ (the catalog grows beyond the runbook's seven).
    assert set(results) >= set(RUNBOOK_CONTROLS)
    assert matrix_columns(run.tree) == sorted(results)
    cells = matrix_row(run.tree, "localhost")
    assert len(cells) == len(results)
    for control, cell in zip(sorted(results), cells, strict=True):
        assert cell.attrs["data-control"] == control
        assert cell.text().strip() == OUTCOME_TEXT[results[control]["outcome"]], control
        message = results[control]["message"]
        if message:
            assert cell.attrs["title"] == " ".join(message.splitlines()[0].split())

    # Counts, hosts, metadata.
    counts = {n.attrs["data-outcome"]: int(n.text()) for n in run.tree.by_id("certaudit-counts").find_all("span", "ca-count")}
    for outcome in OUTCOME_TEXT:
        assert counts[outcome] == sum(1 for r in results.values() if r["outcome"] == outcome)
    hosts_text = run.tree.by_id("certaudit-hosts-table").text()
    assert "localhost" in hosts_text and ("reached" in hosts_text or "UNREACHED" in hosts_text)
    meta = {row.cells()[0].text(): row.cells()[1].text() for row in run.tree.by_id("certaudit-run-table").find_all("tr")}
    assert meta["Job"] == "nightly"
    assert meta["Started (UTC)"] == run.evidence["run"]["started"]
    assert meta["Run by (user@machine)"] == run.evidence["run"]["operator"]
    assert meta["Inventory"] == "inv.yml"
    assert meta["Exit status"].startswith(str(run.ret))

    # The expiry horizon: an SVG with the warning and critical lines at 30 and 7 days.
    svg = run.tree.by_id("certaudit-horizon-svg")
    assert svg.tag == "svg"
    lines = {n.attrs["class"]: n.attrs["data-days"] for n in svg.find_all("line") if "ca-threshold" in n.attrs.get("class", "")}
    assert lines == {"ca-threshold ca-threshold-warning": "30", "ca-threshold ca-threshold-critical": "7"}
    labels = svg.text()
    assert "warning 30 d" in labels and "critical 7 d" in labels
    days = results["CRT-01"]["observed"].get("days_left")
    bar_labels = [n.text() for n in svg.find_all("text", "ca-bar-label") if n.attrs.get("data-host") == "localhost"]
    assert len(bar_labels) == 1
    assert (f"{days:.1f}" if isinstance(days, int | float) else "unknown") in bar_labels[0]

    # The results table: the evidence columns after Result and Test, and every control's row filled.
    header = [parse_html(th).text() for th in re_th(run.html)]
    assert header[:9] == ["Result", "Test", "Control", "Title", "Host", "Outcome", "Observed", "Expected", "Fix"]
    rows = run.table_rows()
    # pytest-html's table has no row for a pass or an N/A (report_html.ROWLESS_OUTCOMES): their
    # evidence is in the host's details blob, as every result's is.
    details = {(r["control"], r["nodeid"]): r for r in host_details(run.tree)["localhost"]}
    for control, record in results.items():
        detail = details[(control, record["nodeid"])]
        assert (detail["outcome"], detail["observed"], detail["expected"]) == (
            record["outcome"],
            record["observed"],
            record["expected"],
        )
        assert detail.get("fix", index_of(run.tree)["fixes"][control]) == record["fix"]
        if record["outcome"] in ("pass", "not applicable"):
            assert not [r for r in rows.get(record["nodeid"], []) if cell_of(r, "control").text()], control
            continue
        (cells_html,) = [r for r in rows[record["nodeid"]] if cell_of(r, "control").text()]
        assert len(cells_html) == len(header)
        assert cell_of(cells_html, "control").text() == control
        assert cell_of(cells_html, "host").text() == "localhost"
        badge = cell_of(cells_html, "outcome").find_all("span", "ca-badge")[0]
        assert badge.text() == OUTCOME_TEXT[record["outcome"]]
        observed = cell_of(cells_html, "observed").text()
        for key, value in record["observed"].items():  # passes carry their evidence as failures do
            assert f"{key}: {format_value(value)}" in observed
        assert cell_of(cells_html, "fix").text() == record["fix"]
    # A test that is not a control (checks/test_waivers.py, when present) gets empty cells.
    for nodeid, entries in rows.items():
        if nodeid not in {r["nodeid"] for r in run.evidence["results"]}:
            for cells_html in entries:
                assert cell_of(cells_html, "control").text() == "" and cell_of(cells_html, "observed").text() == ""


def re_th(html: str) -> list[str]:
    """The results table's header cells, as HTML."""
    head = html.split('<thead id="results-table-head">', 1)[1].split("</thead>", 1)[0]
    return ["<th" + part.split("</th>", 1)[0] + "</th>" for part in head.split("<th")[1:]]


def test_the_summary_is_written_into_the_page_once_or_the_run_is_not_sealed(pytester: pytest.Pytester) -> None:
    run = run_audit_project(pytester)
    # Written at its place, once, and the placeholder pytest-html was given is gone.
    assert run.html.count('id="certaudit-summary"') == 1 and "<!--certaudit-summary-" not in run.html
    assert [p.name for p in run.report.parent.iterdir() if p.name.startswith(".")] == []

    # A page whose summary could not be written is not sealed: said in one line, no traceback.
    failing = textwrap.dedent(
        """\

        from certaudit.evidence import report_html


        def _full(*args, **kwargs):
            raise OSError(28, "No space left on device")
            yield ""


        report_html.summary_html_parts = _full
        """
    )
    with (pytester.path / "conftest.py").open("a") as conftest:
        conftest.write(failing)
    result = pytester.runpytest_subprocess(
        "checks", "--inventory", "inv.yml", "--report-dir", "out2", "-p", "no:cacheprovider", timeout=300
    )
    output = "\n".join(result.outlines + result.errlines)
    assert "certaudit: report.html: the summary was not written: [Errno 28] No space left on device" in output
    assert "Traceback" not in output
    (left,) = (pytester.path / "out2").iterdir()
    assert left.name.endswith(".partial"), left  # not sealed
    assert "<!--certaudit-summary-" in (left / "report.html").read_text()  # the page as pytest-html wrote it
    assert [p.name for p in left.iterdir() if p.name.startswith(".")] == []


def test_horizon_bar_of_a_real_certificate(pytester: pytest.Pytester) -> None:
    run = run_audit_project(pytester, certificate_days=20.5)
    (crt,) = [r for r in run.evidence["results"] if r["control"] == "CRT-01"]
    days = crt["observed"]["days_left"]
    assert 20 < days < 21 and crt["outcome"] == "fail"  # warning tier: under 30 days
    svg = run.tree.by_id("certaudit-horizon-svg")
    (bar,) = svg.find_all("rect", "ca-bar")
    assert bar.attrs["data-host"] == "localhost" and bar.attrs["class"].endswith("ca-tier-warning")
    assert bar.attrs["data-days"] == f"{days:.1f}"
    (label,) = svg.find_all("text", "ca-bar-label")
    assert label.text() == f"{days:.1f} days (WARNING)"
    (cell,) = [c for c in matrix_row(run.tree, "localhost") if c.attrs["data-control"] == "CRT-01"]
    assert cell.text() == "FAIL" and cell.attrs["title"].startswith("CRT-01 on localhost: warning tier")


def test_hostile_strings_stay_text_end_to_end(pytester: pytest.Pytester) -> None:
    run = run_audit_project(pytester, {"test_hostile.py": HOSTILE_CHECK})
    assert "Traceback" not in run.output, run.output[-3000:]
    (record,) = [r for r in run.evidence["results"] if r["control"] == "XSS-01"]
    assert record["outcome"] == "fail"
    # Nowhere in the file does the markup survive as markup: not in the summary, not in the SVG.
    assert HOSTILE not in run.html
    assert "<img src=x" not in run.html
    assert "<b>everything</b>" not in run.html
    (cell,) = [c for c in matrix_row(run.tree, "localhost") if c.attrs["data-control"] == "XSS-01"]
    assert cell.attrs["title"].startswith("XSS-01 on localhost: <script>alert(1)</script> & friends")  # as text
    # The results-table cells pytest-html's script inserts with innerHTML: escaped there too.
    (cells_html,) = [r for r in run.table_rows()[record["nodeid"]] if cell_of(r, "control").text()]
    joined = "".join(cells_html)
    assert HOSTILE not in joined and "<img" not in joined and "<b>" not in joined
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in joined
    assert HOSTILE in cell_of(cells_html, "observed").text()
    assert '" onmouseover="alert(3)' in cell_of(cells_html, "expected").text()


# --- the helpers, directly -------------------------------------------------------------------------
def _record(**overrides: Any) -> Record:
    values: dict[str, Any] = {
        "control": "KEY-01",
        "title": "Keep the private key private",
        "host": "web-1",
        "outcome": "pass",
        "message": "",
        "observed": {"key": {"mode": "0600"}},
        "expected": {"mode": "0600 or stricter"},
        "fix": "chmod 600 key.pem",
        "nodeid": "checks/test_keys.py::KEY-01[web-1]",
        "started": "2026-01-01T00:00:00+00:00",
    }
    values.update(overrides)
    return Record(**values)


def test_text_escapes_markup_and_quotes() -> None:
    assert text(HOSTILE) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert text("a\"b'c&d") == "a&quot;b&#x27;c&amp;d"
    assert text("one\ntwo") == "one<br>two"


def test_render_kv_escapes_keys_and_values_and_uses_json_for_nested() -> None:
    markup = render_kv({HOSTILE: HOSTILE, "n": {"deep": [1, "<i>"]}, "flag": True, "none": None})
    assert "<script>" not in markup and "<i>" not in markup
    tree = parse_html(markup)
    assert [n.text() for n in tree.find_all("div", "ca-kv")] == [
        f"{HOSTILE}: {HOSTILE}",
        'n: {"deep": [1, "<i>"]}',
        "flag: true",
        "none: null",
    ]


def test_matrix_cells_are_text_with_escaped_titles() -> None:
    records = [
        _record(host=HOSTILE, outcome="fail", message=f"{HOSTILE} on line one\nline two"),
        _record(control="CRT-01", outcome="error", message="ssh: refused"),
        _record(control="CRT-01", host=HOSTILE, outcome="not applicable", message="custom-ca"),
        _record(control="KEY-02", host="web-1", outcome="waived", message="waived"),
    ]
    markup = render_matrix(records, ["web-1", HOSTILE, "never-ran"])
    assert HOSTILE not in markup
    tree = parse_html(markup)
    assert matrix_columns(tree) == ["CRT-01", "KEY-01", "KEY-02"]
    hostile = matrix_row(tree, HOSTILE)
    assert [c.text() for c in hostile] == ["N/A", "FAIL", "NOT RUN"]
    assert hostile[1].attrs["title"] == f"{HOSTILE} on line one"
    assert "ca-o-fail" in hostile[1].attrs["class"]
    assert [c.text() for c in matrix_row(tree, "web-1")] == ["ERROR", "NOT RUN", "WAIVED"]
    assert [c.text() for c in matrix_row(tree, "never-ran")] == ["NOT RUN"] * 3


def test_matrix_shows_controls_of_the_catalog_that_ran_nowhere_as_not_run() -> None:
    catalog = {"KEY-01": ("Keep the private key private", True), "REN-01": ("Schedule renewal", False)}
    tree = parse_html(render_matrix([_record()], ["web-1"], catalog))
    assert matrix_columns(tree) == ["KEY-01", "REN-01"]
    assert [c.text() for c in matrix_row(tree, "web-1")] == ["PASS", "NOT RUN"]
    assert "REN-01: Schedule renewal" in tree.text()
    counts = {
        n.attrs["data-outcome"]: n.text()
        for n in parse_html(render_counts([_record()], [], catalog)).find_all("span", "ca-count")
    }
    assert counts["pass"] == "1" and counts["not run"] == "1"


def test_matrix_shows_the_most_severe_of_several_results_for_a_pair() -> None:
    records = [_record(outcome="pass"), _record(outcome="error", message="teardown: boom")]
    (cell,) = matrix_row(parse_html(render_matrix(records)), "web-1")
    assert cell.text() == "ERROR+1"
    assert cell.attrs["title"].startswith("teardown: boom")


def test_counts_count_each_host_control_pair_once() -> None:
    records = [_record(), _record(host="web-2", outcome="fail"), _record(control="CRT-01", outcome="not applicable")]
    tree = parse_html(render_counts(records))
    counts = {n.attrs["data-outcome"]: n.text() for n in tree.find_all("span", "ca-count")}
    assert counts == {"pass": "1", "fail": "1", "waived": "0", "not applicable": "1", "error": "0", "not run": "1"}


def test_hosts_lists_the_unreached_with_their_error() -> None:
    markup = render_hosts(["web-1", "web-2", "web-3"], ["web-1"], {"web-2": f"ssh: {HOSTILE}"})
    assert HOSTILE not in markup
    rows = {r.cells()[0].text(): [c.text() for c in r.cells()[1:]] for r in parse_html(markup).find_all("tr")[1:]}
    assert rows["web-1"][1] == "reached"
    assert rows["web-2"][1:] == ["UNREACHED", f"ssh: {HOSTILE}"]
    assert rows["web-3"][1] == "NOT PROBED"
    assert "not reached: web-2, web-3" in parse_html(markup).text()


def _svg(markup: str) -> Node:
    (svg,) = parse_html(markup).find_all("svg")
    return svg


def _thresholds(svg: Node) -> dict[str, str]:
    return {
        n.attrs["class"].split()[-1]: n.attrs["data-days"]
        for n in svg.find_all("line")
        if "ca-threshold" in n.attrs.get("class", "")
    }


def test_horizon_bars_tiers_axis_and_thresholds() -> None:
    hosts = ["a", "b", "c", "d", HOSTILE]
    days = {"a": 120.0, "b": 20.0, "c": 3.25, "d": None, HOSTILE: -2.0}
    markup = render_horizon(hosts, days, {h: (30, 7) for h in hosts}, {"d": f"CRT-01 ERROR: {HOSTILE}"})
    assert HOSTILE not in markup
    svg = _svg(markup)
    assert _thresholds(svg) == {"ca-threshold-warning": "30", "ca-threshold-critical": "7"}
    bars = {n.attrs["data-host"]: n for n in svg.find_all("rect", "ca-bar")}
    assert {h: b.attrs["class"].split()[-1] for h, b in bars.items()} == {
        "a": "ca-tier-ok",
        "b": "ca-tier-warning",
        "c": "ca-tier-critical",
        HOSTILE: "ca-tier-critical",
    }
    # Lengths proportional to the days left, on an axis from 0 to max(90, longest) = 120 days.
    assert float(bars["b"].attrs["width"]) == pytest.approx(float(bars["a"].attrs["width"]) / 6, abs=0.2)
    assert float(bars[HOSTILE].attrs["width"]) == 0
    ticks = [n.text() for n in svg.find_all("text") if n.attrs.get("text-anchor") == "middle" and n.text().isdigit()]
    assert ticks[0] == "0" and ticks[-1] == "120"
    labels = {n.attrs["data-host"]: n.text() for n in svg.find_all("text", "ca-bar-label")}
    assert labels["a"] == "120.0 days (ok)"
    assert labels["b"] == "20.0 days (WARNING)"
    assert labels["c"] == "3.2 days (CRITICAL)" or labels["c"] == "3.3 days (CRITICAL)"
    assert labels[HOSTILE] == "EXPIRED 2.0 days ago"
    assert labels["d"].endswith(f"unknown (CRT-01 ERROR: {HOSTILE})")


def test_horizon_axis_is_at_least_90_days_and_thresholds_follow_uniform_policy() -> None:
    svg = _svg(render_horizon(["a"], {"a": 12.0}, {"a": (45, 10)}))
    assert _thresholds(svg) == {"ca-threshold-warning": "45", "ca-threshold-critical": "10"}
    ticks = [n.text() for n in svg.find_all("text") if n.attrs.get("text-anchor") == "middle" and n.text().isdigit()]
    assert ticks[-1] == "90"
    assert svg.find_all("rect", "ca-bar")[0].attrs["class"].endswith("ca-tier-warning")  # 12 days: under 45, over 10
    # Policies that differ: the runbook's 30 and 7 are drawn; each bar keeps its own host's tier.
    svg = _svg(render_horizon(["a", "b"], {"a": 40.0, "b": 40.0}, {"a": (45, 10), "b": (30, 7)}))
    assert _thresholds(svg) == {"ca-threshold-warning": "30", "ca-threshold-critical": "7"}
    tiers = {n.attrs["data-host"]: n.attrs["class"].split()[-1] for n in svg.find_all("rect", "ca-bar")}
    assert tiers == {"a": "ca-tier-warning", "b": "ca-tier-ok"}


def test_days_left_ignores_values_that_are_not_finite_numbers() -> None:
    records = [
        _record(control="CRT-01", host="a", observed={"days_left": "<b>12</b>"}),
        _record(control="CRT-01", host="b", observed={"days_left": True}),
        _record(control="CRT-01", host="c", observed={"days_left": float("nan")}),
        _record(control="CRT-01", host="d", observed={"days_left": 12}),
        _record(control="KEY-01", host="e", observed={"days_left": 12}),
    ]
    assert report_view.days_left_of(records) == {"a": None, "b": None, "c": None, "d": 12.0}


def test_result_cells_escape_everything_and_keep_pass_evidence() -> None:
    record = _record(
        title=HOSTILE,
        host=HOSTILE,
        outcome="fail",
        message=HOSTILE,
        findings=[f"finding {HOSTILE}"],
        notes=[f"note {HOSTILE}"],
        observed={"banner": HOSTILE},
        expected={HOSTILE: 1},
        fix=HOSTILE,
    )
    cells = result_cells(record)
    assert len(cells) == len(report_html.COLUMNS)
    assert all(HOSTILE not in c for c in cells)
    assert all("\n" not in c for c in cells)  # pytest-html's sort keys read a cell's HTML on one line
    assert cell_of(cells, "observed").text() == f"banner: {HOSTILE}"
    outcome = cell_of(cells, "outcome")
    assert outcome.find_all("span", "ca-badge")[0].text() == "FAIL"
    assert f"finding {HOSTILE}" in outcome.text() and f"note: note {HOSTILE}" in outcome.text()
    passed = result_cells(_record())
    assert cell_of(passed, "observed").text() == 'key: {"mode": "0600"}'
    assert cell_of(passed, "expected").text() == "mode: 0600 or stricter"
    assert [parse_html(c).find_all("td")[0].text() for c in result_cells(None)] == [""] * len(report_html.COLUMNS)


def test_waived_result_shows_its_waiver() -> None:
    record = _record(outcome="waived", findings=["key is 0644"])
    vars(record)["waiver"] = {"approver": HOSTILE, "ticket": "SEC-1", "expires": "2026-12-31"}
    outcome = cell_of(result_cells(record), "outcome")
    assert outcome.find_all("span", "ca-badge")[0].text() == "WAIVED"
    waiver = outcome.find_all("div", "ca-waiver")[0].text()
    assert f"approver: {HOSTILE}" in waiver and "ticket: SEC-1" in waiver and "expires: 2026-12-31" in waiver


def test_record_of_reads_the_user_property_and_tolerates_garbage() -> None:
    record = _record()
    report = pytest.TestReport("n", ("f", 0, "n"), {}, "passed", None, "call", user_properties=[("other", "x")])
    assert record_of(report) is None
    report.user_properties.append((USER_PROPERTY, record.to_json()))
    assert record_of(report) == record
    assert record_from_json("not json") is None
    assert record_from_json(json.dumps({"control": "X"})) is None
    assert record_from_json(json.dumps({**json.loads(record.to_json()), "from_a_newer_version": 1})) == record


def test_testid_cell_is_escaped_and_columns_are_inserted_after_test() -> None:
    plugin = HtmlReport.__new__(HtmlReport)
    header = ["<th>Result</th>", "<th>Test</th>", "<th>Duration</th>", "<th>Links</th>"]
    plugin.pytest_html_results_table_header(header)
    assert [parse_html(h).text() for h in header] == [
        "Result", "Test", "Control", "Title", "Host", "Outcome", "Observed", "Expected", "Fix", "Duration", "Links",
    ]  # fmt: skip
    nodeid = f"checks/test_x.py::X-01[{HOSTILE}]"
    report = pytest.TestReport(nodeid, ("f", 0, "n"), {}, "passed", None, "call", user_properties=[])
    cells = ['<td class="col-result">Passed</td>', f'<td class="col-testId">{nodeid}</td>', "<td>1 ms</td>", "<td></td>"]
    plugin.pytest_html_results_table_row(report, cells)
    assert len(cells) == len(header)
    assert HOSTILE not in "".join(cells)
    assert cell_of(cells, "testId").text() == nodeid


def test_metadata_rows_label_known_keys_and_show_unknown_ones_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = {
        "job": "nightly",
        "started": "2026-01-01T00:00:00+00:00",
        "operator": "auditor@ci",
        "ci_job": None,
        "hosts_expected": ["web-1", "web-2"],
        "hosts_reached": [],
        "policies": {"web-1": {"warn_days": 30}, "web-2": {"warn_days": 30}},
        "versions": {"pytest": "9"},
        "brand_new_key": {"nested": [1, 2]},
        HOSTILE: HOSTILE,
    }
    monkeypatch.setattr(report_html, "run_metadata", lambda audit: metadata)
    rows = run_metadata_rows(object())  # type: ignore[arg-type]
    assert rows == [
        ("Job", "nightly"),
        ("Started (UTC)", "2026-01-01T00:00:00+00:00"),
        ("Run by (user@machine)", "auditor@ci"),
        ("CI job", "(none)"),
        ("Hosts expected", "web-1, web-2"),
        ("Hosts reached", "(none)"),
        ("Policy (all 2 hosts)", "warn_days: 30"),
        ("Software versions", "pytest: 9"),
        ("brand_new_key", "nested: [1, 2]"),
        (HOSTILE, HOSTILE),
    ]
    markup = render_metadata(rows)
    assert HOSTILE not in markup
    assert parse_html(markup).find_all("tr")[-1].text() == HOSTILE + HOSTILE
    metadata["policies"] = {"web-1": {"warn_days": 30}, "web-2": {"warn_days": 45}}
    labels = [label for label, _ in run_metadata_rows(object())]  # type: ignore[arg-type]
    assert "Policy of web-1" in labels and "Policy of web-2" in labels


def test_title_names_job_and_utc_date(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    (pytester.path / "inv.yml").write_text(INVENTORY)
    result = pytester.runpytest_subprocess("--inventory", "inv.yml", "--html", "r.html", "--job", "q3-audit")
    result.assert_outcomes(passed=1)
    tree = parse_html((pytester.path / "r.html").read_text())
    title = tree.by_id("title").text()
    assert title.startswith("certaudit q3-audit report, ") and title.endswith(" (UTC)")
    # A test that is not a control: a row with empty evidence cells, and a summary that says no control ran.
    assert "No control ran." in tree.by_id("certaudit-matrix").text()
