"""The three jobs on the fleet: the pre-deploy gate, the scheduled run's Prometheus textfile, the
quarterly audit's diff, and the renewal drill against pebble (see tests/scenarios_jobs.py).

Each runs as a user runs it: `make gate` / `make quarterly` where the Makefile is the interface,
`pytest checks ...` where the exact exit status matters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from prometheus_client.parser import text_string_to_metric_families

from certaudit.evidence.quarterly import quarter_of
from tests.fleet.fleet import Fleet
from tests.fleet.scenario import DOMAIN, HOOK_PATH
from tests.integration.audit_run import AuditRun, run_audit

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CERTAUDIT = str(VENV_BIN / "certaudit")
LIVE_CERT = f"/etc/letsencrypt/live/{DOMAIN}/cert.pem"
GATE_CONTROLS = {"KEY-01", "CRT-01", "LIVE-01"}


def make(target: str, *variables: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`make TARGET` as a user runs it, with this environment's certaudit (never reinstalling it)."""
    argv = ["make", "--no-print-directory", "-o", f"{VENV_BIN}/.certaudit-installed", target, f"BIN={VENV_BIN}", *variables]
    return subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )


# The scenario hosts share the default domain as independent examples, not as one domain's fleet
# behind a balancer: these jobs are judged on their host controls, and FLT-* (which would judge them
# as one fleet) in tests/integration/test_fleet_controls_on_fleet.py.
NOT_FLEET = ("-k", "not FLT")
MAKE_NOT_FLEET = "PYTEST_ARGS=-k 'not FLT'"


