"""Unprivileged audits (issue 18): every control judges from facts the login could read, or ends in
`error` naming the path and the cause; never a pass or a fail on a fact it could not read.

The runbook's compliant host and four broken ones (tests/scenarios_unprivileged.py) are audited in
one run as root, as AUDITOR (in the service's group, no become), as AUDITOR with become (sudo may run
python3 as root without a password), and the compliant one as ASKER without become (no group) and
with become (sudo wants a password). A testinfra control of one's own (`host`) runs beside checks/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.fleet import Fleet
from tests.integration.audit_run import AuditRun, run_audit
from tests.scenarios_jobs import DRILL_VARS
from tests.scenarios_unprivileged import ASKER, AUDITOR, HOSTS

pytestmark = pytest.mark.fleet

CONTROLS = (
    "CRT-01", "CRT-02", "CRT-03", "CRT-04", "KEY-01", "KEY-02", "KEY-03", "LIVE-01", "LIVE-02",
    "MON-01", "MON-02", "REN-01", "REN-02", "REN-03", "REN-04", "REN-05", "DRL-01",
)  # fmt: skip
WHOAMI = "test_whoami"
WHOAMI_TEST = f"""
def {WHOAMI}(host):
    assert host.run("id -u").stdout.strip() == "0"
"""
LE = "/etc/letsencrypt"
ARCHIVE = f"{LE}/archive/stemedb.example.com"
CERT = "/etc/stemedb/tls/cert.pem"
KEY = "/etc/stemedb/tls/key.pem"
DENIED = "Permission denied"
# From the auditing machine (the endpoint, its /metrics): what the login can read does not enter.
SAME_AS_ROOT = ("CRT-03", "MON-01")
NOT_APPLICABLE = "not applicable"
# root's own cli.ini (behind /root, 0700) can replace the deploy hook or turn renewal-hooks/ off.
ROOT_CLI_INI = ("error", f"cannot lstat /root/.config/letsencrypt/cli.ini: {DENIED}: certbot reads its options there")


def _user_row(host: str) -> dict[str, tuple[str, str]]:
    """AUDITOR without become: it enters the service's TLS directory, not certbot's live/ and archive/,
    the users' crontabs, certbot's logs or the system journal."""
    row = {
        "CRT-01": ("pass", ""),
        "CRT-02": ("pass", ""),
        "CRT-04": ("error", f"cannot list {LE}/live: {DENIED}"),
        "KEY-01": ("error", f"cannot list {ARCHIVE}: {DENIED}"),
        "KEY-02": ("pass", ""),
        # The key's mode is read by stat; its bytes are closed (0600 stemedb), so whether it matches is unknown.
        "KEY-03": ("error", f"cannot derive the public key of {KEY}: {DENIED}"),
        "LIVE-01": ("pass", ""),
        # The start after the certificate changed proves it without the journal (the generated hosts).
        "LIVE-02": ("pass", ""),
        "MON-02": (NOT_APPLICABLE, ""),
        # certbot.timer's state is open to any account: one effective schedule proves it.
        "REN-01": ("pass", ""),
        "REN-02": ROOT_CLI_INI,
        "REN-03": ("pass", ""),
        "REN-04": ("pass", ""),
        # /var/log/letsencrypt does not exist on the generated hosts (seen through /var/log, 0755): as root's verdict.
        "REN-05": ("fail", "no renewal attempt is recorded"),
        "DRL-01": (NOT_APPLICABLE, ""),
    }
    if host == "compliant":
        # certbot wrote the certificate after the service started: only the journal can say it reloaded.
        row["LIVE-02"] = ("error", f"cannot read the system journal /var/log/journal/<machine-id>/system.journal: {DENIED}")
        row["REN-05"] = ("error", f"cannot read certbot's logs in /var/log/letsencrypt: {DENIED}")
        row["DRL-01"] = ("error", f"the drill renews as root, and commands run here as uid 2000 (ansible_user {AUDITOR}")
    if host == "timer-disabled":
        row["REN-01"] = ("error", f"cannot list /var/spool/cron/crontabs: {DENIED}: whether renewal is scheduled is unknown")
    if host == "key-0644":
        row["KEY-03"] = ("pass", "")  # a 0644 key is open to any account: the public half is derived
    if host == "rbe-missing":
        row["REN-03"] = ("fail", "renew_before_expiry is not set in")
    return row


def _plain_row() -> dict[str, tuple[str, str]]:
    """ASKER without become: not even the service's TLS directory (0750 stemedb)."""
    behind_tls = dict.fromkeys(
        ("CRT-01", "CRT-02", "CRT-04", "KEY-02", "KEY-03", "LIVE-01", "LIVE-02", "REN-04"),
        ("error", f"cannot lstat {CERT}: {DENIED}"),
    )
    return {
        **behind_tls,
        "KEY-01": ("error", f"cannot lstat {KEY}: {DENIED}"),
        "MON-02": (NOT_APPLICABLE, ""),
        "REN-01": ("pass", ""),
        "REN-02": ROOT_CLI_INI,
        "REN-03": ("pass", ""),
        "REN-05": ("error", f"cannot read certbot's logs in /var/log/letsencrypt: {DENIED}"),
        "DRL-01": (NOT_APPLICABLE, ""),
    }


