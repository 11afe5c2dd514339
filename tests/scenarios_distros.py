"""Mixed fleets (127.77.9.x): certbot as Debian 11, 12 and 13 ship it, installed by pip into
/opt/certbot with the EFF's cron line, laid out like RHEL/EPEL's package and like the snap.

For each way of installing certbot, one compliant host (certificate issued by pebble with that
host's own certbot, renew_before_expiry pinned) and one broken in that installation's own ways: its
scheduler stopped, its hook not run, its window too short. Bookworm's compliant host is `compliant`
(tests/scenarios.py). The RHEL and snap hosts are Debian underneath: what matters is what the
controls see (the units, /etc/sysconfig/certbot, /snap/bin/certbot and the snap's metadata).
"""

from __future__ import annotations

from tests.fleet.scenario import DOMAIN, LE, RELOAD_HOOK, HostFile, Scenario, renewal_conf

BLOCK = "127.77.9"
ACCEPT_DEFAULT = {"certaudit_accept_certbot_default_window": True}
# certbot 4.x's own window is a third of the lifetime, which always meets the runbook's 30 days
# scaled to the lifetime (30/90): the broken hosts' inventory asks for 40 days (40/90 of it).
ACCEPT_DEFAULT_ASK_40 = {**ACCEPT_DEFAULT, "certaudit_min_renew_before_days": 40}
OTHER_SERVICE_HOOK = RELOAD_HOOK.replace("systemctl reload stemedb-api", "systemctl reload nginx")
CONF = f"{LE}/renewal/{DOMAIN}.conf"

# Debian's own scheduler, which the pip, RHEL and snap hosts do not have.
DEBIAN_UNITS = (
    "/usr/lib/systemd/system/certbot.timer",
    "/usr/lib/systemd/system/certbot.service",
    "/etc/systemd/system/timers.target.wants/certbot.timer",
    "/etc/cron.d/certbot",
)

# The EFF's instructions (certbot.eff.org, pip): a venv in /opt/certbot, a symlink, and this line.
PIP_PREFIX = "/opt/certbot"
EFF_CRON_LINE = (
    "0 0,12 * * * root /opt/certbot/bin/python -c 'import random; import time; time.sleep(random.random() * 3600)' "
    "&& sudo certbot renew -q\n"
)
DEBIAN_CRONTAB = (
    "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n\n"
    "17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n"
)
PIP_FILES = (
    HostFile("/usr/bin/certbot", kind="symlink", target=f"{PIP_PREFIX}/bin/certbot"),
    HostFile("/etc/crontab", data=(DEBIAN_CRONTAB + EFF_CRON_LINE).encode()),
)

# RHEL/EPEL's certbot package: its timer and service, hooks from /etc/sysconfig/certbot.
RHEL_HOOK = "/usr/local/libexec/reload-stemedb.sh"
RHEL_TIMER = (
    "[Unit]\nDescription=This is the timer to set the schedule for automated renewals\n\n"
    "[Timer]\nOnCalendar=*-*-* 00/12:00:00\nRandomizedDelaySec=12hours\nPersistent=true\n\n"
    "[Install]\nWantedBy=timers.target\n"
)
RHEL_SERVICE = (
    "[Unit]\nDescription=This service automatically renews any certbot certificates found\n\n"
    "[Service]\nEnvironmentFile=/etc/sysconfig/certbot\nType=oneshot\n"
    "ExecStart=/usr/bin/certbot renew --noninteractive --no-random-sleep-on-renew "
    "$PRE_HOOK $POST_HOOK $RENEW_HOOK $DEPLOY_HOOK $CERTBOT_ARGS\n"
)


def sysconfig(deploy_hook: str, certbot_args: str = '""') -> bytes:
    """/etc/sysconfig/certbot as EPEL ships it, with DEPLOY_HOOK and CERTBOT_ARGS set."""
    return (
        "# Options for certbot-renew.service\n"
        'PRE_HOOK=""\nPOST_HOOK=""\nRENEW_HOOK=""\n'
        "# An example to restart httpd would be:\n"
        "# DEPLOY_HOOK=\"--deploy-hook 'systemctl restart httpd'\"\n"
        f"DEPLOY_HOOK={deploy_hook}\n"
        f"CERTBOT_ARGS={certbot_args}\n"
    ).encode()


