"""Three shards of the fleet's audit, merged, conclude what one unsharded audit of the same hosts does.

Four real audits of the scenario hosts: one whole, and `--shard 1/3`, `2/3`, `3/3`, each sealed and
signed in its own run directory, then `certaudit merge` of the three. Every (host, control) pair
must end the same way, with the same findings and observations, in the merged run as in the whole one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from certaudit.jobs.shard import split
from tests.fleet.fleet import Fleet
from tests.scenarios import RUNBOOK
from tests.unit.test_report_html import host_details, index_of, parse_html

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
CERTAUDIT = str(Path(sys.executable).parent / "certaudit")
SCHEMA = json.loads((REPO / "certaudit/evidence/schema/evidence-v1.schema.json").read_text())
# Observations that are instants of judging, not facts of the host: two runs seconds apart differ there.


@dataclass(frozen=True)
class Runs:
    hosts: list[str]
    whole: Path
    shards: list[Path]
    merged: Path
    merge: subprocess.CompletedProcess[str]
    public_key: Path

    @staticmethod
    def evidence(run_dir: Path) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((run_dir / "evidence.json").read_text())
        return document


def audit(inventory: Path, reports: Path, *extra: str) -> Path:
    argv = [sys.executable, "-m", "pytest", "checks", "--inventory", str(inventory), "--report-dir", str(reports),
            "--job", "nightly", "-p", "no:cacheprovider", "-q", *extra]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = [p for p in reports.iterdir() if not p.name.endswith(".partial")]
    return run_dir


@pytest.fixture(scope="module")
def runs(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    work = tmp_path_factory.mktemp("shards")
    keys = work / "keys"
    assert subprocess.run([CERTAUDIT, "keygen", "--out-dir", str(keys)], capture_output=True, check=False).returncode == 0
    key = str(keys / "signing-key.pem")
    # The runbook's hosts exercise every outcome; the hardening hosts' deliberate time budgets would
    # make four audits of the whole fleet cost minutes without telling shards anything more.
    hosts = sorted(s.name for s in RUNBOOK)
    inventory = fleet.write_inventory(work / "inventory.yml", hosts=hosts)
    whole = audit(inventory, work / "whole", "--signing-key", key)
    shards = [audit(inventory, work / f"shard-{i}", "--shard", f"{i}/3", "--signing-key", key) for i in (1, 2, 3)]
    merged = work / "merged"
    merge = subprocess.run(
        [CERTAUDIT, "merge", *map(str, shards), "--out", str(merged), "--signing-key", key,
         "--public-key", str(keys / "signing-key.pub.pem")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return Runs(hosts, whole, shards, merged, merge, keys / "signing-key.pub.pem")


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """What must be the same in both runs: everything, but observations that count time since the
    other run (the runbook's controls: their known instants; other controls: which facts they observed)."""
    observed = record["observed"]
    return {
        "outcome": record["outcome"],
        "findings": record["findings"],
        "notes": record["notes"],
        "expected": record["expected"],
        # Which facts were observed must agree; their values may count time between the two runs.
        "observed": sorted(observed),
        "waiver": record["waiver"],
    }


def test_each_shard_audits_its_own_part(runs: Runs) -> None:
    parts = split(runs.hosts, 3)
    for index, (run_dir, part) in enumerate(zip(runs.shards, parts, strict=True), 1):
        run = Runs.evidence(run_dir)["run"]
        assert run["shard"] == {"index": index, "count": 3, "inventory_hosts": len(runs.hosts)}
        assert run["hosts_expected"] == part
        # A fleet control's result names the domain: a placeholder in the shard of its first host, judged by the merge.
        results = Runs.evidence(run_dir)["results"]
        assert {r["host"] for r in results if not r["control"].startswith("FLT-")} == set(part)
        assert set(Runs.evidence(run_dir)["snapshots"]) <= set(part)  # a host outside the shard is never probed
    assert sorted(h for part in parts for h in part) == runs.hosts


def test_the_merged_run_concludes_what_the_whole_run_does(runs: Runs) -> None:
    whole = Runs.evidence(runs.whole)
    merged = Runs.evidence(runs.merged)
    whole_pairs = {(r["host"], r["control"]): comparable(r) for r in whole["results"]}
    merged_pairs = {(r["host"], r["control"]): comparable(r) for r in merged["results"]}
    assert len(whole_pairs) == len(whole["results"]) and len(merged_pairs) == len(merged["results"])
    assert sorted(merged_pairs) == sorted(whole_pairs)
    for pair, expected in whole_pairs.items():
        assert merged_pairs[pair] == expected, pair
    # The fleet controls, judged by the merge on the shards' summaries, say word for word what the whole run says.
    whole_fleet = {(r["host"], r["control"]): r for r in whole["results"] if r["control"].startswith("FLT-")}
    merged_fleet = {(r["host"], r["control"]): r for r in merged["results"] if r["control"].startswith("FLT-")}
    assert sorted(merged_fleet) == sorted(whole_fleet) and whole_fleet
    for pair, record in whole_fleet.items():
        assert (merged_fleet[pair]["message"], merged_fleet[pair]["observed"]) == (record["message"], record["observed"]), pair
    assert merged["run"]["hosts_expected"] == whole["run"]["hosts_expected"] == runs.hosts
    assert merged["run"]["hosts_reached"] == whole["run"]["hosts_reached"]
    assert sorted(merged["unreachable"]) == sorted(whole["unreachable"]) == ["down"]
    assert sorted(merged["snapshots"]) == sorted(whole["snapshots"])
    assert merged["run"]["exit_status"] == whole["run"]["exit_status"] == 1
    outcomes = {r["outcome"] for r in merged["results"]}
    assert {"pass", "fail", "error", "not applicable"} <= outcomes  # the fleet exercises every outcome but waived


def test_the_merged_run_is_sealed_signed_and_valid(runs: Runs) -> None:
    assert runs.merge.returncode == 1, runs.merge.stderr  # merged, with the fleet's findings
    assert runs.merge.stdout.startswith(f"merged: {runs.merged} (3 runs, {len(runs.hosts)} hosts, ")
    assert runs.merge.stdout.rstrip().endswith("exit status 1, signed)")
    assert sorted(p.name for p in runs.merged.iterdir()) == [
        "MANIFEST.sha256", "MANIFEST.sig", "evidence.json", "junit.xml", "report.html"
    ]  # fmt: skip
    done = subprocess.run([CERTAUDIT, "verify", str(runs.merged), "--public-key", str(runs.public_key)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().endswith("(3 files, signature checked)")  # evidence.json, junit.xml, report.html
    document = Runs.evidence(runs.merged)
    jsonschema.validate(document, SCHEMA)
    assert [p["shard"]["index"] for p in document["run"]["merged_from"]] == [1, 2, 3]
    assert [p["directory"] for p in document["run"]["merged_from"]] == [s.name for s in runs.shards]


def test_the_merged_junit_has_the_whole_runs_cases(runs: Runs) -> None:
    def cases(run_dir: Path) -> dict[str, str]:
        root = ET.parse(run_dir / "junit.xml").getroot()
        found = {}
        for case in root.iter("testcase"):
            kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            found[f"{case.get('classname')}::{case.get('name')}"] = ",".join(kinds) or "passed"
        return found

    assert cases(runs.merged) == cases(runs.whole)


def test_the_merged_report_shows_every_host(runs: Runs) -> None:
    html = (runs.merged / "report.html").read_text()
    whole = Runs.evidence(runs.whole)
    # Every (host, control) pair's outcome in the page's index, and every result's details in its blobs.
    index = index_of(parse_html(html))
    row_of = dict(zip(index["hosts"], index["rows"], strict=True))
    column = {c[0]: i for i, c in enumerate(index["controls"])}
    severity = {"f": 5, "e": 4, "w": 3, "n": 2, "p": 1}
    worst: dict[tuple[str, str], str] = {}
    for record in whole["results"]:
        code = {"pass": "p", "fail": "f", "error": "e", "waived": "w", "not applicable": "n"}[record["outcome"]]
        key = (record["host"], record["control"])
        worst[key] = max(worst.get(key, code), code, key=severity.__getitem__)
    for (host, control), code in worst.items():
        assert row_of[host][column[control]] == code, (host, control)
    details = host_details(parse_html(html))
    assert sum(len(v) for v in details.values()) == len(whole["results"])
    assert f"{len(runs.hosts)} host(s) expected, {len(whole['run']['hosts_reached'])} reached" in html
