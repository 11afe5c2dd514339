"""Reading shell: which commands a script, a one-line hook or a cron command really runs.

Hand-written, not bashlex: bashlex misread 301 of 1500 generated command lines that this lexer and
/bin/sh read alike, and raises on `case` and `$((...))` (tests/unit/test_differential_shell.py).

Shared by the deploy-hook rules (certaudit.host.certbot.hooks) and the cron rules
(certaudit.host.cron), which ask the same question: does a command the shell would really run do X?
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["VAR_MARK", "ShellCommand", "iter_commands", "shell_commands", "unwrap_command"]


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
VAR_MARK = "\x00"  # brackets a variable name inside a word until expansion


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
        self.text = text.replace(VAR_MARK, "")
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
            self.heredocs.append((word.replace(VAR_MARK, ""), self.redirect == "heredoc-"))
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
                self.word.add(f"{VAR_MARK}{inner}{VAR_MARK}")
            else:
                self.word.add(self.count(text[self.i : close + 1]))
            self.i = close + 1
        else:
            match = _NAME_RE.match(text, self.i + 1)
            if match:
                self.word.add(f"{VAR_MARK}{match.group()}{VAR_MARK}")
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


_VAR_RE = re.compile(f"{VAR_MARK}([^{VAR_MARK}]*){VAR_MARK}")


# Scripts up to this size are split once a run: a fleet's cron lines and hooks are the same few texts on
# every host (config management writes them), each split again at every control that reads them.
# Longer ones are split each time, so the memory the memo holds stays bounded whatever hosts send.
MEMO_SCRIPT_CHARS = 4096


def shell_commands(script: str) -> list[ShellCommand]:
    """Split a shell script (or a one-line command) into the simple commands /bin/sh runs.

    Comments, here-document bodies and quoted text are not commands; `a && b; c | d` is four.
    Never raises, whatever the text.
    """
    if len(script) <= MEMO_SCRIPT_CHARS:
        return list(_split_short(script))
    return _split(script)


@lru_cache(maxsize=256)
def _split_short(script: str) -> tuple[ShellCommand, ...]:
    return tuple(_split(script))


def _split(script: str) -> list[ShellCommand]:
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
