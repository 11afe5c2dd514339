"""The test fleet itself: hosts really boot, are reachable as testinfra hosts, run real systemd,
certbot's timer and a TLS service that reloads; and tearing a fleet down leaves nothing behind."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra
from cryptography import x509

from tests.fleet import image, machine, pki
from tests.fleet.fleet import SSH_OPTIONS, Fleet, default_root, fleet_address
from tests.fleet.scenario import DOMAIN, Scenario

pytestmark = pytest.mark.fleet


def served_leaf(address: str, port: int = 18180) -> x509.Certificate:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, port), timeout=5) as raw, context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def connect_with_testinfra(fleet: Fleet, backend: str, name: str) -> testinfra.host.Host:
    extra = " ".join(SSH_OPTIONS)
    if backend == "ssh":
        return testinfra.get_host(
            f"ssh://root@{fleet.hosts[name].address}",
            ssh_identity_file=str(fleet.key_path),
            ssh_extra_args=extra,
            controlpersist=0,
        )
    return testinfra.get_host(f"paramiko://root@{fleet.hosts[name].address}", ssh_config=str(fleet.ssh_config_path))


def test_host_boots_with_real_systemd(fleet: Fleet) -> None:
    done = fleet.ssh("compliant", "systemctl is-system-running; cat /proc/1/comm; hostname")
    state, pid1, hostname = done.stdout.split()
    assert state in ("running", "degraded")
    assert pid1 == "systemd"
    assert hostname == "compliant"


@pytest.mark.parametrize("backend", ["ssh", "paramiko"])
def test_testinfra_reaches_host(fleet: Fleet, backend: str) -> None:
    host = connect_with_testinfra(fleet, backend, "compliant")
    assert host.check_output("hostname") == "compliant"
    assert host.file("/etc/stemedb/tls/key.pem").mode == 0o600
    assert host.service("stemedb-api").is_running


def test_certbot_timer_is_really_active(fleet: Fleet) -> None:
    assert fleet.ssh("compliant", "systemctl is-active certbot.timer").stdout.strip() == "active"
    assert fleet.ssh("timer-disabled", "systemctl is-active certbot.timer", check=False).stdout.strip() == "inactive"
    assert fleet.ssh("timer-masked-cron", "systemctl is-enabled certbot.timer", check=False).stdout.strip() == "masked"


def test_compliant_host_holds_a_real_certbot_lineage(fleet: Fleet) -> None:
    listing = fleet.ssh(
        "compliant",
        f"readlink /etc/letsencrypt/live/{DOMAIN}/cert.pem; "
        f"grep -c '^renew_before_expiry = 30 days' /etc/letsencrypt/renewal/{DOMAIN}.conf",
    )
    target, pinned = listing.stdout.split()
    assert target == f"../../archive/{DOMAIN}/cert1.pem"
    assert pinned == "1"
    leaf = served_leaf(fleet.hosts["compliant"].address)
    assert "Pebble" in leaf.issuer.rfc4514_string()


def test_service_serves_tls_and_reloads_a_new_certificate(fleet: Fleet) -> None:
    address = fleet.hosts["scratch"].address
    before = served_leaf(address)
    fresh = pki.issue(DOMAIN, days_left=77)
    subprocess.run(fleet.ssh_argv(address, "cat > /etc/stemedb/tls/cert.pem"), input=fresh.fullchain_pem, check=True)
    subprocess.run(fleet.ssh_argv(address, "cat > /etc/stemedb/tls/key.pem"), input=fresh.key_pem, check=True)
    assert served_leaf(address).serial_number == before.serial_number, "served the new certificate before any reload"
    fleet.ssh("scratch", "systemctl reload stemedb-api")
    deadline = time.monotonic() + 10
    while served_leaf(address).serial_number != fresh.certificate.serial_number:
        assert time.monotonic() < deadline, "stemedb-api still serves the old certificate 10 s after its reload"
        time.sleep(0.2)
    metrics = fleet.ssh(
        "scratch",
        f'python3 -c "import ssl,urllib.request;c=ssl._create_unverified_context();'
        f"print(urllib.request.urlopen('https://{address}:18180/metrics',context=c).read().decode())\"",
    )
    line = next(li for li in metrics.stdout.splitlines() if li.startswith("stemedb_tls_cert_expiry_seconds"))
    assert line.startswith(f'stemedb_tls_cert_expiry_seconds{{domain="{DOMAIN}"}} ')
    assert abs(int(line.split()[-1]) - 77 * 86400) < 300


TEARDOWN_SCRIPT = """
import signal, sys, time
# Ctrl-C as in a terminal: a job started in the background (nohup, `&`) inherits SIGINT ignored,
# and Python then installs no KeyboardInterrupt handler.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {repo!r})
from pathlib import Path
from tests.fleet.fleet import Fleet
from tests.fleet.scenario import Scenario
fleet = Fleet([Scenario("teardown-probe", "127.77.1.10", "teardown test host")], root=Path({root!r}), pebble=False)
assert fleet.scenarios[0].address == {address!r}
try:
    fleet.up()
    print("UP", flush=True)
    time.sleep(300)
