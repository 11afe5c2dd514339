"""certaudit.host.shell against bashlex: does the library read hooks and cron commands at least as
faithfully? (Issue 13: it would replace the hand-written lexer only if so.)

It does not. With /bin/sh as the oracle, shell.py split 1500 of 1500 generated command lines as sh
does, and bashlex 1199 (one it could not parse): its quote removal mangles a quote of one kind
inside the other, adjacent quoted strings and escaped quotes (pinned below). It raises
NotImplementedError on `case ... esac` and on `$((...))`, both common in deploy-hook scripts, and
reads bash where certbot and cron run /bin/sh. On commands, connectors, comments and redirections
of plain words the two agree.
"""

from __future__ import annotations

import subprocess
from typing import Any

import bashlex
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certaudit.host.shell import shell_commands

SETTINGS = settings(max_examples=300, deadline=None, database=None, derandomize=True)


def bashlex_commands(script: str) -> list[tuple[str, ...]]:
    """The words of every simple command bashlex finds, assignments included, in order."""
    found: list[tuple[str, ...]] = []

    class Visitor(bashlex.ast.nodevisitor):  # type: ignore[misc]
        def visitcommand(self, node: Any, parts: list[Any]) -> None:
            found.append(tuple(p.word for p in parts if p.kind in ("word", "assignment")))

    for tree in bashlex.parse(script):
        Visitor().visit(tree)
    return found


# Words as hooks and cron lines write them: plain, quoted, escaped; no `$` (shell.py expands
# earlier assignments, bashlex does not) and no backticks (bashlex lists the inner command too).
PLAIN = st.from_regex(r"[A-Za-z0-9_./:@%+,=-]{1,12}", fullmatch=True).filter(lambda w: not w[0].isdigit() or "=" not in w)
SINGLE = st.from_regex(r"[A-Za-z0-9 _./;&|#()<>\"-]{0,10}", fullmatch=True).map(lambda s: f"'{s}'")
DOUBLE = st.from_regex(r"[A-Za-z0-9 _./;&|#()<>'-]{0,10}", fullmatch=True).map(lambda s: f'"{s}"')
ESCAPED = st.sampled_from(["\\;", "\\&", "\\ ", "\\'", '\\"', "\\#"])
WORD = st.lists(st.one_of(PLAIN, SINGLE, DOUBLE, ESCAPED), min_size=1, max_size=3).map("".join)
# shell.py keeps a compound keyword as a word of the command after it; bashlex drops it
KEYWORDS = frozenset(
    [
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "case",
        "esac",
        "for",
        "while",
        "until",
        "do",
        "done",
        "in",
        "function",
        "select",
        "time",
    ]
)
REDIRECT = st.sampled_from(["", " >/dev/null", " 2>&1", " >>/var/log/x.log 2>&1", " </dev/null"])
COMMAND: st.SearchStrategy[str] = st.builds(
    lambda first, rest, redirect: " ".join([first, *rest]) + redirect,
    PLAIN.filter(lambda w: "=" not in w and w not in KEYWORDS),
    st.lists(PLAIN, max_size=4),
    REDIRECT,
)
CONNECTOR = st.sampled_from([" ; ", " && ", " || ", " | ", " & ", "\n", " # a comment\n"])


def sh_words(text: str) -> tuple[str, ...]:
    """The words /bin/sh (dash on Debian, as certbot's hooks and cron use) makes of `text`: the oracle."""
    done = subprocess.run(["/bin/sh", "-c", "printf '%s\\0' " + text], capture_output=True, check=True, timeout=10)
    return tuple(done.stdout.decode().split("\0")[:-1])


@SETTINGS
@given(st.lists(WORD, min_size=1, max_size=4).map(" ".join))
def test_words_are_split_as_sh_splits_them(words: str) -> None:
    """shell.py reads every generated word as /bin/sh does; bashlex, where it reads it, may not."""
    ours = [c.words for c in shell_commands("rec " + words)]
    assert ours == [("rec", *sh_words(words))]


@st.composite
def scripts(draw: st.DrawFn) -> str:
    commands = draw(st.lists(COMMAND, min_size=1, max_size=5))
    text: str = commands[0]
    for command in commands[1:]:
        text += draw(CONNECTOR) + command
    return text


@SETTINGS
@given(scripts())
def test_where_bashlex_reads_a_script_it_finds_the_same_commands(script: str) -> None:
    """Commands, connectors, comments and redirections: the same commands from both."""
    try:
        theirs = bashlex_commands(script)
    except (bashlex.errors.ParsingError, NotImplementedError):
        return  # bashlex cannot read it; shell.py still does (it never raises)
    assert [c.words for c in shell_commands(script)] == theirs


@pytest.mark.parametrize(
    ("text", "sh"),
    [
        # found by the word property (bashlex's quote removal: 301 of 1500 generated lines)
        ("0'\"'", ('0"',)),  # a `"` inside single quotes
        ("''''", ("",)),  # two empty quoted strings
        ("'a'\\' 'b'", ("a'", "b")),  # an escaped quote after a quoted string
        ("'x'\"'y\"", ("x'y",)),  # a `'` inside double quotes
    ],
)
def test_bashlex_misreads_words_sh_reads(text: str, sh: tuple[str, ...]) -> None:
    assert sh_words(text) == sh
    assert shell_commands("rec " + text)[0].words[1:] == sh
    assert bashlex_commands("rec " + text)[0][1:] != sh


@pytest.mark.parametrize(
    "script",
    [
        'case "$RENEWED_DOMAINS" in *stemedb.example.com*) systemctl reload stemedb-api ;; esac',
        "sleep $((RANDOM % 60)) && systemctl reload stemedb-api",
    ],
)
def test_bashlex_cannot_read_what_deploy_hooks_use(script: str) -> None:
    with pytest.raises(NotImplementedError):
        bashlex.parse(script)
    assert ("systemctl", "reload", "stemedb-api") in [c.words[-3:] for c in shell_commands(script)]


def test_a_text_split_again_gives_the_same_commands_in_a_list_of_its_own() -> None:
    """A short text is split once a run and a long one each time: the same commands either way, and
    what a caller does to the list it got changes nothing for the next."""
    from certaudit.host.shell import MEMO_SCRIPT_CHARS, _split, _split_short

    short = "test -x /usr/bin/certbot && certbot -q renew --no-random-sleep-on-renew"
    first = shell_commands(short)
    first.clear()
    assert shell_commands(short) == _split(short) != []
    long = "X=1; " * (MEMO_SCRIPT_CHARS // 5) + "certbot renew"
    assert len(long) > MEMO_SCRIPT_CHARS
    kept = _split_short.cache_info().currsize
    assert shell_commands(long) == _split(long)
    assert _split_short.cache_info().currsize == kept  # a long text is not kept
