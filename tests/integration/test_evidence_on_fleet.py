"""The evidence an auditor keeps: a sealed, signed run directory, valid against its schema, with
waivers applied and no secret anywhere in it, from a real audit of fleet hosts."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.fleet.fleet import Fleet
from tests.integration.test_report_screenshot import chromium
from tests.unit.test_report_html import host_details, index_of, parse_html, with_details

REPO = Path(__file__).resolve().parents[2]
CERTAUDIT = str(Path(sys.executable).parent / "certaudit")
HOSTS = ["compliant", "key-0644", "hook-missing", "days-20", "down"]
PASSWORD = "hunter2-correct-horse-battery"
FUTURE = (dt.date.today() + dt.timedelta(days=90)).isoformat()
WAIVERS = {
    "waivers": [
        {"control": "KEY-01", "hosts": "key-*", "reason": "key rotation scheduled with the HSM move",
         "approver": "Dana Auditor <dana@example.com>", "ticket": "SEC-101", "expires": FUTURE},
        {"control": "REN-02", "hosts": "hook-missing", "reason": "old exception",
         "approver": "Sam Ops", "ticket": "OPS-7", "expires": "2020-01-31"},
        {"control": "CRT-01", "hosts": "days-*", "reason": "no approver given", "ticket": "OPS-8", "expires": FUTURE},
        {"control": "LIVE-01", "hosts": "nowhere-*", "reason": "host retired", "approver": "Sam Ops",
         "ticket": "OPS-9", "expires": FUTURE},
    ]
}  # fmt: skip


@dataclass(frozen=True)
class SealedRun:
    returncode: int
    output: str
    run_dir: Path
    public_key: Path
    private_key: Path
    evidence: dict[str, Any]

    def result(self, control: str, host: str) -> dict[str, Any]:
        (record,) = [r for r in self.evidence["results"] if r["control"] == control and r["host"] == host]
        return dict(record)


def certaudit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CERTAUDIT, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def sealed(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> SealedRun:
    work = tmp_path_factory.mktemp("evidence")
    keys = work / "keys"
    assert certaudit("keygen", "--out-dir", str(keys)).returncode == 0
    inventory = fleet.write_inventory(work / "inventory.yml", hosts=HOSTS)
    document = yaml.safe_load(inventory.read_text())
    private_key_pem = fleet.ssh("compliant", "cat /etc/stemedb/tls/key.pem").stdout
    # Secrets an inventory may well hold: they must appear in no file the run writes.
    document["all"]["vars"]["db_password"] = PASSWORD
    document["all"]["hosts"]["compliant"]["vault_tls_private_key"] = private_key_pem
    inventory.write_text(yaml.safe_dump(document))
    (work / "waivers.yml").write_text(yaml.safe_dump(WAIVERS))
    reports = work / "reports"
    argv = [sys.executable, "-m", "pytest", "checks", "--inventory", str(inventory), "--report-dir", str(reports),
            "--job", "nightly", "--waivers", str(work / "waivers.yml"), "--signing-key", str(keys / "signing-key.pem"),
            "-p", "no:cacheprovider"]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    (run_dir,) = reports.iterdir()
    evidence = json.loads((run_dir / "evidence.json").read_text())
    return SealedRun(done.returncode, done.stdout + done.stderr, run_dir, keys / "signing-key.pub.pem",
                     keys / "signing-key.pem", evidence)  # fmt: skip


pytestmark = pytest.mark.fleet


def test_run_directory_is_complete_and_sealed(sealed: SealedRun) -> None:
    assert sealed.returncode == 1, sealed.output[-3000:]
    assert sealed.run_dir.name.endswith("-nightly") and not sealed.run_dir.name.endswith(".partial")
    names = {p.name for p in sealed.run_dir.iterdir()}
    assert names == {"report.html", "junit.xml", "evidence.json", "MANIFEST.sha256", "MANIFEST.sig"}
    assert f"evidence of run {sealed.evidence['run']['run_id']} in {sealed.run_dir} (signed)" in sealed.output
    check = subprocess.run(["sha256sum", "--check", "--strict", "MANIFEST.sha256"], cwd=sealed.run_dir,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_untouched_run_verifies(sealed: SealedRun) -> None:
    done = certaudit("verify", str(sealed.run_dir), "--public-key", str(sealed.public_key))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"verified: {sealed.run_dir}" in done.stdout


@pytest.mark.parametrize("name", ["report.html", "junit.xml", "evidence.json", "MANIFEST.sha256", "MANIFEST.sig"])
def test_one_changed_byte_is_named(sealed: SealedRun, tmp_path: Path, name: str) -> None:
    copy = tmp_path / sealed.run_dir.name
    shutil.copytree(sealed.run_dir, copy)
    data = bytearray((copy / name).read_bytes())
    middle = len(data) // 2
    data[middle] = ord("x") if data[middle] != ord("x") else ord("y")
    (copy / name).write_bytes(bytes(data))
    done = certaudit("verify", str(copy), "--public-key", str(sealed.public_key))
    assert done.returncode == 1, done.stdout + done.stderr
    problems = [line for line in done.stdout.splitlines() if not line.startswith(("verified", "NOT VERIFIED"))]
    assert problems, done.stdout
    assert all(name in line or "MANIFEST" in line for line in problems), done.stdout
    assert any(name in line for line in problems), done.stdout


def test_evidence_follows_its_schema(sealed: SealedRun) -> None:
    schema = json.loads((REPO / "certaudit" / "evidence" / "schema" / "evidence-v1.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(sealed.evidence, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    run = sealed.evidence["run"]
    assert run["job"] == "nightly"
    assert run["hosts_expected"] == sorted(HOSTS) and "down" not in run["hosts_reached"]
    assert set(run["versions"]) >= {"pytest", "pytest-testinfra", "cryptography"}
    assert run["inventory_sha256"] and run["exit_status"] == 1


def test_no_secret_in_any_file(sealed: SealedRun) -> None:
    key_body = "".join(line for line in sealed.private_key.read_text().splitlines() if not line.startswith("-----"))
    for path in sealed.run_dir.iterdir():
        raw = path.read_bytes()
        raw = with_details(raw) if path.name == "report.html" else raw  # its gzip'd details too
        texts = [raw.decode("utf-8", "replace")]
        # The only host content the evidence carries is certificates; never a file's bytes (base64).
        if path.name == "evidence.json":
            for snapshot in sealed.evidence["snapshots"].values():
                assert all("content_b64" not in f for f in snapshot["files"].values()), path.name
                texts += ["".join(f["certificates_pem"]) for f in snapshot["files"].values() if "certificates_pem" in f]
        for text in texts:
            assert PASSWORD not in text, path.name
            assert "PRIVATE KEY" not in text, path.name
            assert key_body[:32] not in text, path.name


def test_valid_waiver_turns_a_failure_into_waived(sealed: SealedRun) -> None:
    record = sealed.result("KEY-01", "key-0644")
    assert record["outcome"] == "waived"
    assert record["findings"] == ["/etc/stemedb/tls/key.pem is mode 0644: it grants more than 0600"]
    waiver = record["waiver"]
    assert (waiver["approver"], waiver["ticket"], waiver["expires"], waiver["status"]) == (
        "Dana Auditor <dana@example.com>", "SEC-101", FUTURE, "valid")  # fmt: skip
    assert "XFAIL" in sealed.output and "waived by waivers.yml waiver #1" in sealed.output
    # The same waiver's pattern also matches nothing else that fails: the compliant host's key passes.
    assert sealed.result("KEY-01", "compliant")["outcome"] == "pass"


def test_expired_waiver_is_a_finding_and_waives_nothing(sealed: SealedRun) -> None:
    assert sealed.result("REN-02", "hook-missing")["outcome"] == "fail"
    entry = sealed.evidence["waivers"]["entries"][1]
    assert (entry["status"], entry["problem"]) == ("expired", "expired on 2020-01-31 (ticket OPS-7, approved by Sam Ops)")
    assert "FAILED checks/test_waivers.py::test_waiver_is_in_force[#2-REN-02]" in sealed.output


def test_malformed_waiver_is_a_finding(sealed: SealedRun) -> None:
    entry = sealed.evidence["waivers"]["entries"][2]
    assert (entry["status"], entry["problem"]) == ("malformed", "missing approver")
    assert sealed.result("CRT-01", "days-20")["outcome"] == "fail"
    assert "FAILED checks/test_waivers.py::test_waiver_is_in_force[#3-CRT-01]" in sealed.output


def test_unused_waiver_is_reported(sealed: SealedRun) -> None:
    assert sealed.evidence["waivers"]["unused"] == [4]
    assert "UNUSED  waivers.yml waiver #4 (LIVE-01 on nowhere-*) covers no failure in this run: remove it" in sealed.output


def test_unreachable_host_is_an_error_in_every_format(sealed: SealedRun) -> None:
    assert sealed.result("CRT-01", "down")["outcome"] == "error"
    junit = (sealed.run_dir / "junit.xml").read_text()
    assert 'name="CRT-01[down]"' in junit
    assert "<error" in junit


# --- the report a person opens ----------------------------------------------------------------------
ACTION = ("fail", "error")


def test_report_opens_on_exactly_the_failing_hosts_and_controls(sealed: SealedRun) -> None:
    tree = parse_html((sealed.run_dir / "report.html").read_text())
    failing: dict[str, set[str]] = {}
    for r in sealed.evidence["results"]:
        if r["outcome"] in ACTION:
            failing.setdefault(r["host"], set()).add(r["control"])
    listed = tree.by_id("certaudit-action").find_all("details", "ca-act")
    shown = {d.attrs["data-host"]: {tr.attrs["data-control"] for tr in d.find_all("tr") if "data-control" in tr.attrs}
             for d in listed}  # fmt: skip
    assert shown == failing and "down" in shown
    # Hosts with a finding first (by name), then those with errors only (the unreachable one).
    with_finding = sorted({r["host"] for r in sealed.evidence["results"] if r["outcome"] == "fail"})
    assert [d.attrs["data-host"] for d in listed] == with_finding + sorted(set(failing) - set(with_finding))
    compliant = tree.by_id("certaudit-compliant")
    groups = {n.attrs["data-group"]: int(n.text()) for n in compliant.find_all("span", "ca-count")}
    hosts = set(sealed.evidence["run"]["hosts_expected"])
    assert groups["pass"] + groups["waived"] + groups["none"] == len(hosts - set(failing))


def test_every_result_is_in_the_reports_details(sealed: SealedRun) -> None:
    tree = parse_html((sealed.run_dir / "report.html").read_text())
    details = host_details(tree)
    fixes = index_of(tree)["fixes"]
    for r in sealed.evidence["results"]:
        (found,) = [d for d in details[r["host"]] if d["nodeid"] == r["nodeid"] and d["control"] == r["control"]]
        assert (found["outcome"], found["observed"], found["expected"], found["message"]) == (
            r["outcome"], r["observed"], r["expected"], r["message"]
        )  # fmt: skip
        assert found.get("fix", fixes[r["control"]]) == r["fix"]
    assert sum(len(v) for v in details.values()) == len(sealed.evidence["results"])


def test_report_in_chromium_fits_1366_pixels_and_its_filter_works(sealed: SealedRun, tmp_path: Path) -> None:
    page = (sealed.run_dir / "report.html").resolve().as_uri()
    results = sealed.evidence["results"]
    # The filter, set from the address: every result of host `down`, the first row opened.
    done = chromium(tmp_path / "profile", "--window-size=1366,900", "--virtual-time-budget=15000", "--dump-dom",
                    page + "#filter:outcome=&host=down&open=1&ca-measure=1")  # fmt: skip
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-3000:]
    root = parse_html(done.stdout).find_all("html")[0]
    width = int(root.attrs["data-ca-width"])
    assert width <= 1366, f"the page is {width} px wide in a 1366-pixel window"
    with_results = {r["host"] for r in results}
    assert root.attrs["data-ca-blobs-parsed"] == f"{len(with_results)} {len(results)}"  # inflated and parsed in Chromium
    dom = parse_html(done.stdout)
    rows = dom.by_id("ca-f-rows").find_all("tr", "ca-f-row")
    controls = index_of(dom)["controls"]
    assert [(r.attrs["data-host"], r.attrs["data-control"]) for r in rows] == [("down", c[0]) for c in controls]
    (opened,) = dom.by_id("ca-f-rows").find_all("tr", "ca-f-detail")
    first = next(r for r in results if r["host"] == "down" and r["control"] == controls[0][0])
    assert first["message"].splitlines()[0] in opened.text()
    # Failing results only, for one control.
    done = chromium(tmp_path / "profile2", "--window-size=1366,900", "--virtual-time-budget=15000", "--dump-dom",
                    page + "#filter:control=KEY-01&outcome=fe")  # fmt: skip
    rows = parse_html(done.stdout).by_id("ca-f-rows").find_all("tr", "ca-f-row")
    expected = sorted(r["host"] for r in results if r["control"] == "KEY-01" and r["outcome"] in ACTION)
    assert [r.attrs["data-host"] for r in rows] == expected and expected
