"""Declarative test hosts: what one scenario host looks like, and how it is laid out on its overlay.

A scenario says what differs from a compliant StemeDB host (a Let's Encrypt lineage, an active
certbot timer, a deploy hook that reloads stemedb-api, renew_before_expiry pinned, the key 0600
and owned by stemedb, the service serving what is on disk); `layout` writes it into the host's
filesystem before boot and `after_boot` lists what must happen once it runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.fleet import pip_certbot, pki

FILES = Path(__file__).parent / "files"
DOMAIN = "stemedb.example.com"
SERVICE_USER = "stemedb"
LE = "/etc/letsencrypt"
TLS_DIR = "/etc/stemedb/tls"
HOOK_PATH = f"{LE}/renewal-hooks/deploy/reload-stemedb.sh"
PEBBLE_CA_PATH = "/usr/local/share/certaudit/pebble-ca.pem"
RELOAD_HOOK = (FILES / "reload-stemedb.sh").read_text()

Timer = Literal["enabled", "disabled", "masked"]
CertSource = Literal["pebble", "generated"]
FileKind = Literal["file", "directory", "fifo", "symlink"]


@dataclass(frozen=True)
class HostFile:
    """One extra path on a scenario host, laid out exactly as given, hostile content included: raw
    bytes, a directory, a FIFO, or a symlink (a loop when it points at itself). `copy_of` takes the
    bytes of a path the standard layout wrote (e.g. the host's own certificate)."""

    path: str
    kind: FileKind = "file"
    data: bytes = b""
    mode: int = 0o644
    owner: str = "root"  # root, the service user or one of the scenario's login_users
    target: str = ""  # what a symlink points at
    copy_of: str = ""
    produce: Callable[[], bytes] | None = None  # bytes made at layout time (e.g. a binary fetched once, cached)


def renewal_conf(domain: str, renew_before_expiry: str | None, renew_hook: str | None = None) -> str:
    """A renewal conf shaped like the one certbot writes (renew_before_expiry only as a comment by default)."""
    lines = [
        f"renew_before_expiry = {renew_before_expiry}" if renew_before_expiry else "# renew_before_expiry = 30 days",
        "version = 2.1.0",
        f"archive_dir = {LE}/archive/{domain}",
        f"cert = {LE}/live/{domain}/cert.pem",
        f"privkey = {LE}/live/{domain}/privkey.pem",
        f"chain = {LE}/live/{domain}/chain.pem",
        f"fullchain = {LE}/live/{domain}/fullchain.pem",
    ]
    lines += [
        "",
        "# Options used in the renewal process",
        "[renewalparams]",
        "account = 0123456789abcdef0123456789abcdef",
        "authenticator = standalone",
        "server = https://127.0.0.1:14000/dir",
        "key_type = ecdsa",
    ]
    if renew_hook:
        lines.append(f"renew_hook = {renew_hook}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Scenario:
    name: str
    address: str
    description: str
    image: str = "bookworm"  # the Debian suite the host boots (tests/fleet/image.py SUITES): its lower layer
    # certificate
    cert_source: CertSource = "generated"
    days_left: float = 60
    lifetime_days: float = 90
    ca: str = "letsencrypt-like"
    lineage: bool = True  # a Let's Encrypt lineage under /etc/letsencrypt
    leaf: pki.LeafSpec | None = None  # a leaf unlike trustme's: key, signature hash, names, intermediate CA
    tls_cert_chain: bool = True  # False: the service's cert.pem holds the leaf alone, not the full chain
    # files the service reads
    key_mode: int = 0o600
    key_owner: str = SERVICE_USER
    cert_mode: int = 0o644
    cert_owner: str = SERVICE_USER
    archive_key_mode: int = 0o600
    # renewal automation
    timer: Timer = "enabled"
    cron_files: tuple[tuple[str, str], ...] = ()  # (name in /etc/cron.d, content)
    hook: str | None = RELOAD_HOOK
    hook_mode: int = 0o755
    renew_before_expiry: str | None = "30 days"
    renew_hook: str | None = None
    # the service
    serve_stale: bool = False  # the service keeps an older certificate than the one on disk
    service_starts: bool = True  # False: stemedb-api cannot start (e.g. cannot read its key)
    booted: bool = True  # False: in the inventory, but nothing answers
    audited: bool = True  # False: a host the fleet's own tests change, kept out of the control audit
    inventory_vars: dict[str, Any] = field(default_factory=dict)
    after_boot: tuple[str, ...] = ()  # shell commands run as root once the host is up
    files: tuple[HostFile, ...] = ()  # extra paths, laid out last (hostile content, shims)
    login_users: tuple[str, ...] = ()  # unprivileged accounts that log in over ssh with the fleet's key (`user` or `user:group`)
    # how certbot is installed (tests/scenarios_distros.py)
    certbot: str = "certbot"  # the command the after-boot issuance runs
    hook_path: str = HOOK_PATH  # where `hook` is written (RHEL's sysconfig hook names a script elsewhere)
    removed: tuple[str, ...] = ()  # paths of the image removed from this host (another install's units)
    venvs: tuple[str, ...] = ()  # prefixes where certbot, installed by pip into a virtualenv, is laid out

    @property
    def domain(self) -> str:
        return str(self.inventory_vars.get("certaudit_domain", DOMAIN))


def _owner_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise KeyError(f"no user {user!r} in {root}/etc/passwd")


def _write(root: Path, path: str, data: bytes | str, mode: int, owner: tuple[int, int] = (0, 0)) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chown(target, *owner)
    os.chmod(target, mode)


def _mkdir(root: Path, path: str, mode: int, owner: tuple[int, int] = (0, 0)) -> None:
    target = root / path.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    os.chown(target, *owner)
    os.chmod(target, mode)


def _symlink(root: Path, path: str, target: str) -> None:
    link = root / path.lstrip("/")
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def layout_base_host(root: Path, name: str, address: str, authorized_key: str) -> None:
    """What every test host has: its identity, sshd on its own address, stemedb-api installed."""
    (root / "etc/hostname").write_text(name + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{address} {name} {DOMAIN}\n")
    _write(root, "/etc/ssh/sshd_config.d/10-listen.conf", f"ListenAddress {address}\n", 0o644)
    subprocess.run(["ssh-keygen", "-q", "-A", "-f", str(root)], check=True, capture_output=True)
    _mkdir(root, "/root/.ssh", 0o700)
    _write(root, "/root/.ssh/authorized_keys", authorized_key, 0o600)
    _write(root, "/usr/local/lib/stemedb/stemedb_api.py", (FILES / "stemedb_api.py").read_bytes(), 0o755)
    _write(root, "/etc/systemd/system/stemedb-api.service", (FILES / "stemedb-api.service").read_bytes(), 0o644)
    _symlink(root, "/etc/systemd/system/multi-user.target.wants/stemedb-api.service", "../stemedb-api.service")
    _write(root, "/etc/stemedb/api.env", f"STEMEDB_BIND={address}\nSTEMEDB_PORT=18180\nSTEMEDB_DOMAIN={DOMAIN}\n", 0o644)


def layout(scenario: Scenario, root: Path, authorized_key: str, pebble_ca: bytes | None) -> None:
    layout_base_host(root, scenario.name, scenario.address, authorized_key)
    for path in scenario.removed:
        (root / path.lstrip("/")).unlink(missing_ok=True)  # a whiteout in the host's overlay
    for prefix in scenario.venvs:
        pip_certbot.lay_venv(root, prefix)
    stemedb = _owner_ids(root, SERVICE_USER)
    owners = {SERVICE_USER: stemedb, "root": (0, 0)}
    domain = scenario.domain

    # The certificate the service starts with. A pebble host starts on a placeholder that
    # certbot's deploy hook replaces; a stale host starts on the one that gets renewed later.
    if scenario.leaf is not None:
        issued = pki.issue_spec(
            domain, scenario.leaf, days_left=scenario.days_left, lifetime_days=scenario.lifetime_days, ca_name=scenario.ca
        )
    else:
        issued = pki.issue(domain, days_left=scenario.days_left, lifetime_days=scenario.lifetime_days, ca_name=scenario.ca)
    served = pki.issue(domain, days_left=20, ca_name=scenario.ca) if scenario.serve_stale else issued
    _mkdir(root, TLS_DIR, 0o750, stemedb)
    tls_cert = served.fullchain_pem if scenario.tls_cert_chain else served.cert_pem
    _write(root, f"{TLS_DIR}/cert.pem", tls_cert, scenario.cert_mode, owners[scenario.cert_owner])
    _write(root, f"{TLS_DIR}/key.pem", served.key_pem, scenario.key_mode, owners[scenario.key_owner])
    if scenario.serve_stale:
        # Renewed on disk after the service started: after_boot installs `issued` without a reload.
        _write(root, "/root/pending/cert.pem", issued.fullchain_pem, 0o644)
        _write(root, "/root/pending/key.pem", issued.key_pem, 0o600)

    if scenario.lineage and scenario.cert_source == "generated":
        archive, live = f"{LE}/archive/{domain}", f"{LE}/live/{domain}"
        _mkdir(root, f"{LE}/archive", 0o700)
        _mkdir(root, archive, 0o755)
        _write(root, f"{archive}/cert1.pem", issued.cert_pem, 0o644)
        _write(root, f"{archive}/chain1.pem", issued.chain_pem, 0o644)
        _write(root, f"{archive}/fullchain1.pem", issued.fullchain_pem, 0o644)
        _write(root, f"{archive}/privkey1.pem", issued.key_pem, scenario.archive_key_mode)
        _mkdir(root, f"{LE}/live", 0o700)
        for part in ("cert", "chain", "fullchain", "privkey"):
            _symlink(root, f"{live}/{part}.pem", f"../../archive/{domain}/{part}1.pem")
        _write(
            root, f"{LE}/renewal/{domain}.conf", renewal_conf(domain, scenario.renew_before_expiry, scenario.renew_hook), 0o644
        )
    if scenario.lineage:
        for kind in ("deploy", "pre", "post"):
            _mkdir(root, f"{LE}/renewal-hooks/{kind}", 0o755)
        if scenario.hook is not None:
            _write(root, scenario.hook_path, scenario.hook, scenario.hook_mode)
    if pebble_ca is not None:
        _write(root, PEBBLE_CA_PATH, pebble_ca, 0o644)

    wants = root / "etc/systemd/system/timers.target.wants/certbot.timer"
    if scenario.timer in ("disabled", "masked"):
        wants.unlink(missing_ok=True)
    if scenario.timer == "masked":
        _symlink(root, "/etc/systemd/system/certbot.timer", "/dev/null")
    for name, content in scenario.cron_files:
        _write(root, f"/etc/cron.d/{name}", content, 0o644)
    for user in scenario.login_users:
        _add_login_user(root, user, authorized_key)
    for extra in scenario.files:
        _lay_file(root, extra)


def _add_login_user(root: Path, login: str, authorized_key: str) -> None:
    """An account like one an operator would give an auditor: no password, its own home and key.

    `login` is a user name, or `user:group` to make it a member of one more group (e.g. the
    service's, which opens the service's TLS directory to it)."""
    user, _, extra_group = login.partition(":")
    passwd = (root / "etc/passwd").read_text()
    used = {int(line.split(":")[2]) for line in passwd.splitlines() if line.count(":") >= 6}
    # The first free id from 2000, below 60000: the ids above are nobody's (65534) and ones systemd
    # and D-Bus refuse outright (65535 is (uid_t) -1 in 16 bits), which no real auditor has.
    uid = next(n for n in range(2000, 60000) if n not in used)
    with (root / "etc/passwd").open("a") as f:
        f.write(f"{user}:x:{uid}:{uid}::/home/{user}:/bin/sh\n")
    groups = (root / "etc/group").read_text().splitlines()
    if extra_group:
        groups = [_with_member(line, extra_group, user) for line in groups]
    (root / "etc/group").write_text("\n".join([*groups, f"{user}:x:{uid}:"]) + "\n")
    with (root / "etc/shadow").open("a") as f:
        f.write(f"{user}:*:19000:0:99999:7:::\n")  # "*": no password, yet not locked for key logins
    _mkdir(root, f"/home/{user}", 0o755, (uid, uid))
    _mkdir(root, f"/home/{user}/.ssh", 0o700, (uid, uid))
    _write(root, f"/home/{user}/.ssh/authorized_keys", authorized_key, 0o600, (uid, uid))


def _with_member(line: str, group: str, user: str) -> str:
    """An /etc/group line with `user` added to its members when it is `group`'s."""
    fields = line.split(":")
    if fields[0] != group or len(fields) != 4:
        return line
    fields[3] = ",".join([m for m in fields[3].split(",") if m] + [user])
    return ":".join(fields)


def _lay_file(root: Path, extra: HostFile) -> None:
    owner = _owner_ids(root, extra.owner)
    target = root / extra.path.lstrip("/")
    if extra.kind == "symlink":
        _symlink(root, extra.path, extra.target)
    elif extra.kind == "directory":
        _mkdir(root, extra.path, extra.mode, owner)
    elif extra.kind == "fifo":
        target.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(target)
        os.chown(target, *owner)
        os.chmod(target, extra.mode)
    else:
        data = (root / extra.copy_of.lstrip("/")).read_bytes() if extra.copy_of else extra.data
        data = extra.produce() if extra.produce is not None else data
        _write(root, extra.path, data, extra.mode, owner)


def certbot_issue_command(scenario: Scenario, acme_directory: str) -> str:
    """Real certbot against pebble on the host, then the deploy hook as certbot runs it on renewal."""
    domain = scenario.domain
    conf = f"{LE}/renewal/{domain}.conf"
    steps = [
        f"export REQUESTS_CA_BUNDLE={PEBBLE_CA_PATH}",
        f"{scenario.certbot} certonly --standalone --http-01-address {scenario.address} --http-01-port 5002 "
        f"--server {acme_directory} -d {domain} --register-unsafely-without-email --agree-tos -n --key-type ecdsa",
    ]
    if scenario.renew_before_expiry:
        # Before 4.1 certbot writes the setting only as a comment, from 4.1 not at all; pinning it is
        # the operator's step.
        pin = f"renew_before_expiry = {scenario.renew_before_expiry}"
        steps.append(
            f"if grep -q '^# renew_before_expiry = 30 days' {conf}; "
            f"then sed -i 's/^# renew_before_expiry = 30 days/{pin}/' {conf}; else sed -i '1i {pin}' {conf}; fi"
        )
    if scenario.hook is not None:
        steps.append(f"RENEWED_LINEAGE={LE}/live/{domain} RENEWED_DOMAINS={domain} {scenario.hook_path}")
    return " && ".join(steps)


def after_boot_commands(scenario: Scenario, acme_directory: str) -> list[str]:
    commands = []
    if scenario.cert_source == "pebble":
        commands.append(certbot_issue_command(scenario, acme_directory))
    if scenario.serve_stale:
        commands.append(
            f"install -o {SERVICE_USER} -g {SERVICE_USER} -m 0644 /root/pending/cert.pem {TLS_DIR}/cert.pem && "
            f"install -o {SERVICE_USER} -g {SERVICE_USER} -m 0600 /root/pending/key.pem {TLS_DIR}/key.pem && "
            "rm -r /root/pending"
        )
    return [*commands, *scenario.after_boot]


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
