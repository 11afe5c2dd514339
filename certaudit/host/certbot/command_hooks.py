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
  `$CERTBOT_ARGS` (and any of the five) may carry `--no-directory-hooks` or a hook as well.
- certbot parses a command line with argparse, which takes any unambiguous prefix of a long option:
  `--no-dir` is `--no-directory-hooks`, `--dep` is `--deploy-hook`. Of one command line's hooks the
  last wins; a `--renew-hook` and a `--deploy-hook` that differ make certbot refuse to start
  (`cli_utils._DeployHookAction`, `_RenewHookAction`).
"""

from __future__ import annotations

import io
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "CLI_INI_FILES", "DEPLOY_HOOK", "DRY_RUN", "HELP", "NO_DIRECTORY_HOOKS", "RENEW_HOOK", "SERVICE_VARIABLES",
    "SYSCONFIG", "CliIni", "CommandHook", "CommandLineHooks", "Word", "certbot_option", "command_line_hooks",
    "read_cli_ini", "script_of", "sysconfig_variables",
]  # fmt: skip

SYSCONFIG = "/etc/sysconfig/certbot"
# certbot's default config files (constants.CLI_DEFAULTS["config_files"]) for root, as its timer and
# cron run it (HOME=/root, no XDG_CONFIG_HOME; the snap's certbot too: snapd keeps the real HOME for a
# classic snap): read in this order, the later one's values winning.
CLI_INI_FILES = ("/etc/letsencrypt/cli.ini", "/root/.config/letsencrypt/cli.ini")
_CLI_INI_HOOK_KEYS = ("deploy-hook", "renew-hook")  # both set renew_hook, the hook `certbot renew` runs
# The variables RHEL/EPEL's certbot-renew.service puts on certbot's command line, in its order.
SERVICE_VARIABLES = ("PRE_HOOK", "POST_HOOK", "RENEW_HOOK", "DEPLOY_HOOK", "CERTBOT_ARGS")
NO_DIRECTORY_HOOKS, DEPLOY_HOOK, RENEW_HOOK = "--no-directory-hooks", "--deploy-hook", "--renew-hook"
DRY_RUN, HELP = "--dry-run", "--help"  # a run that renews nothing
_HOOK_FLAGS = (DEPLOY_HOOK, RENEW_HOOK)
# ConfigArgParse's args_for_setting_config_path in certbot's parser; `-cFILE` and `-qc FILE` make
# ConfigArgParse fail, and a prefix of --config is ambiguous with --config-dir.
_CONFIG_FLAGS = ("-c", "--config")
# The shortest prefix argparse takes for each option judged here: a shorter one is ambiguous among
# certbot's options (`--no-d`: --no-delete-after-revoke; `--de`: --debug; `--renew`:
# --renew-by-default; `--d`: --domains), so certbot refuses it. Checked against certbot 1.12's and 4.0's parsers.
_SHORTEST_PREFIX = {
    NO_DIRECTORY_HOOKS: "--no-di", DEPLOY_HOOK: "--dep", RENEW_HOOK: "--renew-h", DRY_RUN: "--dr", HELP: "--he",
}  # fmt: skip


@dataclass(frozen=True)
class CommandHook:
    source: str  # "renew_hook in <conf>", "DEPLOY_HOOK in /etc/sysconfig/certbot"
    command: str


def _words(text: str) -> list[str] | None:
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        return None  # an unterminated quote: systemd or the shell would refuse it too


def sysconfig_variables(text: str) -> tuple[dict[str, tuple[str, list[str]]], list[str]]:
    """The variables /etc/sysconfig/certbot sets for certbot-renew.service's command line: for each set,
    where (`DEPLOY_HOOK in /etc/sysconfig/certbot:7`) and the words `$NAME` becomes; and what could not
    be read. A name set twice takes its later value, as systemd's EnvironmentFile does."""
    values: dict[str, tuple[str, list[str]]] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if line.startswith("#") or not sep or name not in SERVICE_VARIABLES:
            continue
        where = f"{name} in {SYSCONFIG}:{number}"
        value = value.strip()
        # systemd's EnvironmentFile takes the rest of the line, one pair of quotes removed; the
        # unit's `$DEPLOY_HOOK` then splits it into words, quotes honoured.
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        args = _words(value)
        if args is None:
            problems.append(f"{where}: an unterminated quote")
            values.pop(name, None)
            continue
        values[name] = (where, args)
    return values, problems


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