def gate_lines(output: str) -> dict[str, str]:
    """host -> its one GATE line (asserting there is exactly one per host)."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        match = re.match(r"^GATE (?:PASS|FAIL) (\S+) \(", line)
        if match:
            assert match.group(1) not in found, f"two gate lines for {match.group(1)}:\n{output}"
            found[match.group(1)] = line
    return found


def sha256_of_pem(pem: str) -> str:
    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()


def served_sha256(address: str) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, 18180), timeout=5) as raw, context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def result(run: AuditRun | dict[str, Any], control: str, host: str) -> dict[str, Any]:
    evidence = run.evidence if isinstance(run, AuditRun) else run
    (record,) = [r for r in evidence["results"] if r["control"] == control and r["host"] == host]
    return dict(record)


# --- the pre-deploy gate ------------------------------------------------------------------------
def test_make_gate_passes_compliant_hosts_and_a_warning_tier_certificate(fleet: Fleet, tmp_path: Path) -> None:
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", hosts=["compliant", "days-20", "hook-missing"])
    done = make("gate", f"INVENTORY={inventory}", MAKE_NOT_FLEET)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    lines = gate_lines(done.stdout)
    assert re.fullmatch(r"GATE PASS compliant \(CRT-01 pass: \d+\.\d days, KEY-01 pass, LIVE-01 pass\)", lines["compliant"])
    assert lines["days-20"] == "GATE PASS days-20 (CRT-01 pass: 20.0 days, warning tier, KEY-01 pass, LIVE-01 pass)"
    # REN-02 is not a gate control: a missing hook is the nightly run's finding, not a deploy blocker.
    assert lines["hook-missing"].startswith("GATE PASS hook-missing (")
    assert "GATE PASS: 3 hosts, every gate control passes" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_gate_fails_with_exit_1_on_five_days_left_and_an_unreachable_host(fleet: Fleet, tmp_path: Path) -> None:
    hosts = ["compliant", "days-20", "days-5", "key-0644", "down"]
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", hosts=hosts)
    run = run_audit(inventory, tmp_path, "--gate", *NOT_FLEET)
    assert run.returncode == 1, run.stdout[-3000:]
    assert {(r["control"], r["host"]) for r in run.evidence["results"]} == {(c, h) for c in GATE_CONTROLS for h in hosts}
    lines = gate_lines(run.stdout)
    assert set(lines) == set(hosts)
    assert lines["days-20"] == "GATE PASS days-20 (CRT-01 pass: 20.0 days, warning tier, KEY-01 pass, LIVE-01 pass)"
    assert lines["days-5"] == "GATE FAIL days-5 (CRT-01 fail: 5.0 days, critical tier, KEY-01 pass, LIVE-01 pass)"
    assert lines["key-0644"].startswith(
        "GATE FAIL key-0644 (CRT-01 pass: 60.0 days, KEY-01 fail: /etc/stemedb/tls/key.pem is mode 0644"
    )
    address = fleet.hosts["down"].address
    assert lines["down"].startswith(f"GATE FAIL down (CRT-01, KEY-01, LIVE-01 error: host down ({address}): cannot connect: ")
    assert "GATE FAIL: 3 of 5 hosts block the deploy (days-5, down, key-0644)" in run.stdout
    # The evidence of the warning the gate let through.
    crt = result(run, "CRT-01", "days-20")
    assert crt["outcome"] == "pass" and crt["observed"]["tier"] == "warning"
    assert crt["notes"][0].startswith("warning tier: 20.0 days left") and crt["notes"][0].endswith("not a gate failure")


def test_pytest_m_gate_is_the_same_gate(fleet: Fleet, tmp_path: Path) -> None:
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", hosts=["days-20", "days-5"])
    run = run_audit(inventory, tmp_path, "-m", "gate", *NOT_FLEET)
    assert run.returncode == 1, run.stdout[-3000:]
    assert gate_lines(run.stdout) == {
        "days-20": "GATE PASS days-20 (CRT-01 pass: 20.0 days, warning tier, KEY-01 pass, LIVE-01 pass)",
        "days-5": "GATE FAIL days-5 (CRT-01 fail: 5.0 days, critical tier, KEY-01 pass, LIVE-01 pass)",
    }
    # And a make gate that blocks: make's own status for a failed recipe.
    done = make("gate", f"INVENTORY={inventory}", MAKE_NOT_FLEET)
    assert done.returncode == 2, done.stdout[-3000:]
    assert "GATE FAIL: 1 of 2 hosts blocks the deploy (days-5)" in done.stdout


# --- the scheduled run's Prometheus textfile ----------------------------------------------------
def test_prometheus_textfile_parses_and_holds_the_runs_values(fleet: Fleet, tmp_path: Path) -> None:
    hosts = ["compliant", "days-5", "custom-ca", "down"]
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", hosts=hosts)
    collector_dir = tmp_path / "textfile"
    collector_dir.mkdir()
    textfile = collector_dir / "certaudit.prom"
    run = run_audit(inventory, tmp_path, "--prometheus-textfile", str(textfile), "--job", "nightly")
    assert run.returncode == 1, run.stdout[-3000:]
    assert sorted(p.name for p in collector_dir.iterdir()) == ["certaudit.prom"]
    assert textfile.stat().st_mode & 0o777 == 0o644

    status: dict[tuple[str, str], float] = {}
    expiry: dict[tuple[str, str], float] = {}
    last_run: list[float] = []
    for family in text_string_to_metric_families(textfile.read_text()):
        for sample in family.samples:
            if sample.name == "certaudit_control_status":
                status[(sample.labels["host"], sample.labels["control"])] = sample.value
            elif sample.name == "certaudit_cert_expiry_seconds":
                expiry[(sample.labels["host"], sample.labels["domain"])] = sample.value
            elif sample.name == "certaudit_last_run_timestamp_seconds":
                last_run.append(sample.value)
            else:
                pytest.fail(f"unexpected sample {sample}")

    code = {"pass": 1, "fail": 0, "error": -1, "waived": 2, "not applicable": 3}
    assert status == {(r["host"], r["control"]): code[r["outcome"]] for r in run.evidence["results"]}
    assert (status[("compliant", "KEY-01")], status[("days-5", "CRT-01")], status[("down", "LIVE-01")]) == (1, 0, -1)
    assert (status[("custom-ca", "REN-01")], status[("compliant", "DRL-01")]) == (3, 3)

    # Seconds left on the certificate each service reads, as of that host's audit (down: none).
    assert set(expiry) == {("compliant", DOMAIN), ("days-5", DOMAIN), ("custom-ca", DOMAIN)}
    for host in ("compliant", "days-5", "custom-ca"):
        pem = fleet.ssh(host, "openssl x509 -in /etc/stemedb/tls/cert.pem").stdout
        not_after = x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc
        judged_at = dt.datetime.fromisoformat(result(run, "CRT-01", host)["observed"]["judged_at"])
        assert expiry[(host, DOMAIN)] == pytest.approx((not_after - judged_at).total_seconds(), abs=0.002), host
    assert 4 * 86400 < expiry[("days-5", DOMAIN)] < 6 * 86400

    (finished,) = last_run
    assert dt.datetime.fromisoformat(run.evidence["run"]["finished"]).timestamp() <= finished


# --- the quarterly audit --------------------------------------------------------------------------
def _previous_quarter(quarter: str) -> tuple[str, str]:
    """(2026-Q3, an instant in it) for 2026-Q4."""
    year, q = int(quarter[:4]), int(quarter[-1])
    year, q = (year - 1, 4) if q == 1 else (year, q - 1)
    return f"{year}-Q{q}", f"{year}-{(q - 1) * 3 + 2:02d}-15T02:00:00+00:00"


def test_quarterly_files_signs_and_diffs_against_the_previous_quarter(fleet: Fleet, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert subprocess.run([CERTAUDIT, "keygen", "--out-dir", str(keys)], capture_output=True).returncode == 0
    key, public = keys / "signing-key.pem", keys / "signing-key.pub.pem"
    reports = tmp_path / "reports"
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", hosts=["quarter-fixed", "quarter-new", "compliant"])

    # Last quarter: a real quarterly run of these hosts as they are now, re-dated into the previous
    # quarter and signed again (the run directory's evidence is what the auditor compares with).
    first = run_audit(
        inventory, tmp_path / "first", "--report-dir", str(reports), "--job", "quarterly", "--quarterly", *NOT_FLEET
    )
    assert first.returncode == 1, first.stdout[-3000:]
    (quarter_dir,) = reports.iterdir()
    (first_dir,) = quarter_dir.iterdir()
    quarter = quarter_dir.name
    assert quarter == quarter_of(
        dt.datetime.fromisoformat(json.loads((first_dir / "evidence.json").read_text())["run"]["started"])
    )
    previous_quarter, then = _previous_quarter(quarter)
    previous_dir = reports / previous_quarter / f"{then[:10].replace('-', '')}T020000Z-quarterly"
    previous_dir.parent.mkdir()
    shutil.move(first_dir, previous_dir)
    evidence = json.loads((previous_dir / "evidence.json").read_text())
    evidence["run"]["started"] = evidence["run"]["finished"] = then
    (previous_dir / "evidence.json").write_text(json.dumps(evidence))
    for name in ("MANIFEST.sha256", "MANIFEST.sig"):
        (previous_dir / name).unlink(missing_ok=True)
    assert subprocess.run([CERTAUDIT, "sign", str(previous_dir), "--signing-key", str(key)], capture_output=True).returncode == 0

    # This quarter: one key fixed, one hook broken, one certificate still under 30 days.
    fleet.ssh("quarter-fixed", "chmod 600 /etc/stemedb/tls/key.pem")
    fleet.ssh("quarter-new", f"chmod 644 {HOOK_PATH}")
    done = make(
        "quarterly", f"INVENTORY={inventory}", f"REPORTS={reports}", MAKE_NOT_FLEET, env={"CERTAUDIT_SIGNING_KEY": str(key)}
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-4000:]  # make's status for a run with findings
    (run_dir,) = (reports / quarter).iterdir()
    assert re.fullmatch(r"\d{8}T\d{6}Z-quarterly", run_dir.name)
    assert {p.name for p in run_dir.iterdir()} == {
        "report.html", "junit.xml", "evidence.json", "quarterly-diff.txt", "quarterly-diff.json", "MANIFEST.sha256",
        "MANIFEST.sig",
    }  # fmt: skip
    assert f" in {run_dir} (signed)" in output
    verified = subprocess.run([CERTAUDIT, "verify", str(run_dir), "--public-key", str(public)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    document = json.loads((run_dir / "quarterly-diff.json").read_text())
    assert document["previous"]["path"] == str(previous_dir) and document["previous"]["quarter"] == previous_quarter
    assert document["previous"]["integrity"] == "manifest verified; signed (check with certaudit verify --public-key)"
    assert document["current"]["path"] == str(run_dir) and document["current"]["quarter"] == quarter

    def controls(host: str, change: str) -> list[str]:
        return [e["control"] for e in document["hosts"].get(host, {}).get(change, [])]

    # Only the two changes made between the quarters are new or fixed; what failed both times
    # persists (CRT-01 here, and whatever else the growing catalog finds on these hosts both times).
    assert (controls("quarter-fixed", "new"), controls("quarter-fixed", "fixed")) == ([], ["KEY-01"])
    assert "CRT-01" in controls("quarter-fixed", "persisting")
    assert (controls("quarter-new", "new"), controls("quarter-new", "fixed")) == (["REN-02"], [])
    assert (controls("compliant", "new"), controls("compliant", "fixed")) == ([], [])
    assert (document["totals"]["new"], document["totals"]["fixed"], document["totals"]["not_rechecked"]) == (1, 1, 0)
    persisting = {h: controls(h, "persisting") for h in ("quarter-fixed", "quarter-new", "compliant")}

    # The terminal shows the same diff, which the signed directory keeps.
    text = (run_dir / "quarterly-diff.txt").read_text()
    assert f"certaudit quarterly diff: {quarter} against {previous_quarter}\n" in text
    for line in (
        f"  quarter-fixed: 0 new, 1 fixed, {len(persisting['quarter-fixed'])} persisting",
        "    FIXED          KEY-01 pass now (was fail: /etc/stemedb/tls/key.pem is mode 0644: it grants more than 0600)",
        "    PERSISTING     CRT-01 fail: warning tier: 20.0 days left",
        f"  quarter-new: 1 new, 0 fixed, {len(persisting['quarter-new'])} persisting",
        f"    NEW            REN-02 fail: no deploy hook reloads stemedb-api: {HOOK_PATH}: not executable (mode 0644)",
        f"  total: 1 new, 1 fixed, {sum(len(p) for p in persisting.values())} persisting",
    ):
        assert line in text and line in output, line
    # make quarterly asks for the drill; these hosts do not allow it.
    current = json.loads((run_dir / "evidence.json").read_text())
    assert result(current, "DRL-01", "quarter-new")["message"].startswith("certaudit_drill_ok is not true for this host")


# --- the renewal drill ------------------------------------------------------------------------------
def test_without_the_option_the_drill_is_not_applicable_and_nothing_changes(fleet: Fleet, tmp_path: Path) -> None:
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", hosts=["drill-ok"])
    before = fleet.ssh("drill-ok", f"openssl x509 -in {LIVE_CERT}").stdout
    run = run_audit(inventory, tmp_path, "-k", "DRL-01")
    assert run.returncode == 0, run.stdout[-3000:]
    record = result(run, "DRL-01", "drill-ok")
    assert record["outcome"] == "not applicable"
    assert record["message"] == "the renewal drill renews certificates for real: it runs only with --renewal-drill"
    assert fleet.ssh("drill-ok", f"openssl x509 -in {LIVE_CERT}").stdout == before


def test_the_drill_proves_a_healthy_renewal_and_names_a_broken_hook(fleet: Fleet, tmp_path: Path) -> None:
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", hosts=["drill-ok", "drill-hook-broken", "compliant"])
    served_before = {h: served_sha256(fleet.hosts[h].address) for h in ("drill-ok", "drill-hook-broken")}
    run = run_audit(inventory, tmp_path, "--renewal-drill")
    assert run.returncode == 1, run.stdout[-3000:]

    # The healthy host: renewed, hook ran, reloaded, and serving the new certificate.
    ok = result(run, "DRL-01", "drill-ok")
    assert ok["outcome"] == "pass", ok["message"]
    seen = ok["observed"]
    assert seen["old_sha256"] == served_before["drill-ok"] and seen["new_sha256"] != seen["old_sha256"]
    assert seen["new_sha256"] == sha256_of_pem(fleet.ssh("drill-ok", f"openssl x509 -in {LIVE_CERT}").stdout)
    assert seen["served_sha256"] == seen["new_sha256"] == served_sha256(fleet.hosts["drill-ok"].address)
    assert seen["after"]["service_file_sha256"] == seen["new_sha256"]
    assert seen["exit_status"] == 0
    assert seen["hooks_run"] == [HOOK_PATH] and seen["hook_errors"] == []
    assert len(seen["reload_jobs"]) == 1 and " reload done: Reloaded stemedb-api.service" in seen["reload_jobs"][0]
    assert any("certificate reloaded: /etc/stemedb/tls/cert.pem" in line for line in seen["service_log"])
    assert seen["new_not_after"] > seen["old_not_after"]  # issued later, for the same lifetime
    # certbot gets what is left of the host's budget, less what the steps after it need: never more.
    bound = re.fullmatch(
        r"env REQUESTS_CA_BUNDLE=/usr/local/share/certaudit/pebble-ca\.pem timeout --kill-after=10 (\d+) "
        rf"certbot renew --cert-name {re.escape(DOMAIN)} --force-renewal --no-random-sleep-on-renew -v",
        seen["command"],
    )
    assert bound is not None, seen["command"]
    assert 1 <= int(bound.group(1)) < 120, seen["command"]  # 120 s: the default --host-budget

    # The broken hook: certbot says "all renewals succeeded" and exits 0; the drill says why it is not so.
    broken = result(run, "DRL-01", "drill-hook-broken")
    assert broken["outcome"] == "fail"
    seen = broken["observed"]
    assert seen["exit_status"] == 0 and seen["new_sha256"] != seen["old_sha256"]
    old, new = seen["after"]["served_sha256"], seen["new_sha256"]
    assert old == served_before["drill-hook-broken"] == served_sha256(fleet.hosts["drill-hook-broken"].address)
    assert broken["findings"][:3] == [
        "the deploy hook failed: deploy-hook reported error code 1: install: cannot stat "
        f"'/etc/letsencrypt/live/{DOMAIN}/full-chain.pem': No such file or directory",
        "stemedb-api.service was not reloaded or restarted after the renewal "
        "(no finished reload, restart or start job in its journal)",
        f"/etc/stemedb/tls/cert.pem still holds {old[:16]}…, not the renewed {new[:16]}…",
    ]
    assert broken["findings"][3].startswith(f"the endpoint still serves {old[:16]}…, not the renewed {new[:16]}…, ")
    assert len(broken["findings"]) == 4
    assert broken["message"].startswith("DRL-01 on drill-hook-broken: the deploy hook failed: ")
    # What every static check and a dry run miss: REN-02 passes on the same host in the same run.
    assert result(run, "REN-02", "drill-hook-broken")["outcome"] == "pass"

    na = result(run, "DRL-01", "compliant")
    assert (na["outcome"], na["message"]) == (
        "not applicable",
        "certaudit_drill_ok is not true for this host: the inventory does not allow a real renewal here",
    )
