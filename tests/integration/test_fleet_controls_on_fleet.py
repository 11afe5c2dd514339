"""FLT-* on the fleet: several hosts of one domain behind a real HAProxy on the auditing side.

The balancer (Debian's haproxy, started and stopped here, its own pid only) listens on
127.<77+fleet id>.8.1, one port per domain, and passes TLS through to the hosts' stemedb-api.
Four domains (tests/scenarios_fleet.py): one renewer and one certificate; two renewers; one host
never reloaded, to which the balancer sends every client (`balance first`, that host first); and
one host down. One audit judges them all; a gate run follows, then two shards whose merge must judge
every domain as the one audit did, record for record.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certaudit.evidence.fleet_merge import NO_NETWORK
from certaudit.host.x509 import fingerprint_sha256
from certaudit.jobs.fleet import SHARDED
from tests.fleet import pki
from tests.fleet.fleet import Fleet, fleet_address
from tests.integration.audit_run import AuditRun, run_audit
from tests.scenarios_fleet import DOMAINS, SCENARIOS, domain, public_endpoint, shared

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
HOSTS = [s.name for s in SCENARIOS]
FLT = ("FLT-01", "FLT-02", "FLT-03")


def haproxy_config() -> str:
    lines = ["global", "  maxconn 256", "defaults", "  mode tcp", "  timeout connect 5s", "  timeout client 30s",
             "  timeout server 30s"]  # fmt: skip
    for name, hosts in DOMAINS.items():
        # The stale domain's balancer fills its first server before any other: every client meets the unreloaded host.
        order = sorted(hosts, key=lambda s: s.name != "flt-stale-unreloaded") if name == "stale" else hosts
        lines += [
            f"listen {name}",
            f"  bind {public_endpoint(name)}",
            f"  balance {'first' if name == 'stale' else 'roundrobin'}",
        ]
        lines += [f"  server {s.name} {fleet_address(s.address)}:18180" for s in order]
    return "\n".join(lines) + "\n"


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.fail("haproxy is not installed (make debian-test-packages installs it)")
    config = tmp_path_factory.mktemp("haproxy") / "haproxy.cfg"
    config.write_text(haproxy_config())
    subprocess.run([haproxy, "-c", "-q", "-f", str(config)], check=True, capture_output=True)
    log = config.with_name("haproxy.log")
    with log.open("wb") as output:
        process = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=output, stderr=subprocess.STDOUT)
    try:
        address, port = public_endpoint("one").rsplit(":", 1)
        deadline = time.monotonic() + 15
        while not _listening(address, int(port)):
            assert process.poll() is None, f"haproxy exited: {log.read_text()}"
            assert time.monotonic() < deadline, "haproxy does not listen"
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()  # our own haproxy, by its pid
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def inventory(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fleet-controls")
    bundle = out / "trusted-roots.pem"
    bundle.write_bytes(pki.ca_pem("letsencrypt-like"))
    return fleet.write_inventory(out / "inventory.yml", hosts=HOSTS, extra_vars={"certaudit_ca_bundle": str(bundle)})


@pytest.fixture(scope="module")
def audit(inventory: Path, balancer: subprocess.Popen[bytes], tmp_path_factory: pytest.TempPathFactory) -> AuditRun:
    return run_audit(inventory, tmp_path_factory.mktemp("fleet-audit"), "--connect-timeout", "5")


def _sha(name: str) -> str:
    return fingerprint_sha256(shared(name).certificate)


def _flt(run: AuditRun, control: str, name: str) -> dict[str, Any]:
    return run.result(control, domain(name))


def test_one_renewer_and_one_certificate_pass(audit: AuditRun) -> None:
    flt1, flt2, flt3 = (_flt(audit, c, "one") for c in FLT)
    assert [flt1["outcome"], flt2["outcome"], flt3["outcome"]] == ["pass"] * 3, [flt1, flt2, flt3]
    assert flt1["observed"]["renewers"] == ["flt-one-renewer"]
    assert flt1["observed"]["hosts"]["flt-one-receiver-1"] == {
        "renews": False, "lineages": [], "schedule": "no lineage for one.fleet.example.com in /etc/letsencrypt/renewal",
        "certaudit_renews": False,
    }  # fmt: skip
    assert flt1["observed"]["hosts"]["flt-one-renewer"]["renews"] is True
    assert {h: v["sha256"] for h, v in flt2["observed"]["hosts"].items()} == {h.name: _sha("one") for h in DOMAINS["one"]}
    assert flt2["observed"]["newest"] == {"sha256": _sha("one"), "hosts": sorted(h.name for h in DOMAINS["one"])}
    assert flt3["observed"]["served"]["sha256"] == _sha("one") and flt3["observed"]["newest_held"]["sha256"] == _sha("one")
    assert flt3["observed"]["anchor"] and flt3["findings"] == []
    # The receivers renew nothing, so certbot's own controls do not apply to them.
    ren = audit.result("REN-01", "flt-one-receiver-1")
    assert ren["outcome"] == "not applicable" and "certaudit_renews is false" in ren["message"]
    assert audit.result("REN-01", "flt-one-renewer")["outcome"] == "pass"


def test_two_renewers_fail_flt01_naming_both(audit: AuditRun) -> None:
    flt1 = _flt(audit, "FLT-01", "two")
    assert flt1["outcome"] == "fail", flt1
    assert flt1["observed"]["renewers"] == ["flt-two-renewer-a", "flt-two-renewer-b"]
    assert flt1["findings"] == [
        "2 hosts renew two.fleet.example.com: flt-two-renewer-a, flt-two-renewer-b; their HTTP-01 challenges race "
        "behind the balancer and count together against the CA's rate limits"
    ]
    assert [_flt(audit, c, "two")["outcome"] for c in ("FLT-02", "FLT-03")] == ["pass", "pass"]


def test_a_host_never_reloaded_fails_flt02_and_the_public_endpoint(audit: AuditRun) -> None:
    assert _flt(audit, "FLT-01", "stale")["outcome"] == "pass"
    flt2 = _flt(audit, "FLT-02", "stale")
    assert flt2["outcome"] == "fail", flt2
    served = flt2["observed"]["hosts"]
    stale_sha = served["flt-stale-unreloaded"]["sha256"]
    assert stale_sha != _sha("stale")
    assert served["flt-stale-renewer"]["sha256"] == served["flt-stale-receiver"]["sha256"] == _sha("stale")
    assert set(served["flt-stale-unreloaded"]) == {"sha256", "serial", "not_before", "not_after"}
    (finding,) = flt2["findings"]
    assert finding.startswith(f"flt-stale-unreloaded serves {stale_sha[:16]}… (serial {served['flt-stale-unreloaded']['serial']}")
    assert finding.endswith(f"days older than the newest {_sha('stale')[:16]}… that flt-stale-receiver, flt-stale-renewer serve")
    flt3 = _flt(audit, "FLT-03", "stale")
    assert flt3["outcome"] == "fail", flt3
    assert flt3["observed"]["served"]["sha256"] == stale_sha  # the balancer sent the audit to the stale host
    assert len(flt3["findings"]) == 2, flt3["findings"]
    assert flt3["findings"][0].startswith("the public endpoint's certificate expires in 19.9") or flt3["findings"][0].startswith(
        "the public endpoint's certificate expires in 20.0"
    )
    assert flt3["findings"][0].endswith("days (warning tier: 30)")
    assert flt3["findings"][1].startswith(f"the public endpoint serves {stale_sha[:16]}… (issued ")
    assert flt3["findings"][1].endswith("the balancer sends clients to a stale backend")
    assert f"{_sha('stale')[:16]}… on flt-stale-re" in flt3["findings"][1]


def test_a_domain_with_a_host_down_is_an_error_naming_it(audit: AuditRun) -> None:
    for control in FLT:
        record = _flt(audit, control, "down")
        assert record["outcome"] == "error", record
        assert record["message"].startswith(
            "domain down.fleet.example.com: 1 of its 2 hosts not reached (flt-down-off), so the domain cannot be judged "
            "as a whole: host flt-down-off ("
        ), record["message"]
        assert record["findings"] == []


def test_the_gate_judges_flt02_over_the_whole_domain_of_the_hosts_deployed(
    inventory: Path, balancer: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    run = run_audit(inventory, tmp_path, "--gate", "--limit", "flt-stale-receiver", "--connect-timeout", "5")
    assert run.returncode == 1, run.stdout[-3000:]
    assert {(r["control"], r["host"]) for r in run.evidence["results"]} == {
        ("CRT-01", "flt-stale-receiver"), ("KEY-01", "flt-stale-receiver"), ("LIVE-01", "flt-stale-receiver"),
        ("FLT-02", "stale.fleet.example.com"),
    }  # fmt: skip
    # The domain's other hosts were read for FLT-02, and are still no hosts of this run's evidence.
    assert run.evidence["run"]["hosts_reached"] == ["flt-stale-receiver"] and list(run.evidence["snapshots"]) == [
        "flt-stale-receiver"
    ]
    assert "GATE PASS flt-stale-receiver (CRT-01 pass: 60.0 days, KEY-01 pass, LIVE-01 pass)" in run.stdout
    assert "GATE FAIL domain stale.fleet.example.com (FLT-02 fail: flt-stale-unreloaded serves " in run.stdout
    assert "GATE FAIL: 1 of 1 host and 1 domain blocks the deploy (stale.fleet.example.com)" in run.stdout


def _shard(inventory: Path, reports: Path, index: int, count: int) -> Path:
    argv = [sys.executable, "-m", "pytest", "checks", "--inventory", str(inventory), "--report-dir", str(reports),
            "--shard", f"{index}/{count}", "-k", "FLT or CRT-01", "-p", "no:cacheprovider", "-q",
            "--connect-timeout", "5"]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode in (0, 1), done.stdout[-3000:]
    (run_dir,) = [p for p in reports.iterdir() if not p.name.endswith(".partial")]
    return run_dir


def _merge(runs: list[Path], out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "certaudit"), "merge", *map(str, runs), "--out", str(out), *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # merged, with the fleet's findings
    return done, json.loads((out / "evidence.json").read_text())


def _fleet_records(evidence: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["control"], r["host"]): r for r in evidence["results"] if r["control"].startswith("FLT-")}


# FLT-03 counts the public certificate's days left at the instant it is judged: the two judgements,
# minutes apart, may round those apart. Everything else must be the same, word for word.
_INSTANTS = re.compile(r"days_left=[0-9.]+|expires in [0-9.]+ days")


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    observed = {k: v for k, v in record["observed"].items() if k != "days_left"}
    keep = ("outcome", "expected", "notes", "waiver", "title", "fix", "gate")
    return {
        **{k: record[k] for k in keep},
        "observed": observed,
        "message": _INSTANTS.sub("", record["message"]),
        "findings": [_INSTANTS.sub("", f) for f in record["findings"]],
    }


@pytest.fixture(scope="module")
def shards(inventory: Path, balancer: subprocess.Popen[bytes], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    work = tmp_path_factory.mktemp("fleet-shards")
    return [_shard(inventory, work / f"shard-{i}", i, 2) for i in (1, 2)]


def test_shards_leave_each_domain_to_the_merge_with_every_hosts_summary(shards: list[Path]) -> None:
    documents = [json.loads((run / "evidence.json").read_text()) for run in shards]
    placeholders = [r for d in documents for r in d["results"] if r["control"].startswith("FLT-")]
    # Each domain's fleet controls in exactly one shard, as placeholders the merge replaces: never a pass on part of a domain.
    assert sorted((r["control"], r["host"]) for r in placeholders) == sorted((c, domain(n)) for c in FLT for n in DOMAINS)
    for record in placeholders:
        assert record["outcome"] == "error" and record["message"] == f"domain {record['host']}: {SHARDED}", record
    # Every host is summarised by its own shard, and only there: facts, never a file's content.
    summarised = [h for d in documents for h in d["fleet"]["hosts"]]
    assert sorted(summarised) == sorted(HOSTS)
    stale = next(d["fleet"]["hosts"]["flt-stale-unreloaded"] for d in documents if "flt-stale-unreloaded" in d["fleet"]["hosts"])
    assert set(stale) == {"domain", "reached", "certaudit_renews", "renewal_dir", "lineages", "schedule", "served", "disk"}
    assert stale["served"]["leaf"]["sha256"] != _sha("stale") and stale["disk"]["leaf"]["sha256"] == _sha("stale")
    down = next(d["fleet"]["hosts"]["flt-down-off"] for d in documents if "flt-down-off" in d["fleet"]["hosts"])
    assert down["reached"] is False and down["error"].startswith("host flt-down-off (")
    for document in documents:
        assert set(document["fleet"]["domains"]) == {
            domain(n) for n in DOMAINS if any(h.name in document["run"]["hosts_expected"] for h in DOMAINS[n])
        }


def test_the_merge_judges_the_fleet_as_the_unsharded_run_does(audit: AuditRun, shards: list[Path], tmp_path: Path) -> None:
    done, merged = _merge(shards, tmp_path / "merged")
    whole, judged = _fleet_records(audit.evidence), _fleet_records(merged)
    assert sorted(judged) == sorted(whole) == sorted((c, domain(n)) for c in FLT for n in DOMAINS)
    for pair, record in whole.items():
        assert _comparable(judged[pair]) == _comparable(record), pair
        assert judged[pair]["nodeid"] == record["nodeid"]
    outcomes = {pair: r["outcome"] for pair, r in judged.items()}
    assert outcomes == {
        **{(c, domain("one")): "pass" for c in FLT},
        ("FLT-01", domain("two")): "fail", ("FLT-02", domain("two")): "pass", ("FLT-03", domain("two")): "pass",
        ("FLT-01", domain("stale")): "pass", ("FLT-02", domain("stale")): "fail", ("FLT-03", domain("stale")): "fail",
        **{(c, domain("down")): "error" for c in FLT},
    }  # fmt: skip
    # The report, JUnit and exit status follow the judgements.
    assert merged["run"]["exit_status"] == 1 and done.stdout.rstrip().endswith("exit status 1)")
    root = ET.parse(tmp_path / "merged" / "junit.xml").getroot()
    kinds = {c.get("name"): [x.tag for x in c if x.tag in ("failure", "error", "skipped")] for c in root.iter("testcase")}
    assert kinds[f"FLT-01[{domain('two')}]"] == ["failure"] and kinds[f"FLT-03[{domain('one')}]"] == []
    assert kinds[f"FLT-02[{domain('down')}]"] == ["error"]
    html = (tmp_path / "merged" / "report.html").read_text()
    assert f'data-control="FLT-02" data-host="{domain("stale")}"' in html


def test_a_merge_without_network_leaves_flt03_an_error_saying_so(audit: AuditRun, shards: list[Path], tmp_path: Path) -> None:
    _, merged = _merge(shards, tmp_path / "merged", "--no-network")
    whole, judged = _fleet_records(audit.evidence), _fleet_records(merged)
    for pair, record in judged.items():
        if pair[0] != "FLT-03":
            assert _comparable(record) == _comparable(whole[pair]), pair
        elif pair[1] != domain("down"):  # a domain not wholly reached is that error first
            address, port = public_endpoint(pair[1].split(".")[0]).rsplit(":", 1)
            assert record["outcome"] == "error" and record["message"] == (
                f"domain {pair[1]}: the public endpoint {address}:{port} was not contacted: {NO_NETWORK}"
            ), record
