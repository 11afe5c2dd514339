"""`--shard i/n` splits the hosts deterministically; `certaudit merge` makes the shards' runs one run."""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from certaudit.cli import main
from certaudit.evidence.manifest import MANIFEST, SIGNATURE, keygen, verify, write_manifest
from certaudit.evidence.merge import MergeError, merge_runs, merged_status
from certaudit.jobs.shard import Shard, ShardError, parse_shard, shard_index, split
from certaudit.policy import policy_for
from tests.unit.test_report_html import host_details, index_of, parse_html

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "certaudit/evidence/schema/evidence-v1.schema.json").read_text())
NAMES = ["web-1", "web-2", "web-3", "db-1", "db-2", "api-1", "api-2", "cache-1", "lb-1", "compliant"]
# Computed once and kept: a change here would move hosts between the shards of running pipelines.
SHARDS_OF_3 = [2, 2, 3, 1, 1, 2, 1, 3, 1, 3]


# --- the split ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "shard"), [("2/3", Shard(2, 3)), (" 1 / 1 ", Shard(1, 1)), ("1000/1000", Shard(1000, 1000))])
def test_parse_shard(text: str, shard: Shard) -> None:
    assert parse_shard(text) == shard
    assert str(shard) == f"{shard.index}/{shard.count}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3", "--shard '3': expected i/n, the i-th of n shards (for example 2/3)"),
        ("a/b", "--shard 'a/b': expected i/n, the i-th of n shards (for example 2/3)"),
        ("-1/3", "--shard '-1/3': expected i/n, the i-th of n shards (for example 2/3)"),
        ("", "--shard '': expected i/n, the i-th of n shards (for example 2/3)"),
        ("0/3", "--shard '0/3': the shard must be from 1 to 3"),
        ("4/3", "--shard '4/3': the shard must be from 1 to 3"),
        ("1/0", "--shard '1/0': the number of shards must be from 1 to 1000"),
        ("1/1001", "--shard '1/1001': the number of shards must be from 1 to 1000"),
        ("\u0661/\u0663", "--shard '\u0661/\u0663': expected i/n, the i-th of n shards (for example 2/3)"),  # Arabic-Indic digits
    ],
)
def test_parse_shard_refuses_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ShardError) as caught:
        parse_shard(text)
    assert str(caught.value) == message


def test_a_host_lands_in_the_same_shard_everywhere() -> None:
    assert [shard_index(n, 3) for n in NAMES] == SHARDS_OF_3
    assert split(NAMES, 3) == [
        ["db-1", "db-2", "api-2", "lb-1"],
        ["web-1", "web-2", "api-1"],
        ["web-3", "cache-1", "compliant"],
    ]


def test_the_split_does_not_depend_on_the_interpreter_hash_seed() -> None:
    code = f"from certaudit.jobs.shard import shard_index; print([shard_index(n, 3) for n in {NAMES!r}])"
    for seed in ("0", "1", "12345"):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}
        )
        assert json.loads(done.stdout) == SHARDS_OF_3


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_every_host_is_in_exactly_one_shard(count: int) -> None:
    names = [f"host-{i}" for i in range(500)]
    parts = split(names, count)
    assert sorted(n for part in parts for n in part) == sorted(names)
    assert sum(len(p) for p in parts) == len(names)
    for part in parts:  # each shard keeps the inventory's order
        assert part == [n for n in names if n in set(part)]


def test_adding_hosts_moves_none_of_the_others() -> None:
    before = {n: shard_index(n, 4) for n in NAMES}
    grown = [*NAMES, *(f"new-{i}" for i in range(50))]
    assert {n: shard_index(n, 4) for n in grown if n in before} == before


def test_the_shards_are_balanced() -> None:
    sizes = [len(p) for p in split([f"node{i:05d}.example.net" for i in range(3000)], 3)]
    assert all(900 <= size <= 1100 for size in sizes), sizes


def test_select_keeps_objects_by_their_name() -> None:
    items = [{"name": n} for n in NAMES]
    assert Shard(1, 3).select(items, lambda i: i["name"]) == [{"name": n} for n in split(NAMES, 3)[0]]


