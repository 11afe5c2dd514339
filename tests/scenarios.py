"""The scenario hosts of the suite's own tests: one host per way a control holds or breaks.

Every host differs from `compliant` in one respect only, so a failing control points at one cause.
ALL_SCENARIOS boots once per test session (in parallel), and every test judges the same fleet.
Each area keeps its own list in its own module, with its own address block of 127.77.0.0/16:
runbook controls 127.77.0.x (here), the fleet's own tests 127.77.1.x, mixed distributions and
certbot installations 127.77.9.x (tests/scenarios_distros.py), shorter lifetimes 127.77.11.x.
"""

from __future__ import annotations

from tests.fleet.scenario import RELOAD_HOOK, HostFile, Scenario
from tests.scenarios_catalog import SCENARIOS as CATALOG
from tests.scenarios_custom import SCENARIOS as CUSTOM
from tests.scenarios_distros import SCENARIOS as DISTROS
from tests.scenarios_fleet import SCENARIOS as FLEET_CONTROLS
from tests.scenarios_hardening import SCENARIOS as HARDENING
from tests.scenarios_jobs import SCENARIOS as JOBS
from tests.scenarios_lifetimes import SCENARIOS as LIFETIMES
from tests.scenarios_secrets import SCENARIOS as SECRETS
from tests.scenarios_trust import SCENARIOS as TRUST
from tests.scenarios_unprivileged import logins


def _address(n: int) -> str:
    return f"127.77.0.{n}"


WORKING_CRON = "SHELL=/bin/sh\n0 */12 * * * root certbot -q renew --no-random-sleep-on-renew\n"
CLI_INI = "/etc/letsencrypt/cli.ini"
RELOADING_CRON = "SHELL=/bin/sh\n0 */12 * * * root certbot -q renew --deploy-hook 'systemctl reload stemedb-api'\n"
NO_DIRECTORY_HOOKS_UNIT = (
    b"[Service]\nExecStart=\nExecStart=/usr/bin/certbot -q renew --no-random-sleep-on-renew --no-directory-hooks\n"
)
DRY_RUN_UNIT = b"[Service]\nExecStart=\nExecStart=/usr/bin/certbot -q renew --no-random-sleep-on-renew --dry-run\n"
OTHER_SERVICE_HOOK = RELOAD_HOOK.replace("systemctl reload stemedb-api", "systemctl reload nginx")

