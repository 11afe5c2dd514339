"""The command line a certbot timer's service runs, as certbot receives it.

`systemctl show -p ExecStart` prints the line's words without their quoting: a word there is exact
only where no quoting could have joined it to others (`--dry-run` is; a hook's command is not).
RHEL/EPEL's certbot-renew.service takes words from /etc/sysconfig/certbot (`$DEPLOY_HOOK`,
`$CERTBOT_ARGS`, ...): those are read from the file, exactly as systemd splits them. Any other `$`
word is systemd's expansion of an environment the audit does not read.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from certaudit.errors import Undeterminable
from certaudit.host.facts import HostFacts

if TYPE_CHECKING:  # the gate's start imports schedule, and so this module, but not the hooks' reading
    from certaudit.host.certbot.command_hooks import Word

__all__ = ["RHEL_SERVICE", "ServiceLine", "exec_argv", "service_line"]

RHEL_SERVICE = "certbot-renew.service"  # EnvironmentFile=/etc/sysconfig/certbot
_ARGV = re.compile(r"argv\[\]=([^;]*)")
# systemd's `$NAME` (split into words) and `${NAME}` (one word) on an ExecStart line.
_VARIABLE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def exec_argv(exec_start: str) -> list[str]:
    """The command line of `systemctl show -p ExecStart`'s `{ path=... ; argv[]=... ; ... }`."""
    match = _ARGV.search(exec_start)
    return match.group(1).split() if match else []


@dataclass(frozen=True)
class ServiceLine:
    """A service's ExecStart: its program and the words certbot receives after it."""

    service: str
    program: str
    words: tuple[Word, ...]  # systemctl show's words are not exact; sysconfig's are
    sysconfig_problems: tuple[str, ...] = ()  # what /etc/sysconfig/certbot could not give (an unterminated quote)

    @property
    def where(self) -> str:
        return f"{self.service}'s ExecStart"

    def shown(self) -> str:
        return " ".join([self.program, *(word.text for word in self.words)])

    def runs(self) -> str:
        """What it runs: "certbot", "the snap's certbot.renew", or "other" (a wrapper the audit does not read)."""
        name = posixpath.basename(self.program)
        if name == "snap":
            texts = [word.text for word in self.words]
            return "the snap's certbot.renew" if texts[:1] == ["run"] and "certbot.renew" in texts else "other"
        from certaudit.host.cron import CERTBOT_NAMES

        return "certbot" if name in CERTBOT_NAMES else "other"


def service_line(facts: HostFacts, service: str) -> ServiceLine:
    """The ExecStart of `service` with RHEL's sysconfig variables read, once a host (REN-01's timer and
    REN-02's runs both ask). Raises Undeterminable when systemd shows none, or when a word is an
    environment variable the audit does not read."""
    return facts.derived(f"service_line {service}", lambda: _read_service_line(facts, service))


def _read_service_line(facts: HostFacts, service: str) -> ServiceLine:
    from certaudit.host.certbot.command_hooks import SYSCONFIG, Word, sysconfig_variables

    argv = exec_argv(facts.unit(service).get("ExecStart", ""))
    if not argv:
        raise Undeterminable(f"host {facts.host}: {service} shows no ExecStart: what it runs is unknown")
    where = f"{service}'s ExecStart"
    variables: dict[str, tuple[str, list[str]]] = {}
    problems: list[str] = []
    if service == RHEL_SERVICE:
        sysconfig = facts.file(SYSCONFIG)
        if sysconfig.problem() is None:  # absent: no such variables (and systemd refuses to start the service)
            variables, problems = sysconfig_variables(sysconfig.text())
    words: list[Word] = []
    for text in argv[1:]:
        variable = _VARIABLE.fullmatch(text)
        if variable is not None and service == RHEL_SERVICE:
            name = variable.group(1) or variable.group(2)
            source, values = variables.get(name, ("", []))
            values = values if variable.group(1) else [" ".join(values)] if values else []
            words += [Word(value, source, source) for value in values]
            continue
        if "$" in text:
            raise Undeterminable(
                f"host {facts.host}: {where} passes {text!r}, which systemd expands from an environment the audit "
                "does not read: what certbot is given is unknown"
            )
        words.append(Word(text, where, where, exact=False))
    return ServiceLine(service, argv[0], tuple(words), tuple(problems))