# --- the plugin's option --------------------------------------------------------------------------------
def audit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "checks", "-p", "no:cacheprovider", "-q", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_bad_shard_stops_the_run_before_any_host(tmp_path: Path) -> None:
    done = audit(tmp_path, "--inventory", str(REPO / "inventories/local.yml"), "--shard", "4/3")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "certaudit: --shard '4/3': the shard must be from 1 to 3" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_empty_shard_is_a_complete_run(tmp_path: Path) -> None:
    # localhost is in shard 1 of 2: shard 2 holds no host, touches nothing, and says so in its evidence.
    assert shard_index("localhost", 2) == 1
    done = audit(tmp_path, "--inventory", str(REPO / "inventories/local.yml"), "--shard", "2/2", "--report-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = tmp_path.iterdir()
    evidence = json.loads((run_dir / "evidence.json").read_text())
    jsonschema.validate(evidence, SCHEMA)
    assert evidence["run"]["shard"] == {"index": 2, "count": 2, "inventory_hosts": 1}
    assert evidence["run"]["hosts_expected"] == []
    assert evidence["results"] == [] and evidence["snapshots"] == {}
    assert verify(run_dir).ok


# --- merging: shards made by hand, as a run writes them ------------------------------------------------
INVENTORY_SHA = "a" * 64
DOWN = "host down (127.0.0.9): cannot connect"


def record(control: str, host: str, outcome: str = "pass", **extra: Any) -> dict[str, Any]:
    findings = [f"{control} finding on {host}"] if outcome == "fail" else []
    return {
        "control": control, "title": f"{control} title", "host": host, "outcome": outcome,
        "message": findings[0] if findings else "", "observed": {"days_left": 60.0} if control == "CRT-01" else {"seen": host},
        "expected": {}, "findings": findings, "notes": [], "fix": "fix it", "gate": control == "CRT-01",
        "nodeid": f"checks/test_x.py::{control}[{host}]", "started": "2026-11-28T00:00:00+00:00",
        "duration_s": 0.01, "waiver": None, **extra,
    }  # fmt: skip


def snapshot(host: str) -> dict[str, Any]:
    return {"probe_version": 1, "hostname": host, "time": 0.0, "systemd": True, "files": {}, "listings": {},
            "public_keys": {}, "units": {}, "accounts": {}}  # fmt: skip


def waiver_entry(covered: list[str]) -> dict[str, Any]:
    return {
        "index": 1, "control": "KEY-01", "hosts": "web-*", "reason": "rotation", "approver": "Dana", "ticket": "SEC-1",
        "expires": "2099-01-31", "status": "valid", "problem": "", "covered": covered, "matched_passing": [],
    }  # fmt: skip


def evidence(hosts: list[str], shard: tuple[int, int] | None, total: int, outcomes: dict[str, str]) -> dict[str, Any]:
    run: dict[str, Any] = {
        "run_id": os.urandom(16).hex(), "job": "nightly", "started": "2026-11-28T02:00:00+00:00",
        "finished": "2026-11-28T02:00:09+00:00", "operator": "ci@runner", "ci_job": None, "certaudit_version": "0.1.0",
        "certaudit_commit": None, "inventory": "inventories/production.yml", "inventory_sha256": INVENTORY_SHA,
        "waivers_file": "inventories/waivers.yml", "hosts_expected": hosts, "hosts_reached": [h for h in hosts if h != "down"],
        "policies": {h: policy_for(h, {}).as_dict() for h in hosts}, "versions": {"pytest": "9"},
        "exit_status": 1 if any(o != "pass" for h, o in outcomes.items() if h in hosts) or "down" in hosts else 0,
    }  # fmt: skip
    if shard:
        run["shard"] = {"index": shard[0], "count": shard[1], "inventory_hosts": total}
    results = [
        {**record(c, h, "error"), "message": DOWN} if h == "down" else record(c, h, outcomes.get(h, "pass"))
        for h in hosts
        for c in ("CRT-01", "KEY-01")
    ]
    covered = [f"KEY-01[{h}]" for h in hosts if h.startswith("web-") and outcomes.get(h) == "fail"]
    return {
        "$schema": SCHEMA["$id"],
        "schema_version": 1,
        "run": run,
        "results": results,
        "unreachable": {"down": DOWN} if "down" in hosts else {},
        "waivers": {
            "file": "inventories/waivers.yml",
            "file_problem": None,
            "entries": [waiver_entry(covered)],
            "unused": [] if covered else [1],
        },
        "snapshots": {h: snapshot(h) for h in hosts if h != "down"},
    }


def junit(hosts: list[str]) -> str:
    cases = "".join(
        f'<testcase classname="checks.test_x" name="{html.escape(c + "[" + h + "]")}" time="0.01">'
        + ('<error message="host down" />' if h == "down" else "")
        + "</testcase>"
        for h in hosts
        for c in ("CRT-01", "KEY-01")
    )
    shared = '<testcase classname="checks.test_waivers" name="test_waiver_is_in_force[#1-KEY-01]" time="0.001" />'
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="0" '
        f'failures="0" skipped="0" tests="{2 * len(hosts) + 1}" time="9.5" timestamp="2026-11-28T02:00:00+00:00" '
        f'hostname="runner">{cases}{shared}</testsuite></testsuites>'
    )


