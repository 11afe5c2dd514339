"""What cron really runs: the entries Debian's cron accepts, and whether one runs `certbot renew`.

cron is lenient in what it skips and strict in what it runs: a line with a bad time field is
dropped without a word, a file in /etc/cron.d with a dot in its name is never read, and Debian's
own /etc/cron.d/certbot does nothing on a host that runs systemd. Each function here answers one
such question the way cron (and the shell it starts) would.

Hand-written, not croniter or python-crontab: each accepts schedules Debian's cron drops (Quartz's
`L`/`W`/`#`/`?`, backwards ranges) or refuses ones it runs (`@reboot`, `N/step`), and neither reads
cron.d's user field, vixie's environment lines or `%` (tests/unit/test_differential_cron.py).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from certaudit.errors import PathError
from certaudit.host.shell import ShellCommand, iter_commands, shell_commands, unwrap_command

__all__ = [
    "CERTBOT_NAMES",
    "CronEntry",
    "CronError",
    "certbot_renews",
    "cron_command",
    "cron_d_file_is_read",
    "parse_crontab",
    "runs_certbot_renew",
    "skipped_under_systemd",
]


class CronError(PathError, ValueError):
    """A crontab cannot be attributed as asked (a user crontab path that names no user).

    Bad lines never raise: cron skips them, so `parse_crontab` skips them too.
    """


@dataclass(frozen=True)
class CronEntry:
    """One line cron accepts: where it is, when it runs, as whom, and the command text as written
    (before cron turns `%` into newlines; see `cron_command`)."""

    source: str
    line_number: int
    schedule: str
    user: str | None
    command: str


_KEYWORDS = frozenset({"@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (low, high, names whose index + offset is the value)
_FIELDS: tuple[tuple[int, int, tuple[str, ...], int], ...] = (
    (0, 59, (), 0),  # minute
    (0, 23, (), 0),  # hour
    (1, 31, (), 0),  # day of month
    (1, 12, _MONTHS, 1),  # month
    (0, 7, _DAYS, 0),  # day of week (0 and 7 are Sunday)
)
# vixie cron's load_env: NAME (maybe quoted) then optional blanks then '='.
_ENV_RE = re.compile(r"""^[ \t]*(?:"[^"]*"|'[^']*'|[^ \t="']+)[ \t]*=""")
_BLANKS = " \t"


def _number(text: str, low: int, high: int, names: tuple[str, ...], offset: int) -> int | None:
    if text.isascii() and text.isdigit():
        if len(text) > 4:
            return None
        value = int(text)
    elif text.lower() in names:
        value = names.index(text.lower()) + offset
    else:
        return None
    return value if low <= value <= high else None


def _valid_field(text: str, low: int, high: int, names: tuple[str, ...], offset: int) -> bool:
    """cron's get_list: comma-separated `*`, N, N-M or a name, each with an optional /step."""
    for element in text.split(","):
        base, slash, step = element.partition("/")
        if slash and not (step.isascii() and step.isdigit() and len(step) <= 4 and int(step) > 0):
            return False
        if base == "*":
            continue
        first, dash, last = base.partition("-")
        start = _number(first, low, high, names, offset)
        if start is None:
            return False
        if dash:
            end = _number(last, low, high, names, offset)
            if end is None or end < start:
                return False
    return True


def _split_fields(line: str, count: int) -> tuple[list[str], str] | None:
    """The first `count` blank-separated fields and the rest of the line (cron's Skip_Blanks)."""
    fields: list[str] = []
    i, n = 0, len(line)
    for _ in range(count):
        while i < n and line[i] in _BLANKS:
            i += 1
        start = i
        while i < n and line[i] not in _BLANKS:
            i += 1
        if start == i:
            return None
        fields.append(line[start:i])
    while i < n and line[i] in _BLANKS:
        i += 1
    return fields, line[i:]


def _parse_line(line: str, system: bool) -> tuple[str, str | None, str] | None:
    """(schedule, user, command) for a line cron accepts as an entry, else None."""
    keyword = line.lstrip(_BLANKS).startswith("@")
    time_fields = 1 if keyword else 5
    split = _split_fields(line, time_fields + (1 if system else 0))
    if split is None:
        return None
    fields, command = split
    if not command.strip():
        return None
    if keyword:
        if fields[0] not in _KEYWORDS:
            return None
    elif not all(_valid_field(text, *spec) for text, spec in zip(fields[:5], _FIELDS, strict=True)):
        return None
    user = fields[time_fields] if system else None
    return " ".join(fields[:time_fields]), user, command


def parse_crontab(text: str, source: str, system: bool) -> list[CronEntry]:
    """The entries cron runs from one crontab, in file order.

    `system` is True for /etc/crontab and /etc/cron.d/* (a user field after the time), False for
    /var/spool/cron/crontabs/<user> (the user is the file's name). Blank lines, comments,
    environment settings and lines cron rejects (bad time fields, unknown @keyword, no command)
    are skipped, never raised on. Lines split on "\\n" only, as cron reads them: a CRLF file's
    "\\r" stays in the command, where it breaks the last word as it does for cron.
    """
    user: str | None = None
    if not system:
        user = posixpath.basename(source)
        if not user:
            raise CronError(source, "a user crontab's path must end in the user's name")
    entries: list[CronEntry] = []
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.lstrip(_BLANKS)
        if not stripped.strip() or stripped.startswith("#") or _ENV_RE.match(line):
            continue
        parsed = _parse_line(line, system)
        if parsed is None:
            continue
        schedule, line_user, command = parsed
        entries.append(CronEntry(source, number, schedule, line_user if system else user, command))
    return entries


_CRON_D_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")


