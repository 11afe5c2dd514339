"""What certbot itself would do with a host's renewal conf, interval and hooks.

Every rule here mirrors certbot's own source, so that a finding means "certbot will misbehave",
not "this differs from what a person would write":

* the renewal conf is read the way ConfigObj reads it (certbot/_internal/storage.py);
* `renew_before_expiry` is parsed the way `storage.add_time_interval` parses it, through
  parsedatetime: a bare number means days, and text parsedatetime finds no interval in adds
  nothing at all;
* deploy hooks are listed the way `hooks.list_hooks` lists them: `os.path.isfile` (which follows
  symlinks), `os.access(X_OK)` as root, and a name not ending in `~`;
* a hook "reloads the service" only if a command the shell would really run reloads it.

The shell reading (`shell_commands`) is shared with `certaudit.cron`, which asks the same kind of
question about cron commands.
"""

from __future__ import annotations

import calendar
import datetime as dt
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from certaudit.errors import PathError

__all__ = [
    "CertbotConfError",
    "HookFile",
    "RenewalConf",
    "ShellCommand",
    "certbot_runs_hook",
    "iter_commands",
    "parse_interval",
    "parse_renewal_conf",
    "reason_certbot_skips",
    "reloads_service",
    "shell_commands",
    "unwrap_command",
]


class CertbotConfError(PathError, ValueError):
    """certbot could not read a renewal conf: ConfigObj raises, and certbot skips the lineage."""


# --------------------------------------------------------------------------------------------
# Renewal conf (ConfigObj syntax)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenewalConf:
    """A parsed `/etc/letsencrypt/renewal/<name>.conf`.

    `sections` is keyed by section path: `renewalparams`, and for ConfigObj subsections (certbot
    writes `[[webroot_map]]` inside `[renewalparams]`) the dotted path `renewalparams.webroot_map`.
    Values are ConfigObj's text with surrounding quotes removed; list values (`a, b` or a trailing
    comma) are kept as written.
    """

    top: dict[str, str]
    sections: dict[str, dict[str, str]]

    def _param(self, key: str) -> str | None:
        return self.sections.get("renewalparams", {}).get(key)

    @property
    def renew_before_expiry(self) -> str | None:
        """Top-level only: certbot reads `configuration.get("renew_before_expiry")` at the top, and
        its own `# renew_before_expiry = 30 days` is a comment, which sets nothing."""
        return self.top.get("renew_before_expiry")

    @property
    def renew_hook(self) -> str | None:
        """Where `--deploy-hook` is saved: `renew_hook` in `[renewalparams]`."""
        return self._param("renew_hook")

    @property
    def server(self) -> str | None:
        """The ACME directory. certbot stores it in `[renewalparams]` and `RenewableCert.server`
        reads it only there; a top-level `server` line is ignored by certbot."""
        return self._param("server")

    @property
    def authenticator(self) -> str | None:
        """From `[renewalparams]`; certbot skips a lineage whose renewalparams lack it."""
        return self._param("authenticator")

    @property
    def autorenew(self) -> str | None:
        """`autorenew` in `[renewalparams]` as written; certbot renews nothing automatically when it
        is False (certbot accepts only True/False, case-insensitive)."""
        return self._param("autorenew")

    @property
    def version(self) -> str | None:
        """The certbot version that last wrote the file (top-level)."""
        return self.top.get("version")

    @property
    def cert(self) -> str | None:
        return self.top.get("cert")

    @property
    def privkey(self) -> str | None:
        return self.top.get("privkey")

    @property
    def chain(self) -> str | None:
        return self.top.get("chain")

    @property
    def fullchain(self) -> str | None:
        return self.top.get("fullchain")

    @property
    def archive_dir(self) -> str | None:
        return self.top.get("archive_dir")


_SECTION_RE = re.compile(r"^(\[+)(.*?)(\]+)\s*(?:#.*)?$")
_TRIPLE_QUOTES = ("'''", '"""')