def write_run(path: Path, document: dict[str, Any], key: Path | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "evidence.json").write_text(json.dumps(document, indent=1, sort_keys=True))
    (path / "junit.xml").write_text(junit(document["run"]["hosts_expected"]))
    (path / "report.html").write_text("<html>shard</html>")
    jsonschema.validate(document, SCHEMA)
    write_manifest(path, key)
    return path


ALL_HOSTS = sorted([*NAMES, "down"])
OUTCOMES = {"web-1": "fail", "db-2": "fail"}


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    parts = split(ALL_HOSTS, 3)
    return [
        write_run(tmp_path / f"shard-{i}", evidence(part, (i, 3), len(ALL_HOSTS), OUTCOMES)) for i, part in enumerate(parts, 1)
    ]


def test_three_shards_merge_into_one_run(shards: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "merged"
    merged = merge_runs(shards, out)
    assert (merged.shards, merged.hosts, merged.results, merged.exit_status) == (3, 11, 22, 1)
    assert sorted(p.name for p in out.iterdir()) == ["MANIFEST.sha256", "evidence.json", "junit.xml", "report.html"]
    assert verify(out).ok
    document = json.loads((out / "evidence.json").read_text())
    jsonschema.validate(document, SCHEMA)
    run = document["run"]
    assert run["hosts_expected"] == ALL_HOSTS
    assert run["hosts_reached"] == [h for h in ALL_HOSTS if h != "down"]
    assert "shard" not in run
    assert [p["shard"]["index"] for p in run["merged_from"]] == [1, 2, 3]
    assert [p["directory"] for p in run["merged_from"]] == ["shard-1", "shard-2", "shard-3"]
    assert run["exit_status"] == 1 and run["job"] == "nightly" and run["inventory_sha256"] == INVENTORY_SHA
    by_pair = {(r["host"], r["control"]): r["outcome"] for r in document["results"]}
    assert len(by_pair) == 22
    assert by_pair[("web-1", "KEY-01")] == "fail" and by_pair[("down", "CRT-01")] == "error"
    assert by_pair[("web-2", "CRT-01")] == "pass"
    assert document["unreachable"] == {"down": DOWN}
    assert sorted(document["snapshots"]) == [h for h in ALL_HOSTS if h != "down"]
    # The waiver covered web-1 in one shard: it is used, and what it covered is kept.
    assert document["waivers"]["unused"] == []
    assert document["waivers"]["entries"][0]["covered"] == ["KEY-01[web-1]"]


def test_the_merged_junit_holds_every_case_once(shards: list[Path], tmp_path: Path) -> None:
    merge_runs(shards, tmp_path / "merged")
    root = ET.parse(tmp_path / "merged" / "junit.xml").getroot()
    (suite,) = root.findall("testsuite")
    names = [c.get("name") for c in suite.findall("testcase")]
    assert len(names) == 23 and len(set(names)) == 23  # 11 hosts x 2 controls, and the waiver test once
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures"), suite.get("time")) == ("23", "2", "0", "9.500")


def test_the_merged_report_shows_the_whole_audit(shards: list[Path], tmp_path: Path) -> None:
    merge_runs(shards, tmp_path / "merged")
    html = (tmp_path / "merged" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert 'id="certaudit-matrix-table"' in html and 'id="certaudit-horizon-svg"' in html
    assert "11 host(s) expected, 10 reached; 22 result(s)" in html
    tree = parse_html(html)
    # Every host's outcomes (CRT-01, KEY-01) in the page's index, as the shards had them.
    index = index_of(tree)
    rows = dict(zip(index["hosts"], index["rows"], strict=True))
    assert sorted(rows) == ALL_HOSTS
    assert rows["web-1"] == rows["db-2"] == "ff" and rows["down"] == "ee" and rows["web-2"] == "pp"
    # What needs action first: the hosts with a finding, then the unreachable one.
    assert [d.attrs["data-host"] for d in tree.find_all("details", "ca-act")] == ["db-2", "web-1", "down"]
    # The matrix: one row per distinct row of outcomes, those needing action first; a lone host is named.
    matrix = [[c.text() for c in r.cells()] for r in tree.by_id("certaudit-matrix-table").find_all("tr")[1:]]
    assert matrix == [["2 hosts", "FAIL", "FAIL"], ["down", "ERROR", "ERROR"], ["8 hosts", "PASS", "PASS"]]
    assert set(host_details(tree)) == set(ALL_HOSTS)  # every result's details are in the page
    assert "Merged from shard 2/3" in html
    assert '<span class="ca-count" data-outcome="pass">16</span>' in html


def test_a_host_name_never_becomes_markup(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    document = evidence([evil], (1, 1), 1, {})  # the host in every place a part names it, as the merge requires
    document["results"][0]["message"] = evil
    merge_runs([write_run(tmp_path / "one", document)], tmp_path / "merged")
    html = (tmp_path / "merged" / "report.html").read_text()
    assert evil not in html and "&lt;script&gt;" in html


def test_the_merged_run_is_signed(shards: list[Path], tmp_path: Path) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    keygen(private, public)
    merged = merge_runs(shards, tmp_path / "merged", signing_key=private)
    assert merged.signed and (tmp_path / "merged" / SIGNATURE).is_file()
    checked = verify(tmp_path / "merged", public)
    assert checked.ok and checked.signature_checked


def test_signed_shards_are_checked_against_the_public_key(tmp_path: Path) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    keygen(private, public)
    other_private, other_public = tmp_path / "o.pem", tmp_path / "o.pub.pem"
    keygen(other_private, other_public)
    one = write_run(tmp_path / "one", evidence(["a"], (1, 1), 1, {}), key=private)
    assert merge_runs([one], tmp_path / "merged", public_key=public).shards == 1
    with pytest.raises(
        MergeError, match=r"one does not verify, refusing to merge it: MANIFEST.sig: signed by key .*, not by the given"
    ):
        merge_runs([one], tmp_path / "merged-2", public_key=other_public)
    with pytest.raises(MergeError, match=r"one does not verify, refusing to merge it: MANIFEST.sig: present, but no public key"):
        merge_runs([one], tmp_path / "merged-3")  # a signature needs its key: never checked against none
    assert not (tmp_path / "merged-2").exists() and not (tmp_path / "merged-2.partial").exists()


Tamper = Callable[[list[Path]], None]


def _edit_evidence(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads((path / "evidence.json").read_text())
    change(document)
    (path / "evidence.json").write_text(json.dumps(document))
    write_manifest(path)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda s: (s[1] / "evidence.json").write_text("{}"), r"shard-2 does not verify, refusing to merge it: .*evidence\.json"),
        (lambda s: s.pop(1), r"incomplete: shard 2/3 missing \(every shard is needed to cover the inventory\)"),
        (lambda s: s.append(s[0]), r"a run directory is given twice"),
        (
            lambda s: _edit_evidence(s[2], lambda d: d["run"].update(inventory_sha256="b" * 64)),
            r"shard-3 and .*shard-1 audited different inventories",
        ),
        (
            lambda s: _edit_evidence(s[1], lambda d: d["waivers"]["entries"][0].update(expires="2100-01-01")),
            r"shard-2 and .*shard-1 used different waivers",
        ),
        (
            lambda s: _edit_evidence(s[2], lambda d: d["run"]["shard"].update(index=1)),
            r"shard 1/3 is given twice: .*shard-1 and .*shard-3",
        ),
        (
            lambda s: _edit_evidence(s[2], lambda d: d["run"]["shard"].update(count=4)),
            r"the shards split the hosts in different numbers of parts: \[3, 4\]",
        ),
        (
            lambda s: _edit_evidence(s[2], lambda d: d["run"]["hosts_expected"].append("web-1")),
            r"the shards hold 12 hosts between them, but their inventory has \[11\]",
        ),
        (
            lambda s: _edit_evidence(s[2], lambda d: d["run"].pop("shard")),
            r"shard-3 is not a shard \(no --shard\), but .*shard-1 .*\(shard 1/3\) is",
        ),
        (lambda s: _edit_evidence(s[0], lambda d: d.update(schema_version=2)), r"not certaudit evidence of schema version 1"),
        (lambda s: (s[0] / "evidence.json").unlink() or write_manifest(s[0]), r"shard-1: has no evidence\.json"),
    ],
)
def test_shards_that_are_not_one_audit_are_refused(shards: list[Path], tmp_path: Path, tamper: Tamper, message: str) -> None:
    parts = list(shards)
    tamper(parts)
    with pytest.raises(MergeError, match=message):
        merge_runs(parts, tmp_path / "merged")
    assert not (tmp_path / "merged").exists() and not (tmp_path / "merged.partial").exists()


def test_a_host_in_two_runs_is_refused(tmp_path: Path) -> None:
    one = write_run(tmp_path / "one", evidence(["a", "b"], None, 2, {}))
    two = write_run(tmp_path / "two", evidence(["b", "c"], None, 2, {}))
    with pytest.raises(MergeError, match=r"host b is in both .*one and .*two"):
        merge_runs([one, two], tmp_path / "merged")


def test_runs_of_disjoint_hosts_without_shards_merge(tmp_path: Path) -> None:
    one = write_run(tmp_path / "one", evidence(["a"], None, 1, {}))
    two = write_run(tmp_path / "two", evidence(["b"], None, 1, {}))
    merged = merge_runs([one, two], tmp_path / "merged", job="nightly-merged")
    document = json.loads((tmp_path / "merged" / "evidence.json").read_text())
    assert merged.exit_status == 0 and document["run"]["job"] == "nightly-merged"
    assert [p["shard"] for p in document["run"]["merged_from"]] == [None, None]
    jsonschema.validate(document, SCHEMA)


def test_a_merged_run_is_not_merged_again(shards: list[Path], tmp_path: Path) -> None:
    merge_runs(shards, tmp_path / "merged")
    with pytest.raises(MergeError, match="is itself a merged run"):
        merge_runs([tmp_path / "merged"], tmp_path / "again")


def test_the_output_must_be_new(shards: list[Path], tmp_path: Path) -> None:
    (tmp_path / "merged").mkdir()
    with pytest.raises(MergeError, match=r"merged already exists; merge into a new directory"):
        merge_runs(shards, tmp_path / "merged")


@pytest.mark.parametrize(("statuses", "merged"), [([0, 0], 0), ([0, 1], 1), ([1, 2, 0], 2), ([5, 0], 5), ([3, 1], 3), ([], 0)])
def test_the_merged_exit_status_is_the_most_telling(statuses: list[int], merged: int) -> None:
    assert merged_status(statuses) == merged


# --- the command ---------------------------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_merge_command(shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(capsys, "merge", *shards, "--out", tmp_path / "merged")
    assert (rc, err) == (1, "")  # merged, with findings: the merged run's own verdict
    assert out == f"merged: {tmp_path / 'merged'} (3 runs, 11 hosts, 22 results, exit status 1)\n"
    rc, out, _ = run_cli(capsys, "verify", tmp_path / "merged")
    assert rc == 0 and out.startswith("verified:")


def test_merge_command_of_a_compliant_audit_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [write_run(tmp_path / f"s{i}", evidence(p, (i, 2), 4, {})) for i, p in enumerate(split(["a", "b", "c", "d"], 2), 1)]
    private, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    keygen(private, public)
    rc, out, _ = run_cli(capsys, "merge", *runs, "--out", tmp_path / "m", "--signing-key", private)
    assert rc == 0 and out.endswith("exit status 0, signed)\n")
    assert run_cli(capsys, "verify", tmp_path / "m", "--public-key", public)[0] == 0


def test_merge_command_errors_are_one_line(shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(capsys, "merge", shards[0], shards[2], "--out", tmp_path / "merged")
    assert (rc, out) == (4, "")
    assert err == "certaudit: incomplete: shard 2/3 missing (every shard is needed to cover the inventory)\n"
    rc, _, err = run_cli(capsys, "merge", tmp_path / "nowhere", "--out", tmp_path / "merged")
    assert (rc, err) == (4, f"certaudit: {tmp_path / 'nowhere'}: not a run directory\n")
    rc, _, err = run_cli(capsys, "merge", *shards)
    assert rc == 4 and "the following arguments are required: --out" in err


def test_merge_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys, "--help")
    assert rc == 0 and "    merge  " in out


def test_a_shard_keeps_its_manifest_unchanged(shards: list[Path], tmp_path: Path) -> None:
    before = {p: (p / MANIFEST).read_bytes() for p in shards}
    snapshot = copy.deepcopy(before)
    merge_runs(shards, tmp_path / "merged")
    assert {p: (p / MANIFEST).read_bytes() for p in shards} == snapshot


# --- the CI templates ------------------------------------------------------------------------------------
def load_yaml(path: str) -> Any:
    return yaml.safe_load((REPO / path).read_text())


def test_github_actions_sharded_workflow() -> None:
    workflow = load_yaml("ci/github-actions/certaudit-nightly-sharded.yml")
    audit_job, merge_job = workflow["jobs"]["audit"], workflow["jobs"]["merge"]
    shards = audit_job["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(workflow["env"]["SHARDS"]) + 1))
    assert audit_job["strategy"]["fail-fast"] is False
    (audit_step,) = [s for s in audit_job["steps"] if "make audit" in s.get("run", "")]
    assert "--shard ${{ matrix.shard }}/$SHARDS" in audit_step["run"]
    (keep,) = [s for s in audit_job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert keep["if"] == "always()" and keep["with"]["name"].startswith("certaudit-shard-${{ matrix.shard }}")
    assert merge_job["needs"] == "audit" and merge_job["if"] == "always()"
    (merge_step,) = [s for s in merge_job["steps"] if "certaudit merge" in s.get("run", "")]
    assert "certaudit merge shards/*/*/ --out" in merge_step["run"]
    for job in (audit_job, merge_job):
        assert all("${{ secrets." not in s.get("run", "") for s in job["steps"])


def test_gitlab_ci_sharded_jobs() -> None:
    jobs = load_yaml("ci/gitlab/certaudit-nightly-sharded.gitlab-ci.yml")
    shard, merge = jobs["certaudit-shard"], jobs["certaudit-merge"]
    assert shard["parallel"] == 3
    assert any("--shard $CI_NODE_INDEX/$CI_NODE_TOTAL" in line for line in shard["script"])
    assert shard["artifacts"]["when"] == "always"
    assert merge["needs"] == [{"job": "certaudit-shard", "artifacts": True}]
    assert all(rule["when"] == "always" for rule in merge["rules"])
    assert any("certaudit merge shards/*/*/ --out" in line for line in merge["script"])
    assert merge["artifacts"]["reports"]["junit"] == "reports/*/junit.xml"


def test_a_part_from_an_older_certaudit_loses_its_file_contents_in_the_merge(shards: list[Path], tmp_path: Path) -> None:
    """Evidence written before files became digests carried them whole (content_b64): the merged run never does."""
    secret = b"db_password=hunter2\n"
    host = next(iter(json.loads((shards[0] / "evidence.json").read_text())["snapshots"]))

    def with_whole_file(document: dict[str, Any]) -> None:
        document["snapshots"][host]["files"]["/etc/stemedb/tls/cert.pem"] = {
            "path": "/etc/stemedb/tls/cert.pem", "present": True, "kind": "file", "mode": 0o100600,
            "content_b64": base64.b64encode(secret).decode(),
        }  # fmt: skip

    _edit_evidence(shards[0], with_whole_file)
    merge_runs(shards, tmp_path / "merged")
    merged = json.loads((tmp_path / "merged" / "evidence.json").read_text())
    kept = merged["snapshots"][host]["files"]["/etc/stemedb/tls/cert.pem"]
    assert "content_b64" not in kept and kept["content_sha256"] == hashlib.sha256(secret).hexdigest()
    assert kept["content_size"] == len(secret)
    assert b"hunter2" not in b"".join(p.read_bytes() for p in (tmp_path / "merged").iterdir())
    assert base64.b64encode(secret) not in (tmp_path / "merged" / "evidence.json").read_bytes()