RUNBOOK: list[Scenario] = [
    Scenario(
        "compliant",
        _address(10),
        "Let's Encrypt host, certificate issued by pebble with real certbot",
        cert_source="pebble",
        **logins(),
    ),
    Scenario(
        "timer-disabled",
        _address(11),
        "certbot.timer disabled; Debian's cron entry is inert under systemd",
        timer="disabled",
        **logins(),
    ),
    Scenario(
        "timer-masked-cron",
        _address(12),
        "certbot.timer masked, but a working cron entry runs certbot renew",
        timer="masked",
        cron_files=(("certbot-renew", WORKING_CRON),),
    ),
    Scenario(
        "timer-dry-run",
        _address(37),
        "certbot.timer active, but a drop-in left certbot.service running `certbot renew --dry-run`: it renews nothing",
        files=(HostFile("/etc/systemd/system/certbot.service.d/override.conf", data=DRY_RUN_UNIT),),
    ),
    Scenario(
        "timer-stopped",
        _address(26),
        "certbot.timer enabled, but stopped: it schedules nothing",
        after_boot=("systemctl stop certbot.timer",),
    ),
    Scenario("hook-missing", _address(13), "no deploy hook at all", hook=None),
    Scenario("hook-not-executable", _address(14), "deploy hook mode 0644: certbot skips it", hook_mode=0o644, **logins()),
    Scenario("hook-world-writable", _address(15), "deploy hook mode 0777", hook_mode=0o777),
    Scenario("hook-other-service", _address(16), "deploy hook reloads nginx, not stemedb-api", hook=OTHER_SERVICE_HOOK),
    # certbot's own config file (cli.ini) sets hooks too: certbot reads its options at every renewal.
    Scenario(
        "hook-in-cli-ini",
        _address(30),
        "no hook file: /etc/letsencrypt/cli.ini's deploy-hook reloads stemedb-api",
        hook=None,
        files=(HostFile(CLI_INI, data=b"# certbot's options\nagree-tos = true\ndeploy-hook = systemctl reload stemedb-api\n"),),
    ),
    Scenario(
        "cli-ini-no-directory-hooks",
        _address(32),
        "the runbook's hook file, but cli.ini says no-directory-hooks: certbot never runs it",
        files=(HostFile(CLI_INI, data=b"no-directory-hooks = true\n"),),
    ),
    # So do the command lines that renew: the cron entry's, the timer's service's ExecStart.
    Scenario(
        "cron-no-directory-hooks",
        _address(34),
        "certbot.timer masked; the cron entry that renews passes --no-directory-hooks: the hook file never runs",
        timer="masked",
        cron_files=(("certbot-renew", WORKING_CRON.replace("--no-random-sleep-on-renew", "--no-directory-hooks")),),
    ),
    Scenario(
        "timer-no-directory-hooks",
        _address(35),
        "a drop-in gives certbot.service an ExecStart with --no-directory-hooks: the hook file never runs",
        files=(HostFile("/etc/systemd/system/certbot.service.d/override.conf", data=NO_DIRECTORY_HOOKS_UNIT),),
    ),
    Scenario(
        "cron-hook-beside-timer",
        _address(36),
        "the hook file reloads nginx; a cron entry renews too, with a --deploy-hook reloading stemedb-api: the timer's "
        "renewals never reload it",
        hook=OTHER_SERVICE_HOOK,
        cron_files=(("certbot-renew", RELOADING_CRON),),
    ),
    Scenario(
        "cli-ini-replaces-renew-hook",
        _address(33),
        "the conf's renew_hook reloads stemedb-api, but cli.ini's deploy-hook (reloading nginx) replaces it",
        hook=None,
        renew_hook="systemctl reload stemedb-api",
        files=(HostFile(CLI_INI, data=b"deploy-hook = systemctl reload nginx\n"),),
    ),
    Scenario("rbe-missing", _address(17), "renew_before_expiry only as certbot's comment", renew_before_expiry=None, **logins()),
    Scenario("rbe-10-days", _address(18), "renew_before_expiry = 10 days", renew_before_expiry="10 days"),
    Scenario(
        "rbe-unparsable",
        _address(27),
        "renew_before_expiry = thirty days, which certbot cannot parse",
        renew_before_expiry="thirty days",
    ),
    Scenario("key-0644", _address(19), "the service's key is mode 0644", key_mode=0o644, **logins()),
    # stemedb-api runs as stemedb: a root-owned 0600 key is one it cannot read, so it cannot serve.
    Scenario("key-root", _address(20), "the service's key is owned by root", key_owner="root", service_starts=False),
    Scenario("archive-key-0644", _address(21), "an archived key is 0644 behind the live/ symlink", archive_key_mode=0o644),
    Scenario("cert-0666", _address(28), "the service's certificate is writable by anyone", cert_mode=0o666),
    Scenario("cert-root", _address(29), "the service's certificate is owned by root (0644, still readable)", cert_owner="root"),
    Scenario("days-20", _address(22), "20 days left", days_left=20),
    Scenario("days-5", _address(23), "5 days left", days_left=5),
    Scenario("not-reloaded", _address(24), "renewed on disk, but the service never reloaded", serve_stale=True),
    Scenario(
        "custom-ca",
        _address(25),
        "certificate from a custom CA; no certbot lineage",
        ca="custom",
        lineage=False,
        hook=None,
        timer="disabled",
        inventory_vars={"certaudit_renewal": "custom-ca"},
    ),
    Scenario("down", _address(250), "in the inventory, but the host is down", booted=False),
    Scenario("rbe-zero", _address(31), "renew_before_expiry = 0 days", renew_before_expiry="0 days"),
]
FLEET_TOOLS: list[Scenario] = [
    Scenario(
        "scratch", "127.77.1.20", "a compliant host the fleet's own tests change (reloads, new certificates)", audited=False
    ),
]
ALL_SCENARIOS: list[Scenario] = [
    *RUNBOOK,
    *FLEET_TOOLS,
    *JOBS,
    *HARDENING,
    *CATALOG,
    *SECRETS,
    *TRUST,
    *CUSTOM,
    *FLEET_CONTROLS,
    *LIFETIMES,
    *DISTROS,
]

BY_NAME = {s.name: s for s in ALL_SCENARIOS}