def cron_d_file_is_read(name: str) -> bool:
    """Debian's cron reads a file in /etc/cron.d only if its name is run-parts-clean: letters,
    digits, `_` and `-` only (so `certbot.dpkg-old`, `certbot~`, `x.bak` are silently ignored)."""
    return _CRON_D_NAME_RE.fullmatch(name) is not None


def cron_command(command: str) -> str:
    """The shell text cron runs for an entry's command: everything before the first `%` not
    escaped by a backslash (the rest is the command's stdin), with `\\%` turned into `%`."""
    out: list[str] = []
    i = 0
    while i < len(command):
        c = command[i]
        if c == "\\" and command[i + 1 : i + 2] == "%":
            out.append("%")
            i += 2
            continue
        if c == "%":
            break
        out.append(c)
        i += 1
    return "".join(out)


CERTBOT_NAMES = frozenset({"certbot", "certbot-auto", "letsencrypt", "letsencrypt-auto"})
# certbot's cli VERBS; its determine_verb takes the first argument that is one of them.
_CERTBOT_VERBS = frozenset({
    "auth", "certonly", "run", "everything", "install", "rollback", "config_changes", "plugins",
    "register", "update_account", "unregister", "renew", "revoke", "certificates", "delete",
    "enhance", "update_symlinks", "show_account", "reconfigure",
})  # fmt: skip


def certbot_renews(argv: Sequence[str]) -> bool:
    """Whether a certbot command line (the executable first) renews: the `renew` verb, and neither
    help nor a rehearsal that saves nothing (`--dry-run`, or a prefix argparse takes for it)."""
    from certaudit.host.certbot.command_hooks import DRY_RUN, HELP, certbot_option

    if not argv or posixpath.basename(argv[0]) not in CERTBOT_NAMES:
        return False
    args = argv[1:]
    if "-h" in args or any((certbot_option(a) or ("",))[0] in (DRY_RUN, HELP) for a in args):
        return False
    verb = next((a for a in args if a in _CERTBOT_VERBS), "run")
    return verb == "renew"


def certbot_renew_argvs(entry: CronEntry) -> list[list[str]]:
    """Each `certbot renew` command line the entry runs, the executable first, as the shell splits it."""
    return [argv for _, argv in iter_commands(cron_command(entry.command)) if certbot_renews(argv)]


def runs_certbot_renew(entry: CronEntry) -> bool:
    """Whether the entry's command really runs `certbot renew` (any path, any options, behind
    `&&`, sudo, `sh -c`...). Commented-out text, `echo certbot renew`, `certbot certificates` and
    `certbot renew --dry-run` (which renews nothing) do not count."""
    return bool(certbot_renew_argvs(entry))


def certbot_renew_executable(entry: CronEntry) -> str | None:
    """The certbot the entry runs to renew, as written (`certbot`, `/opt/certbot/bin/certbot`)."""
    found = certbot_renew_argvs(entry)
    return found[0][0] if found else None


_SYSTEMD_DIRS = frozenset({"/run/systemd/system", "/run/systemd/system/", "/var/run/systemd/system"})


def _test_expression(argv: list[str]) -> list[str] | None:
    """The operands of `test ...` or `[ ... ]`, or None when argv is not a test."""
    if not argv:
        return None
    base = posixpath.basename(argv[0])
    if base == "test":
        return argv[1:]
    if base == "[" and argv[-1:] == ["]"]:
        return argv[1:-1]
    return None


def _false_under_systemd(expression: list[str]) -> bool:
    """True when the test fails wherever /run/systemd/system exists: one of its `-a` terms is
    `! -d /run/systemd/system` (and it has no `-o`, `(` or `)` that could rescue it)."""
    if any(word in ("-o", "(", ")") for word in expression):
        return False
    terms: list[list[str]] = [[]]
    for word in expression:
        if word == "-a":
            terms.append([])
        else:
            terms[-1].append(word)
    return any(len(t) == 3 and t[0] == "!" and t[1] == "-d" and t[2] in _SYSTEMD_DIRS for t in terms)


def _true_under_systemd(expression: list[str]) -> bool:
    return len(expression) == 2 and expression[0] == "-d" and expression[1] in _SYSTEMD_DIRS


def skipped_under_systemd(entry: CronEntry) -> bool:
    """True when the entry does nothing on a host that runs systemd, as Debian's
    /etc/cron.d/certbot: `test -x /usr/bin/certbot -a \\! -d /run/systemd/system && ... &&
    certbot -q renew`. The guard is a `test`/`[ ]` whose `-a` terms include
    `! -d /run/systemd/system`, joined to the certbot renew command only by `&&`; or
    `[ -d /run/systemd/system ] || certbot renew`. On such a host certbot.timer must do the work.
    """
    commands: list[ShellCommand] = shell_commands(cron_command(entry.command))
    argvs = [unwrap_command(c.words)[0] for c in commands]
    for k, argv in enumerate(argvs):
        if not certbot_renews(argv):
            continue
        for t in range(k - 1, -1, -1):
            connector = commands[t + 1].connector
            expression = _test_expression(argvs[t])
            if expression is not None:
                negated = _negated(commands[t].words)
                fails = _true_under_systemd(expression) if negated else _false_under_systemd(expression)
                passes = _false_under_systemd(expression) if negated else _true_under_systemd(expression)
                if connector == "&&" and fails:
                    return True
                if t == k - 1 and connector == "||" and passes:
                    return True
            if connector != "&&":
                break
    return False


def _negated(words: tuple[str, ...]) -> bool:
    """`! test ...`: the shell inverts the test's status."""
    count = 0
    for word in words:
        if word != "!":
            break
        count += 1
    return count % 2 == 1
