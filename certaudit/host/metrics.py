"""The Prometheus text exposition format (0.0.4), as a host's /metrics serves it (MON-01).

Only what a sample line says is kept: name, labels, value, timestamp. The page comes from the
audited host and is untrusted: anything that does not follow the format raises MetricsError with
the line number and what was expected, never quoting more than a little of the line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
MAX_LINES = 200_000


class MetricsError(ValueError):
    """The page does not follow the exposition format; the message names the line."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    timestamp_ms: int | None
    line: int

    def label(self, name: str) -> str | None:
        return next((v for k, v in self.labels if k == name), None)

    def text(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.name}{{{labels}}} {number(self.value)}" if labels else f"{self.name} {number(self.value)}"


def _fail(number: int, line: str, what: str) -> MetricsError:
    shown = line if len(line) <= 80 else line[:77] + "..."
    return MetricsError(f"line {number}: {what}: {shown!r}")


def _value(text: str) -> float:
    lowered = text.lower()
    if lowered in ("nan", "+inf", "inf", "-inf"):
        return float(lowered)
    # Go's ParseFloat, as Prometheus reads values: no underscores, no "infinity", no hex.
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        raise ValueError(text)
    return float(text)


def _labels(line: str, start: int, number: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """Parse `{a="x",b="y"}` from line[start] (the brace); return the labels and the index after `}`."""
    labels: list[tuple[str, str]] = []
    seen: set[str] = set()
    i = start + 1
    while True:
        while i < len(line) and line[i] in " \t":
            i += 1
        if i < len(line) and line[i] == "}":
            return tuple(labels), i + 1
        match = _LABEL.match(line, i)
        if not match:
            raise _fail(number, line, "expected a label name or '}'")
        name = match.group(0)
        i = match.end()
        while i < len(line) and line[i] in " \t":
            i += 1
        if i >= len(line) or line[i] != "=":
            raise _fail(number, line, f"expected '=' after label {name}")
        i += 1
        while i < len(line) and line[i] in " \t":
            i += 1
        if i >= len(line) or line[i] != '"':
            raise _fail(number, line, f"expected a quoted value for label {name}")
        i += 1
        value: list[str] = []
        while True:
            if i >= len(line):
                raise _fail(number, line, f"unterminated value of label {name}")
            char = line[i]
            if char == "\\":
                if i + 1 >= len(line) or line[i + 1] not in _ESCAPES:
                    raise _fail(number, line, f"bad escape in the value of label {name}")
                value.append(_ESCAPES[line[i + 1]])
                i += 2
            elif char == '"':
                i += 1
                break
            else:
                value.append(char)
                i += 1
        if name in seen:
            raise _fail(number, line, f"label {name} given twice")
        seen.add(name)
        labels.append((name, "".join(value)))
        while i < len(line) and line[i] in " \t":
            i += 1
        if i < len(line) and line[i] == ",":
            i += 1
        elif i < len(line) and line[i] == "}":
            return tuple(labels), i + 1
        else:
            raise _fail(number, line, "expected ',' or '}' after a label")


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of the page, in order; raises MetricsError at the first line that is not valid."""
    samples: list[Sample] = []
    for number, raw in enumerate(text.split("\n"), 1):
        if number > MAX_LINES:
            raise MetricsError(f"over {MAX_LINES} lines")
        line = raw.rstrip("\r").strip(" \t")
        if not line or line.startswith("#"):
            continue  # HELP, TYPE and comments say nothing about a value
        match = _NAME.match(line)
        if not match:
            raise _fail(number, line, "expected a metric name")
        name = match.group(0)
        i = match.end()
        labels: tuple[tuple[str, str], ...] = ()
        if i < len(line) and line[i] == "{":
            labels, i = _labels(line, i, number)
        if i < len(line) and line[i] not in " \t":
            raise _fail(number, line, "expected a space before the value")
        fields = line[i:].split()
        if not 1 <= len(fields) <= 2:
            raise _fail(number, line, "expected a value and at most a timestamp")
        try:
            value = _value(fields[0])
        except ValueError:
            raise _fail(number, line, "the value is not a number") from None
        timestamp: int | None = None
        if len(fields) == 2:
            if not re.fullmatch(r"-?\d{1,19}", fields[1]):
                raise _fail(number, line, "the timestamp is not whole milliseconds")
            timestamp = int(fields[1])
        samples.append(Sample(name, labels, value, timestamp, number))
    return samples


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def number(value: float) -> str:
    """A sample's value as the page wrote it: whole numbers without an exponent."""
    if finite(value) and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    return repr(value)
