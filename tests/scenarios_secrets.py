"""Scenario hosts of the secrets-in-the-evidence tests: 127.77.6.x.

One booted host, `secrets-files`, holds secrets where an audit reads: a root crontab with a token
beside the line that runs certbot, a deploy hook exporting a token before its reload line, and
under /srv/secrets a TLS directory whose cert.pem is a symlink to a 0600 file of passwords and a
Let's Encrypt directory whose renewal conf is a symlink to a shadow-like file. The test's inventory
audits the latter two through aliases (as tests/scenarios_hardening.py does), so the host itself
stays compliant apart from its cron-driven renewal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.fleet.scenario import DOMAIN, RELOAD_HOOK, SERVICE_USER, TLS_DIR, HostFile, Scenario


def _address(n: int) -> str:
    return f"127.77.6.{n}"


SECRETS_HOST = "secrets-files"
# The secrets, each unlike anything else on a host or in certaudit's output.
CRON_TOKEN = "GITLAB_DEPLOY_TOKEN=glpat-Cr0nT0kenL34ksN0wh3re7"
HOOK_TOKEN = "SLACK_WEBHOOK_TOKEN=xoxb-H00kT0kenStaysOnTheHost42"
DB_PASSWORD = "db_password=Pa55-Behind-A-Cert-Symlink-9481"
SHADOW_LINE = "root:$6$certaudit$U2hhZG93SGFzaEJlaGluZEFDb25mU3ltbGluaw.:19000:0:99999:7:::"
SECRETS = (CRON_TOKEN, HOOK_TOKEN, DB_PASSWORD, SHADOW_LINE)

CRON_LINE = "17 3 * * * certbot -q renew"
ROOT_CRONTAB = f"# m h dom mon dow command\n{CRON_TOKEN}\n{CRON_LINE}\n"
RELOAD_LINE = "systemctl reload stemedb-api"
HOOK_WITH_TOKEN = RELOAD_HOOK.replace(RELOAD_LINE, f"export {HOOK_TOKEN}\n{RELOAD_LINE}", 1)
PRIVATE = "/srv/secrets/private"
TLS_LINK_DIR = "/srv/secrets/tls"
LE_LINK_DIR = "/srv/secrets/le"

FILES: tuple[HostFile, ...] = (
    HostFile("/var/spool/cron/crontabs/root", data=ROOT_CRONTAB.encode(), mode=0o600),
    HostFile(PRIVATE, kind="directory", mode=0o700),
    HostFile(f"{PRIVATE}/db.conf", data=f"# the database\n{DB_PASSWORD}\n".encode(), mode=0o600),
    HostFile(f"{PRIVATE}/shadow", data=f"{SHADOW_LINE}\n".encode(), mode=0o600),
    HostFile(TLS_LINK_DIR, kind="directory", mode=0o750, owner=SERVICE_USER),
    HostFile(f"{TLS_LINK_DIR}/cert.pem", kind="symlink", target=f"{PRIVATE}/db.conf"),
    HostFile(f"{TLS_LINK_DIR}/key.pem", copy_of=f"{TLS_DIR}/key.pem", mode=0o600, owner=SERVICE_USER),
    HostFile(f"{LE_LINK_DIR}/renewal", kind="directory", mode=0o755),
    HostFile(f"{LE_LINK_DIR}/renewal/{DOMAIN}.conf", kind="symlink", target=f"{PRIVATE}/shadow"),
    HostFile(f"{LE_LINK_DIR}/renewal-hooks/deploy/reload-stemedb.sh", data=RELOAD_HOOK.encode(), mode=0o755),
)

SCENARIOS: list[Scenario] = [
    Scenario(
        SECRETS_HOST,
        _address(10),
        "certbot.timer masked, renewal by a root crontab holding a token; a deploy hook exporting a token; "
        "symlinks from a certificate and a renewal conf to secret files (audited through aliases)",
        timer="masked",
        hook=HOOK_WITH_TOKEN,
        files=FILES,
    ),
]


@dataclass(frozen=True)
class Alias:
    """Another inventory name for `secrets-files`, with variables of its own."""

    variables: dict[str, Any] = field(default_factory=dict)


CERT_LINK = "secrets-cert-link"
CONF_LINK = "secrets-conf-link"
ALIASES: dict[str, Alias] = {
    CERT_LINK: Alias({"certaudit_tls_dir": TLS_LINK_DIR}),
    CONF_LINK: Alias({"certaudit_letsencrypt_dir": LE_LINK_DIR}),
}