def _unquote_name(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        return name[1:-1]
    return name


def _after_value_ok(rest: str) -> bool:
    rest = rest.strip()
    return not rest or rest.startswith("#")


def _split_key(line: str) -> tuple[str, str] | None:
    """ConfigObj's keyword rule: a (possibly quoted) key, `=`, then everything else."""
    if line[0] in "'\"":
        end = line.find(line[0], 1)
        if end < 0:
            return None
        key, rest = line[1:end], line[end + 1 :].lstrip()
        if not rest.startswith("="):
            return None
        return key, rest[1:]
    eq = line.find("=")
    if eq <= 0:
        return None
    return line[:eq].strip(), line[eq + 1 :]


def parse_renewal_conf(text: str, path: str = "") -> RenewalConf:
    """Read a renewal conf as ConfigObj would, raising CertbotConfError wherever ConfigObj raises
    (certbot then reports "error parsing" and skips the lineage: nothing renews it)."""
    lines = text.removeprefix("\ufeff").splitlines()
    top: dict[str, str] = {}
    sections: dict[str, dict[str, str]] = {}
    stack: list[str] = []  # section names, outermost first
    current = top
    i = 0
    while i < len(lines):
        number = i + 1
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            match = _SECTION_RE.match(line)
            if match is None or len(match.group(1)) != len(match.group(3)):
                raise CertbotConfError(path, f"line {number}: malformed section header")
            depth = len(match.group(1))
            name = _unquote_name(match.group(2))
            if not name or "[" in name or "]" in name:
                raise CertbotConfError(path, f"line {number}: malformed section header")
            if depth > len(stack) + 1:
                raise CertbotConfError(path, f"line {number}: section [{name}] is nested too deep")
            parent = ".".join(stack[: depth - 1])
            parent_values = sections[parent] if parent else top
            stack = [*stack[: depth - 1], name]
            full = ".".join(stack)
            if full in sections or name in parent_values:
                raise CertbotConfError(path, f"line {number}: duplicate section [{name}]")
            sections[full] = {}
            current = sections[full]
            continue
        split = _split_key(line)
        if split is None or not split[0]:
            raise CertbotConfError(path, f"line {number}: neither `key = value`, a [section] nor a comment")
        key, raw = split[0], split[1].strip()
        value: str
        if raw[:3] in _TRIPLE_QUOTES:
            quote = raw[:3]
            end = raw.find(quote, 3)
            if end >= 0:
                value, rest = raw[3:end], raw[end + 3 :]
            else:
                parts = [raw[3:]]
                while i < len(lines) and quote not in lines[i]:
                    parts.append(lines[i])
                    i += 1
                if i == len(lines):
                    raise CertbotConfError(path, f"line {number}: unterminated {quote} value for {key!r}")
                end = lines[i].find(quote)
                parts.append(lines[i][:end])
                value, rest = "\n".join(parts), lines[i][end + 3 :]
                i += 1
            if not _after_value_ok(rest):
                raise CertbotConfError(path, f"line {number}: text after the quoted value of {key!r}")
        elif raw[:1] in ("'", '"'):
            end = raw.find(raw[0], 1)
            if end < 0:
                raise CertbotConfError(path, f"line {number}: unterminated quote in the value of {key!r}")
            rest = raw[end + 1 :]
            if _after_value_ok(rest):
                value = raw[1:end]
            elif rest.strip().startswith(","):
                value = raw.split(" #", 1)[0].strip()  # a ConfigObj list: keep it as written
            else:
                raise CertbotConfError(path, f"line {number}: text after the quoted value of {key!r}")
        else:
            value = raw.split("#", 1)[0].strip()  # ConfigObj: an unquoted `#` starts a comment
        if key in current or (current is top and key in sections) or (current is not top and ".".join([*stack, key]) in sections):
            raise CertbotConfError(path, f"line {number}: duplicate key {key!r}")
        current[key] = value
    return RenewalConf(top=top, sections=sections)


# --------------------------------------------------------------------------------------------
# renew_before_expiry (parsedatetime's interval syntax)
# --------------------------------------------------------------------------------------------

# parsedatetime 2.6, pdt_locales/base.py: the unit words it knows (nothing else: "hrs", "wks",
# "yrs", "mo", "mths" are not among them, and "m" is minutes, never months).
_UNITS: dict[str, tuple[str, ...]] = {
    "seconds": ("second", "seconds", "sec", "secs", "s"),
    "minutes": ("minute", "minutes", "min", "mins", "m"),
    "hours": ("hour", "hours", "hr", "h"),
    "days": ("day", "days", "dy", "d"),
    "weeks": ("week", "weeks", "wk", "w"),
    "months": ("month", "months", "mth"),
    "years": ("year", "years", "yr", "y"),
}
_UNIT_OF = {word: unit for unit, words in _UNITS.items() for word in words}
# parsedatetime's number words; its table really has no "twelve".
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
}  # fmt: skip


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# parsedatetime's RE_UNITS: \b(-?(digits[.digits]|numberword\b)\s*(unit))\b
_TERM_RE = re.compile(
    rf"\b(?P<qty>\d+(?:\.\d+)?|(?:{_alternation(list(_NUMBER_WORDS))})\b)\s*(?P<unit>{_alternation(list(_UNIT_OF))})\b",
    re.ASCII,
)


