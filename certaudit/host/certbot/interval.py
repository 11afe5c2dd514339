"""`renew_before_expiry` as certbot reads it: `storage.add_time_interval`, with parsedatetime itself.

certbot (every release in the field: 1.12 on Debian 11, 2.1 on Debian 12, 4.0 on Debian 13, and
pip's) does, word for word:

    textparser = parsedatetime.Calendar()          # a default argument, built once
    if interval.strip().isdigit():
        interval += " days"
    tzinfo = base_time.tzinfo or pytz.UTC
    return textparser.parseDT(interval, base_time, tzinfo=tzinfo)[0]

and renews when notAfter < that. `parse_interval` makes the same calls with the same arguments.
Versions: certbot requires parsedatetime>=2.4; all three Debian releases ship 2.6, as does pip
(2.6 is the last release since 2020); pyproject pins >=2.6,<3.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import parsedatetime

__all__ = ["parse_interval"]


@functools.cache
def _textparser() -> parsedatetime.Calendar:
    """certbot's own: no arguments, one instance for every call (built on first use: the gate never needs it)."""
    import parsedatetime

    return parsedatetime.Calendar()


def _add_time_interval(base_time: dt.datetime, interval: str) -> tuple[dt.datetime, int]:
    """storage.add_time_interval, plus parsedatetime's status (0: nothing parsed) that certbot drops."""
    if interval.strip().isdigit():
        interval += " days"
    tzinfo = base_time.tzinfo or dt.UTC
    target, status = _textparser().parseDT(interval, base_time, tzinfo=tzinfo)
    return target, int(status)


def parse_interval(text: str, now: dt.datetime) -> dt.timedelta | None:
    """How far before expiry certbot renews for `renew_before_expiry = text`, judged at `now`.

    A bare integer means days; every term parsedatetime reads ("30 days", "4 weeks", "1 month"
    by calendar from `now`, number words, "-" before a term, and its date words such as
    "tomorrow" or "2030-01-01") counts as parsedatetime counts it.

    Returns None when parsedatetime parses nothing (status 0): certbot then adds nothing, so it
    renews only once the certificate has expired. Also None where parsedatetime raises (a
    month count past datetime's range raises TypeError inside it): certbot's renewal of the
    lineage then fails with that error every time, which renews no earlier. parsedatetime works on whole seconds (a
    time.struct_time), so the interval is measured from `now` without its microseconds.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        target, status = _add_time_interval(now, text)
    except Exception:  # certbot's `renew` catches anything here too, and fails the lineage
        return None
    if status == 0:
        return None
    return target - now.replace(microsecond=0)
