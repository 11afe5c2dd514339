"""Deploy hooks given as commands rather than as files in renewal-hooks/deploy.

- `renew_hook` in a renewal conf's `[renewalparams]` is where certbot saves `--deploy-hook` (and the
  older `--renew-hook`); certbot runs it with a shell (`hooks.renew_hook` -> `_run_hook`,
  `shell=True`), so it may hold a command or name a script.
- `deploy_hook` in `[renewalparams]` is never read: certbot restores only the keys of
  `renewal.STR_CONFIG_ITEMS` (`renew_hook`, `pre_hook`, `post_hook`, ...; no `deploy_hook`, checked
  in 1.12 through 4.x), so a hand-written `deploy_hook = ...` there runs nothing.
- certbot's own config files, `/etc/letsencrypt/cli.ini` then `~/.config/letsencrypt/cli.ini` (root's,
  for the timer's and cron's certbot), give it options as `deploy-hook = <command>`: read with
  ConfigArgParse's parser, as certbot reads them (values in the later file win). An option set there
  counts as set by the user, so at renewal it replaces the renewal conf's `renew_hook`
  (`renewal.restore_required_config_elements` restores only what the user did not set; certbot's
  `VAR_MODIFIERS` makes `deploy_hook` set `renew_hook`).
- RHEL/EPEL's `certbot-renew.service` runs `certbot renew ... $PRE_HOOK $POST_HOOK $RENEW_HOOK
  $DEPLOY_HOOK $CERTBOT_ARGS` with `EnvironmentFile=/etc/sysconfig/certbot`, which sets e.g.
  `DEPLOY_HOOK="--deploy-hook 'systemctl restart httpd'"`: systemd splits the value as a shell
  would, so `--deploy-hook` / `--renew-hook` (or `--deploy-hook=...`) and their command follow.
"""

from __future__ import annotations

import io
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CLI_INI_FILES", "SYSCONFIG", "CliIni", "CommandHook", "hook_arguments", "read_cli_ini", "script_of", "sysconfig_hooks",
]  # fmt: skip

SYSCONFIG = "/etc/sysconfig/certbot"
# certbot's default config files (constants.CLI_DEFAULTS["config_files"]) for root, as its timer and
# cron run it (HOME=/root, no XDG_CONFIG_HOME): read in this order, the later one's values winning.
CLI_INI_FILES = ("/etc/letsencrypt/cli.ini", "/root/.config/letsencrypt/cli.ini")
_CLI_INI_HOOK_KEYS = ("deploy-hook", "renew-hook")  # both set renew_hook, the hook `certbot renew` runs
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
        hooks += hook_arguments(args, where)
    return hooks, problems


@dataclass(frozen=True)
class CliIni:
    """What certbot's config files change about its deploy hooks."""

    hook: CommandHook | None = None  # the deploy-hook / renew-hook `certbot renew` runs instead of renew_hook
    no_directory_hooks: str | None = None  # where `no-directory-hooks` turns renewal-hooks/ off
    problems: tuple[str, ...] = ()  # what makes certbot refuse to start: it then renews nothing


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")  # ConfigArgParse's words for a flag


def read_cli_ini(files: Sequence[tuple[str, str]]) -> CliIni:
    """The deploy-hook settings certbot's config files give `certbot renew`.

    `files` are (path, text) in certbot's order. Each is parsed by ConfigArgParse's default parser,
    which certbot uses; its options become arguments in the order of the file's keys, the later file's
    after the earlier's (an option both set is taken from the later), so the last `deploy-hook` or
    `renew-hook` is the hook that runs.
    """
    import configargparse

    hook: CommandHook | None = None
    off: str | None = None
    problems: list[str] = []
    for path, text in files:
        try:
            items = configargparse.DefaultConfigFileParser().parse(io.StringIO(text))
        except configargparse.ConfigFileParserException as exc:
            problems.append(f"certbot cannot start: its config file {path} does not parse ({exc})")
            continue
        for key, value in items.items():
            if key in _CLI_INI_HOOK_KEYS:
                if isinstance(value, str):
                    hook = CommandHook(f"{key} in {path}", value)
                else:
                    problems.append(f"certbot cannot start: {key} in {path} is a list")
            elif key == "no-directory-hooks":
                word = value.lower() if isinstance(value, str) else ""
                if word in _TRUE:
                    off = f"no-directory-hooks in {path}"
                elif word in _FALSE:
                    off = None  # a later file's false wins over an earlier one's true, as it does for certbot
                else:
                    problems.append(f"certbot cannot start: no-directory-hooks = {value!r} in {path} is not true or false")
    return CliIni(hook, off, tuple(problems))


def hook_arguments(args: list[str], where: str) -> list[CommandHook]:
    """The --deploy-hook / --renew-hook commands in a certbot command line's arguments."""
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
