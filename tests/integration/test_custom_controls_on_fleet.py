"""Controls of one's own, written the testinfra way (`def test_x(host)`), audit the inventory's hosts.

The README's own example (section "Write your own control"), copied into a directory outside the
project, runs beside checks/ over a compliant host, a breaking one (key-0644), the down host and an
unprivileged login with and without `ansible_become`, plus the compliant host over OpenSSH. Each
(host, control) pair must end exactly as listed, with its evidence; the commands must have run on
the host itself (testinfra's old default ran them on the auditing machine), over one login per host.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from certaudit.gather.transport import ROUND_TRIPS_ENV
from tests.fleet.fleet import Fleet, fleet_address
from tests.scenarios_custom import AUDITOR, SUDO_AUDITOR

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
CERTAUDIT = str(Path(sys.executable).parent / "certaudit")
SCHEMA = json.loads((REPO / "certaudit/evidence/schema/evidence-v1.schema.json").read_text())
PLAIN = "test_sshd_takes_keys_only"
WHERE = "test_where"
# The old default would run this on the auditing machine; it fails everywhere, showing where it ran.
WHERE_TEST = f"""
def {WHERE}(host):
    assert host.file("/etc/hostname").content_string.strip() == "certaudit-nowhere"
"""
WAIVERS = """waivers:
  - control: ORG-02
    hosts: key-0644
    reason: the key moves to the HSM next sprint
    approver: Dana Auditor <dana@example.com>
    ticket: SEC-202
    expires: 2099-12-31
"""
DOWN_SAYS = "down: unreachable: connect to host {down} port 22"
STALL = "127.77.7.20"  # a listener of this module: accepts, and never says a word
STALL_SAYS = "stalled: unreachable: connect to host {stall} port 22: no SSH banner and key exchange within "
DENIED = "no-become: `find /etc/letsencrypt/accounts -name private_key.json -perm /077` exited 1"
NO_STAT = (
    "no-become: `stat -Lc %a /etc/stemedb/tls/cert.pem` exited 1: "
    "stat: cannot statx '/etc/stemedb/tls/cert.pem': Permission denied"
)
NA_NGINX = "nginx is not installed on this host"
NA_ACCOUNTS = "no certbot account on this host"
# (host, control) -> outcome; a message fragment for the ones that are not passes.
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    **{(h, "ORG-01"): ("pass", "") for h in ("compliant", "key-0644", "become", "compliant-openssh")},
    ("no-become", "ORG-01"): ("error", NO_STAT),
    **{(h, "ORG-02"): ("pass", "") for h in ("compliant", "become", "compliant-openssh")},
    ("key-0644", "ORG-02"): ("waived", "ORG-02 on key-0644: key.mode & 0o077 == 0 does not hold"),
    ("no-become", "ORG-02"): ("error", "/etc/stemedb/tls/key.pem: Permission denied"),
    **{
        (h, "ORG-03"): ("not applicable", NA_NGINX) for h in ("compliant", "key-0644", "become", "no-become", "compliant-openssh")
    },
    **{(h, "ORG-04"): ("pass", "") for h in ("compliant", "become", "compliant-openssh")},
    ("key-0644", "ORG-04"): ("not applicable", NA_ACCOUNTS),
    ("no-become", "ORG-04"): ("error", DENIED),
    **{(h, PLAIN): ("pass", "") for h in ("compliant", "key-0644", "become", "no-become", "compliant-openssh")},
    **{(h, WHERE): ("fail", "certaudit-nowhere") for h in ("compliant", "key-0644", "become", "no-become", "compliant-openssh")},
    **{("down", c): ("error", DOWN_SAYS) for c in ("ORG-01", "ORG-02", "ORG-03", "ORG-04", PLAIN, WHERE)},
    ("stalled", "ORG-02"): ("error", ""),  # the probe's own error, for the snapshot
    **{("stalled", c): ("error", STALL_SAYS) for c in ("ORG-01", "ORG-03", "ORG-04", PLAIN, WHERE)},
}
HOSTS = ("compliant", "key-0644", "down", "become", "no-become", "compliant-openssh", "stalled")


def readme_example() -> str:
    """The first python block of the README's "Write your own control" section."""
    section = README.split("## Write your own control", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README's section has its example"
    return match.group(1)


@dataclass(frozen=True)
class CustomRun:
    done: subprocess.CompletedProcess[str]
    run_dir: Path
    evidence: dict[str, Any]
    round_trips: list[dict[str, Any]]
    textfile: str
    checks: Path
    inventory: Path
    work: Path

    def record(self, host: str, control: str) -> dict[str, Any]:
        found = [r for r in self.evidence["results"] if r["host"] == host and _short(r["control"]) == control]
        assert len(found) == 1, f"{control}[{host}]: {len(found)} results\n{self.done.stdout[-3000:]}"
        record: dict[str, Any] = found[0]
        return record


def _short(control: str) -> str:
    return control.rsplit("::", 1)[-1]


def _inventory(fleet: Fleet, path: Path) -> Path:
    fleet.write_inventory(path, hosts=["compliant", "key-0644", "down", SUDO_AUDITOR])
    document = yaml.safe_load(path.read_text())
    hosts = document["all"]["hosts"]
    sudo_host = hosts.pop(SUDO_AUDITOR)
    hosts["become"] = {**sudo_host, "ansible_user": AUDITOR, "ansible_become": True}
    hosts["no-become"] = {**sudo_host, "ansible_user": AUDITOR}
    hosts["compliant-openssh"] = {**hosts["compliant"], "ansible_connection": "ssh"}
    hosts["stalled"] = {"ansible_host": fleet_address(STALL), "ansible_connection": "paramiko"}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def audit(
    work: Path, checks: Path, inventory: Path, *extra: str, counter: Path | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", "checks", str(checks), "--inventory", str(inventory),
            "--connect-timeout", "5", "--host-budget", "60", "-p", "no:cacheprovider", "-q", *extra]  # fmt: skip
    env = dict(os.environ, **({ROUND_TRIPS_ENV: str(counter)} if counter is not None else {}))
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False, env=env)


