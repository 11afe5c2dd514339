"""The scheduled run's templates: GitHub Actions and GitLab CI workflows (one job, or shards then a
merge), and the bastion's systemd units.

The workflows are checked for what a nightly audit needs (a schedule, `make audit`, the report
directory kept as an artifact even when the audit fails); the units by systemd's own
`systemd-analyze verify`, and the service's command line by running it (collect-only) here.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CRON_RE = re.compile(r"^\S+ \S+ \S+ \S+ \S+$")


def load(path: str) -> Any:
    return yaml.safe_load((REPO / path).read_text())


def test_github_actions_nightly_workflow() -> None:
    workflow = load("ci/github-actions/certaudit-nightly.yml")
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert CRON_RE.fullmatch(triggers["schedule"][0]["cron"])
    assert "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    (audit,) = [s for s in steps if "make audit" in s.get("run", "")]
    assert "JOB=nightly" in audit["run"] and "REPORTS=reports" in audit["run"]
    (keep,) = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert keep["if"] == "always()"  # the evidence of a failing audit matters most
    assert keep["with"]["path"] == "reports/"
    assert steps.index(keep) > steps.index(audit)
    # Secrets reach the shell through the environment, never pasted into a command line.
    assert all("${{ secrets." not in s.get("run", "") for s in steps)


def test_gitlab_ci_nightly_job() -> None:
    (job,) = load("ci/gitlab/certaudit-nightly.gitlab-ci.yml").values()
    assert {"if": '$CI_PIPELINE_SOURCE == "schedule"'} in job["rules"]
    assert any("make audit" in line and "JOB=nightly" in line for line in job["script"])
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"
    assert artifacts["paths"] == ["reports/"]
    assert artifacts["reports"]["junit"] == "reports/*/junit.xml"


def test_github_actions_sharded_workflow_audits_every_shard_then_merges() -> None:
    workflow = load("ci/github-actions/certaudit-nightly-sharded.yml")
    shards = int(workflow["env"]["SHARDS"])
    audit, merge = workflow["jobs"]["audit"], workflow["jobs"]["merge"]
    # One job a shard, 1..n, all run to their end even when one finds something.
    assert audit["strategy"]["matrix"]["shard"] == list(range(1, shards + 1))
    assert audit["strategy"]["fail-fast"] is False
    (run,) = [s for s in audit["steps"] if "make audit" in s.get("run", "")]
    assert "--shard ${{ matrix.shard }}/$SHARDS" in run["run"] and "REPORTS=reports" in run["run"]
    (keep,) = [s for s in audit["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert keep["if"] == "always()" and keep["with"]["path"] == "reports/"
    # The merge waits for every shard, runs whatever they found, and reads each artifact's run directory.
    assert merge["needs"] == "audit" and merge["if"] == "always()"
    (fetch,) = [s for s in merge["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact@")]
    assert fetch["with"]["path"] == "shards/"
    assert fetch["with"]["pattern"].startswith("certaudit-shard-") and keep["with"]["name"].startswith("certaudit-shard-")
    (merging,) = [s for s in merge["steps"] if "certaudit merge" in s.get("run", "")]
    assert "certaudit merge shards/*/*/ --out" in merging["run"]
    (kept,) = [s for s in merge["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert kept["if"] == "always()" and kept["with"]["path"] == "reports/"
    for job in (audit, merge):
        assert all("${{ secrets." not in s.get("run", "") for s in job["steps"])


def test_gitlab_ci_sharded_jobs_audit_every_shard_then_merge() -> None:
    jobs = load("ci/gitlab/certaudit-nightly-sharded.gitlab-ci.yml")
    shard, merge = jobs["certaudit-shard"], jobs["certaudit-merge"]
    assert isinstance(shard["parallel"], int) and shard["parallel"] > 1
    (run,) = [line for line in shard["script"] if "make audit" in line]
    # Each shard job writes under its own directory, so the merge finds shards/<i>/<run directory>/.
    assert "--shard $CI_NODE_INDEX/$CI_NODE_TOTAL" in run and 'REPORTS="shards/$CI_NODE_INDEX"' in run
    assert shard["artifacts"]["when"] == "always" and shard["artifacts"]["paths"] == ["shards/"]
    assert merge["needs"] == [{"job": "certaudit-shard", "artifacts": True}]
    assert all(rule["when"] == "always" for rule in merge["rules"])
    assert any("certaudit merge shards/*/*/ --out" in line for line in merge["script"])
    assert merge["artifacts"]["when"] == "always" and merge["artifacts"]["paths"] == ["reports/"]
    assert merge["artifacts"]["reports"]["junit"] == "reports/*/junit.xml"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((REPO / "deploy" / "systemd" / name).read_text())
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    for name in ("certaudit.service", "certaudit.timer"):
        text = (REPO / "deploy" / "systemd" / name).read_text()
        # verify insists that ExecStart's program exists: point it at this environment's pytest.
        (tmp_path / name).write_text(text.replace("/opt/certaudit/.venv/bin/pytest", str(VENV_BIN / "pytest")))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "certaudit.service"), str(tmp_path / "certaudit.timer")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    calendar = unit("certaudit.timer")["Timer"]["OnCalendar"]
    assert subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, timeout=60).returncode == 0


def test_the_timer_runs_the_service_nightly_and_catches_up() -> None:
    timer = unit("certaudit.timer")
    assert timer["Timer"]["Unit"] == "certaudit.service"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    service = unit("certaudit.service")["Service"]
    assert (service["Type"], service["User"]) == ("oneshot", "certaudit")


def test_the_services_command_line_is_one_certaudit_accepts(tmp_path: Path) -> None:
    """ExecStart, with its ${VARIABLES} and paths pointed at this machine, runs (collect-only)."""
    service = unit("certaudit.service")["Service"]
    variables = dict(v.split("=", 1) for v in service["Environment"].splitlines() if "=" in v)
    variables["CERTAUDIT_INVENTORY"] = str(REPO / "inventories" / "local.yml")
    variables["CERTAUDIT_TEXTFILE"] = str(tmp_path / "certaudit.prom")
    command = re.sub(r"\$\{(\w+)\}", lambda m: variables[m.group(1)], service["ExecStart"])
    argv = shlex.split(command.replace("/var/lib/certaudit/reports", str(tmp_path / "reports")))
    assert argv[0] == "/opt/certaudit/.venv/bin/pytest"
    done = subprocess.run(
        [str(VENV_BIN / "pytest"), *argv[1:], "--collect-only"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "KEY-01[localhost]" in done.stdout
