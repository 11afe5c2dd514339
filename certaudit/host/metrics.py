"""The Prometheus text exposition format (0.0.4), as a host's /metrics serves it (MON-01), read by
prometheus_client's own parser (`text_string_to_metric_families`).

Only what a sample line says is kept: name, labels, value, timestamp. The page comes from the
audited host and is untrusted: it is bounded in size before the parser sees it (the parser's
quote scanning is quadratic in a line's escapes), and a line the parser rejects raises
MetricsError naming the line, never quoting more than a little of it.

The parser is given one line at a time: its rules are all per line (every `raise` in
`prometheus_client.parser` is in the handling of the line just read; `test_metrics` proves a
page is rejected whole exactly when one of its lines is rejected alone), and alone each line keeps
its number and the name it was written with (in a page, a `# TYPE x counter` makes the parser
rename x's samples to x_total). Versions: prometheus_client>=0.20,<1 (the parser is the same
through 0.26).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.metrics_core import Metric

MAX_LINES = 200_000
MAX_PAGE_CHARS = 1024 * 1024  # what the probe fetches at most (gather.tls.METRICS_LIMIT)
MAX_LINE_CHARS = 16 * 1024  # a sample with many long labels is a few hundred characters


class MetricsError(ValueError):
    """The page does not follow the exposition format; the message names the line."""


class MetricsUnread(MetricsError):
    """The page is over a bound and was not parsed: nothing is known of its format."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    timestamp_ms: float | None
    line: int

    def label(self, name: str) -> str | None:
        return next((v for k, v in self.labels if k == name), None)

    def text(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.name}{{{labels}}} {number(self.value)}" if labels else f"{self.name} {number(self.value)}"


def _fail(number: int, line: str, what: str) -> MetricsError:
    shown = line if len(line) <= 80 else line[:77] + "..."
    return MetricsError(f"line {number}: {what}: {shown!r}")


def _why(exc: Exception) -> str:
    """The parser's reason, without the line it quotes (the caller shows a cut of it)."""
    text = str(exc.args[0]) if exc.args else ""
    reason = text.split(":", 1)[0].strip() if text else ""
    return f"prometheus_client rejects it ({reason})" if reason else "prometheus_client rejects it"


def _bound(text: str) -> list[str]:
    if len(text) > MAX_PAGE_CHARS:
        raise MetricsUnread(f"over {MAX_PAGE_CHARS} characters: not parsed")
    lines = text.split("\n")  # the parser's own line split (StringIO iteration)
    if len(lines) > MAX_LINES:
        raise MetricsUnread(f"over {MAX_LINES} lines: not parsed")
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise MetricsUnread(f"line {number}: over {MAX_LINE_CHARS} characters: not parsed")
    return lines


def _metric_families(text: str) -> Iterable[Metric]:
    """prometheus_client's parser, imported on the first page parsed: with its exposition module it
    is a tenth of the gate's start, and the gate judges no metrics page."""
    from prometheus_client.parser import text_string_to_metric_families as parse

    return parse(text)


def _sample(line: str, number: int) -> Sample | None:
    try:
        families = list(_metric_families(line))
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise _fail(number, line.strip(), _why(exc)) from None
    samples = [s for family in families for s in family.samples]
    if not samples:
        return None  # HELP, TYPE, comments and blank lines say nothing about a value
    (sample,) = samples
    timestamp = None if sample.timestamp is None else float(sample.timestamp) * 1000
    return Sample(sample.name, tuple(sample.labels.items()), float(sample.value), timestamp, number)


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of the page, in order; raises MetricsError at the first line the parser rejects."""
    found = (_sample(line, number) for number, line in enumerate(_bound(text), 1))
    return [s for s in found if s is not None]


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def number(value: float) -> str:
    """A sample's value as the page wrote it: whole numbers without an exponent."""
    if finite(value) and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    return repr(value)
