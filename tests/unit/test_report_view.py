"""The report view (certaudit.evidence.report_view): what the page opens on, its counts, the
matrix's grouping, its bounds at fleet scale, and that nothing a host says becomes markup or script."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest

from certaudit.evidence import report_view
from certaudit.evidence.report_html import ROWLESS_OUTCOMES, HtmlReport
from certaudit.evidence.report_view import ReportData, RunContext, json_for_script, render_summary, unpacked
from certaudit.record import USER_PROPERTY, Record
from tests.unit.test_report_html import Node, host_details, index_of, parse_html

HOSTILE = "<script>alert(1)</script>"
END_SCRIPT = "</script><script>alert(2)</script><!--"


def rec(host: str, control: str, outcome: str = "pass", **more: Any) -> Record:
    values: dict[str, Any] = {
        "control": control,
        "title": f"title of {control}",
        "host": host,
        "outcome": outcome,
        "message": "" if outcome == "pass" else f"{control} on {host}: {outcome}",
        "observed": {"seen": f"{control}@{host}"},
        "expected": {"want": 1},
        "fix": f"fix {control}",
        "nodeid": f"checks/t.py::{control}[{host}]",
    }
    values.update(more)
    return Record(**values)


def page(records: list[Record], expected: list[str] | None = None, unreachable: dict[str, str] | None = None) -> Node:
    data = ReportData().add_all(records)
    hosts = expected if expected is not None else sorted({r.host for r in records})
    run = RunContext(hosts, [h for h in hosts if h not in (unreachable or {})], unreachable or {}, {}, [("Job", "t")])
    return parse_html(render_summary(data, run, "lead"))


FLEET = [
    *(rec(h, c) for h in ("a-ok", "b-ok", "c-ok") for c in ("CRT-01", "KEY-01")),
    rec("d-waived", "CRT-01"),
    rec("d-waived", "KEY-01", "waived"),
    rec("e-down", "CRT-01", "error"),
    rec("e-down", "KEY-01", "error"),
    rec("z-fail", "CRT-01"),
    rec("z-fail", "KEY-01", "fail", findings=["key is 0644"]),
    rec("m-fail", "CRT-01", "fail", findings=["expires in 3 days"]),
    rec("m-fail", "KEY-01", "error"),
]


def test_the_page_opens_on_hosts_with_findings_then_errors_with_their_failing_controls() -> None:
    tree = page(FLEET)
    action = tree.by_id("certaudit-action")
    listed = action.find_all("details", "ca-act")
    # Findings first (by name), then errors only; compliant and waived hosts are not listed.
    assert [d.attrs["data-host"] for d in listed] == ["m-fail", "z-fail", "e-down"]
    rows = {
        d.attrs["data-host"]: [tr.attrs["data-control"] for tr in d.find_all("tr") if "data-control" in tr.attrs] for d in listed
    }
    assert rows == {"m-fail": ["CRT-01", "KEY-01"], "z-fail": ["KEY-01"], "e-down": ["CRT-01", "KEY-01"]}
    (key_row,) = [tr for tr in listed[1].find_all("tr") if tr.attrs.get("data-control") == "KEY-01"]
    cells = key_row.cells()
    assert "FAIL" in cells[1].text() and "key is 0644" in cells[1].text()  # outcome and message
    assert cells[2].text() == "seen: KEY-01@z-fail" and cells[3].text() == "want: 1"  # observed, expected
    assert all("open" in d.attrs for d in listed)
    summaries = [d.find_all("summary")[0].text() for d in listed]
    assert summaries[0] == "m-fail 1 FAIL, 1 ERROR: CRT-01, KEY-01"


def test_compliant_hosts_are_counts_that_expand_from_the_index() -> None:
    tree = page(FLEET, expected=[*sorted({r.host for r in FLEET}), "never"])
    counts = {n.attrs["data-group"]: n.text() for n in tree.by_id("certaudit-compliant").find_all("span", "ca-count")}
    assert counts == {"pass": "3", "waived": "1", "none": "1"}
    index = index_of(tree)
    names = {kind: [index["hosts"][i] for i in members] for kind, members in index["groups"].items()}
    assert names == {"pass": ["a-ok", "b-ok", "c-ok"], "waived": ["d-waived"], "none": ["never"]}
    nav = tree.by_id("certaudit-nav").text()
    assert nav.startswith("3 host(s) need action · 4 compliant")


def test_matrix_has_one_row_per_distinct_outcomes_those_needing_action_first() -> None:
    tree = page([*FLEET, rec("y-fail", "CRT-01"), rec("y-fail", "KEY-01", "fail")])
    table = tree.by_id("certaudit-matrix-table")
    rows = [[c.text() for c in r.cells()] for r in table.find_all("tr")[1:]]
    assert rows == [
        ["2 hosts", "PASS", "FAIL"],  # y-fail and z-fail: the same row of outcomes
        ["e-down", "ERROR", "ERROR"],
        ["m-fail", "FAIL", "ERROR"],
        ["3 hosts", "PASS", "PASS"],
        ["d-waived", "PASS", "WAIVED"],
    ]
    index = index_of(tree)
    assert [index["hosts"][i] for i in index["patterns"][0]] == ["y-fail", "z-fail"]
    # A lone host's cells name it and carry the message's first line; a group's say how many.
    (lone,) = [c for c in table.find_all("td") if c.attrs.get("data-host") == "m-fail" and c.attrs["data-control"] == "KEY-01"]
    assert lone.attrs["title"] == "KEY-01 on m-fail: error"
    group = table.find_all("tr")[1].cells()[2]
    assert "data-host" not in group.attrs and group.attrs["title"] == "KEY-01: FAIL on 2 hosts"
    counts = {n.attrs["data-outcome"]: n.text() for n in tree.by_id("certaudit-counts").find_all("span", "ca-count")}
    assert counts == {"pass": "9", "fail": "3", "waived": "1", "not applicable": "0", "error": "3"}


def test_a_hosts_details_are_held_compressed_once_records_move_on_and_keep_their_order() -> None:
    # A run's records come host by host; a merge's, or a control-major run's, may come back to a host.
    records = [
        rec("a", "CRT-01"),
        rec("a", "KEY-01", "fail"),
        rec("b", "CRT-01", "error"),
        rec("a", "REN-01"),
        rec("b", "KEY-01"),
        rec("a", "REN-02", "fail"),
    ]
    data = ReportData().add_all(records)
    # Each host's details compressed as the records moved on from it; the last host's last one still text.
    assert data.hosts["b"].sealed and data.hosts["b"].details == []
    assert data.hosts["a"].sealed and len(data.hosts["a"].details) == 1
    details = host_details(page(records))
    assert [d["control"] for d in details["a"]] == ["CRT-01", "KEY-01", "REN-01", "REN-02"]
    assert [(d["control"], d["outcome"]) for d in details["b"]] == [("CRT-01", "error"), ("KEY-01", "pass")]


def test_every_result_is_in_its_hosts_blob_and_the_index_codes_every_pair() -> None:
    records = [*FLEET, rec("e-down", "KEY-01", "pass", nodeid="second")]  # two results for one pair
    tree = page(records)
    details = host_details(tree)
    assert sum(len(v) for v in details.values()) == len(records)
    for record in records:
        assert {k: record.__dict__[k] for k in ("outcome", "observed", "expected", "message", "findings")} in [
            {k: d[k] for k in ("outcome", "observed", "expected", "message", "findings")}
            for d in details[record.host]
            if d["control"] == record.control
        ]
    index = index_of(tree)
    rows = dict(zip(index["hosts"], index["rows"], strict=True))
    assert rows == {"a-ok": "pp", "b-ok": "pp", "c-ok": "pp", "d-waived": "pw", "e-down": "ee", "m-fail": "fe", "z-fail": "pf"}
    assert index["fixes"] == {"CRT-01": "fix CRT-01", "KEY-01": "fix KEY-01"}  # once per control, not per result


def test_nothing_a_host_says_becomes_markup_or_ends_a_blob() -> None:
    evil_host = f'{HOSTILE}"><img src=x onerror=alert(3)>'
    records = [
        rec(evil_host, "CRT-01", "fail", message=f"{END_SCRIPT}\nline two", findings=[HOSTILE],
            observed={END_SCRIPT: END_SCRIPT, "nested": {"x": [HOSTILE]}}, expected={"e": "\u2028<!--"}),
        rec(evil_host, END_SCRIPT, "error", title=HOSTILE, fix=HOSTILE),
        rec("ok", "CRT-01", observed={"lone": "\ud800"}),
    ]  # fmt: skip
    data = ReportData().add_all(records)
    run = RunContext([evil_host, "ok"], ["ok"], {evil_host: HOSTILE}, {}, [(HOSTILE, HOSTILE)])
    markup = render_summary(data, run, HOSTILE)
    markup.encode("utf-8")  # a lone surrogate from a host is an escape, never a byte the page cannot hold
    for raw in (HOSTILE, "<img", "</script><script>", "<!--", END_SCRIPT):
        assert raw not in markup.replace(report_view.SCRIPT, "").replace(report_view.STYLE, "")
    # The script elements are exactly certaudit's: the index, a blob per host and the page's script.
    tree = parse_html(markup)
    scripts = tree.find_all("script")
    assert [s.attrs.get("type") for s in scripts] == ["application/json", *["application/gzip+base64"] * 2, None]
    index = index_of(tree)
    assert index["hosts"] == sorted([evil_host, "ok"])
    assert [c[0] for c in index["controls"]] == sorted(["CRT-01", END_SCRIPT])
    details = host_details(tree)
    crt = next(d for d in details[evil_host] if d["control"] == "CRT-01")
    assert crt["observed"] == {END_SCRIPT: END_SCRIPT, "nested": {"x": [HOSTILE]}} and crt["expected"] == {"e": "\u2028<!--"}
    assert crt["message"].startswith(END_SCRIPT)
    assert details["ok"][0]["observed"] == {"lone": "\ud800"}
    # The page's own script puts host text in with textContent only.
    assert "innerHTML" not in report_view.SCRIPT and "insertAdjacentHTML" not in report_view.SCRIPT
    assert "eval(" not in report_view.SCRIPT and "document.write" not in report_view.SCRIPT


def test_json_for_script_escapes_what_could_end_the_element() -> None:
    dumped = json_for_script({"k": END_SCRIPT + "&\u2028"})
    assert "<" not in dumped and ">" not in dumped and "&" not in dumped
    assert json.loads(dumped) == {"k": END_SCRIPT + "&\u2028"}


def test_failing_results_past_the_static_bound_are_rendered_from_the_blob(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_view, "ACTION_STATIC_RESULTS", 3)
    records = [rec(f"h{i}", c, "fail") for i in range(4) for c in ("CRT-01", "KEY-01")]
    tree = page(records)
    listed = tree.by_id("certaudit-action").find_all("details", "ca-act")
    lazy = [d.attrs["data-host"] for d in listed if d.find_all("div", "ca-lazy")]
    assert lazy == ["h1", "h2", "h3"]  # h0's two and one of h1's were kept; h1 then had one it could not keep
    assert all(not d.find_all("table") and "open" not in d.attrs for d in listed[1:])
    assert len(host_details(tree)) == 4  # their details are all in the page


def test_at_fleet_scale_the_sections_stay_bounded() -> None:
    hosts = [f"h{i:05d}" for i in range(400)]
    records = [rec(h, "CRT-01", observed={"days_left": 10.0 + i}) for i, h in enumerate(hosts)]
    tree = page(records, expected=hosts)
    bars = tree.by_id("certaudit-horizon-svg").find_all("rect", "ca-bar")
    assert [b.attrs["data-host"] for b in bars] == hosts[: report_view.HORIZON_BARS]  # those nearest expiry
    assert f"The {report_view.HORIZON_BARS} hosts nearest expiry of 400" in tree.by_id("certaudit-horizon").text()
    host_rows = tree.by_id("certaudit-hosts-table").find_all("tr")[1:]
    assert [r.cells()[0].text() for r in host_rows] == ["400 hosts"]  # all reached: a count, not 400 rows
    assert len(tree.by_id("certaudit-matrix-table").find_all("tr")) == 2  # one header, one row for all 400


def test_pytest_html_keeps_no_row_for_a_pass_or_an_na() -> None:
    plugin = HtmlReport.__new__(HtmlReport)
    cases: list[tuple[str, Literal["passed", "failed", "skipped"], bool]] = [
        ("pass", "passed", False),
        ("not applicable", "skipped", False),
        ("pass", "failed", True),  # a phase that failed (a teardown error) keeps its row
        ("fail", "failed", True),
        ("waived", "skipped", True),
        ("error", "failed", True),
    ]
    for outcome, phase_outcome, kept in cases:
        record = rec("web-1", "KEY-01", outcome)
        report = pytest.TestReport("n", ("f", 0, "n"), {}, phase_outcome, None, "call",
                                   user_properties=[(USER_PROPERTY, record.to_json())])  # fmt: skip
        if outcome == "waived":
            report.wasxfail = "waived by #1"  # as the plugin reports a covered failure: pytest's xfail
        cells = ['<td class="col-result">x</td>', '<td class="col-testId">n</td>']
        plugin.pytest_html_results_table_row(report, cells)
        assert bool(cells) is kept, (outcome, phase_outcome)
    assert frozenset({"pass", "not applicable"}) == ROWLESS_OUTCOMES


def test_packed_details_round_trip() -> None:
    details = [json_for_script({"a": END_SCRIPT}), json_for_script({"b": [1, 2]})]
    blob = report_view.packed(details)
    assert set(blob) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    assert unpacked(blob) == [{"a": END_SCRIPT}, {"b": [1, 2]}]
    assert report_view.packed(details) == blob  # the same results make the same page