SUDO_REFUSED = (
    f"no facts: sudo refused to run it as root for {ASKER} (ansible_become runs `sudo -n`, which never asks "
    "for a password): sudo: a password is required"
)
EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    **{f"{h}.user": _user_row(h) for h in HOSTS},
    "compliant.plain": _plain_row(),
    "compliant.asker": {
        **{c: ("error", SUDO_REFUSED) for c in CONTROLS if c not in ("MON-02", "DRL-01")},
        "MON-02": (NOT_APPLICABLE, ""),
        "DRL-01": (NOT_APPLICABLE, ""),
    },
}


def _inventory(fleet: Fleet, path: Path) -> Path:
    fleet.write_inventory(path, hosts=list(HOSTS))
    document = yaml.safe_load(path.read_text())
    hosts = document["all"]["hosts"]
    for name in HOSTS:
        hosts[f"{name}.user"] = {**hosts[name], "ansible_user": AUDITOR}
        hosts[f"{name}.become"] = {**hosts[name], "ansible_user": AUDITOR, "ansible_become": True}
    # The drill only where it cannot run: a real renewal of the root-audited host would change it.
    for name in ("compliant.user", "compliant.become"):
        hosts[name].update(DRILL_VARS)
    hosts["compliant.plain"] = {**hosts["compliant"], "ansible_user": ASKER}
    hosts["compliant.asker"] = {**hosts["compliant"], "ansible_user": ASKER, "ansible_become": True}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def unprivileged(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> AuditRun:
    out = tmp_path_factory.mktemp("unprivileged")
    mine = out / "mine"
    mine.mkdir()
    (mine / "test_mine.py").write_text(WHOAMI_TEST)
    inventory = _inventory(fleet, out / "inventory.yml")
    return run_audit(inventory, out, str(mine), "--connect-timeout", "10", "--renewal-drill")


def _record(run: AuditRun, host: str, control: str) -> dict[str, Any]:
    found = [r for r in run.evidence["results"] if r["host"] == host and r["control"].rsplit("::", 1)[-1] == control]
    assert len(found) == 1, f"{control}[{host}]: {len(found)} results\n{run.stdout[-3000:]}"
    record: dict[str, Any] = found[0]
    return record


CASES = [(h, c) for h in EXPECTED for c in CONTROLS]


@pytest.mark.parametrize(("host", "control"), CASES, ids=[f"{c}[{h}]" for h, c in CASES])
def test_unprivileged_verdict(unprivileged: AuditRun, host: str, control: str) -> None:
    record = _record(unprivileged, host, control)
    if control in SAME_AS_ROOT and control not in EXPECTED[host]:
        root = _record(unprivileged, host.split(".")[0], control)
        assert record["outcome"] == root["outcome"], record["message"]
        return
    outcome, says = EXPECTED[host][control]
    assert record["outcome"] == outcome, f"{control}[{host}]: {record['outcome']}, expected {outcome}\n{record['message']}"
    assert says in record["message"], f"{control}[{host}]: {says!r} not in\n{record['message']}"
    if outcome == "error":
        # The reason names the host, and the path and the cause (or sudo's refusal, or the login's uid).
        assert record["message"].startswith(f"host {host}: "), record["message"]
        assert (DENIED in says and "/" in says) or "sudo refused" in says or "uid 2000" in says


@pytest.mark.parametrize("name", HOSTS)
def test_become_judges_as_root(unprivileged: AuditRun, name: str) -> None:
    """With become, every control ends as root's audit of the same host, for the same reason."""
    for control in CONTROLS[:-1]:
        root, become = _record(unprivileged, name, control), _record(unprivileged, f"{name}.become", control)
        assert become["outcome"] == root["outcome"], f"{control}: {become['message']}"
        assert become["message"].replace(f"{name}.become", name) == root["message"], control


def test_drill_under_a_refused_sudo(unprivileged: AuditRun) -> None:
    """sudo grants the probe's python3 only: the drill's first command is refused, in one line, not judged."""
    record = _record(unprivileged, "compliant.become", "DRL-01")
    assert record["outcome"] == "error"
    assert record["message"] == (
        f"host compliant.become: the drill cannot run `openssl`: sudo refused to run it as root for {AUDITOR} "
        "(ansible_become runs `sudo -n`, which never asks for a password): sudo: a password is required"
    )


def test_testinfra_host_as_each_login(unprivileged: AuditRun) -> None:
    """testinfra's `host` runs as the login without become, and errors clearly when sudo refuses it."""
    assert _record(unprivileged, "compliant", WHOAMI)["outcome"] == "pass"
    assert _record(unprivileged, "compliant.user", WHOAMI)["outcome"] == "fail"  # it ran, as uid 2000
    refused = _record(unprivileged, "compliant.become", WHOAMI)
    assert refused["outcome"] == "error"
    assert "`id -u` did not run: sudo refused to run it as root for certaudit" in refused["message"]
    asker = _record(unprivileged, "compliant.asker", WHOAMI)
    assert asker["outcome"] == "error" and "sudo: a password is required" in asker["message"]
