"""Hostile content, faults, secrets and read-only, proven by one full audit of the whole fleet.

One real audit (pytest over checks/, with --report-dir, as `make audit` runs it) judges every booted
fleet host, the runbook hosts among them, plus the hardening cases of tests/scenarios_hardening.py:
hostile files (each an alias of `hostile-files`), an unprivileged auditor, hostile inventory values,
two stalled sshds and two hostile TLS endpoints (listeners this module runs), and a host killed
while it is being probed. Around it, every host's filesystem is hashed (from the machine, over its
overlay's upper directory: the only place a write can land) before and after.

Every fault must end within its bound: the audit subprocess has a hard timeout, and each error
names the bound that ended it. No timing is asserted beyond that.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.fleet import machine
from tests.fleet.fleet import SSH_OPTIONS, Fleet, fleet_address
from tests.integration.audit_run import Expect
from tests.integration.test_controls_on_fleet import CONTROLS
from tests.integration.test_controls_on_fleet import expected as runbook_expected
from tests.scenarios import RUNBOOK
from tests.scenarios_hardening import (
    ALIASES,
    AUDITOR,
    CANARY,
    CRON,
    DIES,
    HOSTILE,
    OTHER_KEY_PEMS,
    PAYLOAD,
    SHIM_SLEEP,
    SLOW,
    STALL_BANNER_ADDRESS,
    STALL_KEX_ADDRESS,
    TLS_GARBAGE_PORT,
    TLS_STALL_PORT,
)
from tests.unit.test_report_html import with_details

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
CONNECT_TIMEOUT = 5
HOST_BUDGET = 45
AUDIT_TIMEOUT = 300  # the hard bound on the whole audit: a fault that is not bounded fails here
# Where a read-only audit may still leave traces: runtime state and logs (sshd's login records).
NOT_HASHED = ("run", "tmp", "var/log", "var/lib/systemd", "proc", "sys", "dev")
PASSWORD = "hunter2-correct-horse-battery-staple"
API_TOKEN = "tok_live_4242424242424242deadbeef"
PRIVATE_KEY_MARKER = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
CRASH = "certaudit could not judge this control"
CERTBOTS_OWN = ("etc/letsencrypt", "var/lib/letsencrypt")  # where certbot locks and keeps its state
ENV_PAYLOAD = f"$(touch${{IFS}}{CANARY});`touch${{IFS}}{CANARY}`|touch${{IFS}}{CANARY}&&ünïcødé☃"


# --- listeners standing in for hostile servers -------------------------------------------------------
class Listener:
    """A TCP server on (address, port) that misbehaves as told: `silent` accepts and never sends;
    `banner` sends an SSH banner, then nothing; `garbage` answers whatever it is sent with bytes
    that are not TLS, then closes."""

    def __init__(self, address: str, port: int, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.create_server((address, port), reuse_port=False)
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, name=f"listener-{address}:{port}", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)
            with contextlib.suppress(OSError):
                if self.behaviour == "banner":
                    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 certaudit-stall\r\n")
                elif self.behaviour == "garbage":
                    conn.settimeout(5)
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + bytes(range(256)) * 8)
                    conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()
        for conn in self.connections:
            conn.close()


# --- the host that dies mid-probe ------------------------------------------------------------------------
def _probe_waiting(fleet: Fleet) -> bool:
    """Whether the dies-mid-probe host's python3 shim holds a probe (its `sleep` runs in the host's cgroup)."""
    for directory in machine.cgroup_dirs(fleet.cgroup_group, DIES):
        for procs in directory.rglob("cgroup.procs") if directory.is_dir() else ():
            with contextlib.suppress(OSError, ValueError):
                for pid in procs.read_text().split():
                    if Path(f"/proc/{pid}/cmdline").read_bytes() == f"sleep\0{SHIM_SLEEP}\0".encode():
                        return True
    return False


def _kill_during_probe(fleet: Fleet, killed: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        if _probe_waiting(fleet):
            # SIGKILL to the container and everything in it, nspawn included: the host dies at once.
            machine.kill_cgroup(fleet.cgroup_group, DIES)
            killed.set()
            return
        stop.wait(0.1)


# --- filesystem snapshots -----------------------------------------------------------------------------
Entry = tuple[int, int, int, int, int, int, str]


def snapshot(upper: Path) -> dict[str, Entry]:
    """Every path a write could have landed on: type, mode, owner, size, mtime and content hash."""
    found: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        relative = os.path.relpath(dirpath, upper)
        dirnames[:] = [d for d in dirnames if os.path.normpath(os.path.join(relative, d)) not in NOT_HASHED]
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(path)
            else:
                digest = ""
            found[os.path.normpath(os.path.join(relative, name))] = (
                stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, digest
            )  # fmt: skip
    return found


def snapshots(fleet: Fleet, names: list[str]) -> dict[str, dict[str, Entry]]:
    machines = {name: fleet.hosts[name].machine for name in names}
    return {name: snapshot(m.upper) for name, m in machines.items() if m is not None}


# --- the run ----------------------------------------------------------------------------------------------
@dataclass
class HardenedRun:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path
    evidence: dict[str, Any]
    before: dict[str, dict[str, Entry]]
    after: dict[str, dict[str, Entry]]
    killed: bool
    canary_on_hosts: dict[str, str]
    private_keys: dict[str, bytes]  # where -> PEM, every private key the fleet holds
    inventory: Path
    window: tuple[float, float]  # when the audit ran (epoch seconds, the hosts' clock too)

    def result(self, control: str, host: str) -> dict[str, Any]:
        matches = [r for r in self.evidence["results"] if r["control"] == control and r["host"] == host]
        assert len(matches) == 1, f"{control}[{host}]: {len(matches)} results\n{self.stdout[-3000:]}"
        record: dict[str, Any] = matches[0]
        return record


def _write_inventory(fleet: Fleet, path: Path, key_copy: Path) -> None:
    booted = [s.name for s in fleet.scenarios if s.booted]
    fleet.write_inventory(path, hosts=[*booted, "down"])
    document = yaml.safe_load(path.read_text())
    hosts = document["all"]["hosts"]
    for alias, spec in ALIASES.items():
        address = fleet.hosts[spec.host].address if spec.host else fleet_address(spec.address or "")
        hosts[alias] = {"ansible_host": address, **spec.variables}
    # The fleet's own key under a name that is a shell payload, and an ssh option carrying one.
    hosts["inv-meta-key-file"] = {
        "ansible_host": fleet.hosts[HOSTILE].address,
        "ansible_ssh_private_key_file": str(key_copy),
        # ssh splits SetEnv's value on blanks and quotes itself: the payload comes without them.
        "ansible_ssh_common_args": shlex.join([*SSH_OPTIONS, "-o", f"SetEnv=LC_CERTAUDIT={ENV_PAYLOAD}"]),
    }
    # Secrets an inventory may well hold: no file the run writes, and nothing it prints, may show them.
    document["all"]["vars"].update(
        db_password=PASSWORD,
        api_token=API_TOKEN,
        vault_tls_private_key=OTHER_KEY_PEMS[0].decode(),
        ansible_become_password=PASSWORD,
    )
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def _private_keys(fleet: Fleet) -> dict[str, bytes]:
    keys = {"fleet ssh key": fleet.key_path.read_bytes(), "key pasted as a certificate": OTHER_KEY_PEMS[0]}
    for name, host in fleet.hosts.items():
        if host.machine is None:
            continue
        upper = host.machine.upper
        candidates = [
            *upper.glob("etc/ssh/ssh_host_*_key"),
            *upper.glob("etc/stemedb/tls/key.pem"),
            *upper.glob("etc/letsencrypt/archive/*/privkey*.pem"),
        ]
        for path in candidates:
            if path.is_file() and not path.is_symlink():
                keys[f"{name}:{path.relative_to(upper)}"] = path.read_bytes()
    return keys


@pytest.fixture(scope="module")
def hardened(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> HardenedRun:
    work = tmp_path_factory.mktemp("hardening")
    key_copy = work / f"keys {PAYLOAD}" / f"id {PAYLOAD}.key"  # the payload's slashes make it a few directories deep
    key_copy.parent.mkdir(parents=True)
    shutil.copy(fleet.key_path, key_copy)
    key_copy.chmod(0o600)
    inventory = work / "inventory.yml"
    _write_inventory(fleet, inventory, key_copy)
    hashed = [s.name for s in fleet.scenarios if s.booted and s.name != DIES]
    hostile_address = fleet.hosts[HOSTILE].address
    listeners = [
        Listener(fleet_address(STALL_BANNER_ADDRESS), 22, "silent"),
        Listener(fleet_address(STALL_KEX_ADDRESS), 22, "banner"),
        Listener(hostile_address, TLS_STALL_PORT, "silent"),
        Listener(hostile_address, TLS_GARBAGE_PORT, "garbage"),
    ]
    killed, stop = threading.Event(), threading.Event()
    killer = threading.Thread(target=_kill_during_probe, args=(fleet, killed, stop), daemon=True)
    reports = work / "reports"
    try:
        before = snapshots(fleet, hashed)
        began = time.time()
        killer.start()
        argv = [
            sys.executable, "-m", "pytest", "checks", "--inventory", str(inventory), "--report-dir", str(reports),
            "--connect-timeout", str(CONNECT_TIMEOUT), "--host-budget", str(HOST_BUDGET), "-p", "no:cacheprovider",
        ]  # fmt: skip
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=AUDIT_TIMEOUT, stdin=subprocess.DEVNULL)
        ended = time.time()
        after = snapshots(fleet, hashed)
    finally:
        stop.set()
        killer.join(timeout=10)
        for listener in listeners:
            listener.close()
        dead = fleet.hosts[DIES].machine
        if dead is not None:
            dead.stop(grace_s=1)
    canary = {
        name: fleet.ssh(name, f"ls -d {CANARY} 2>&1 || true", check=False).stdout.strip()
        for name in hashed
        if fleet.hosts[name].machine is not None
    }
    (run_dir,) = [p for p in reports.iterdir() if not p.name.endswith(".partial")]
    evidence = json.loads((run_dir / "evidence.json").read_text())
    return HardenedRun(
        done.returncode, done.stdout, done.stderr, run_dir, evidence, before, after, killed.is_set(), canary,
        _private_keys(fleet), inventory, (began, ended),
    )  # fmt: skip


# --- what each hardening case must conclude -------------------------------------------------------------
PASS = Expect("pass")


def fails(*says: str) -> Expect:
    return Expect("fail", says)


# root's cli.ini, behind /root (0700): it can replace the deploy hook, so REN-02 is unknown to another account.
ROOT_CLI_INI_DENIED = "cannot lstat /root/.config/letsencrypt/cli.ini: Permission denied: certbot reads its options there"


def errs(*says: str) -> Expect:
    return Expect("error", says)


def _noted(record: dict[str, Any], note: str) -> None:
    assert any(note in n for n in record["notes"]), record["notes"]


def _cert_unusable(case: str, why: str) -> dict[str, Expect]:
    said = f"the service's certificate is unusable: /srv/hostile/{case}/cert.pem: {why}"
    return {"CRT-01": fails(said), "LIVE-01": fails(said)}


def _not_a_file(case: str, kind: str) -> dict[str, Expect]:
    cert = f"/srv/hostile/{case}/cert.pem is a {kind}"
    key = f"/srv/hostile/{case}/key.pem is a {kind}"
    return {
        "KEY-01": fails(f"the service's key: {key}"),
        "KEY-02": fails(f"the service's certificate: {cert}"),
        "CRT-01": fails(f"the service's certificate: {cert}"),
        "LIVE-01": fails(f"the service's certificate: {cert}"),
    }


def _conf(case: str) -> str:
    return f"/srv/hostile/{case}/renewal/stemedb.example.com.conf"


TEN_MB = "file is 10485760 bytes, over the 1048576-byte read limit"
DENIED_CERT = "cannot read /srv/hostile/unreadable/cert.pem: Permission denied"
EXPECTED: dict[str, dict[str, Expect]] = {
    "cert-empty": _cert_unusable("cert-empty", "empty file"),
    "cert-truncated": _cert_unusable(
        "cert-truncated", "truncated PEM: BEGIN CERTIFICATE at line 1 has no matching END CERTIFICATE"
    ),
    "cert-der": _cert_unusable("cert-der", "DER, not PEM: the file is binary ASN.1"),
    "cert-binary": _cert_unusable("cert-binary", "no PEM certificate found"),
    # Several blocks, text between them: the first certificate is judged (60 days left), and it is not the one served.
    "cert-several": {"LIVE-01": fails("was not reloaded after the certificate changed")},
    # A name cryptography warns about is shown as unparsable, and judging goes on: 60 days left.
    "cert-bad-name": {
        "CRT-01": Expect("pass", evidence=lambda r: _subject_starts(r, "unparsable (Attribute's length must be")),
        "LIVE-01": fails("was not reloaded after the certificate changed"),
    },
    "cert-is-key": {
        c: fails(
            "/srv/hostile/cert-is-key/cert.pem: holds a private key (EC PRIVATE KEY block at line 1): its bytes stay on the host"
        )
        for c in ("CRT-01", "LIVE-01")
    },
    "cert-is-der-key": {
        c: fails("/srv/hostile/cert-is-der-key/cert.pem: looks like a DER private key") for c in ("CRT-01", "LIVE-01")
    },
    "cert-garbage-10mb": {c: fails(f"/srv/hostile/cert-garbage-10mb/cert.pem: {TEN_MB}") for c in ("CRT-01", "LIVE-01")},
    "loop": _not_a_file("loop", "symlink loop"),
    "directory": _not_a_file("directory", "directory, not a regular file"),
    "fifo": _not_a_file("fifo", "fifo, not a regular file"),
    "le-conf-fifo": {"REN-03": fails(f"{_conf('le-conf-fifo')} is a fifo, not a regular file: certbot manages no lineage")},
    "le-conf-binary": {"REN-03": fails(f"certbot cannot read its renewal conf: {_conf('le-conf-binary')}: not UTF-8")},
    "le-conf-10mb": {c: errs(f"cannot read {_conf('le-conf-10mb')}: {TEN_MB}") for c in ("REN-02", "REN-03")},
    "le-conf-loop": {"REN-03": fails(f"{_conf('le-conf-loop')} is a symlink loop")},
    "le-conf-dir": {"REN-03": fails(f"{_conf('le-conf-dir')} is a directory, not a regular file")},
    "le-hook-10mb": {
        "REN-02": errs(
            "cannot read /srv/hostile/le-hook-10mb/renewal-hooks/deploy/big: "
            "file is 10485760 bytes, over the 65536-byte read limit"
        )
    },
    # An auditor who may not enter the TLS directory: every fact behind it is an error, with the reason.
    "denied-tls-dir": {
        # certbot.timer's state is open to any account (systemctl show): one effective schedule proves it.
        "REN-01": PASS,
        "KEY-01": errs("host denied-tls-dir: cannot lstat /etc/stemedb/tls/key.pem: Permission denied"),
        "KEY-02": errs("host denied-tls-dir: cannot lstat /etc/stemedb/tls/cert.pem: Permission denied"),
        "CRT-01": errs("host denied-tls-dir: cannot lstat /etc/stemedb/tls/cert.pem: Permission denied"),
        "LIVE-01": errs("host denied-tls-dir: cannot lstat /etc/stemedb/tls/cert.pem: Permission denied"),
        "REN-02": errs(ROOT_CLI_INI_DENIED),
    },
    # One who may stat the certificate but not read it, nor list certbot's archive.
    "denied-cert-read": {
        "REN-01": PASS,
        "REN-02": errs(ROOT_CLI_INI_DENIED),
        "KEY-01": errs("cannot list /etc/letsencrypt/archive/stemedb.example.com: Permission denied"),
        "CRT-01": errs(DENIED_CERT),
        "LIVE-01": errs(DENIED_CERT),
    },
    "tls-stall": {"LIVE-01": errs("no TLS handshake from {hostile}:" + f"{TLS_STALL_PORT} within {CONNECT_TIMEOUT} s")},
    "tls-garbage": {
        "LIVE-01": fails("the endpoint serves no certificate: TLS handshake with {hostile}:" + f"{TLS_GARBAGE_PORT} failed")
    },
    # certaudit's own SSH client bounds the banner and the key exchange by the connect timeout.
    "ssh-stall-banner": dict.fromkeys(CONTROLS, errs("host ssh-stall-banner ({address}): cannot connect: ")),
    "ssh-stall-kex": dict.fromkeys(CONTROLS, errs("host ssh-stall-kex ({address}): cannot connect: ")),
    # OpenSSH's ConnectTimeout covers the banner; in the key exchange, certaudit's keepalive bound ends it
    # (ServerAliveInterval=5 x 2; the inventory's LogLevel=ERROR silences ssh's own "timed out").
    "ssh-stall-banner-openssh": dict.fromkeys(
        CONTROLS,
        errs("host ssh-stall-banner-openssh ({address}): cannot connect:", "Connection timed out during banner exchange"),
    ),
    "ssh-stall-kex-openssh": dict.fromkeys(CONTROLS, errs("host ssh-stall-kex-openssh ({address}): cannot connect: ")),
    # A session that never answers: the per-host budget ends the wait, whichever the client.
    SLOW: dict.fromkeys(CONTROLS, errs(f"host {SLOW}: no facts within the per-host budget of {HOST_BUDGET} s")),
    "slow-probe-openssh": dict.fromkeys(
        CONTROLS, errs(f"host slow-probe-openssh: no facts within the per-host budget of {HOST_BUDGET} s")
    ),
    "inv-meta-le-dir": {
        "REN-02": fails(f"no deploy hook: nothing in /srv/nowhere {PAYLOAD}/renewal-hooks/deploy (missing)"),
        "REN-03": fails(f"/srv/nowhere {PAYLOAD}/renewal/stemedb.example.com.conf does not exist"),
    },
    # Its active timer proves renewal is scheduled; the cron.d file it could not read is noted, not judged.
    # But every line that renews must reload, and one could be in that file: REN-02 cannot prove it.
    CRON: {
        "REN-01": Expect(
            "pass",
            evidence=lambda r: _noted(r, f"not read, not needed for this verdict: cannot read /etc/cron.d/junk-10mb: {TEN_MB}"),
        ),
        "REN-02": errs(
            f"cannot read /etc/cron.d/junk-10mb: {TEN_MB}: a command line that renews from there could run hooks that do not "
            "reload stemedb-api"
        ),
    },
    DIES: dict.fromkeys(CONTROLS, errs("host dies-mid-probe ({address}): the connection was lost before the probe finished")),
}
HARDENING_HOSTS = [*ALIASES, "inv-meta-key-file", HOSTILE, CRON, DIES, SLOW]
CASES = [(h, c) for h in HARDENING_HOSTS for c in CONTROLS]
RUNBOOK_CASES = [(s.name, c) for s in RUNBOOK for c in CONTROLS]


def _check(run: HardenedRun, fleet: Fleet, host: str, control: str, want: Expect) -> dict[str, Any]:
    record = run.result(control, host)
    assert record["outcome"] == want.outcome, (
        f"{control}[{host}]: {record['outcome']}, expected {want.outcome}\n{record['message']}"
    )
    address = fleet.hosts[host].address if host in fleet.hosts else None
    if host in ALIASES and ALIASES[host].host is None:
        address = fleet_address(ALIASES[host].address or "")
    for fragment in (f.replace("{address}", str(address)).replace("{hostile}", fleet.hosts[HOSTILE].address) for f in want.says):
        assert fragment in record["message"], f"{control}[{host}]: {fragment!r} not in message:\n{record['message']}"
    if want.evidence is not None:
        want.evidence(record)
    return record


def _subject_starts(record: dict[str, Any], text: str) -> None:
    assert record["observed"]["certificate"]["subject"].startswith(text), record["observed"]


@pytest.mark.parametrize(("host", "control"), CASES, ids=[f"{c}[{h}]" for h, c in CASES])
def test_hostile_case_outcome(hardened: HardenedRun, fleet: Fleet, host: str, control: str) -> None:
    """Each hostile case ends in its precise failure or error; everything else about the host still passes."""
    _check(hardened, fleet, host, control, EXPECTED.get(host, {}).get(control, PASS))


@pytest.mark.parametrize(("host", "control"), RUNBOOK_CASES, ids=[f"{c}[{h}]" for h, c in RUNBOOK_CASES])
def test_runbook_hosts_judged_as_usual(hardened: HardenedRun, fleet: Fleet, host: str, control: str) -> None:
    """The faults in the same audit touch no other host's result: the runbook hosts end as in their own audit."""
    _check(hardened, fleet, host, control, runbook_expected(host, control))


