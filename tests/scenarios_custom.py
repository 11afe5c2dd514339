"""Scenario hosts of the custom-control tests (testinfra's `host` on the inventory), address block 127.77.7.x."""

from __future__ import annotations

from tests.fleet.scenario import HostFile, Scenario

AUDITOR = "auditor"  # logs in unprivileged; `ansible_become` gives it root through `sudo -n`
SUDO_AUDITOR = "sudo-auditor"

SCENARIOS: list[Scenario] = [
    Scenario(
        SUDO_AUDITOR,
        "127.77.7.10",
        "compliant, plus an unprivileged login that may run anything as root without a password (sudo -n)",
        cert_source="pebble",  # certbot's account under /etc/letsencrypt/accounts: root's alone
        login_users=(AUDITOR,),
        files=(HostFile("/etc/sudoers.d/auditor", data=f"{AUDITOR} ALL=(ALL) NOPASSWD: ALL\n".encode(), mode=0o440),),
    ),
]
