"""Read a large JSON object member by member, without holding the whole document.

evidence.json grows with the fleet (about 45 kB a host): `certaudit merge` reads shards of thousands
of hosts, and a whole document parsed at once costs several times its size in memory. This reads
the top-level object's members in order; a member named in `streamed` (an array or an object) is
handed over one element at a time, each parsed by the standard library's decoder. Every other
member is parsed whole. The input is untrusted: an element larger than `max_member` characters,
a key given twice, text after the document or anything json.loads refuses is a JsonStreamError.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from typing import IO, Any

__all__ = ["JsonStreamError", "read_object"]

_CHUNK = 1 << 20
_WHITESPACE = " \t\n\r"
_DECODER = json.JSONDecoder()


class JsonStreamError(ValueError):
    """Not JSON, or not of the shape read; the message says where."""


class _Reader:
    def __init__(self, stream: IO[bytes], max_member: int) -> None:
        self.stream = stream
        self.max_member = max_member
        self.text = ""
        self.pos = 0
        self.eof = False
        self.decode = codecs.getincrementaldecoder("utf-8")("strict").decode

    def _fill(self, at_least: int = _CHUNK) -> bool:
        """Read on (at least `at_least` bytes unless the end comes first); False at the end."""
        if self.eof:
            return False
        data = self.stream.read(max(_CHUNK, at_least))
        try:
            more = self.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise JsonStreamError(f"not UTF-8 ({exc.reason})") from None
        self.text = self.text[self.pos :] + more
        self.pos = 0
        self.eof = not data
        return True

    def skip_space(self) -> None:
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text) or not self._fill():
                return

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise JsonStreamError(f"expected {char!r} at character {self.pos}, found {found or 'the end'!r}")
        self.pos += 1

    def value(self) -> Any:
        """The next JSON value, read on until it is whole (a number at the buffer's end may go on)."""
        self.skip_space()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise JsonStreamError(str(exc)) from None
                value, end = None, -1
            except RecursionError:
                raise JsonStreamError("nested too deeply") from None
            if end >= 0 and (end < len(self.text) or self.eof):
                self.pos = end
                return value
            pending = len(self.text) - self.pos
            if pending > self.max_member:
                raise JsonStreamError(f"a value of more than {self.max_member} characters")
            self._fill(at_least=pending)  # doubling what is read: a long value costs a few passes, not one a chunk

    def at_end(self) -> bool:
        return self.peek() == ""


def read_object(
    stream: IO[bytes],
    streamed: dict[str, Callable[[str | int, Any], None]],
    max_member: int = 64 << 20,
) -> tuple[dict[str, Any], set[str]]:
    """The top-level object's members, but for those named in `streamed`: each element of those is
    given to its callback as it is read, (index, element) for an array, (key, value) for an object,
    and the member is left out of the result; the names of the streamed members found come second.
    A streamed member of another type is a JsonStreamError."""
    reader = _Reader(stream, max_member)
    found: dict[str, Any] = {}
    seen: set[str] = set()
    reader.expect("{")
    if reader.peek() == "}":
        reader.pos += 1
    else:
        while True:
            key = reader.value()
            if not isinstance(key, str):
                raise JsonStreamError("an object key that is not a string")
            if key in seen:
                raise JsonStreamError(f"member {key[:80]!r} given twice")
            seen.add(key)
            reader.expect(":")
            if key in streamed:
                _stream_member(reader, key, streamed[key])
            else:
                found[key] = reader.value()
            if reader.peek() == ",":
                reader.pos += 1
                continue
            reader.expect("}")
            break
    if not reader.at_end():
        raise JsonStreamError("text after the document")
    return found, seen & set(streamed)


def _stream_member(reader: _Reader, key: str, take: Callable[[str | int, Any], None]) -> None:
    opening = reader.peek()
    if opening not in ("[", "{"):
        raise JsonStreamError(f"member {key!r} is not an array or an object")
    closing = "]" if opening == "[" else "}"
    reader.pos += 1
    if reader.peek() == closing:
        reader.pos += 1
        return
    index = 0
    names: set[str] = set()
    while True:
        if opening == "{":
            name = reader.value()
            if not isinstance(name, str):
                raise JsonStreamError(f"an object key in {key!r} that is not a string")
            if name in names:
                raise JsonStreamError(f"{key}/{name[:80]} given twice")
            names.add(name)
            reader.expect(":")
            take(name, reader.value())
        else:
            take(index, reader.value())
        index += 1
        if reader.peek() == ",":
            reader.pos += 1
            continue
        reader.expect(closing)
        return