def rhel_files(timer_enabled: bool, deploy_hook: str, certbot_args: str = '""') -> tuple[HostFile, ...]:
    files = [
        HostFile("/usr/lib/systemd/system/certbot-renew.timer", data=RHEL_TIMER.encode()),
        HostFile("/usr/lib/systemd/system/certbot-renew.service", data=RHEL_SERVICE.encode()),
        HostFile("/etc/sysconfig/certbot", data=sysconfig(deploy_hook, certbot_args)),
    ]
    if timer_enabled:
        files.append(
            HostFile(
                "/etc/systemd/system/timers.target.wants/certbot-renew.timer",
                kind="symlink",
                target="/usr/lib/systemd/system/certbot-renew.timer",
            )
        )
    return tuple(files)


# The snap: /snap/bin/certbot is snapd's launcher, the revision's files under /snap/certbot/<rev>,
# its version in meta/snap.yaml, and the timer snapd writes. certbot itself is the pip build.
SNAP_REVISION = "/snap/certbot/4793"
SNAP_LAUNCHER = """#!/bin/sh
# Stand-in for snapd's launcher: /snap/bin/certbot and `snap run [--timer=...] certbot[.renew]`.
app=/snap/certbot/current/bin/certbot
[ "$(basename "$0")" = certbot ] && exec "$app" "$@"
[ "$1" = run ] || exit 64
shift
case "$1" in --timer=*) shift ;; esac
case "$1" in
  certbot.renew) exec "$app" -q renew ;;
  certbot) shift; exec "$app" "$@" ;;
esac
exit 64
"""
SNAP_TIMER = (
    "[Unit]\nDescription=Timer renew for snap application certbot.renew\nRequires=snap-certbot-4793.mount\n"
    "[Timer]\nUnit=snap.certbot.renew.service\nOnCalendar=*-*-* 00:00\nOnCalendar=*-*-* 12:00\n\n"
    "[Install]\nWantedBy=timers.target\n"
)
SNAP_SERVICE = (
    "[Unit]\nDescription=Service for snap application certbot.renew\n\n"
    '[Service]\nExecStart=/usr/bin/snap run --timer="00:00~24:00/2" certbot.renew\n'
    "SyslogIdentifier=certbot.renew\nType=oneshot\n"
)
SNAP_TIMER = SNAP_TIMER.replace("Requires=snap-certbot-4793.mount\n", "")  # no squashfs mount here


def snap_files(version: str) -> tuple[HostFile, ...]:
    return (
        HostFile("/usr/bin/snap", data=SNAP_LAUNCHER.encode(), mode=0o755),
        HostFile("/snap/bin/certbot", kind="symlink", target="/usr/bin/snap"),
        HostFile("/usr/bin/certbot", kind="symlink", target="/snap/bin/certbot"),  # the snap's install step
        HostFile("/snap/certbot/current", kind="symlink", target="4793"),
        HostFile(f"{SNAP_REVISION}/meta/snap.yaml", data=f"name: certbot\nversion: {version}\nconfinement: classic\n".encode()),
        HostFile("/etc/systemd/system/snap.certbot.renew.timer", data=SNAP_TIMER.encode()),
        HostFile("/etc/systemd/system/snap.certbot.renew.service", data=SNAP_SERVICE.encode()),
        HostFile(
            "/etc/systemd/system/timers.target.wants/snap.certbot.renew.timer",
            kind="symlink",
            target="/etc/systemd/system/snap.certbot.renew.timer",
        ),
    )


