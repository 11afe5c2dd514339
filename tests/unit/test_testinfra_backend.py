"""testinfra's `host` over certaudit's connection, on a local target: bounds, become, cut output, and the records.

The same paths reach real hosts in tests/integration/test_custom_controls_on_fleet.py; here the
local connection (what an inventory's `ansible_connection: local` gives) shows each rule alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from certaudit.errors import Undeterminable
from certaudit.gather import testinfra_backend
from certaudit.gather.testinfra_backend import CertauditBackend, HostSession
from certaudit.gather.transport import with_become
from certaudit.host_fixture import asserts_of
from certaudit.inventory import target_for

REPO = Path(__file__).resolve().parents[2]


def local_session(budget: float = 30.0, **variables: Any) -> HostSession:
    return HostSession(target_for("me", {"ansible_connection": "local", **variables}), 5.0, budget)


def test_a_command_runs_over_the_session_and_is_logged() -> None:
    session = local_session()
    result = session.run("printf %s hello; exit 3")
    assert (result.rc, result.stdout) == (3, b"hello")
    assert session.log == ["printf %s hello; exit 3 (exit 3)"]


def test_a_host_out_of_its_budget_is_an_error_now_and_for_every_later_test() -> None:
    session = local_session(budget=0.5)
    with pytest.raises(Undeterminable, match=r"^me: no answer while running a command: the host's 0.5 s budget"):
        session.run("sleep 5")
    with pytest.raises(Undeterminable, match="budget") as again:
        session.run("true")  # not tried again: nothing is sent
    assert "0.5 s budget (--host-budget) ran out" in str(again.value)
    assert session.log == []


def test_output_over_the_limit_is_a_cut_fact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(testinfra_backend, "MAX_OUTPUT", 10)
    with pytest.raises(Undeterminable, match=r"^me: `head -c 11 /dev/zero` wrote more than 10 bytes: its output was cut$"):
        local_session().run("head -c 11 /dev/zero")


def test_become_and_host_sudo_use_sudo_without_a_password_prompt() -> None:
    target = target_for("web-1", {"ansible_host": "127.0.0.1", "ansible_become": True})
    session = HostSession(target, 5.0, 30.0)
    backend = CertauditBackend(session)
    assert backend.get_pytest_id() == "web-1"
    assert backend.get_sudo_command("id -u", "stemedb") == "sudo -n -u stemedb -- /bin/sh -c 'id -u'"
    assert with_become(target, ["/bin/sh", "-c", "id"]) == ["sudo", "-n", "--", "/bin/sh", "-c", "id"]


def test_an_unreachable_host_fails_its_login_once() -> None:
    target = target_for("gone", {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "paramiko"})
    session = HostSession(target, 2.0, 30.0)
    with pytest.raises(Undeterminable, match=r"^gone: unreachable: connect to host 127.0.0.1 port 1: Connection refused"):
        session.login()
    with pytest.raises(Undeterminable, match="Connection refused"):
        session.run("true")


def _example() -> None:
    value = 1
    assert value == 0o644
    assert value in (1, 2), "multi-line"


def test_asserts_are_kept_as_written() -> None:
    assert asserts_of(_example) == ("value == 0o644", "value in (1, 2)")


def test_host_tests_audit_the_inventory_hosts_with_records(tmp_path: Path) -> None:
    """`def test_x(host)` with an inventory: once per inventory host (ids by name), each recorded."""
    checks = tmp_path / "own-checks"
    checks.mkdir()
    (checks / "test_own.py").write_text(
        "import pytest\n\n"
        "def test_passwd(host):\n    assert host.file('/etc/passwd').mode == 0o600\n\n"
        "def test_na(host):\n    pytest.skip('nothing here')\n"
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    box-1:\n      ansible_connection: local\n")
    evidence = tmp_path / "evidence.json"
    argv = [sys.executable, "-m", "pytest", "checks/__init__.py", str(checks), "--inventory", str(inventory),
            "--evidence", str(evidence), "-p", "no:cacheprovider", "-q", "-rA"]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "test_passwd[box-1]" in done.stdout and "[local]" not in done.stdout
    results = {r["control"]: r for r in json.loads(evidence.read_text())["results"]}
    failed = results["test_own.py::test_passwd"]
    assert (failed["host"], failed["outcome"], failed["nodeid"]) == ("box-1", "fail", "test_own.py::test_passwd[box-1]")
    mode = int(Path("/etc/passwd").stat().st_mode & 0o777)
    assert failed["observed"]["value"] == mode
    assert failed["expected"] == {
        "asserts": ["host.file('/etc/passwd').mode == 0o600"],
        "comparison": "==",
        "failed": "assert host.file('/etc/passwd').mode == 0o600",
        "value": 0o600,
    }
    assert failed["observed"]["commands"][-1] == "stat -Lc %a /etc/passwd (exit 0)"
    skipped = results["test_own.py::test_na"]
    assert (skipped["outcome"], skipped["message"]) == ("not applicable", "nothing here")
