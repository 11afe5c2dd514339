"""Inputs that must never hang, crash or loop the run: each ends in one line (pytest's usage error,
exit status 4, before any host is touched; `certaudit`'s "not merged", exit status 2), or in a
waivers finding, never in a traceback, a wait on a FIFO, or an inventory read once per control.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from certaudit.errors import InventoryError
from certaudit.evidence.manifest import keygen, verify, write_manifest
from certaudit.evidence.merge import MergeError, merge_runs
from certaudit.inventory import _run_bounded, check_inventory_files, load_inventory, target_for
from certaudit.policy import PolicyError, policy_for
from certaudit.readers import ReadError, load_yaml, read_bounded, shown_text
from certaudit.waivers import load_waivers
from tests.unit.test_shard import evidence, write_run

REPO = Path(__file__).resolve().parents[2]
LOCAL = str(REPO / "inventories/local.yml")
TODAY = dt.date(2026, 11, 27)


def bomb(levels: int = 9) -> str:
    """The "billion laughs" of YAML: each level names the one before nine times."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def audit(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "checks"), "--rootdir", str(REPO), "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def assert_one_line_usage_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, output[-3000:]
    assert message in output, output[-3000:]
    assert "Traceback" not in output and "INTERNALERROR" not in output and "error during collection" not in output
    assert "PASSED" not in output and "passed" not in output, "no control ran"


# --- reading files: kind, size, alias expansion -----------------------------------------------------------
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ReadError, match=r"fifo: is a FIFO, not a regular file$"):
        read_bounded(fifo, 1000)
    with pytest.raises(ReadError, match=r"is a directory, not a regular file$"):
        read_bounded(tmp_path, 1000)


def test_a_file_past_its_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_bytes(b"a" * 1001)
    with pytest.raises(ReadError, match=r"is 1001 bytes, more than the 1000 a real one needs$"):
        read_bounded(big, 1000)
    assert read_bounded(big, 1001) == b"a" * 1001


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(bomb())
    with pytest.raises(ReadError, match=r"its YAML aliases expand to more than 2000000 nodes \(an alias bomb\?\)$"):
        load_yaml(path, 1024 * 1024)
    # Aliases as people use them (a shared block of defaults) are fine.
    path.write_text("defaults: &d {port: 443, user: audit}\nweb-1: *d\nweb-2: {<<: *d, port: 8443}\n")
    assert load_yaml(path, 1024 * 1024)["web-2"] == {"port": 8443, "user": "audit"}


def test_shown_text_escapes_and_shortens() -> None:
    assert shown_text("a\nb\x00c") == "a\\nb\\x00c"
    assert shown_text("x" * 100_000, 20) == "xxxxxxxxxxxxxxxxx... (100000 characters)"


# --- the inventory ----------------------------------------------------------------------------------------
def test_an_inventory_that_fails_is_read_once_and_ends_the_run(tmp_path: Path) -> None:
    """17 controls asked for the inventory: an executable inventory ran 17 times, each failure alike."""
    count = tmp_path / "count"
    script = tmp_path / "inventory.sh"
    script.write_text(f"#!/bin/sh\necho run >> {count}\nexit 1\n")
    script.chmod(0o755)
    done = audit("--inventory", str(script))
    assert_one_line_usage_error(done, f"certaudit: ansible-inventory could not read {script}: ")
    assert count.read_text() == "run\n", "the inventory script ran once"


def test_a_fifo_inventory_ends_the_run_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "inventory.yml"
    os.mkfifo(fifo)
    done = audit("--inventory", str(fifo))  # before: 17 waits of 120 s for a writer
    assert_one_line_usage_error(done, f"certaudit: inventory {fifo}: is a FIFO, not a regular file")


