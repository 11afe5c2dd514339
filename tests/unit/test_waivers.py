"""Waivers: which are in force, which are findings, what they cover."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from certaudit.waivers import load_waivers

TODAY = dt.date(2026, 11, 27)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waivers.yml"
    path.write_text(text)
    return path


def test_no_file_means_no_waivers(tmp_path: Path) -> None:
    waivers = load_waivers(tmp_path / "absent.yml", TODAY)
    assert (waivers.entries, waivers.findings(), waivers.find("KEY-01", "web-1")) == ([], [], None)


def test_valid_waiver_covers_matching_hosts_only(tmp_path: Path) -> None:
    waivers = load_waivers(write(tmp_path, """
waivers:
  - {control: KEY-01, hosts: "web-*", reason: r, approver: a, ticket: T-1, expires: 2026-11-27}
"""), TODAY)  # fmt: skip
    assert waivers.findings() == []
    assert waivers.find("KEY-01", "web-1") is waivers.entries[0]
    assert waivers.find("KEY-01", "db-1") is None
    assert waivers.find("KEY-02", "web-1") is None
    assert waivers.entries[0].expires == TODAY  # valid through its expiry date


def test_expired_and_malformed_waivers_are_findings_and_cover_nothing(tmp_path: Path) -> None:
    waivers = load_waivers(write(tmp_path, """
waivers:
  - {control: KEY-01, hosts: "*", reason: r, approver: a, ticket: T-1, expires: 2026-11-26}
  - {control: KEY-1, hosts: "*", reason: r, ticket: T-2, expires: soon, colour: red}
  - just a string
"""), TODAY)  # fmt: skip
    assert [w.status for w in waivers.entries] == ["expired", "malformed", "malformed"]
    assert waivers.findings() == [
        "waivers.yml waiver #1 (KEY-01 on *): expired on 2026-11-26 (ticket T-1, approved by a)",
        "waivers.yml waiver #2 (KEY-1 on *): missing approver; unknown field colour; "
        "control 'KEY-1' is not a control id like KEY-01; expires 'soon' is not a date (YYYY-MM-DD)",
        "waivers.yml waiver #3 (? on ?): expected a mapping with control, hosts, reason, approver, ticket, expires",
    ]
    assert waivers.find("KEY-01", "web-1") is None


def test_unreadable_file_is_one_finding(tmp_path: Path) -> None:
    waivers = load_waivers(write(tmp_path, "waivers: [unclosed\n"), TODAY)
    assert waivers.file_problem.startswith("cannot be read as YAML: ")
    assert load_waivers(write(tmp_path, "- a list\n"), TODAY).file_problem == "expected a top-level `waivers:` list"
    assert load_waivers(write(tmp_path, "waivers:\n"), TODAY).findings() == []


def test_unused_waivers(tmp_path: Path) -> None:
    waivers = load_waivers(write(tmp_path, """
waivers:
  - {control: KEY-01, hosts: "web-*", reason: r, approver: a, ticket: T-1, expires: 2030-01-01}
  - {control: CRT-01, hosts: "db-*", reason: r, approver: a, ticket: T-2, expires: 2030-01-01}
"""), TODAY)  # fmt: skip
    waivers.entries[0].covered.append("KEY-01[web-1]")
    assert [w.index for w in waivers.unused()] == [2]
