"""Deploy hooks given as commands rather than as files in renewal-hooks/deploy.

- `renew_hook` in a renewal conf's `[renewalparams]` is where certbot saves `--deploy-hook` (and the
  older `--renew-hook`); certbot runs it with a shell (`hooks.renew_hook` -> `_run_hook`,
  `shell=True`), so it may hold a command or name a script.
- `deploy_hook` in `[renewalparams]` is never read: certbot restores only the keys of
  `renewal.STR_CONFIG_ITEMS` (`renew_hook`, `pre_hook`, `post_hook`, ...; no `deploy_hook`, checked
  in 1.12 through 4.x), so a hand-written `deploy_hook = ...` there runs nothing.
- RHEL/EPEL's `certbot-renew.service` runs `certbot renew ... $PRE_HOOK $POST_HOOK $RENEW_HOOK
  $DEPLOY_HOOK $CERTBOT_ARGS` with `EnvironmentFile=/etc/sysconfig/certbot`, which sets e.g.
  `DEPLOY_HOOK="--deploy-hook 'systemctl restart httpd'"`: systemd splits the value as a shell
  would, so `--deploy-hook` / `--renew-hook` (or `--deploy-hook=...`) and their command follow.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

__all__ = ["SYSCONFIG", "CommandHook", "script_of", "sysconfig_hooks"]

SYSCONFIG = "/etc/sysconfig/certbot"
_HOOK_VARIABLES = ("RENEW_HOOK", "DEPLOY_HOOK")
_HOOK_FLAGS = ("--deploy-hook", "--renew-hook")


@dataclass(frozen=True)
class CommandHook:
    source: str  # "renew_hook in <conf>", "DEPLOY_HOOK in /etc/sysconfig/certbot"
    command: str


def _words(text: str) -> list[str] | None:
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        return None  # an unterminated quote: systemd or the shell would refuse it too


def sysconfig_hooks(text: str) -> tuple[list[CommandHook], list[str]]:
    """The deploy hooks /etc/sysconfig/certbot gives certbot-renew.service, and what could not be read."""
    hooks: list[CommandHook] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        name, sep, value = line.partition("=")
        if line.startswith("#") or not sep or name.strip() not in _HOOK_VARIABLES:
            continue
        where = f"{name.strip()} in {SYSCONFIG}:{number}"
        value = value.strip()
        # systemd's EnvironmentFile takes the rest of the line, one pair of quotes removed; the
        # unit's `$DEPLOY_HOOK` then splits it into words, quotes honoured.
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        args = _words(value)
        if args is None:
            problems.append(f"{where}: an unterminated quote")
            continue
        hooks += _hook_arguments(args, where)
    return hooks, problems


def _hook_arguments(args: list[str], where: str) -> list[CommandHook]:
    found = []
    for i, arg in enumerate(args):
        flag, eq, inline = arg.partition("=")
        if flag in _HOOK_FLAGS and eq:
            found.append(CommandHook(where, inline))
        elif arg in _HOOK_FLAGS and i + 1 < len(args):
            found.append(CommandHook(where, args[i + 1]))
    return found


def script_of(command: str) -> str | None:
    """The script a hook command runs when the command is a path (certbot's shell runs it), else None."""
    words = _words(command)
    if words and len(words) == 1 and words[0].startswith("/"):
        return words[0]
    return None
