"""No secret in the evidence, proven by one real audit (with --report-dir) on the fleet.

`secrets-files` (tests/scenarios_secrets.py) holds a token in root's crontab beside the line that
runs certbot and in its deploy hook before the reload line; through aliases, a cert.pem symlinked
to a 0600 file of passwords and a renewal conf symlinked to a shadow-like file. Two more aliases
carry `ansible_ssh_common_args: -F <private key file>`, so ssh prints the key's lines in its error.
No secret may appear in any file of the run directory nor in the audit's output, in any encoding
(raw, hex, base64 at any alignment, ssh's lowercased lines); the controls judge as they always did,
and the evidence keeps each file's SHA-256 and size, and the lines the controls used.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.fleet.fleet import Fleet
from tests.fleet.scenario import DOMAIN, TLS_DIR
from tests.integration.test_controls_on_fleet import CONTROLS
from tests.integration.test_hardening_on_fleet import _key_material
from tests.scenarios_secrets import (
    ALIASES,
    CERT_LINK,
    CONF_LINK,
    CRON_LINE,
    CRON_TOKEN,
    DB_PASSWORD,
    HOOK_TOKEN,
    LE_LINK_DIR,
    PRIVATE,
    RELOAD_LINE,
    ROOT_CRONTAB,
    SECRETS,
    SECRETS_HOST,
    SHADOW_LINE,
    TLS_LINK_DIR,
)
from tests.secret_forms import leaks
from tests.unit.test_report_html import with_details

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
CRASH = "certaudit could not judge this control"
KEY_ALIASES = {"secrets-ssh-openssh-key": "openssh", "secrets-ssh-rsa-key": "rsa"}
REDACTED_KEY = "<redacted key material>"


@dataclass
class SecretsRun:
    returncode: int
    output: str
    run_dir: Path
    evidence: dict[str, Any]
    key_files: dict[str, bytes]  # alias -> the private key file its ssh -F option names

    def result(self, control: str, host: str) -> dict[str, Any]:
        matches = [r for r in self.evidence["results"] if r["control"] == control and r["host"] == host]
        assert len(matches) == 1, f"{control}[{host}]: {len(matches)} results\n{self.output[-3000:]}"
        record: dict[str, Any] = matches[0]
        return record


def _key_file(kind: str) -> bytes:
    if kind == "openssh":
        key: Any = ed25519.Ed25519PrivateKey.generate()
        form = serialization.PrivateFormat.OpenSSH
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        form = serialization.PrivateFormat.TraditionalOpenSSL
    return bytes(key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption()))


def _write_inventory(fleet: Fleet, path: Path, keys: dict[str, Path]) -> None:
    fleet.write_inventory(path, hosts=[SECRETS_HOST])
    document = yaml.safe_load(path.read_text())
    hosts = document["all"]["hosts"]
    address = fleet.hosts[SECRETS_HOST].address
    for alias, spec in ALIASES.items():
        hosts[alias] = {"ansible_host": address, **spec.variables}
    for alias, key in keys.items():
        hosts[alias] = {"ansible_host": address, "ansible_connection": "ssh", "ansible_ssh_common_args": f"-F {key}"}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture(scope="module")
def secrets_run(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> SecretsRun:
    work = tmp_path_factory.mktemp("secrets")
    key_files = {alias: _key_file(kind) for alias, kind in KEY_ALIASES.items()}
    key_paths = {}
    for alias, pem in key_files.items():
        key_paths[alias] = work / f"{alias}.key"
        key_paths[alias].write_bytes(pem)
        key_paths[alias].chmod(0o600)
    inventory = work / "inventory.yml"
    _write_inventory(fleet, inventory, key_paths)
    reports = work / "reports"
    argv = [
        sys.executable, "-m", "pytest", "checks", "--inventory", str(inventory), "--report-dir", str(reports),
        "--connect-timeout", "5", "-p", "no:cacheprovider", "-rA",
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    runs = [p for p in reports.iterdir() if not p.name.endswith(".partial")]
    assert len(runs) == 1, output[-3000:]
    evidence = json.loads((runs[0] / "evidence.json").read_text())
    return SecretsRun(done.returncode, output, runs[0], evidence, key_files)


def _outputs(run: SecretsRun) -> dict[str, bytes]:
    texts = {f"run/{p.name}": p.read_bytes() for p in run.run_dir.iterdir()}
    texts["run/report.html"] = with_details(texts["run/report.html"])  # its gzip'd details too
    texts["output"] = run.output.encode()
    return texts


def test_the_secrets_are_on_the_host_to_begin_with(fleet: Fleet) -> None:
    """The scenario really holds what the audit must not copy (else the absence proves nothing)."""
    assert fleet.ssh(SECRETS_HOST, "cat /var/spool/cron/crontabs/root").stdout == ROOT_CRONTAB
    assert DB_PASSWORD in fleet.ssh(SECRETS_HOST, f"cat {TLS_LINK_DIR}/cert.pem").stdout
    assert SHADOW_LINE in fleet.ssh(SECRETS_HOST, f"cat {LE_LINK_DIR}/renewal/{DOMAIN}.conf").stdout
    assert HOOK_TOKEN in fleet.ssh(SECRETS_HOST, "cat /etc/letsencrypt/renewal-hooks/deploy/reload-stemedb.sh").stdout


def test_no_secret_in_any_file_nor_in_the_output(secrets_run: SecretsRun) -> None:
    texts = _outputs(secrets_run)
    assert {"run/report.html", "run/evidence.json", "run/junit.xml", "run/MANIFEST.sha256"} <= set(texts)
    for where, blob in texts.items():
        for secret in SECRETS:
            assert leaks(blob, secret.encode()) == [], f"{secret!r} in {where}"
            # The value alone, too (a line could be cut or re-quoted around it).
            value = secret.split("=", 1)[-1] if "=" in secret else secret.split(":")[1]
            assert leaks(blob, value.encode()) == [], f"the value of {secret!r} in {where}"
        for alias, pem in secrets_run.key_files.items():
            assert leaks(blob, b"", pem) == [], f"{alias}'s key lines in {where}"
            joined = blob.replace(b"\\n", b"").replace(b"\n", b"")
            for piece in _key_material(pem):
                assert piece not in blob and piece not in joined, f"{alias}'s private key material in {where}"
        assert b"PRIVATE KEY-----" not in blob.upper(), where


def test_ssh_quoting_a_key_is_an_error_with_the_key_redacted(secrets_run: SecretsRun, fleet: Fleet) -> None:
    address = fleet.hosts[SECRETS_HOST].address
    for alias in KEY_ALIASES:
        for control in CONTROLS:
            record = secrets_run.result(control, alias)
            assert record["outcome"] == "error", record
            assert record["message"].startswith(f"host {alias} ({address}): cannot connect: "), record["message"]
            assert "line 1: Bad configuration option: " + REDACTED_KEY in record["message"], record["message"]
        assert REDACTED_KEY in secrets_run.evidence["unreachable"][alias]


def test_the_controls_judge_as_before_and_keep_the_lines_they_used(secrets_run: SecretsRun) -> None:
    ren1 = secrets_run.result("REN-01", SECRETS_HOST)
    assert ren1["outcome"] == "pass", ren1["message"]
    assert ren1["observed"]["cron"]["entries"] == [f"/var/spool/cron/crontabs/root:3: {CRON_LINE}"]
    ren2 = secrets_run.result("REN-02", SECRETS_HOST)
    assert ren2["outcome"] == "pass", ren2["message"]
    assert [h["reload_line"] for h in ren2["observed"]["hooks"]] == [RELOAD_LINE]
    for control in ("CRT-01", "KEY-01", "KEY-02", "KEY-03", "REN-03", "LIVE-01"):
        assert secrets_run.result(control, SECRETS_HOST)["outcome"] == "pass", control

    cert_link = f"{TLS_LINK_DIR}/cert.pem -> {PRIVATE}/db.conf"
    for control in ("CRT-01", "LIVE-01"):
        record = secrets_run.result(control, CERT_LINK)
        assert record["outcome"] == "fail"
        assert f"the service's certificate is unusable: {cert_link}: no PEM certificate found" in record["message"]
    key2 = secrets_run.result("KEY-02", CERT_LINK)
    assert key2["outcome"] == "fail" and key2["observed"]["certificate"]["symlink_to"] == f"{PRIVATE}/db.conf"

    ren3 = secrets_run.result("REN-03", CONF_LINK)
    assert ren3["outcome"] == "fail"
    conf = f"{LE_LINK_DIR}/renewal/{DOMAIN}.conf"
    assert f"certbot cannot read its renewal conf: {conf}: line 1: neither `key = value`" in ren3["message"]
    assert secrets_run.result("REN-02", CONF_LINK)["outcome"] == "pass"  # the hook; the conf's renew_hook unread

    crashed = [f"{r['control']}[{r['host']}]" for r in secrets_run.evidence["results"] if CRASH in r["message"]]
    assert crashed == []
    assert "Traceback" not in secrets_run.output
    assert secrets_run.returncode == 1, secrets_run.output[-3000:]


def test_the_snapshot_keeps_digests_sizes_and_certificates_only(secrets_run: SecretsRun, fleet: Fleet) -> None:
    snapshots = secrets_run.evidence["snapshots"]
    assert set(snapshots) == {SECRETS_HOST, *ALIASES}
    on_host = snapshots[SECRETS_HOST]["files"]
    crontab = on_host["/var/spool/cron/crontabs/root"]
    assert crontab["content_sha256"] == hashlib.sha256(ROOT_CRONTAB.encode()).hexdigest()
    assert crontab["content_size"] == len(ROOT_CRONTAB.encode()) == crontab["size"]
    assert "certificates_pem" not in crontab
    hook_path = "/etc/letsencrypt/renewal-hooks/deploy/reload-stemedb.sh"
    hook = fleet.ssh(SECRETS_HOST, f"cat {hook_path}").stdout.encode()
    assert on_host[hook_path]["content_sha256"] == hashlib.sha256(hook).hexdigest()
    # The service's real certificate file is only certificates: kept, exactly as on the host.
    served = fleet.ssh(SECRETS_HOST, f"cat {TLS_DIR}/cert.pem").stdout
    assert "".join(on_host[f"{TLS_DIR}/cert.pem"]["certificates_pem"]) == served

    linked = snapshots[CERT_LINK]["files"][f"{TLS_LINK_DIR}/cert.pem"]
    db_conf = f"# the database\n{DB_PASSWORD}\n".encode()
    assert (linked["realpath"], linked["mode"], linked["content_size"]) == (f"{PRIVATE}/db.conf", 0o600, len(db_conf))
    assert linked["content_sha256"] == hashlib.sha256(db_conf).hexdigest() and "certificates_pem" not in linked
    conf = snapshots[CONF_LINK]["files"][f"{LE_LINK_DIR}/renewal/{DOMAIN}.conf"]
    assert conf["content_sha256"] == hashlib.sha256(f"{SHADOW_LINE}\n".encode()).hexdigest()
    assert conf["realpath"] == f"{PRIVATE}/shadow" and "certificates_pem" not in conf
    for snapshot in snapshots.values():
        assert all("content_b64" not in f for f in snapshot["files"].values())
    assert CRON_TOKEN not in json.dumps(secrets_run.evidence)
