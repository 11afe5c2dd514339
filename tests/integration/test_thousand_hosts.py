"""More hosts than file descriptors: every connection is closed once its host is done, so an audit of
1100 hosts runs under a limit of 1024 open files without one EMFILE.

The hosts are loopback addresses of this fleet's block (127.<77+id>.110.1 and up) where nothing
listens: each connection is refused at once, so no host needs to boot. Each host still costs a
real connection attempt, a pool worker and an error record, as an unreachable host does.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.fleet import fleet_address

REPO = Path(__file__).resolve().parents[2]


def inventory(path: Path, count: int, connection: str | None) -> dict[str, str]:
    """`count` hosts on refusing addresses; returns name -> address."""
    hosts = {f"h-{i:04d}": fleet_address(f"127.77.{110 + i // 250}.{1 + i % 250}") for i in range(count)}
    variables: dict[str, Any] = {"ansible_user": "root", "ansible_ssh_common_args": "-o StrictHostKeyChecking=no"}
    if connection:
        variables["ansible_connection"] = connection
    document = {"all": {"vars": variables, "hosts": {name: {"ansible_host": a} for name, a in hosts.items()}}}
    path.write_text(yaml.safe_dump(document))
    return hosts


def audit_under_limit(tmp_path: Path, count: int, connection: str | None, limit: int) -> tuple[dict[str, str], Any, str]:
    hosts = inventory(tmp_path / "inventory.yml", count, connection)

    def limited() -> None:
        # Soft and hard: the audit cannot raise its way out of the limit.
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "checks", "--inventory", str(tmp_path / "inventory.yml"), "-k", "KEY-01",
         "--evidence", str(tmp_path / "evidence.json"), "--connect-timeout", "5", "-p", "no:cacheprovider", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=600, preexec_fn=limited, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    return hosts, json.loads((tmp_path / "evidence.json").read_text()), output


@pytest.mark.parametrize(
    ("count", "connection", "limit", "refused"),
    [
        # The default client, in-process: 1100 hosts, 1024 files.
        (1100, None, 1024, "connect to host {address} port 22: Connection refused"),
        # OpenSSH, a process and three pipes a host while it runs: 200 hosts, 128 files (fewer hosts: each costs a fork).
        (200, "ssh", 128, "ssh: connect to host {address} port 22: Connection refused"),
    ],
    ids=["in-process-1100-hosts", "openssh-200-hosts"],
)
def test_more_hosts_than_file_descriptors(tmp_path: Path, count: int, connection: str | None, limit: int, refused: str) -> None:
    hosts, evidence, output = audit_under_limit(tmp_path, count, connection, limit)
    assert "Too many open files" not in output and "EMFILE" not in output
    records = {r["host"]: r for r in evidence["results"]}
    assert len(evidence["results"]) == count and sorted(records) == sorted(hosts)
    for name, address in hosts.items():
        record = records[name]
        assert (record["control"], record["outcome"]) == ("KEY-01", "error")
        assert record["message"] == f"host {name} ({address}): cannot connect: " + refused.format(address=address)
    assert evidence["run"]["hosts_expected"] == sorted(hosts)
    assert evidence["run"]["hosts_reached"] == []
    assert sorted(evidence["unreachable"]) == sorted(hosts)
