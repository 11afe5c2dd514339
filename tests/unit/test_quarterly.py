"""The quarterly audit: quarters, the previous quarter's run, and new / fixed / persisting findings per host."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from certaudit.cli import main
from certaudit.errors import CertauditError
from certaudit.evidence import quarterly
from certaudit.evidence.manifest import keygen, write_manifest
from certaudit.evidence.quarterly import Entry, diff, load_run, previous_run, quarter_of, render, write_diff
from certaudit.jobs import whatif
from tests.unit.jobs_project import make_project, tls_endpoint, write_tls_dir

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("when", "quarter"),
    [
        (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "2026-Q1"),
        (dt.datetime(2026, 3, 31, 23, 59, 59, tzinfo=dt.UTC), "2026-Q1"),
        (dt.datetime(2026, 4, 1, tzinfo=dt.UTC), "2026-Q2"),
        (dt.datetime(2026, 9, 30, 12, tzinfo=dt.UTC), "2026-Q3"),
        (dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC), "2026-Q4"),
        # A quarter is a UTC quarter: 1 April 01:00 in Paris is still 31 March in UTC.
        (dt.datetime(2026, 4, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2026-Q1"),
    ],
)
def test_quarter_of(when: dt.datetime, quarter: str) -> None:
    assert quarter_of(when) == quarter


def result(host: str, control: str, outcome: str, finding: str = "") -> dict[str, Any]:
    return {"host": host, "control": control, "outcome": outcome, "findings": [finding] if finding else [], "message": ""}


def write_run(directory: Path, started: str, results: list[dict[str, Any]], run_id: str = "a" * 32) -> Path:
    directory.mkdir(parents=True)
    document = {"run": {"run_id": run_id, "job": "quarterly", "started": started}, "results": results}
    (directory / "evidence.json").write_text(json.dumps(document))
    return directory


def test_the_previous_run_is_the_newest_complete_run_of_the_newest_earlier_quarter(tmp_path: Path) -> None:
    write_run(tmp_path / "2025-Q4" / "20251201T020000Z-quarterly", "2025-12-01T02:00:00+00:00", [])
    write_run(tmp_path / "2026-Q2" / "20260601T020000Z-quarterly", "2026-06-01T02:00:00+00:00", [])
    newest = write_run(tmp_path / "2026-Q2" / "20260615T020000Z-quarterly", "2026-06-15T02:00:00+00:00", [])
    write_run(tmp_path / "2026-Q2" / "20260620T020000Z-quarterly.partial", "2026-06-20T02:00:00+00:00", [])  # interrupted
    (tmp_path / "2026-Q2" / "20260625T020000Z-quarterly").mkdir()  # no evidence
    (tmp_path / "2026-Q3").mkdir()  # an empty quarter is skipped
    write_run(tmp_path / "2026-Q4" / "20261001T020000Z-quarterly", "2026-10-01T02:00:00+00:00", [])  # this quarter
    write_run(tmp_path / "20260701T020000Z-audit", "2026-07-01T02:00:00+00:00", [])  # not a quarterly run
    assert previous_run(tmp_path, "2026-Q4") == newest
    assert previous_run(tmp_path, "2026-Q2") == tmp_path / "2025-Q4" / "20251201T020000Z-quarterly"
    assert previous_run(tmp_path, "2025-Q4") is None
    assert previous_run(tmp_path / "missing", "2026-Q4") is None


PREVIOUS = [
    result("web-1", "KEY-01", "fail", "key.pem is mode 0644"),
    result("web-1", "CRT-01", "fail", "warning tier: 20.0 days left"),
    result("web-1", "REN-02", "pass"),
    result("web-2", "LIVE-01", "fail", "the endpoint serves no certificate"),
    result("web-2", "REN-01", "fail", "renewal is not scheduled"),
    result("web-3", "KEY-02", "waived", "cert.pem owned by deploy"),
    result("old-1", "KEY-01", "fail", "key.pem is mode 0640"),
    result("ok-1", "KEY-01", "pass"),
]
CURRENT = [
    result("web-1", "KEY-01", "pass"),
    result("web-1", "CRT-01", "fail", "critical tier: 5.0 days left"),
    result("web-1", "REN-02", "fail", "no deploy hook reloads stemedb-api"),
    {**result("web-2", "LIVE-01", "error"), "message": "host web-2: cannot connect\n  detail"},
    result("web-3", "KEY-02", "waived", "cert.pem owned by deploy"),
    result("web-3", "REN-03", "not applicable"),
    result("ok-1", "KEY-01", "pass"),
    result("new-1", "KEY-01", "fail", "key.pem is mode 0666"),
]


def runs(tmp_path: Path) -> tuple[quarterly.RunSummary, quarterly.RunSummary]:
    before = write_run(tmp_path / "2026-Q3" / "r", "2026-08-01T02:00:00+00:00", PREVIOUS, "b" * 32)
    after = write_run(tmp_path / "2026-Q4" / "r", "2026-11-01T02:00:00+00:00", CURRENT, "c" * 32)
    return load_run(before), load_run(after)


def test_new_fixed_persisting_and_not_rechecked_per_host(tmp_path: Path) -> None:
    result_ = diff(*runs(tmp_path))
    hosts = {name: {c: h.entries(c) for c in quarterly.CHANGES if h.entries(c)} for name, h in result_.hosts.items()}
    assert hosts == {
        "web-1": {
            "new": [Entry("REN-02", "fail", "no deploy hook reloads stemedb-api", "pass")],
            "fixed": [Entry("KEY-01", "pass", "", "fail", "key.pem is mode 0644")],
            "persisting": [Entry("CRT-01", "fail", "critical tier: 5.0 days left", "fail", "warning tier: 20.0 days left")],
        },
        # Compliance that cannot be shown is not a fix: an error keeps the finding open.
        "web-2": {
            "persisting": [Entry("LIVE-01", "error", "host web-2: cannot connect", "fail", "the endpoint serves no certificate")],
            "not_rechecked": [Entry("REN-01", "control not run this time", "", "fail", "renewal is not scheduled")],
        },
        # A waiver accepts a failure for a while: it is still open, quarter after quarter.
        "web-3": {"persisting": [Entry("KEY-02", "waived", "cert.pem owned by deploy", "waived", "cert.pem owned by deploy")]},
        "old-1": {"not_rechecked": [Entry("KEY-01", "host not in this run", "", "fail", "key.pem is mode 0640")]},
        "new-1": {"new": [Entry("KEY-01", "fail", "key.pem is mode 0666")]},
    }
    assert result_.clean_hosts == ("ok-1",)
    assert result_.totals() == {"new": 2, "fixed": 1, "persisting": 3, "not_rechecked": 2}


def test_the_diff_as_text(tmp_path: Path) -> None:
    previous, current = runs(tmp_path)
    lines = render(diff(previous, current))
    assert lines[0] == "certaudit quarterly diff: 2026-Q4 against 2026-Q3"
    assert lines[1] == f"  previous: {tmp_path}/2026-Q3/r (run bbbbbbbbbbbb, 2026-08-01 02:00:00 UTC)"
    assert lines[2] == f"  current:  {tmp_path}/2026-Q4/r (run cccccccccccc, 2026-11-01 02:00:00 UTC)"
    assert lines[3:] == [
        "  new-1: 1 new, 0 fixed, 0 persisting",
        "    NEW            KEY-01 fail: key.pem is mode 0666",
        "  old-1: 0 new, 0 fixed, 0 persisting, 1 not re-checked",
        "    NOT RE-CHECKED KEY-01 host not in this run (was fail: key.pem is mode 0640)",
        "  web-1: 1 new, 1 fixed, 1 persisting",
        "    NEW            REN-02 fail: no deploy hook reloads stemedb-api",
        "    FIXED          KEY-01 pass now (was fail: key.pem is mode 0644)",
        "    PERSISTING     CRT-01 fail: critical tier: 5.0 days left",
        "  web-2: 0 new, 0 fixed, 1 persisting, 1 not re-checked",
        "    PERSISTING     LIVE-01 error: host web-2: cannot connect",
        "    NOT RE-CHECKED REN-01 control not run this time (was fail: renewal is not scheduled)",
        "  web-3: 0 new, 0 fixed, 1 persisting",
        "    PERSISTING     KEY-02 waived: cert.pem owned by deploy",
        "  no findings: ok-1",
        "  total: 2 new, 1 fixed, 3 persisting, 2 not re-checked",
    ]


def test_the_first_quarterly_audit_has_nothing_to_compare(tmp_path: Path) -> None:
    _, current = runs(tmp_path)
    lines = render(diff(None, current))
    assert lines[0] == "certaudit quarterly diff: 2026-Q4: no earlier quarter's run to compare with (first quarterly audit)"
    # With nothing to compare, every open finding is new.
    assert lines[-1] == "  total: 5 new, 0 fixed, 0 persisting"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "evidence.json: does not exist"),
        ("{not json", "not certaudit evidence (not JSON"),
        ('{"run": {}}', "not certaudit evidence (no results list)"),
        ('{"results": [{"host": "h"}]}', "result #1 lacks control, host or outcome"),
    ],
)
def test_unusable_evidence_is_named(tmp_path: Path, content: str | None, says: str) -> None:
    if content is not None:
        (tmp_path / "evidence.json").write_text(content)
    with pytest.raises(CertauditError, match=re.escape(says)):
        load_run(tmp_path)


def sealed_previous(tmp_path: Path, signing_key: Path | None = None) -> Path:
    run = write_run(tmp_path / "reports" / "2026-Q3" / "20260801T020000Z-quarterly", "2026-08-01T02:00:00+00:00", PREVIOUS)
    write_manifest(run, signing_key)
    return run


def current_partial(tmp_path: Path) -> Path:
    return write_run(
        tmp_path / "reports" / "2026-Q4" / "20261101T020000Z-quarterly.partial", "2026-11-01T02:00:00+00:00", CURRENT
    )


def test_write_diff_checks_the_previous_run_and_writes_both_forms(tmp_path: Path) -> None:
    keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    sealed_previous(tmp_path, tmp_path / "k.pem")
    partial = current_partial(tmp_path)
    final = partial.with_name("20261101T020000Z-quarterly")
    result_ = write_diff(partial, final, tmp_path / "reports")
    assert result_.previous is not None
    assert result_.previous.integrity == "manifest verified; signed (check with certaudit verify --public-key)"
    text = (partial / "quarterly-diff.txt").read_text().splitlines()
    assert text == render(result_)
    assert text[2] == f"  current:  {final} (run aaaaaaaaaaaa, 2026-11-01 02:00:00 UTC)"
    document = json.loads((partial / "quarterly-diff.json").read_text())
    assert document["totals"] == {"new": 2, "fixed": 1, "persisting": 3, "not_rechecked": 2}
    assert document["hosts"]["web-1"]["fixed"] == [
        {"control": "KEY-01", "outcome": "pass", "finding": "", "was_outcome": "fail", "was_finding": "key.pem is mode 0644"}
    ]
    assert document["previous"]["quarter"] == "2026-Q3" and document["previous_problem"] is None


def test_a_changed_or_moved_previous_run_is_said(tmp_path: Path) -> None:
    previous = sealed_previous(tmp_path)
    (previous / "evidence.json").write_text((previous / "evidence.json").read_text().replace("0644", "0600"))
    moved = previous.parent.parent / "2026-Q2" / previous.name
    moved.parent.mkdir()
    previous.rename(moved)
    partial = current_partial(tmp_path)
    result_ = write_diff(partial, partial, tmp_path / "reports")
    assert result_.previous is not None
    assert result_.previous.quarter == "2026-Q2"
    assert result_.previous.integrity.startswith("DOES NOT VERIFY: changed: evidence.json (sha256 ")
    assert result_.previous.integrity.endswith("; filed under 2026-Q2 but started in 2026-Q3")


def test_unusable_previous_evidence_is_said_and_nothing_compared(tmp_path: Path) -> None:
    broken = tmp_path / "reports" / "2026-Q3" / "20260801T020000Z-quarterly"
    broken.mkdir(parents=True)
    (broken / "evidence.json").write_text("[]")
    partial = current_partial(tmp_path)
    result_ = write_diff(partial, partial, tmp_path / "reports")
    assert result_.previous is None
    assert render(result_)[0] == (
        f"certaudit quarterly diff: 2026-Q4: the previous quarter's run cannot be used: "
        f"{broken}/evidence.json: not certaudit evidence (no results list)"
    )


def test_certaudit_diff_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs(tmp_path)
    assert main(["diff", str(tmp_path / "2026-Q3" / "r"), str(tmp_path / "2026-Q4" / "r" / "evidence.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "certaudit diff: 2026-Q4 against 2026-Q3"
    assert "    FIXED          KEY-01 pass now (was fail: key.pem is mode 0644)" in out
    assert main(["diff", "--json", str(tmp_path / "2026-Q3" / "r"), str(tmp_path / "2026-Q4" / "r")]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["persisting"] == 3
    assert main(["diff", str(tmp_path / "nothing.json"), str(tmp_path / "2026-Q4" / "r")]) == 4
    assert capsys.readouterr().err == f"certaudit: {tmp_path}/nothing.json: does not exist\n"


def test_a_real_quarterly_run_on_this_machine(pytester: pytest.Pytester) -> None:
    """--quarterly files the run under its quarter, with the diff inside the sealed directory."""
    tls = pytester.path / "tls"
    write_tls_dir(tls, 60)
    reports = pytester.path / "reports"
    write_run(
        reports / "2000-Q1" / "20000101T000000Z-quarterly",
        "2000-01-01T00:00:00+00:00",
        [result("localhost", "KEY-01", "fail", "x")],
    )
    with tls_endpoint(tls) as port:
        make_project(pytester.path, tls, port)
        run = pytester.runpytest_subprocess(
            "checks", "--inventory", "inv.yml", "--report-dir", "reports", "--job", "quarterly", "--quarterly",
            "-p", "no:cacheprovider", timeout=120,
        )  # fmt: skip
    output = "\n".join(run.outlines + run.errlines)
    assert run.ret == 1, output[-3000:]  # this machine runs no certbot: REN-* fail
    quarter = quarter_of(dt.datetime.now(dt.UTC))
    (run_dir,) = (reports / quarter).iterdir()
    assert run_dir.name.endswith("-quarterly")
    assert {p.name for p in run_dir.iterdir()} == {
        "report.html", "junit.xml", "evidence.json", "quarterly-diff.txt", "quarterly-diff.json", "MANIFEST.sha256",
    }  # fmt: skip
    assert "quarterly-diff.json" in (run_dir / "MANIFEST.sha256").read_text()
    assert f"certaudit quarterly diff: {quarter} against 2000-Q1" in output
    assert "    FIXED          KEY-01 pass now (was fail: x)" in output
    assert "  previous: reports/2000-Q1/20000101T000000Z-quarterly (run aaaaaaaaaaaa, 2000-01-01 00:00:00 UTC, " in output
    assert "certaudit: this quarterly run is NOT signed (no --signing-key or CERTAUDIT_SIGNING_KEY)" in output
    # Until 2028-02-16 the quarterly run judges the fleet against the announced lifetimes still to come.
    lifetimes = list(whatif.quarterly_default(dt.datetime.now(dt.UTC).date()))
    evidence = json.loads((run_dir / "evidence.json").read_text())
    assert evidence.get("lifetime_what_if", {}).get("lifetimes_days", []) == lifetimes
    assert [r["host"] for r in evidence.get("lifetime_what_if", {}).get("rows", [])] == ["localhost"] * len(lifetimes)
    assert 'id="certaudit-lifetime-what-if"' in (run_dir / "report.html").read_text() or not lifetimes


def test_quarterly_needs_a_report_directory(pytester: pytest.Pytester) -> None:
    make_project(pytester.path, pytester.path / "tls", 1)
    run = pytester.runpytest_subprocess("checks", "--inventory", "inv.yml", "--quarterly", "-p", "no:cacheprovider")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert "certaudit: --quarterly files the run under --report-dir DIR/<YYYY>-Q<n>/: give --report-dir" in "\n".join(
        run.outlines + run.errlines
    )
