"""Deploy hooks as certbot runs them, and whether a hook really reloads the service.

* deploy hooks are listed the way `hooks.list_hooks` lists them: `os.path.isfile` (which follows
  symlinks), `os.access(X_OK)` as root, and a name not ending in `~`;
* a hook "reloads the service" only if a command the shell would really run reloads it.
"""

from __future__ import annotations

import posixpath
import stat
from dataclasses import dataclass

from certaudit.host.shell import VAR_MARK, ShellCommand, iter_commands

__all__ = ["HookFile", "certbot_runs_hook", "reason_certbot_skips", "reloads_service"]


@dataclass(frozen=True)
class HookFile:
    """A file found in `renewal-hooks/deploy`.

    `is_file` and `mode` describe the file after following symlinks (what `os.path.isfile` and
    `os.access` see); `mode` is the permission bits (`stat.S_IMODE`), None when unknown.
    """

    path: str
    name: str
    is_file: bool
    mode: int | None
    uid: int | None
    content: str | None


def reason_certbot_skips(hook: HookFile) -> str | None:
    """Why certbot's `list_hooks` leaves this file out, in certbot's order of checks, or None.

    certbot keeps `filesystem.is_executable(path) and not path.endswith('~')`, where
    is_executable is `os.path.isfile(path) and os.access(path, os.X_OK)`: certbot runs as root,
    and for root X_OK holds on a regular file with any execute bit set.
    """
    if not hook.is_file:
        return "not a regular file"
    if hook.mode is None:
        return "mode unknown: cannot tell whether certbot runs it"
    mode = stat.S_IMODE(hook.mode)
    if not mode & 0o111:
        return f"not executable (mode {mode:04o}): certbot skips it"
    if hook.name.endswith("~"):
        return "name ends with '~': certbot skips it"
    return None


def certbot_runs_hook(hook: HookFile) -> bool:
    """Whether `certbot renew` runs this deploy hook after a renewal."""
    return reason_certbot_skips(hook) is None


_RELOAD_VERBS = frozenset({
    "reload", "restart", "reload-or-restart", "try-restart", "try-reload-or-restart",
    "condrestart", "force-reload", "reload-or-try-restart",
})  # fmt: skip
_SERVICE_ACTIONS = frozenset({"reload", "restart", "force-reload", "try-restart"})
_SYSTEMCTL_SHORT_ARG = frozenset("tspHMnoP")
_SYSTEMCTL_LONG_ARG = frozenset({
    "--type", "--state", "--property", "--signal", "--kill-whom", "--kill-value", "--job-mode",
    "--host", "--machine", "--root", "--image", "--lines", "--output", "--preset-mode",
    "--timestamp", "--what", "--when", "--message", "--check-inhibitors", "--drop-in",
})  # fmt: skip
# Options that point systemctl at another service manager than the host's system one.
_SYSTEMCTL_ELSEWHERE = frozenset({"--user", "--host", "--machine", "-H", "-M"})


def _unit_name(name: str) -> str:
    return name.removesuffix(".service")


def _systemctl_reloads(args: list[str], service: str) -> bool:
    positional: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            positional += args[i + 1 :]
            break
        if a.startswith("--"):
            name = a.split("=", 1)[0]
            if name in _SYSTEMCTL_ELSEWHERE:
                return False
            i += 2 if ("=" not in a and name in _SYSTEMCTL_LONG_ARG) else 1
            continue
        if a.startswith("-") and len(a) > 1:
            step = 1
            for j, ch in enumerate(a[1:], start=1):
                if ch in "HM":
                    return False
                if ch in _SYSTEMCTL_SHORT_ARG:
                    step = 1 if j < len(a) - 1 else 2
                    break
            i += step
            continue
        positional.append(a)
        i += 1
    if len(positional) < 2 or positional[0] not in _RELOAD_VERBS:
        return False
    return _unit_name(service) in {_unit_name(u) for u in positional[1:]}


def _argv_reloads(argv: list[str], service: str) -> bool:
    if not argv:
        return False
    base = posixpath.basename(argv[0])
    if base == "systemctl":
        return _systemctl_reloads(argv[1:], service)
    if base == "service":
        return len(argv) >= 3 and _unit_name(argv[1]) == _unit_name(service) and argv[2] in _SERVICE_ACTIONS
    return False


def _source_text(lines: list[str], command: ShellCommand) -> str:
    chunk = [ln.strip() for ln in lines[command.first_line - 1 : command.last_line]]
    chunk = [ln[:-1].rstrip() if ln.endswith("\\") else ln for ln in chunk]
    return " ".join(ln for ln in chunk if ln)


def reloads_service(script: str, service: str) -> str | None:
    """The script line that reloads or restarts systemd unit `service`, or None.

    Counts `systemctl [opts] reload|restart|reload-or-restart|try-restart|try-reload-or-restart|
    condrestart|force-reload [opts] [units] SERVICE[.service]` (any path to systemctl, behind
    sudo/env/sh -c and the like) and `service SERVICE reload|restart|force-reload|try-restart`,
    anywhere in `&&`/`;`/`||` chains. Not counted: comments, here-doc bodies, quoted text
    (`echo "systemctl reload x"`), other units (`x-old`), `systemctl --user` or `-H`/`-M` (another
    service manager), and signals (`systemctl kill -s HUP`, `kill -HUP`).
    """
    lines = script.replace(VAR_MARK, "").split("\n")
    for command, argv in iter_commands(script):
        if _argv_reloads(argv, service):
            return _source_text(lines, command)
    return None