def test_an_alias_bomb_inventory_ends_the_run(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(bomb())
    done = audit("--inventory", str(path))  # before: minutes of ansible-inventory, then a MemoryError
    assert_one_line_usage_error(done, f"certaudit: inventory {path}: its YAML aliases expand to more than 2000000 nodes")


def test_every_file_ansible_reads_is_checked(tmp_path: Path) -> None:
    """A directory inventory's files, and the group_vars/ and host_vars/ beside an inventory file."""
    directory = tmp_path / "inv"
    (directory / "group_vars").mkdir(parents=True)
    (directory / "hosts.ini").write_text("[web]\nweb-1 ansible_host=10.0.0.1\n")  # INI: not YAML, no problem
    check_inventory_files(directory)
    os.mkfifo(directory / "group_vars" / "all.yml")
    with pytest.raises(InventoryError, match=r"inv/group_vars/all.yml: is a FIFO, not a regular file$"):
        check_inventory_files(directory)
    os.unlink(directory / "group_vars" / "all.yml")
    (directory / "group_vars" / "all.yml").write_text(bomb())
    with pytest.raises(InventoryError, match=r"all.yml: its YAML aliases expand to more than"):
        check_inventory_files(directory / "hosts.ini")  # beside the file, Ansible reads group_vars/ too


def test_ansible_inventory_is_bounded_in_time_and_output(tmp_path: Path) -> None:
    # A child that keeps the pipe open would make a plain subprocess.run wait past its timeout.
    marker = tmp_path / "still-running"
    with pytest.raises(InventoryError, match=r"^did not finish within 1 s$"):
        _run_bounded(["sh", "-c", f"(sleep 30; touch {marker}) & sleep 30"], 1, 1000)
    with pytest.raises(InventoryError, match=r"^wrote more than 1000 bytes$"):
        _run_bounded(["sh", "-c", "yes"], 30, 1000)
    assert _run_bounded(["sh", "-c", "echo out; echo err >&2; exit 3"], 30, 1000) == (3, b"out\n", b"err\n")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"ansible_port": "²"}, "ansible_port = '²' cannot be used: expected a TCP port from 1 to 65535"),
        ({"ansible_port": "٢٢"}, "ansible_port = '٢٢' cannot be used: expected a TCP port from 1 to 65535"),
        ({"certaudit_endpoint_port": "²"}, "certaudit_endpoint_port = '²' cannot be used: expected a TCP port"),
        ({"certaudit_warn_days": "³⁰"}, "certaudit_warn_days = '³⁰' cannot be used: expected a whole number of days"),
        ({"certaudit_warn_days": "٣٠"}, "certaudit_warn_days = '٣٠' cannot be used: expected a whole number of days"),
        ({"certaudit_crit_days": "1_0"}, "certaudit_crit_days = '1_0' cannot be used: expected a whole number of days"),
        ({"certaudit_crit_days": " 7 "}, "certaudit_crit_days = ' 7 ' cannot be used: expected a whole number of days"),
        ({"certaudit_warn_fraction": "٠.٥"}, "certaudit_warn_fraction = '٠.٥' cannot be used: expected a share"),
        ({"certaudit_warn_fraction": "nan"}, "certaudit_warn_fraction = 'nan' cannot be used: expected a share"),
    ],
)
def test_numbers_are_ascii_digits_only(variables: dict[str, Any], message: str) -> None:
    """str.isdigit() accepts '²', which int() refuses (a ValueError traceback), and int() reads '٣٠'."""
    with pytest.raises(InventoryError) as caught:
        target_for("web-1", {"ansible_host": "127.0.0.1", **variables})
    assert str(caught.value).startswith(f"host web-1: {message}")


def test_numbers_in_ascii_still_work() -> None:
    target = target_for("web-1", {"ansible_port": "2222", "certaudit_warn_days": "40", "certaudit_warn_fraction": ".5"})
    assert target.spec == "ssh://web-1:2222" and target.policy.warn_days == 40 and target.policy.warn_fraction == 0.5
    with pytest.raises(PolicyError):
        policy_for("web-1", {"certaudit_endpoint_port": "0"})


@pytest.mark.parametrize("name", ["a\nb", "a\x00b", "x" * 100_000])
def test_a_host_name_is_shown_escaped_and_shortened(tmp_path: Path, name: str) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {name: {"ansible_connection": "local"}}}}))
    with pytest.raises(InventoryError) as caught:
        load_inventory(str(inventory))
    message = str(caught.value)
    assert message.startswith(f"host {shown_text(name, 80)}: inventory host name = ")
    assert message.isprintable() and len(message) < 400
    with pytest.raises(InventoryError) as caught:
        load_inventory(LOCAL, iter([name]))
    assert str(caught.value) == f"inventory {LOCAL} has no host named {shown_text(name, 80)}"


def test_a_host_name_in_limit_is_escaped_in_the_usage_error() -> None:
    done = audit("--inventory", LOCAL, "--limit", "evil\nFAKE LINE")
    assert_one_line_usage_error(done, f"certaudit: inventory {LOCAL} has no host named evil\\nFAKE LINE")
    assert "\nFAKE LINE" not in done.stdout + done.stderr


