"""Scenario hosts of the hardening tests (hostile content, faults, secrets): 127.77.3.x.

Three booted hosts carry every hostile case. Most cases need a whole host only for one path, so one
host (`hostile-files`) holds them side by side under /srv/hostile/<case>/ and the test's inventory
lists it once per case under another name (an *alias*) whose `certaudit_tls_dir` or
`certaudit_letsencrypt_dir` points at that case: each alias is audited as a host of its own, with
its own probe and its own outcomes, at the cost of one boot. Cron reads fixed paths, so its hostile
files get a host of their own (`hostile-cron`); `dies-mid-probe` is killed while it is probed.
The addresses 127.77.3.240 and up are never booted: the test listens there itself (stalled sshds).
"""

from __future__ import annotations

import datetime as dt
import random
import warnings
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fleet import pki
from tests.fleet.fleet import fleet_id
from tests.fleet.scenario import DOMAIN, RELOAD_HOOK, SERVICE_USER, TLS_DIR, HostFile, Scenario, renewal_conf


def _address(n: int) -> str:
    return f"127.77.3.{n}"


HOSTILE = "hostile-files"
CRON = "hostile-cron"
DIES = "dies-mid-probe"
SLOW = "slow-probe"
AUDITOR = "auditor"  # the unprivileged login of the permission-denied cases
STALL_BANNER_ADDRESS = _address(240)  # accepts, never sends the SSH banner
STALL_KEX_ADDRESS = _address(241)  # sends the banner, then nothing
TLS_STALL_PORT = 18181  # on hostile-files' address: accepts TCP, never handshakes
TLS_GARBAGE_PORT = 18182  # answers a ClientHello with garbage
MEGABYTES_10 = 10 * 1024 * 1024
# The python3 of dies-mid-probe and slow-probe: the probe waits here (until the test kills the host).
SHIM_SLEEP = "7777"
PYTHON_SHIM = f"""#!/bin/sh
# certaudit hardening test: a probe on this host hangs here until the test kills the host.
case "$*" in *certaudit-probe*) exec sleep {SHIM_SLEEP} ;; esac
exec /usr/bin/python3 "$@"
""".encode()

# Every payload a hostile inventory value carries runs `touch CANARY`: the file must never appear.
CANARY = f"/tmp/certaudit-pwned-{fleet_id()}"
PAYLOAD = f"$(touch {CANARY}) `touch {CANARY}`; touch {CANARY} | touch {CANARY} && touch {CANARY} ' \" \\ * ? ~ {{}} [] ünïcødé ☃"
META_DIR = f"/srv/hostile/meta {PAYLOAD}"

_rng = random.Random(8)  # the same garbage on every run
GARBAGE_10MB = _rng.randbytes(MEGABYTES_10)
BINARY = bytes(range(256)) * 4 + _rng.randbytes(3072)
_bundle = pki.issue(DOMAIN, days_left=60)
_other = pki.issue(DOMAIN, days_left=45)
_key_in_place = pki.issue(DOMAIN, days_left=60)
OTHER_KEY_PEMS = (_key_in_place.key_pem,)  # private keys laid out where certificates belong
_der_key = serialization.load_pem_private_key(_key_in_place.key_pem, None).private_bytes(
    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
# What `openssl pkcs12 -nokeys` writes: text between blocks, the leaf, its chain, another certificate.
SEVERAL_BLOCKS = (
    b"Bag Attributes\n    friendlyName: stemedb\nsubject=CN = stemedb.example.com\n"
    + _bundle.cert_pem
    + b"issuer text between blocks\n"
    + _bundle.chain_pem
    + _other.cert_pem
)
LEAF_DER = _bundle.certificate.public_bytes(serialization.Encoding.DER)


def _bad_name_certificate() -> bytes:
    """A certificate whose subject has a country of 24 letters: it parses, but cryptography warns
    about the name whenever it is read (and pytest's filterwarnings=error makes that an exception)."""
    key = ec.generate_private_key(ec.SECP256R1())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "Country-of-24-characters", _validate=False)])
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
    builder = builder.serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
    certificate = builder.not_valid_after(now + dt.timedelta(days=60)).sign(key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM)


BAD_NAME_PEM = _bad_name_certificate()


def _case_dir(case: str, cert: HostFile | None, key: HostFile | None = None, mode: int = 0o750) -> tuple[HostFile, ...]:
    """/srv/hostile/<case>/ as the service's TLS directory: `cert` as cert.pem, the host's own key as key.pem."""
    base = f"/srv/hostile/{case}"
    own_key = HostFile(f"{base}/key.pem", copy_of=f"{TLS_DIR}/key.pem", mode=0o600, owner=SERVICE_USER)
    files = [HostFile(base, kind="directory", mode=mode, owner=SERVICE_USER)]
    files += [f for f in (cert, key or own_key) if f is not None]
    return tuple(files)


def _cert(case: str, data: bytes = b"", **kwargs: Any) -> HostFile:
    return HostFile(f"/srv/hostile/{case}/cert.pem", data=data, owner=kwargs.pop("owner", SERVICE_USER), **kwargs)