def test_no_control_crashed_and_no_traceback(hardened: HardenedRun) -> None:
    assert hardened.returncode == 1, hardened.stdout[-3000:] + hardened.stderr[-3000:]
    assert "Traceback" not in hardened.stdout + hardened.stderr
    crashed = [f"{r['control']}[{r['host']}]: {r['message']}" for r in hardened.evidence["results"] if CRASH in r["message"]]
    assert crashed == []
    hosts = {r["host"] for r in hardened.evidence["results"]}
    assert set(HARDENING_HOSTS) <= hosts


def test_le_hooks_junk_is_read_without_following_or_hanging(hardened: HardenedRun) -> None:
    """FIFO, loop, directory and /dev/zero hooks are skipped unread; the binary one is read and reloads nothing."""
    record = hardened.result("REN-02", "le-hooks-junk")
    hooks = {h["path"].rsplit("/", 1)[-1]: h for h in record["observed"]["hooks"]}
    assert {n: h["certbot_runs_it"] for n, h in hooks.items()} == {
        "binary": True, "dir": False, "fifo": False, "loop": False, "reload-stemedb.sh": True, "zero": False
    }  # fmt: skip
    assert hooks["binary"]["reload_line"] is None
    assert record["observed"]["reloading_hooks"] == ["/srv/hostile/le-hooks-junk/renewal-hooks/deploy/reload-stemedb.sh"]