@pytest.fixture(scope="module")
def stalled_sshd() -> Iterator[None]:
    """An sshd that accepts connections and never sends its banner."""
    server = socket.create_server((fleet_address(STALL), 22))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture(scope="module")
def custom(fleet: Fleet, stalled_sshd: None, tmp_path_factory: pytest.TempPathFactory) -> CustomRun:
    work = tmp_path_factory.mktemp("custom")
    checks = work / "srv-ops" / "tls-checks"  # outside the project, as an operator keeps it
    checks.mkdir(parents=True)
    (checks / "test_org.py").write_text(readme_example())
    (checks / "test_where.py").write_text(WHERE_TEST)
    inventory = _inventory(fleet, work / "inventory.yml")
    (work / "waivers.yml").write_text(WAIVERS)
    counter = work / "round-trips.jsonl"
    textfile = work / "certaudit.prom"
    done = audit(work, checks, inventory, "--report-dir", str(work / "reports"), "--waivers", str(work / "waivers.yml"),
                 "--prometheus-textfile", str(textfile), counter=counter)  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # findings: built-ins and test_where fail
    (run_dir,) = [p for p in (work / "reports").iterdir() if not p.name.endswith(".partial")]
    evidence = json.loads((run_dir / "evidence.json").read_text())
    trips = [json.loads(line) for line in counter.read_text().splitlines()]
    return CustomRun(done, run_dir, evidence, trips, textfile.read_text(), checks, inventory, work)


@pytest.mark.parametrize(("host", "control"), sorted(EXPECTED), ids=[f"{c}[{h}]" for h, c in sorted(EXPECTED)])
def test_custom_outcome(custom: CustomRun, fleet: Fleet, host: str, control: str) -> None:
    outcome, says = EXPECTED[(host, control)]
    record = custom.record(host, control)
    assert record["outcome"] == outcome, f"{control}[{host}]: {record['outcome']}\n{record['message']}"
    assert says.format(down=fleet_address("127.77.0.250"), stall=fleet_address(STALL)) in record["message"], record["message"]
    if outcome in ("pass", "fail", "waived"):
        # What it holds to, and what it sent: a pass shows what it saw.
        assert record["expected"]["asserts"], record
        assert "commands" in record["observed"], record
    if outcome == "pass":
        assert record["observed"]["commands"], record


def test_every_custom_result_and_no_other(custom: CustomRun) -> None:
    custom_records = [r for r in custom.evidence["results"] if r["control"].startswith("ORG-") or "::" in r["control"]]
    assert sorted((r["host"], _short(r["control"])) for r in custom_records) == sorted(EXPECTED)
    jsonschema.validate(custom.evidence, SCHEMA)


def test_a_failed_assertion_is_a_finding_with_its_values(custom: CustomRun) -> None:
    record = custom.record("key-0644", "ORG-02")
    finding = "key.mode & 0o077 == 0 does not hold (assert (420 & 63) == 0)"
    assert record["findings"] == [finding]
    assert record["observed"]["value"] == 0o644 & 0o077
    assert record["expected"]["comparison"] == "=="
    assert record["expected"]["value"] == 0
    assert record["expected"]["failed"] == "assert key.mode & 0o077 == 0"
    assert record["observed"]["commands"] == []  # the snapshot's mode failed it: no command sent
    assert record["expected"]["asserts"] == [
        "key.problem() is None",
        "key.mode & 0o077 == 0",
        "host.file(policy.tls_key).user == policy.service_user",
    ]
    assert record["message"].startswith(f"ORG-02 on key-0644: {finding}\n")
    assert "  rule: ORG-02 Keep the service's key closed to group and others" in record["message"]
    assert "  fix: `chmod 600 /etc/stemedb/tls/key.pem" in record["message"]
    assert record["waiver"]["ticket"] == "SEC-202" and record["gate"] is True