def _le_dir(case: str, conf: HostFile | None = None, hooks: tuple[HostFile, ...] = ()) -> tuple[HostFile, ...]:
    """/srv/hostile/<case>/ as a Let's Encrypt directory: a renewal conf and deploy hooks (a good one by default)."""
    base = f"/srv/hostile/{case}"
    good_conf = HostFile(f"{base}/renewal/{DOMAIN}.conf", data=renewal_conf(DOMAIN, "30 days").encode())
    good_hook = HostFile(f"{base}/renewal-hooks/deploy/reload-stemedb.sh", data=RELOAD_HOOK.encode(), mode=0o755)
    return (HostFile(f"{base}/renewal", kind="directory", mode=0o755), conf or good_conf, good_hook, *hooks)


def _tls(case: str) -> str:
    return f"/srv/hostile/{case}"


HOSTILE_FILES: tuple[HostFile, ...] = (
    # The service's certificate, every way it can be unusable.
    *_case_dir("cert-empty", _cert("cert-empty")),
    *_case_dir("cert-truncated", _cert("cert-truncated", _bundle.cert_pem[: len(_bundle.cert_pem) // 2])),
    *_case_dir("cert-der", _cert("cert-der", LEAF_DER)),
    *_case_dir("cert-several", _cert("cert-several", SEVERAL_BLOCKS)),
    *_case_dir("cert-is-key", _cert("cert-is-key", _key_in_place.key_pem)),
    *_case_dir("cert-is-der-key", _cert("cert-is-der-key", _der_key)),
    *_case_dir("cert-garbage-10mb", _cert("cert-garbage-10mb", GARBAGE_10MB)),
    *_case_dir("cert-binary", _cert("cert-binary", BINARY)),
    *_case_dir("cert-bad-name", _cert("cert-bad-name", BAD_NAME_PEM)),
    # Symlink loops, directories and FIFOs in place of both files the service reads.
    *_case_dir(
        "loop",
        HostFile("/srv/hostile/loop/cert.pem", kind="symlink", target="cert.pem"),
        HostFile("/srv/hostile/loop/key.pem", kind="symlink", target="key-again.pem"),
    ),
    HostFile("/srv/hostile/loop/key-again.pem", kind="symlink", target="key.pem"),
    *_case_dir(
        "directory",
        HostFile("/srv/hostile/directory/cert.pem", kind="directory", mode=0o755, owner=SERVICE_USER),
        HostFile("/srv/hostile/directory/key.pem", kind="directory", mode=0o700, owner=SERVICE_USER),
    ),
    *_case_dir(
        "fifo",
        HostFile("/srv/hostile/fifo/cert.pem", kind="fifo", mode=0o644, owner=SERVICE_USER),
        HostFile("/srv/hostile/fifo/key.pem", kind="fifo", mode=0o600, owner=SERVICE_USER),
    ),
    # Readable by the service only: the unprivileged auditor can stat, not read.
    *_case_dir("unreadable", _cert("unreadable", copy_of=f"{TLS_DIR}/cert.pem", mode=0o600), mode=0o755),
    # A TLS directory whose name is a shell payload, holding the host's real files: it must just work.
    *_case_dir(
        f"meta {PAYLOAD}",
        HostFile(f"{META_DIR}/cert.pem", copy_of=f"{TLS_DIR}/cert.pem", owner=SERVICE_USER),
    ),
    # Let's Encrypt directories: the renewal conf and the deploy hooks, hostile.
    *_le_dir("le-conf-fifo", HostFile(f"/srv/hostile/le-conf-fifo/renewal/{DOMAIN}.conf", kind="fifo")),
    *_le_dir("le-conf-binary", HostFile(f"/srv/hostile/le-conf-binary/renewal/{DOMAIN}.conf", data=BINARY)),
    *_le_dir("le-conf-10mb", HostFile(f"/srv/hostile/le-conf-10mb/renewal/{DOMAIN}.conf", data=GARBAGE_10MB)),
    *_le_dir(
        "le-conf-loop", HostFile(f"/srv/hostile/le-conf-loop/renewal/{DOMAIN}.conf", kind="symlink", target=f"{DOMAIN}.conf")
    ),
    *_le_dir("le-conf-dir", HostFile(f"/srv/hostile/le-conf-dir/renewal/{DOMAIN}.conf", kind="directory")),
    *_le_dir(
        "le-hooks-junk",
        hooks=tuple(
            HostFile(f"/srv/hostile/le-hooks-junk/renewal-hooks/deploy/{name}", **spec)
            for name, spec in (
                ("fifo", {"kind": "fifo", "mode": 0o755}),
                ("loop", {"kind": "symlink", "target": "loop"}),
                ("dir", {"kind": "directory", "mode": 0o755}),
                ("zero", {"kind": "symlink", "target": "/dev/zero"}),
                ("binary", {"data": BINARY, "mode": 0o755}),
            )
        ),
    ),
    *_le_dir(
        "le-hook-10mb", hooks=(HostFile("/srv/hostile/le-hook-10mb/renewal-hooks/deploy/big", data=GARBAGE_10MB, mode=0o755),)
    ),
)

CRON_FILES: tuple[HostFile, ...] = (
    HostFile("/etc/cron.d/junk-fifo", kind="fifo"),
    HostFile("/etc/cron.d/junk-loop", kind="symlink", target="junk-loop"),
    HostFile("/etc/cron.d/junk-dir", kind="directory"),
    HostFile("/etc/cron.d/junk-zero", kind="symlink", target="/dev/zero"),
    HostFile("/etc/cron.d/junk-binary", data=BINARY),
    HostFile("/etc/cron.d/junk-10mb", data=GARBAGE_10MB),
)

SCENARIOS: list[Scenario] = [
    Scenario(
        HOSTILE,
        _address(10),
        "compliant, plus a hostile file tree under /srv/hostile (audited through aliases) and an unprivileged login",
        files=HOSTILE_FILES,
        login_users=(AUDITOR,),
    ),
    Scenario(CRON, _address(11), "compliant, plus FIFOs, loops, binary and 10 MB garbage in /etc/cron.d", files=CRON_FILES),
    Scenario(
        DIES,
        _address(12),
        "compliant, but its python3 hangs for the probe until the test kills the host",
        files=(HostFile("/usr/local/bin/python3", data=PYTHON_SHIM, mode=0o755),),
        inventory_vars={"ansible_connection": "paramiko"},  # certaudit's own client, whatever `smart` picks
        audited=False,  # the hardening test kills it
    ),
    Scenario(
        SLOW,
        _address(13),
        "compliant, but its python3 hangs for the probe: the per-host budget must end the wait",
        files=(HostFile("/usr/local/bin/python3", data=PYTHON_SHIM, mode=0o755),),
        inventory_vars={"ansible_connection": "paramiko"},
    ),
]


@dataclass(frozen=True)
class Alias:
    """Another inventory name for a booted host (or a bare address), with variables of its own."""

    host: str | None  # the scenario host it reaches; None: `address` (a listener of the test)
    variables: dict[str, Any] = field(default_factory=dict)
    address: str | None = None


def _on_hostile(**variables: Any) -> Alias:
    return Alias(HOSTILE, variables)


CERT_CASES = (
    "cert-empty", "cert-truncated", "cert-der", "cert-several", "cert-is-key", "cert-is-der-key", "cert-garbage-10mb",
    "cert-binary", "cert-bad-name", "loop", "directory", "fifo",
)  # fmt: skip
LE_CASES = ("le-conf-fifo", "le-conf-binary", "le-conf-10mb", "le-conf-loop", "le-conf-dir", "le-hooks-junk", "le-hook-10mb")
ALIASES: dict[str, Alias] = {
    **{case: _on_hostile(certaudit_tls_dir=_tls(case)) for case in CERT_CASES},
    **{case: _on_hostile(certaudit_letsencrypt_dir=_tls(case)) for case in LE_CASES},
    "denied-tls-dir": _on_hostile(ansible_user=AUDITOR),
    "denied-cert-read": _on_hostile(ansible_user=AUDITOR, certaudit_tls_dir=_tls("unreadable")),
    "tls-stall": _on_hostile(certaudit_endpoint_port=TLS_STALL_PORT),
    "tls-garbage": _on_hostile(certaudit_endpoint_port=TLS_GARBAGE_PORT),
    # Each stalled sshd, through certaudit's own SSH client and through OpenSSH.
    "ssh-stall-banner": Alias(None, {"ansible_connection": "paramiko"}, address=STALL_BANNER_ADDRESS),
    "ssh-stall-kex": Alias(None, {"ansible_connection": "paramiko"}, address=STALL_KEX_ADDRESS),
    "ssh-stall-banner-openssh": Alias(None, {"ansible_connection": "ssh"}, address=STALL_BANNER_ADDRESS),
    "ssh-stall-kex-openssh": Alias(None, {"ansible_connection": "ssh"}, address=STALL_KEX_ADDRESS),
    "slow-probe-openssh": Alias(SLOW, {"ansible_connection": "ssh"}),
    # Hostile inventory values that certaudit accepts: each must work, and run nothing.
    "inv-meta-tls-dir": _on_hostile(certaudit_tls_dir=META_DIR),
    "inv-meta-le-dir": _on_hostile(
        certaudit_letsencrypt_dir=f"/srv/nowhere {PAYLOAD}", certaudit_deploy_hook=f"/srv/nowhere/hook {PAYLOAD}"
    ),
    "inv-junk-vars": _on_hostile(
        note_payload=PAYLOAD,
        note_jinja="{{ lookup('pipe', 'touch " + CANARY + "') }}",
        note_newlines=f"line one\n$(touch {CANARY})\r\n`touch {CANARY}`",
        note_huge="A" * 200_000,
        note_unicode="ünïcødé ☃ 日本語 \u202e",
        note_list=[PAYLOAD, {"nested": PAYLOAD}],
    ),
}
