"""The unprivileged audits (issue 18): who logs in to the audited hosts, and what sudo grants them.

No host of its own: the runbook's compliant host and four of its broken ones (tests/scenarios.py)
take these logins, which change nothing root's audit of them sees. Each such host has:

- AUDITOR, an account in the service's group (which opens /etc/stemedb/tls, 0750, to it, as an
  operator would for an unprivileged audit), which sudo lets run python3 as root without a
  password (the README's line for become);
- ASKER, an account with no rights beyond any user's, which sudo would let become root, but only
  with a password: `sudo -n` must refuse it at once, never wait for a terminal.
"""

from __future__ import annotations

from typing import Any

from tests.fleet.scenario import SERVICE_USER, HostFile

AUDITOR = "certaudit"
ASKER = "asker"
# What an operator grants the audit account: python3 as root, nothing else, no password (README).
SUDOERS_AUDITOR = f"{AUDITOR} ALL=(root) NOPASSWD: /usr/bin/python3\n"
SUDOERS_ASKER = f"{ASKER} ALL=(ALL) ALL\n"
SUDOERS = (
    HostFile("/etc/sudoers.d/certaudit", data=SUDOERS_AUDITOR.encode(), mode=0o440),
    HostFile("/etc/sudoers.d/asker", data=SUDOERS_ASKER.encode(), mode=0o440),
)
# The runbook hosts audited unprivileged, each as root, as AUDITOR, as AUDITOR with become, and
# (compliant only) as ASKER with become.
HOSTS = ("compliant", "timer-disabled", "key-0644", "hook-not-executable", "rbe-missing")


def logins() -> dict[str, Any]:
    """The Scenario fields that give a runbook host these two logins."""
    return {"login_users": (f"{AUDITOR}:{SERVICE_USER}", ASKER), "files": SUDOERS}