# --- the waivers file -------------------------------------------------------------------------------------
def test_a_waivers_fifo_or_bomb_is_a_finding_not_a_hang_or_a_crash(tmp_path: Path) -> None:
    fifo = tmp_path / "waivers.yml"
    os.mkfifo(fifo)
    assert load_waivers(fifo, TODAY).file_problem == "is a FIFO, not a regular file"
    bombed = tmp_path / "bomb.yml"
    bombed.write_text("waivers:\n  - control: KEY-01\n    reason: &r0 [a, a, a, a, a, a, a, a, a]\n" + bomb())
    assert load_waivers(bombed, TODAY).file_problem == "its YAML aliases expand to more than 100000 nodes (an alias bomb?)"


@pytest.mark.parametrize(
    ("expires", "valid"),
    [("'20990131'", False), ("'2099-1-31'", False), ("'2099-01-31T00:00:00'", False), ("2099-01-31T00:00:00", False),
     ("'２０９９-01-31'", False), ("2099-01-31", True), ("'2099-01-31'", True)],
)  # fmt: skip
def test_a_waiver_date_is_yyyy_mm_dd_strictly(tmp_path: Path, expires: str, valid: bool) -> None:
    path = tmp_path / "waivers.yml"
    path.write_text(f"waivers:\n  - {{control: KEY-01, hosts: '*', reason: r, approver: a, ticket: T-1, expires: {expires}}}\n")
    (waiver,) = load_waivers(path, TODAY).entries
    assert (waiver.status == "valid") is valid, waiver.problem
    if not valid:
        assert waiver.problem.endswith("is not a date (YYYY-MM-DD)")


def test_a_waiver_label_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "waivers.yml"
    entry = '{control: "KEY-01\\nFAKE", hosts: "web-*\\n", reason: r, approver: a, ticket: T, expires: x}'
    path.write_text(f"waivers:\n  - {entry}\n")
    (problem,) = load_waivers(path, TODAY).findings()
    assert problem.isprintable() and "KEY-01\\nFAKE" in problem


# --- the command line, checked before any host is touched --------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--connect-timeout", "-1"], "certaudit: --connect-timeout -1.0: expected a number of seconds above 0"),
        (["--connect-timeout", "0"], "certaudit: --connect-timeout 0.0: expected a number of seconds above 0"),
        (["--connect-timeout", "nan"], "certaudit: --connect-timeout nan: expected a number of seconds above 0"),
        (["--host-budget", "inf"], "certaudit: --host-budget inf: expected a number of seconds above 0"),
        (["--job", "../../x"], "certaudit: --job '../../x': expected a name of letters, digits"),
        (["--job", "a/b"], "certaudit: --job 'a/b': expected a name of letters, digits"),
        (["--report-dir", "/sys/certaudit-reports"], "certaudit: --report-dir /sys/certaudit-reports: cannot hold the run"),
    ],
)
def test_bad_options_end_the_run_in_one_line(args: list[str], message: str) -> None:
    assert_one_line_usage_error(audit("--inventory", LOCAL, *args), message)