def _add_months(base: dt.datetime, months: float) -> dt.datetime:
    """parsedatetime's Calendar.inc: whole months by calendar (day clamped to the month's end),
    then any fraction as that many of the target month's days."""
    whole = int(months)
    fraction = months - whole
    years = int(whole / 12)
    month = base.month + whole - years * 12
    if month < 1:
        years -= 1
        month += 12
    elif month > 12:
        years += 1
        month -= 12
    year = base.year + years
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise OverflowError("year is out of range")
    max_day = calendar.monthrange(year, month)[1]
    target = base.replace(year=year, month=month, day=min(base.day, max_day))
    if fraction:
        target += dt.timedelta(days=fraction * max_day)
    return target


def parse_interval(text: str, now: dt.datetime) -> dt.timedelta | None:
    """How far before expiry certbot renews for `renew_before_expiry = text`, judged at `now`.

    Mirrors `storage.add_time_interval`: a bare integer gets " days" appended; every
    "<number> <unit>" term (parsedatetime's units and number words, case-insensitive, a `-` just
    before it making it negative) is added left to right, months and years by calendar from `now`.
    Words that are not such terms are ignored, as parsedatetime ignores them.

    Returns None when no term is found (or every term overflows, which parsedatetime drops too):
    certbot then adds nothing, so it renews only once the certificate has expired.
    Not modelled: parsedatetime's date words ("tomorrow", "next week", "ago"), which no sane
    renewal conf uses.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if text.strip().isdigit():
        text += " days"
    text = text.lower()
    target = now
    found = False
    previous_end = 0
    for match in _TERM_RE.finditer(text):
        qty_text = match.group("qty")
        negative = text[previous_end : match.start()].rstrip().endswith("-")
        if qty_text in _NUMBER_WORDS:
            # parsedatetime cannot read "-one" as a number and counts it as zero
            qty = 0.0 if negative else float(_NUMBER_WORDS[qty_text])
        else:
            qty = -float(qty_text) if negative else float(qty_text)
        previous_end = match.end()
        unit = _UNIT_OF[match.group("unit")]
        try:
            if unit == "years":
                target = _add_months(target, qty * 12)
            elif unit == "months":
                target = _add_months(target, qty)
            else:
                target = target + dt.timedelta(**{unit: qty})
        except OverflowError:
            continue
        found = True
    return target - now if found else None


# --------------------------------------------------------------------------------------------
# Deploy hooks (hooks.list_hooks)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Reading shell: which commands a script or a one-line hook really runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShellCommand:
    """One simple command as /bin/sh would split it.

    `words` are after quote removal; `$NAME`/`${NAME}` are replaced when an earlier plain
    `NAME=value` line of the same script set them, and left as written otherwise. `connector` is
    the operator before the command: "" at the start, "\\n" after a newline, or one of
    ";", "&&", "||", "|", "&", "(", ")". Lines are 1-based and span continuation lines.
    """

    words: tuple[str, ...]
    connector: str
    first_line: int
    last_line: int


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_VAR_MARK = "\x00"  # brackets a variable name inside a word until expansion


@dataclass
class _Word:
    parts: list[str]
    started: bool = False

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.started = True


class _Lexer:
    """A small POSIX-sh tokenizer: quotes, escapes, comments, operators, redirections, here-docs,
    `$(...)` and backticks kept whole. It never raises: unterminated constructs end at the end."""

    def __init__(self, text: str) -> None:
        self.text = text.replace(_VAR_MARK, "")
        self.i = 0
        self.line = 1
        self.commands: list[tuple[list[str], str, int, int]] = []
        self.words: list[str] = []
        self.word = _Word([])
        self.connector = ""
        self.first_line = 0
        self.redirect: str | None = None  # "file", "heredoc", "heredoc-": the next word is a target
        self.heredocs: list[tuple[str, bool]] = []

    def run(self) -> list[tuple[list[str], str, int, int]]:
        text = self.text
        while self.i < len(text):
            c = text[self.i]
            if c == "\n":
                self.separator("\n")
                self.i += 1
                self.line += 1
                self.skip_heredocs()
            elif c in " \t":  # not \r: sh keeps a CRLF file's \r in the last word, and so do we
                self.end_word()
                self.i += 1
            elif c == "#" and not self.word.started:
                end = text.find("\n", self.i)
                self.i = len(text) if end < 0 else end
            elif c == "\\":
                nxt = text[self.i + 1 : self.i + 2]
                if nxt == "\n":
                    self.line += 1
                else:
                    self.begin()
                    self.word.add(nxt)
                self.i += 2
            elif c == "'":
                end = text.find("'", self.i + 1)
                end = len(text) if end < 0 else end
                self.begin()
                self.word.add(self.count(text[self.i + 1 : end]))
                self.i = end + 1
            elif c == '"':
                self.begin()
                self.double_quoted()
            elif c == "$":
                self.begin()
                self.dollar()
            elif c == "`":
                self.begin()
                end = text.find("`", self.i + 1)
                end = len(text) - 1 if end < 0 else end
                self.word.add(self.count(text[self.i : end + 1]))
                self.i = end + 1
            elif c in ";&|()":
                self.operator(c)
            elif c in "<>":
                self.redirection(c)
            else:
                self.begin()
                self.word.add(c)
                self.i += 1
        self.separator("\n")
        return self.commands

    def count(self, chunk: str) -> str:
        self.line += chunk.count("\n")
        return chunk

    def begin(self) -> None:
        if not self.words and not self.word.started and self.redirect is None:
            self.first_line = self.line

    def end_word(self) -> None:
        if not self.word.started:
            return
        word = "".join(self.word.parts)
        self.word = _Word([])
        if self.redirect is None:
            self.words.append(word)
            return
        if self.redirect.startswith("heredoc"):
            self.heredocs.append((word.replace(_VAR_MARK, ""), self.redirect == "heredoc-"))
        self.redirect = None

    def separator(self, op: str) -> None:
        self.end_word()
        self.redirect = None
        if self.words:
            self.commands.append((self.words, self.connector, self.first_line, self.line))
            self.words = []
            self.connector = op
        elif not (op == "\n" and self.connector in ("&&", "||", "|")):
            self.connector = op  # a newline right after && / || / | continues the list

    def operator(self, c: str) -> None:
        text = self.text
        two = text[self.i : self.i + 2]
        if two == "&>":
            self.end_word()
            self.redirect = "file"
            self.i += 2
            if text[self.i : self.i + 1] == ">":
                self.i += 1
            return
        if two in ("&&", "||", ";;"):
            self.separator(two if two != ";;" else ";")
            self.i += 2
        elif two == "|&":
            self.separator("|")
            self.i += 2
        else:
            self.separator(c)
            self.i += 1

    def redirection(self, c: str) -> None:
        text = self.text
        if self.word.started and "".join(self.word.parts).isdigit():
            self.word = _Word([])  # `2>&1`: the digits name a file descriptor, not an argument
        else:
            self.end_word()
        if text.startswith("<<<", self.i):
            self.i += 3
            self.redirect = "file"
        elif text.startswith("<<-", self.i):
            self.i += 3
            self.redirect = "heredoc-"
        elif text.startswith("<<", self.i):
            self.i += 2
            self.redirect = "heredoc"
        else:
            self.i += 1
            if text[self.i : self.i + 1] in (">", "&", "|") or (c == "<" and text[self.i : self.i + 1] == ">"):
                self.i += 1
            self.redirect = "file"

    def skip_heredocs(self) -> None:
        text = self.text
        while self.heredocs:
            delimiter, strip_tabs = self.heredocs.pop(0)
            while self.i < len(text):
                end = text.find("\n", self.i)
                end = len(text) if end < 0 else end
                body = text[self.i : end]
                self.i = end + 1
                self.line += 1
                if (body.lstrip("\t") if strip_tabs else body) == delimiter:
                    break

    def double_quoted(self) -> None:
        text = self.text
        self.i += 1
        self.word.add("")
        while self.i < len(text):
            c = text[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\":
                nxt = text[self.i + 1 : self.i + 2]
                if nxt == "\n":
                    self.line += 1
                elif nxt in ('"', "\\", "$", "`"):
                    self.word.add(nxt)
                else:
                    self.word.add("\\" + nxt)
                self.i += 2
            elif c == "$":
                self.dollar()
            elif c == "`":
                end = text.find("`", self.i + 1)
                end = len(text) - 1 if end < 0 else end
                self.word.add(self.count(text[self.i : end + 1]))
                self.i = end + 1
            else:
                if c == "\n":
                    self.line += 1
                self.word.add(c)
                self.i += 1

    def dollar(self) -> None:
        text = self.text
        nxt = text[self.i + 1 : self.i + 2]
        if nxt == "(":
            end = self.balanced(self.i + 1)
            self.word.add(self.count(text[self.i : end]))
            self.i = end
        elif nxt == "{":
            close = text.find("}", self.i + 2)
            close = len(text) - 1 if close < 0 else close
            inner = text[self.i + 2 : close]
            if _NAME_RE.fullmatch(inner):
                self.word.add(f"{_VAR_MARK}{inner}{_VAR_MARK}")
            else:
                self.word.add(self.count(text[self.i : close + 1]))
            self.i = close + 1
        else:
            match = _NAME_RE.match(text, self.i + 1)
            if match:
                self.word.add(f"{_VAR_MARK}{match.group()}{_VAR_MARK}")
                self.i = match.end()
            else:
                self.word.add("$")
                self.i += 1

    def balanced(self, start: int) -> int:
        """End (exclusive) of the parenthesised text opening at `start`, skipping quotes."""
        text = self.text
        depth = 0
        i = start
        while i < len(text):
            c = text[i]
            if c in "'\"":
                close = text.find(c, i + 1)
                i = len(text) if close < 0 else close + 1
                continue
            if c == "\\":
                i += 2
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return len(text)


_VAR_RE = re.compile(f"{_VAR_MARK}([^{_VAR_MARK}]*){_VAR_MARK}")


def shell_commands(script: str) -> list[ShellCommand]:
    """Split a shell script (or a one-line command) into the simple commands /bin/sh runs.

    Comments, here-document bodies and quoted text are not commands; `a && b; c | d` is four.
    Never raises, whatever the text.
    """
    variables: dict[str, str] = {}
    result: list[ShellCommand] = []
    for words, connector, first, last in _Lexer(script).run():
        expanded = tuple(_VAR_RE.sub(lambda m: variables.get(m.group(1), "$" + m.group(1)), w) for w in words)
        if all(_ASSIGNMENT_RE.match(w) for w in expanded):
            for w in expanded:
                name, value = w.split("=", 1)
                if "$" not in value and "`" not in value:
                    variables[name] = value
                else:
                    variables.pop(name, None)
        result.append(ShellCommand(expanded, connector, first, last))
    return result


_PREFIX_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time", "nohup"})
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "ksh", "zsh", "busybox"})
_SUDO_ARG_OPTS = frozenset("ugpChDrtTUR")
_SUDO_LONG_ARG_OPTS = frozenset({
    "--user", "--group", "--prompt", "--close-from", "--host", "--chdir", "--role", "--type",
    "--command-timeout", "--other-user", "--chroot",
})  # fmt: skip


def _skip_options(argv: list[str], short_with_arg: frozenset[str], long_with_arg: frozenset[str]) -> list[str]:
    """Drop getopt-style options (and their arguments) from the front of argv."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return argv[i + 1 :]
        if a.startswith("--"):
            i += 2 if ("=" not in a and a in long_with_arg) else 1
        elif a.startswith("-") and len(a) > 1:
            for j, ch in enumerate(a[1:], start=1):
                if ch in short_with_arg:
                    i += 1 if j < len(a) - 1 else 2
                    break
            else:
                i += 1
        else:
            return argv[i:]
    return []


