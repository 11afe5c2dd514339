"""`renew_before_expiry` as certbot reads it: `storage.add_time_interval`, through parsedatetime.

A bare number means days, and text parsedatetime finds no interval in adds nothing at all.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

__all__ = ["parse_interval"]

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
