"""A pass is proof, on the fleet: directories larger than the probe once listed are judged whole,
and a source the audit login could not read ends in `error`, never in a finding or a pass.

One real audit (pytest over checks/) of the two trust hosts (tests/scenarios_trust.py) and of one
more inventory name for the hooks host that logs in as the unprivileged `auditor`.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.fleet.fleet import Fleet
from tests.integration.audit_run import AuditRun, Expect, assert_verdict, run_audit
from tests.scenarios_trust import ARCHIVE, ARCHIVE_HOST, AUDITOR, HOOK_FILES, HOOKS_DIR, HOOKS_HOST, RENEWALS

pytestmark = pytest.mark.fleet

DENIED = "trust-crontab-denied"  # HOOKS_HOST again, logged in as the auditor
RELOAD_HOOK = f"{HOOKS_DIR}/reload-stemedb.sh"
OPEN_KEYS = sorted(f"{ARCHIVE}/privkey{i}.pem" for i in range(1, RENEWALS + 1))


def _every_archived_key_named(record: dict[str, Any]) -> None:
    observed = record["observed"]
    assert observed["archived_key_count"] == RENEWALS
    assert observed["open_archived_keys"] == OPEN_KEYS and observed["open_archived_key_count"] == RENEWALS
    assert record["findings"] == [f"{key} is mode 0644: group or others can read an archived key" for key in OPEN_KEYS]


def _real_hook_found_among_10k(record: dict[str, Any]) -> None:
    observed = record["observed"]
    assert observed["reloading_hooks"] == [RELOAD_HOOK]
    assert observed["skipped_by_certbot"] == HOOK_FILES
    runs = [h for h in observed["hooks"] if h["certbot_runs_it"]]
    assert runs == [
        {"path": RELOAD_HOOK, "mode": "0755", "uid": 0, "certbot_runs_it": True, "reload_line": runs[0]["reload_line"]}
    ]
    assert runs[0]["reload_line"] == "systemctl reload stemedb-api"
    assert len(observed["hooks"]) == 21  # the hook certbot runs, and the first 20 it skips: the rest counted


def _lineage_judged(record: dict[str, Any]) -> None:
    assert record["observed"]["service_lineage"] == "stemedb.example.com"


EXPECTED: dict[tuple[str, str], Expect] = {
    # 280 names in archive/<domain>/: every privkey*.pem is stat'ed, and all 70 are open.
    (ARCHIVE_HOST, "KEY-01"): Expect(
        "fail", (f"{ARCHIVE}/privkey70.pem is mode 0644", "group or others can read an archived key"), _every_archived_key_named
    ),
    (ARCHIVE_HOST, "CRT-04"): Expect("pass", evidence=_lineage_judged),
    (ARCHIVE_HOST, "REN-02"): Expect("pass"),
    # 10,001 names in renewal-hooks/deploy: the real hook (sorted last) is found, the data files skipped unread.
    (HOOKS_HOST, "REN-02"): Expect("pass", evidence=_real_hook_found_among_10k),
    (HOOKS_HOST, "KEY-01"): Expect("pass"),
    (HOOKS_HOST, "REN-01"): Expect("pass"),
    # The auditor cannot list the users' crontabs, but may ask systemd: the active timer proves the
    # schedule (a host whose only schedule is behind the closed crontabs ends in error:
    # test_unprivileged_on_fleet.py, REN-01[timer-disabled.user]).
    (DENIED, "REN-01"): Expect("pass"),
}


@pytest.fixture(scope="module")
def trust_audit(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> AuditRun:
    out = tmp_path_factory.mktemp("trust")
    inventory = fleet.write_inventory(out / "inventory.yml", hosts=[ARCHIVE_HOST, HOOKS_HOST])
    document = yaml.safe_load(inventory.read_text())
    document["all"]["hosts"][DENIED] = {"ansible_host": fleet.hosts[HOOKS_HOST].address, "ansible_user": AUDITOR}
    inventory.write_text(yaml.safe_dump(document, sort_keys=False))
    return run_audit(inventory, out, "--connect-timeout", "10")


@pytest.mark.parametrize(("host", "control"), list(EXPECTED), ids=[f"{c}[{h}]" for h, c in EXPECTED])
def test_trust_verdict(fleet: Fleet, trust_audit: AuditRun, host: str, control: str) -> None:
    record = trust_audit.result(control, host)
    address = fleet.hosts[HOOKS_HOST if host == DENIED else host].address
    assert_verdict(record, EXPECTED[(host, control)], host, control, address)


def test_no_denied_source_became_a_finding(trust_audit: AuditRun) -> None:
    """Whatever the auditor could not read, no control of its run says it found something absent."""
    failed = [r for r in trust_audit.evidence["results"] if r["host"] == DENIED and r["outcome"] == "fail"]
    absent = [f"{r['control']}: {r['message']}" for r in failed if "no cron entry" in r["message"]]
    assert absent == []
