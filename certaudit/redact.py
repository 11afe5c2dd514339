"""Keep secrets out of everything certaudit prints or writes.

Inventory values are echoed in error messages so an operator can find a typo; a value that is (or
looks like) a secret is named, never shown.
"""

from __future__ import annotations

import re
from typing import Any

SECRET_NAME_RE = re.compile(r"pass|secret|token|private|credential|api_?key|_key$", re.IGNORECASE)
SECRET_VALUE_RE = re.compile(r"PRIVATE KEY|BEGIN OPENSSH|BEGIN ENCRYPTED", re.IGNORECASE)
REDACTED = "<redacted>"
SHOWN_MAX = 120


def shown_value(name: str, value: Any) -> str:
    """repr(value) for a message, shortened, or <redacted> when the name or the value says secret."""
    if SECRET_NAME_RE.search(name) or SECRET_VALUE_RE.search(str(value)):
        return REDACTED
    shown = repr(value)
    return shown if len(shown) <= SHOWN_MAX else shown[: SHOWN_MAX - 3] + "..."


def value_error(host: str, variable: str, value: Any, why: str) -> str:
    """The one shape of every unusable-value message: host, variable, value (or <redacted>), why."""
    return f"host {host}: {variable} = {shown_value(variable, value)} cannot be used: {why}"