def test_a_report_dir_that_is_no_directory(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for given, why in ((a_file, "is not a directory"), (dangling, "is a dangling symbolic link")):
        done = audit("--inventory", LOCAL, "--report-dir", str(given))  # before: INTERNALERROR
        assert_one_line_usage_error(done, f"certaudit: --report-dir {given}: {why}")
    done = audit("--inventory", LOCAL, "--evidence", str(tmp_path))
    assert_one_line_usage_error(done, f"certaudit: --evidence {tmp_path}: is a directory")


def test_an_unwritable_report_dir(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into any directory: /sys/certaudit-reports covers the failing mkdir")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert_one_line_usage_error(
        audit("--inventory", LOCAL, "--report-dir", str(locked)), f"certaudit: --report-dir {locked}: is not writable"
    )


def test_the_signing_key_is_checked_before_the_audit(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    missing = tmp_path / "missing.pem"
    done = audit("--inventory", LOCAL, "--report-dir", str(reports), "--signing-key", str(missing))
    assert_one_line_usage_error(done, f"certaudit: --signing-key {missing}: cannot be read: No such file or directory")
    key, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    keygen(key, public)
    key.chmod(0o640)
    done = audit("--inventory", LOCAL, "--report-dir", str(reports), "--signing-key", str(key), "--quarterly")
    assert_one_line_usage_error(done, f"certaudit: --signing-key {key}: mode 0640 gives group or others access")
    assert not reports.exists() or not any(reports.rglob("*")), "no run directory started"


# --- what is sealed ----------------------------------------------------------------------------------------
def test_a_run_that_stopped_on_a_usage_error_is_not_sealed(tmp_path: Path) -> None:
    done = audit("--inventory", str(tmp_path / "missing.yml"), "--report-dir", str(tmp_path / "reports"))
    assert_one_line_usage_error(done, "does not exist")
    (run_dir,) = (tmp_path / "reports").iterdir()
    assert run_dir.name.endswith(".partial"), "a run that audited nothing never verifies"
    assert not (run_dir / "MANIFEST.sha256").exists()
    assert f"certaudit: the run did not complete (exit 4): not sealed, its files stay in {run_dir}" in done.stdout


def test_a_collect_only_run_is_not_sealed(tmp_path: Path) -> None:
    done = audit("--inventory", LOCAL, "--report-dir", str(tmp_path), "--collect-only")
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.endswith(".partial")


def test_a_complete_run_names_its_final_files(tmp_path: Path) -> None:
    """pytest-html and junitxml named `.partial` paths, which are gone once the run is sealed."""
    done = audit("--inventory", LOCAL, "--shard", "2/2", "--report-dir", str(tmp_path))  # an empty shard: no host
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = tmp_path.iterdir()
    assert not run_dir.name.endswith(".partial") and verify(run_dir).ok
    assert ".partial" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"certaudit: html report: {(run_dir / 'report.html').as_uri()}" in lines
    assert f"certaudit: junit xml: {run_dir / 'junit.xml'}" in lines
    assert f"certaudit: evidence: {run_dir / 'evidence.json'}" in lines


# --- certaudit merge: every part validated before anything is written ---------------------------------------
def _wrong_shapes() -> dict[str, Any]:
    def results_not_records(d: dict[str, Any]) -> None:
        d["results"] = [1]

    def no_start(d: dict[str, Any]) -> None:
        del d["run"]["started"]

    def entries_not_waivers(d: dict[str, Any]) -> None:
        d["waivers"]["entries"] = ["x"]

    def shard_as_text(d: dict[str, Any]) -> None:
        d["run"]["shard"] = "1/1"

    def result_without_nodeid(d: dict[str, Any]) -> None:
        del d["results"][0]["nodeid"]

    def hosts_as_text(d: dict[str, Any]) -> None:
        d["run"]["hosts_expected"] = "ab"  # iterated, it was hosts "a" and "b"

    def result_of_another_host(d: dict[str, Any]) -> None:
        d["results"][0]["host"] = "elsewhere"

    def finished_before_started(d: dict[str, Any]) -> None:
        d["run"]["finished"] = "2026-11-28T01:00:00+00:00"

    shapes = (results_not_records, no_start, entries_not_waivers, shard_as_text, result_without_nodeid, hosts_as_text,
              result_of_another_host, finished_before_started)  # fmt: skip
    return {f.__name__: f for f in shapes}


WRONG_SHAPES = _wrong_shapes()


@pytest.mark.parametrize("shape", sorted(WRONG_SHAPES))
def test_merge_refuses_a_part_of_the_wrong_shape(tmp_path: Path, shape: str) -> None:
    document = copy.deepcopy(evidence(["a"], (1, 1), 1, {}))
    WRONG_SHAPES[shape](document)
    part = tmp_path / "part"
    part.mkdir()
    (part / "evidence.json").write_text(json.dumps(document))
    write_manifest(part)
    assert verify(part).ok, "the manifest verifies: the part is still untrusted"
    with pytest.raises(MergeError, match=r"part/evidence.json: not valid certaudit evidence: "):
        merge_runs([part], tmp_path / "merged")
    assert not any(p.name.startswith("merged") for p in tmp_path.iterdir()), "nothing written"
    done = subprocess.run(
        [sys.executable, "-m", "certaudit.cli", "merge", str(part), "--out", str(tmp_path / "merged")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr  # "not merged" (a bad input), never 1 ("merged with findings")
    assert done.stderr.startswith("certaudit: ") and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_merge_refuses_an_unsafe_job_name(tmp_path: Path) -> None:
    part = write_run(tmp_path / "part", evidence(["a"], (1, 1), 1, {}))
    with pytest.raises(MergeError, match=r"^--job '\.\./x': expected a name"):
        merge_runs([part], tmp_path / "merged", job="../x")


def test_certaudit_diff_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "evidence.json"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "certaudit.cli", "diff", str(fifo), str(fifo)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 4 and done.stderr == f"certaudit: {fifo}: is a FIFO, not a regular file\n"
    assert stat.S_ISFIFO(fifo.stat().st_mode)