def test_a_plain_test_is_recorded_under_its_node_id(custom: CustomRun) -> None:
    record = custom.record("compliant", PLAIN)
    assert record["control"] == record["nodeid"].removesuffix("[compliant]")
    assert record["control"] == f"test_org.py::{PLAIN}"
    assert record["title"] == "sshd refuses password logins"
    assert record["observed"]["commands"] == ["cat -- /etc/ssh/sshd_config (exit 0)"]


def test_host_is_the_inventory_host_never_the_auditing_machine(custom: CustomRun, fleet: Fleet) -> None:
    """The old behaviour (testinfra's default `host`: this machine) fails here: test ids and the hostname read."""
    local = socket.gethostname()
    for host, target in (("compliant", "compliant"), ("compliant-openssh", "compliant"), ("become", SUDO_AUDITOR)):
        record = custom.record(host, WHERE)
        hostname = fleet.ssh(target, "cat /etc/hostname").stdout.strip()
        assert record["observed"]["value"] == hostname != local
        assert record["nodeid"].endswith(f"test_where.py::{WHERE}[{host}]")
    assert f"{WHERE}[local]" not in custom.done.stdout and "[localhost]" not in custom.done.stdout


def test_one_login_per_host_and_the_probe_still_two_round_trips(custom: CustomRun) -> None:
    by_host = Counter((t["host"], t["kind"]) for t in custom.round_trips)
    for host in HOSTS:
        assert by_host[(host, "login")] == 1, f"{host}: {by_host[(host, 'login')]} logins"
    for host in ("compliant", "key-0644", "compliant-openssh"):
        custom_commands = sum(len(r["observed"].get("commands", [])) for r in custom.evidence["results"]
                              if r["host"] == host and (r["control"].startswith("ORG-") or "::" in r["control"]))  # fmt: skip
        # The probe: one command and one TLS connection; every other command is a custom test's.
        assert by_host[(host, "command")] == 1 + custom_commands, host
        assert by_host[(host, "tls")] == 1, host
    # The openssh login is a ControlMaster: gone, with its directory, at the end of the run.
    assert not list(Path("/tmp").glob("certaudit-ssh-*"))


def test_junit_and_prometheus_carry_custom_controls(custom: CustomRun) -> None:
    cases = {c.get("name"): c for c in ET.parse(custom.run_dir / "junit.xml").getroot().iter("testcase")}
    assert cases["ORG-04[no-become]"].find("error") is not None
    assert cases["ORG-03[compliant]"].find("skipped") is not None
    assert cases["ORG-01[compliant]"].find("failure") is None and cases["ORG-01[compliant]"].find("error") is None
    assert cases[f"{WHERE}[compliant]"].find("failure") is not None
    assert 'certaudit_control_status{host="no-become",control="ORG-04"} -1' in custom.textfile
    assert 'certaudit_control_status{host="key-0644",control="ORG-02"} 2' in custom.textfile
    assert 'certaudit_control_status{host="compliant",control="ORG-01"} 1' in custom.textfile


def test_the_gate_selects_a_custom_gate_control(custom: CustomRun) -> None:
    done = audit(custom.work, custom.checks, custom.inventory, "--gate", "--collect-only")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "test_org.py::ORG-02[compliant]" in done.stdout
    assert "ORG-01[" not in done.stdout and WHERE not in done.stdout


def test_shards_of_custom_controls_merge_into_the_whole(custom: CustomRun) -> None:
    shards = []
    for index in (1, 2):
        reports = custom.work / f"shard-{index}"
        done = audit(custom.work, custom.checks, custom.inventory, "--report-dir", str(reports), "--shard", f"{index}/2",
                     "--waivers", str(custom.work / "waivers.yml"), "-k", f"ORG or {PLAIN} or {WHERE}")  # fmt: skip
        assert done.returncode in (0, 1), done.stdout[-3000:]
        (run_dir,) = [p for p in reports.iterdir() if not p.name.endswith(".partial")]
        shards.append(run_dir)
    merged = custom.work / "merged"
    done = subprocess.run([CERTAUDIT, "merge", *map(str, shards), "--out", str(merged)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    results = json.loads((merged / "evidence.json").read_text())["results"]
    outcomes = {(r["host"], _short(r["control"])): r["outcome"] for r in results}
    assert outcomes == {pair: outcome for pair, (outcome, _) in EXPECTED.items()}
    shutil.rmtree(merged)


def test_inventory_and_testinfra_host_selection_together_is_a_usage_error(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    me:\n      ansible_connection: local\n")
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "checks",
        "--inventory",
        str(inventory),
        "--connection",
        "ssh",
        "-p",
        "no:cacheprovider",
    ]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "certaudit: --inventory and testinfra's --connection both choose the hosts: give one of them" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