finally:
    fleet.down()
    print("DOWN", flush=True)
"""


def test_teardown_on_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    root = default_root().with_name(default_root().name + "-teardown-test")
    address = fleet_address("127.77.1.10")
    group = f"certaudit-{root.name}"
    proc = subprocess.Popen(
        [sys.executable, "-c", TEARDOWN_SCRIPT.format(repo=str(repo), root=str(root), address=address)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "UP", proc.stderr.read() if proc.stderr else ""
        nspawn = [d for d in machine.cgroup_dirs(group, "teardown-probe") if d.is_dir()]
        assert nspawn, "the host's cgroup should exist while it runs"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # the test failed: end its fleet with SIGTERM, which it also tears down on
            proc.terminate()
            proc.communicate(timeout=60)
    assert "DOWN" in out, err
    assert machine.leftover_cgroups(group) == []
    assert not any(d.exists() for d in machine.cgroup_dirs(group, "teardown-probe"))
    mounts = Path("/proc/mounts").read_text()
    assert str(root) not in mounts
    assert not root.exists()
    leftovers = subprocess.run(["pgrep", "-f", "--", "-M teardown-probe"], capture_output=True, text=True)
    assert leftovers.stdout == "", leftovers.stdout
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, 22), timeout=1).close()


def test_scenario_names_and_addresses_are_unique() -> None:
    from tests.scenarios import ALL_SCENARIOS as SCENARIOS

    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)
    assert len({s.address for s in SCENARIOS}) == len(SCENARIOS)
    assert all(s.address.startswith("127.77.") for s in SCENARIOS), "test traffic stays on loopback (127.77.0.0/16)"
    assert isinstance(SCENARIOS[0], Scenario)


def test_every_scenario_boots_an_image_with_a_recipe() -> None:
    from tests.scenarios import ALL_SCENARIOS as SCENARIOS

    assert {s.image for s in SCENARIOS} <= set(image.SUITES)


def test_only_the_images_of_booted_scenarios_are_built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked: list[str] = []

    def ensure(name: str) -> tuple[Path, bool]:
        asked.append(name)
        return tmp_path / name, name == "trixie"

    monkeypatch.setattr(image, "ensure_image", ensure)
    scenarios = [
        Scenario("a", "127.77.0.1", "", image="trixie"),
        Scenario("b", "127.77.0.2", ""),
        Scenario("c", "127.77.0.3", "", image="bullseye", booted=False),
    ]
    bases, built = Fleet(scenarios, root=tmp_path)._ensure_images()
    assert bases == {"bookworm": tmp_path / "bookworm", "trixie": tmp_path / "trixie"}
    assert (built, asked) == (1, ["bookworm", "trixie"])
    with pytest.raises(image.ImageBuildError, match="no image recipe for suite 'buster'; known: bullseye, bookworm, trixie"):
        Fleet([*scenarios, Scenario("d", "127.77.0.4", "", image="buster")], root=tmp_path)._ensure_images()
    assert asked == ["bookworm", "trixie"]