SCENARIOS: list[Scenario] = [
    # Debian 11 and 13, their own certbot package (1.12, 4.0).
    Scenario(
        "bullseye-compliant",
        f"{BLOCK}.10",
        "Debian 11, its certbot 1.12, issued by pebble",
        image="bullseye",
        cert_source="pebble",
    ),
    Scenario(
        "bullseye-broken",
        f"{BLOCK}.11",
        "Debian 11: certbot.timer stopped, the deploy hook not executable, renew_before_expiry = 10 days",
        image="bullseye",
        hook_mode=0o644,
        renew_before_expiry="10 days",
        after_boot=("systemctl stop certbot.timer",),
    ),
    Scenario(
        "trixie-compliant", f"{BLOCK}.12", "Debian 13, its certbot 4.0, issued by pebble", image="trixie", cert_source="pebble"
    ),
    Scenario(
        "trixie-broken",
        f"{BLOCK}.13",
        "Debian 13: certbot.timer masked, the hook reloads nginx, the window certbot 4.0 computes for a 45-day certificate "
        "(15 days), under the 40/90 of its lifetime the inventory asks",
        image="trixie",
        timer="masked",
        hook=OTHER_SERVICE_HOOK,
        renew_before_expiry=None,
        lifetime_days=45,
        days_left=40,
        inventory_vars=ACCEPT_DEFAULT_ASK_40,
    ),
    # pip into /opt/certbot, renewed by the EFF's line in /etc/crontab.
    Scenario(
        "pip-compliant",
        f"{BLOCK}.14",
        f"certbot {PIP_PREFIX} by pip (the EFF's instructions), its cron line, issued by pebble",
        cert_source="pebble",
        certbot=f"{PIP_PREFIX}/bin/certbot",
        removed=DEBIAN_UNITS,
        venvs=(PIP_PREFIX,),
        files=PIP_FILES,
    ),
    Scenario(
        "pip-broken",
        f"{BLOCK}.15",
        "pip certbot: cron stopped, renew_hook names a script that is not executable, renew_before_expiry = 20 days",
        removed=DEBIAN_UNITS,
        venvs=(PIP_PREFIX,),
        hook=None,
        renew_hook="/usr/local/sbin/reload-stemedb",
        renew_before_expiry="20 days",
        after_boot=("systemctl stop cron",),
        files=(*PIP_FILES, HostFile("/usr/local/sbin/reload-stemedb", data=RELOAD_HOOK.encode(), mode=0o644)),
    ),
    # RHEL/EPEL's layout: certbot-renew.timer, hooks from /etc/sysconfig/certbot.
    Scenario(
        "rhel-compliant",
        f"{BLOCK}.16",
        "RHEL/EPEL layout: certbot-renew.timer, the deploy hook from /etc/sysconfig/certbot, issued by pebble",
        cert_source="pebble",
        hook_path=RHEL_HOOK,
        removed=DEBIAN_UNITS,
        files=rhel_files(True, f"\"--deploy-hook '{RHEL_HOOK}'\""),
    ),
    Scenario(
        "rhel-broken",
        f"{BLOCK}.17",
        "RHEL/EPEL layout: certbot-renew.timer not enabled, DEPLOY_HOOK empty, renew_before_expiry = 10 days",
        hook=None,
        renew_before_expiry="10 days",
        removed=DEBIAN_UNITS,
        files=rhel_files(False, '""'),
    ),
    Scenario(
        "rhel-no-directory-hooks",
        f"{BLOCK}.20",
        "RHEL/EPEL layout, the runbook's hook file in renewal-hooks/deploy, but CERTBOT_ARGS passes "
        "--no-directory-hooks on certbot-renew.service's command line: certbot never runs the hook",
        removed=DEBIAN_UNITS,
        files=rhel_files(True, '""', '"--no-directory-hooks"'),
    ),
    # The snap: snap.certbot.renew.timer and /snap/bin/certbot.
    Scenario(
        "snap-compliant",
        f"{BLOCK}.18",
        "the certbot snap: snap.certbot.renew.timer, /snap/bin/certbot, issued by pebble",
        cert_source="pebble",
        certbot="/snap/bin/certbot",
        removed=DEBIAN_UNITS,
        venvs=(SNAP_REVISION,),
        files=snap_files("4.1.1"),
    ),
    Scenario(
        "snap-broken",
        f"{BLOCK}.19",
        "the certbot snap: its timer stopped, the reload only as deploy_hook in [renewalparams] (certbot ignores it), "
        "the window certbot 4.1 computes for a 45-day certificate (15 days), under the 40/90 of its lifetime the inventory asks",
        removed=DEBIAN_UNITS,
        venvs=(SNAP_REVISION,),
        hook=None,
        renew_before_expiry=None,
        lifetime_days=45,
        days_left=40,
        inventory_vars=ACCEPT_DEFAULT_ASK_40,
        after_boot=("systemctl stop snap.certbot.renew.timer",),
        files=(
            *snap_files("4.1.1"),
            HostFile(CONF, data=(renewal_conf(DOMAIN, None) + "deploy_hook = systemctl reload stemedb-api\n").encode()),
        ),
    ),
]