def test_the_host_died_during_its_probe(hardened: HardenedRun, fleet: Fleet) -> None:
    assert hardened.killed, "the dies-mid-probe host was never seen waiting in its probe"
    dead = fleet.hosts[DIES].machine
    assert dead is None or not dead.alive()


def _certbot_ran_by_itself(fleet: Fleet, name: str, window: tuple[float, float]) -> bool:
    """Whether the host's own certbot.timer started certbot during the audit (twice a day, at random)."""
    done = fleet.ssh(name, "systemctl show certbot.service -p ExecMainStartTimestamp --timestamp=unix --value", check=False)
    started = done.stdout.strip().removeprefix("@")
    return started.replace(".", "", 1).isdigit() and window[0] - 1 <= float(started) <= window[1] + 1


def test_audit_changed_no_host(hardened: HardenedRun, fleet: Fleet) -> None:
    """Outside runtime state and logs, not one byte, mode, owner or mtime changed on any host.

    One thing a host does by itself is told apart: when its certbot.timer fired during the audit,
    certbot's own lock files in its own directories are its doing (the audit never runs certbot).
    """
    changed = {}
    for name, before in hardened.before.items():
        after = hardened.after[name]
        diff = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        if diff and _certbot_ran_by_itself(fleet, name, hardened.window):
            diff = [p for p in diff if not p.startswith(CERTBOTS_OWN)]
        if diff:
            changed[name] = diff[:20]
    assert changed == {}
    assert len(hardened.before) >= len(RUNBOOK)
    # The snapshots saw each host's own files (what the layout wrote lives in the upper directory).
    assert all("etc/stemedb/tls/cert.pem" in snapshot for snapshot in hardened.before.values())