def certbot_option(word: str) -> tuple[str, str | None] | None:
    """The option judged here a command-line word is, as certbot's argparse reads it, with its
    `=value`; None for any other word. `--no-dir` is `--no-directory-hooks`, `--dep=x` a deploy hook."""
    if not word.startswith("--"):
        return None
    name, eq, value = word.partition("=")
    for option, shortest in _SHORTEST_PREFIX.items():
        if name.startswith(shortest) and option.startswith(name):
            return option, (value if eq else None)
    return None


class Word(NamedTuple):
    """One word of a certbot command line, and where it comes from."""

    text: str
    where: str  # "/etc/crontab:3", "certbot.service's ExecStart", "CERTBOT_ARGS in /etc/sysconfig/certbot:6"
    source: str  # how a hook it gives is named: "the command line of /etc/crontab:3", "DEPLOY_HOOK in ..."
    exact: bool = True  # False: systemctl show's word, printed without its quoting


@dataclass(frozen=True)
class CommandLineHooks:
    """What one certbot command line says of the deploy hooks."""

    no_directory_hooks: str | None = None  # where --no-directory-hooks turns renewal-hooks/ off
    hook: CommandHook | None = None  # the hook it runs after a renewal (the last given), if it gives one
    problems: tuple[str, ...] = ()  # what makes certbot refuse the command line: it then renews nothing
    config_files: tuple[str, ...] = ()  # `-c FILE` / `--config FILE`: certbot reads options there too


def command_line_hooks(words: Sequence[Word]) -> CommandLineHooks:
    """Read a command line's words as certbot's parser does: the last hook given wins; a --renew-hook
    and a --deploy-hook that differ make certbot refuse to start."""
    off: str | None = None
    deploy: str | None = None
    renew: CommandHook | None = None
    problems: list[str] = []
    config_files: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.text == "--":
            break  # the rest are positional arguments
        if word.text.startswith("--config="):
            config_files.append(f"{word.text.removeprefix('--config=')} ({word.where})")
            continue
        if word.text in _CONFIG_FLAGS:
            if i < len(words):
                config_files.append(f"{words[i].text} ({word.where})")
            i += 1
            continue
        option = certbot_option(word.text)
        if option is None:
            continue
        name, inline = option
        if name not in (NO_DIRECTORY_HOOKS, *_HOOK_FLAGS):
            continue
        if name == NO_DIRECTORY_HOOKS:
            if inline is None and off is None:
                off = f"{NO_DIRECTORY_HOOKS} on {word.where}"
            continue
        if inline is None:
            if i >= len(words):
                problems.append(f"certbot cannot start: {word.text} on {word.where} has no command")
                break
            inline, i = words[i].text, i + 1
        current = renew.command if renew is not None else None
        if name == DEPLOY_HOOK:
            if deploy != current and current != inline:  # a --renew-hook was given, with another command
                problems.append(f"certbot cannot start: {word.text} on {word.where} conflicts with the --renew-hook before it")
            deploy = inline
        elif deploy is not None and deploy != inline:
            problems.append(f"certbot cannot start: {word.text} on {word.where} conflicts with the --deploy-hook before it")
        renew = CommandHook(word.source, inline)
    return CommandLineHooks(off, renew, tuple(problems), tuple(config_files))


def script_of(command: str) -> str | None:
    """The script a hook command runs when the command is a path (certbot's shell runs it), else None."""
    words = _words(command)
    if words and len(words) == 1 and words[0].startswith("/"):
        return words[0]
    return None
