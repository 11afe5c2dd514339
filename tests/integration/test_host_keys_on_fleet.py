"""Host keys on the fleet: a host whose key is unknown or changed is refused on every path, and costs no
other host anything; accept-new records the key; an explicit StrictHostKeyChecking=no proceeds; the
renewal drill is refused the same way.

Each inventory name below reaches a real fleet host through a known_hosts file of its own, so one audit
per client (OpenSSH, in-process) shows every case side by side.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import paramiko
import pytest
import yaml

from certaudit.errors import Undeterminable
from certaudit.inventory import target_for
from certaudit.jobs.drill import DrillSettings, run_drill
from tests.fleet.fleet import Fleet
from tests.integration.audit_run import run_audit

HOST = "compliant"  # the host every alias reaches
OTHER = "drill-ok"  # its key stands for "a different key" in known_hosts


def host_key(fleet: Fleet, name: str) -> paramiko.PKey:
    """The ed25519 key the host offers (both clients ask for ed25519 first), read off its own disk."""
    machine = fleet.hosts[name].machine
    assert machine is not None
    key_type, blob = (machine.upper / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))


def ssh_args(known_hosts: Path, strict: str | None) -> str:
    extra = f" -o StrictHostKeyChecking={strict}" if strict else ""
    return (
        f"-F /dev/null -o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR "
        f"-o IdentitiesOnly=yes{extra}"
    )


def write_inventory(fleet: Fleet, path: Path, connection: str, cases: dict[str, tuple[Path, str | None]]) -> Path:
    scenario = fleet.hosts[HOST].scenario
    hosts = {
        alias: {
            "ansible_host": fleet.hosts[HOST].address, "ansible_connection": connection,
            "ansible_ssh_common_args": ssh_args(known_hosts, strict), **scenario.inventory_vars,
        }
        for alias, (known_hosts, strict) in cases.items()
    }  # fmt: skip
    document = {"all": {"vars": {"ansible_user": "root", "ansible_ssh_private_key_file": str(fleet.key_path)}, "hosts": hosts}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize("connection", ["paramiko", "ssh"])
def test_unknown_and_changed_keys_are_refused_and_cost_no_other_host(fleet: Fleet, tmp_path: Path, connection: str) -> None:
    address = fleet.hosts[HOST].address
    key, other = host_key(fleet, HOST), host_key(fleet, OTHER)
    files = {name: tmp_path / f"{name}.known_hosts" for name in ("unknown", "changed", "known", "accept-new", "no")}
    files["changed"].write_text(f"{address} {other.get_name()} {other.get_base64()}\n")
    files["known"].write_text(f"{address} {key.get_name()} {key.get_base64()}\n")
    inventory = write_inventory(fleet, tmp_path / "inventory.yml", connection, {
        "hk-unknown": (files["unknown"], None),
        "hk-changed": (files["changed"], None),
        "hk-known": (files["known"], None),
        "hk-accept-new": (files["accept-new"], "accept-new"),
        "hk-no": (files["no"], "no"),
    })  # fmt: skip
    run = run_audit(inventory, tmp_path / "run")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for record in run.evidence["results"]:
        results.setdefault(record["host"], {})[record["control"]] = record
    offered = f"{address} port 22 offered an ssh-ed25519 key {key.fingerprint}"
    for alias, says in (("hk-unknown", "which no known_hosts file lists; refused"), ("hk-changed", "but known_hosts lists")):
        # Controls that do not apply to the host by its inventory (DRL-01 without the option, MON-02
        # outside the prometheus group) say so before any fact is asked for; every other one is an error.
        judged = {c: r for c, r in results[alias].items() if r["outcome"] != "not applicable"}
        assert len(judged) >= 10 and {"KEY-01", "REN-01", "LIVE-01"} <= set(judged), (alias, sorted(judged))
        for control, record in judged.items():
            assert record["outcome"] == "error", (alias, control, record["outcome"], record["message"])
            assert f"host {alias} ({address}): cannot connect: host key verification failed: {offered}" in record["message"]
            assert says in record["message"], record["message"]
    # The changed key's refusal names the key known_hosts holds.
    changed = next(iter(results["hk-changed"].values()))["message"]
    assert (other.fingerprint in changed) if connection == "paramiko" else (f"{files['changed']}:1" in changed)
    # The refused names cost the others nothing: each is judged exactly as the host is.
    outcomes = {alias: {c: r["outcome"] for c, r in results[alias].items()} for alias in ("hk-known", "hk-accept-new", "hk-no")}
    assert outcomes["hk-known"] == outcomes["hk-accept-new"] == outcomes["hk-no"]
    assert outcomes["hk-known"]["KEY-01"] == outcomes["hk-known"]["REN-01"] == "pass"
    assert not any("host key" in r["message"] for a in outcomes for r in results[a].values())
    # accept-new recorded the key it was offered, as OpenSSH does; nothing else was written anywhere.
    recorded = [line.split() for line in files["accept-new"].read_text().splitlines()]
    assert [words[1:] for words in recorded] == [[key.get_name(), key.get_base64()]]
    assert recorded[0][0] == address or recorded[0][0].startswith("|1|")  # ssh may hash the name
    assert not files["unknown"].exists()
    assert files["changed"].read_text() == f"{address} {other.get_name()} {other.get_base64()}\n"


def test_the_drill_refuses_an_unknown_key(fleet: Fleet, tmp_path: Path) -> None:
    """The drill connects as the probe does: an unknown key ends it before certbot runs."""
    address = fleet.hosts[OTHER].address
    key = host_key(fleet, OTHER)
    before = fleet.ssh(OTHER, "openssl x509 -in /etc/letsencrypt/live/stemedb.example.com/cert.pem").stdout
    for connection in ("paramiko", "ssh"):
        target = target_for(OTHER, {
            "ansible_host": address, "ansible_connection": connection, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(fleet.key_path),
            "ansible_ssh_common_args": ssh_args(tmp_path / "known_hosts", None),
            **fleet.hosts[OTHER].scenario.inventory_vars,
        })  # fmt: skip
        with pytest.raises(Undeterminable) as caught:
            run_drill(target, DrillSettings(True, connect_timeout=10, host_budget=60))
        assert str(caught.value).startswith(
            f"host {OTHER} ({address}): the drill cannot connect: host key verification failed: {address} port 22 "
            f"offered an ssh-ed25519 key {key.fingerprint}, which no known_hosts file lists; refused"
        ), str(caught.value)
    after = fleet.ssh(OTHER, "openssl x509 -in /etc/letsencrypt/live/stemedb.example.com/cert.pem").stdout
    assert after == before  # nothing renewed
