"""Scenario hosts of the trust tests (a pass is proof): 127.77.5.x.

Directories larger than the probe once listed (it cut every listing at 200 names and judged the
rest as absent), and an unprivileged login that cannot list the users' crontabs. Each host is
`compliant` but for one such directory; the files are made after boot, by shell, from the
generation the standard layout wrote.
"""

from __future__ import annotations

from tests.fleet.scenario import DOMAIN, LE, Scenario

ARCHIVE_HOST = "trust-archive-70"
HOOKS_HOST = "trust-hooks-10k"
AUDITOR = "auditor"  # an unprivileged login: /var/spool/cron/crontabs (root:crontab 1730) is closed to it
RENEWALS = 70
HOOK_FILES = 10_000
ARCHIVE = f"{LE}/archive/{DOMAIN}"
HOOKS_DIR = f"{LE}/renewal-hooks/deploy"
# Data files that sort before reload-stemedb.sh; not executable, so certbot runs none of them.
HOOK_FILE_NAME = "00-note-{:05d}.txt"


def _address(n: int) -> str:
    return f"127.77.5.{n}"


def _renewals() -> str:
    """Generations 2..70 of the lineage, as months of short-lived certificates leave them; every key 0644."""
    return (
        f"cd {ARCHIVE} && for i in $(seq 2 {RENEWALS}); do "
        "for part in cert chain fullchain; do cp -p ${part}1.pem ${part}$i.pem; done; "
        "cp privkey1.pem privkey$i.pem; chmod 0644 privkey$i.pem; done"
    )


def _hook_files() -> str:
    return (
        f"cd {HOOKS_DIR} && for i in $(seq -w 1 {HOOK_FILES}); do echo 'not a hook' > 00-note-$i.txt; done "
        "&& chmod 0644 00-note-*.txt"
    )


SCENARIOS: list[Scenario] = [
    Scenario(
        ARCHIVE_HOST,
        _address(10),
        f"{RENEWALS} generations in archive/<domain>/ (280 names), every archived privkey*.pem mode 0644",
        archive_key_mode=0o644,
        after_boot=(_renewals(),),
    ),
    Scenario(
        HOOKS_HOST,
        _address(11),
        f"{HOOK_FILES} data files in renewal-hooks/deploy beside the real reload hook; an unprivileged auditor login",
        after_boot=(_hook_files(),),
        login_users=(AUDITOR,),
    ),
]