def unwrap_command(words: tuple[str, ...] | list[str]) -> tuple[list[str], str | None]:
    """The argv a command line finally executes, through assignments, keywords and wrappers
    (`sudo`, `env`, `nice`, `timeout`, `flock`, `exec`, `command`...). When it hands a script to a
    shell (`sh -c '...'`, `flock LOCK -c '...'`) that script is returned instead, argv empty."""
    argv = list(words)
    for _ in range(16):
        while argv and _ASSIGNMENT_RE.match(argv[0]):
            argv = argv[1:]
        if not argv:
            return [], None
        head, base = argv[0], posixpath.basename(argv[0])
        rest = argv[1:]
        if head in _PREFIX_KEYWORDS:
            argv = rest
        elif head in ("exec", "command", "builtin"):
            argv = _skip_options(rest, frozenset("a"), frozenset())
        elif base == "sudo":
            argv = _skip_options(rest, _SUDO_ARG_OPTS, _SUDO_LONG_ARG_OPTS)
        elif base == "env":
            argv = _skip_options(rest, frozenset("uCS"), frozenset({"--unset", "--chdir", "--split-string"}))
            while argv and _ASSIGNMENT_RE.match(argv[0]):
                argv = argv[1:]
        elif base == "nice":
            argv = _skip_options(rest, frozenset("n"), frozenset({"--adjustment"}))
        elif base == "ionice":
            argv = _skip_options(rest, frozenset("cnp"), frozenset({"--class", "--classdata", "--pid"}))
        elif base == "timeout":
            argv = _skip_options(rest, frozenset("sk"), frozenset({"--signal", "--kill-after"}))[1:]
        elif base == "flock":
            rest = _skip_options(rest, frozenset("Ew"), frozenset({"--conflict-exit-code", "--timeout"}))[1:]
            if len(rest) >= 2 and rest[0] in ("-c", "--command"):
                return [], rest[1]
            argv = rest
        elif base in _SHELLS and "-c" in rest:
            script_at = rest.index("-c") + 1
            return [], rest[script_at] if script_at < len(rest) else ""
        else:
            return argv, None
    return argv, None


def iter_commands(script: str, depth: int = 0) -> Iterator[tuple[ShellCommand, list[str]]]:
    """Each simple command of `script` with the argv it finally runs, descending into `sh -c`."""
    for command in shell_commands(script):
        argv, inner = unwrap_command(command.words)
        if inner is not None:
            if depth < 4:
                for _inner, inner_argv in iter_commands(inner, depth + 1):
                    yield command, inner_argv
            continue
        yield command, argv


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
    lines = script.replace(_VAR_MARK, "").split("\n")
    for command, argv in iter_commands(script):
        if _argv_reloads(argv, service):
            return _source_text(lines, command)
    return None