def _texts(run: HardenedRun) -> dict[str, bytes]:
    """Everything the run wrote or printed, and all host content the evidence carries (certificates only)."""
    texts = {f"run/{p.name}": p.read_bytes() for p in run.run_dir.iterdir()}
    texts["run/report.html"] = with_details(texts["run/report.html"])  # its gzip'd details too
    texts["stdout"], texts["stderr"] = run.stdout.encode(), run.stderr.encode()
    for host, snapshot in run.evidence["snapshots"].items():
        for path, item in (snapshot.get("files") or {}).items():
            assert "content_b64" not in item, f"{host}:{path}: whole file content in the evidence"
            if "certificates_pem" in item:
                texts[f"{host}:{path}"] = "".join(item["certificates_pem"]).encode()
    return texts


def _private_value(pem: bytes) -> bytes:
    """The secret part of a private key (its public half is published in the evidence on purpose)."""
    if b"OPENSSH PRIVATE KEY" in pem:
        key: Any = serialization.load_ssh_private_key(pem, None)
    else:
        key = serialization.load_pem_private_key(pem, None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.private_bytes_raw()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big")
    assert isinstance(key, rsa.RSAPrivateKey), type(key)
    d = key.private_numbers().d
    return d.to_bytes((d.bit_length() + 7) // 8, "big")


def _key_material(pem: bytes) -> list[bytes]:
    """How a private key's secret would show if it leaked: raw, hex, or inside base64 at any alignment."""
    try:
        secret = _private_value(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if b"PRIVATE KEY-----" not in pem:
            return []  # no key at all (a scenario puts a certificate at a key's path): nothing secret
        # A key cryptography cannot open (encrypted, say): its PEM lines themselves must not leak.
        return [ln.strip() for ln in pem.splitlines() if len(ln.strip()) >= 40 and not ln.startswith(b"-----")]
    pieces = [secret[2:-2], secret.hex().encode()]
    pieces += [base64.b64encode(b"\0" * shift + secret)[4:-4] for shift in range(3)]
    return pieces


def test_no_private_key_and_no_inventory_secret_anywhere(hardened: HardenedRun) -> None:
    texts = _texts(hardened)
    materials = {owner: _key_material(pem) for owner, pem in hardened.private_keys.items()}
    assert {"run/report.html", "run/evidence.json", "run/junit.xml"} <= set(texts)
    assert len(hardened.private_keys) > 2 * len(RUNBOOK), sorted(hardened.private_keys)
    for where, blob in texts.items():
        text = blob.decode("utf-8", "replace")
        assert not PRIVATE_KEY_MARKER.search(text), f"a private key's PEM marker in {where}"
        for secret in (PASSWORD, API_TOKEN):
            assert secret not in text, f"an inventory secret in {where}"
        # PEM breaks base64 into lines, and JSON writes those breaks as \\n: search without them too.
        joined = blob.replace(b"\\n", b"").replace(b"\n", b"")
        for owner, pieces in materials.items():
            for piece in pieces:
                assert piece not in blob and piece not in joined, f"{owner}'s private key material in {where}"


def test_no_payload_ran(hardened: HardenedRun) -> None:
    """The shell payloads in inventory values ran nowhere: no canary on any host, none here."""
    assert hardened.canary_on_hosts and all(
        "No such file or directory" in answer for answer in hardened.canary_on_hosts.values()
    ), hardened.canary_on_hosts
    assert not os.path.lexists(CANARY)


def test_unprivileged_auditor_logged_in_as_itself(hardened: HardenedRun) -> None:
    snapshot = hardened.evidence["snapshots"]["denied-tls-dir"]
    assert snapshot["euid"] != 0
    assert hardened.result("REN-01", "denied-tls-dir")["outcome"] == "pass"  # what it may read, it judges
    assert ROOT_CLI_INI_DENIED in hardened.result("REN-02", "denied-tls-dir")["message"]  # and what it may not is unknown
    assert AUDITOR in hardened.inventory.read_text()


# --- hostile values that stop the run: the message, and nothing touched ---------------------------------------
# Every variable's refusal is judged in-process (tests/unit/test_hardening_inventory.py); these run for real.
REFUSED = [
    ("ansible_host", f"-oProxyCommand=touch {CANARY}", "expected a host name"),
    (
        "ansible_ssh_common_args",
        "-o StrictHostKeyChecking=no {hostile} touch${{IFS}}" + CANARY + ";",
        "as the host to connect to",
    ),
    ("certaudit_tls_dir", f"/etc/stemedb\n$(touch {CANARY})", "expected an absolute path without control characters"),
]


@pytest.mark.parametrize(("variable", "value", "why"), REFUSED, ids=[r[0] for r in REFUSED])
def test_hostile_value_stops_the_run_by_name(fleet: Fleet, tmp_path: Path, variable: str, value: str, why: str) -> None:
    value = value.replace("{hostile}", fleet.hosts[HOSTILE].address).replace("{{IFS}}", "{IFS}")
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", hosts=[HOSTILE])
    document = yaml.safe_load(inventory.read_text())
    document["all"]["hosts"][HOSTILE][variable] = value
    inventory.write_text(yaml.safe_dump(document, allow_unicode=True))
    argv = [sys.executable, "-m", "pytest", "checks", "--inventory", str(inventory), "-p", "no:cacheprovider", "-q"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == 4, output[-2000:]
    assert f"certaudit: host {HOSTILE}: {variable} = " in output and why in output, output[-2000:]
    assert "Traceback" not in output
    assert not os.path.lexists(CANARY)
    assert fleet.ssh(HOSTILE, f"test ! -e {CANARY}", check=False).returncode == 0
