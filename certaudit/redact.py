"""Keep secrets out of everything certaudit prints or writes.

Inventory values are echoed in error messages so an operator can find a typo; a value that is (or
looks like) a secret is named, never shown. Text from ssh, openssl or the audited host goes through
`untrusted` (and observed values through `bounded`) before any record, message or note keeps it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
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


# --- untrusted text: strings from ssh, openssl or the audited host ---------------------------------
# Every string that reaches a record, a message, a note or an observation may come from the audited
# host (a file, a journal line, a certificate's subject) or from ssh and openssl about it (an error
# that quotes a config file: `ssh -F <private key>` prints the key's lines). Such text is redacted by
# pattern and cut to a bound before certaudit keeps it anywhere (evidence.json, report.html,
# junit.xml, the terminal).

TEXT_CAP = 4096  # characters of one string a record keeps (a message line, a note, an observed string)
VALUE_CAP = 16384  # characters of JSON one observed or expected value may add to a record
MESSAGE_CAP = 65536  # characters of one record's whole message
KEY_MATERIAL = "<redacted key material>"
CUT_MARK = "[cut by certaudit:"

# PEM armour in any case (ssh lowercases the words of a config file it quotes). A block with its END
# line goes whole, whatever its label: a message never needs one, and the evidence keeps
# certificates elsewhere. An unterminated BEGIN (output cut short, or ssh quoting a key file) takes
# the rest of the text with it, unless its label names something public (certaudit's own messages
# say "expected -----BEGIN CERTIFICATE-----").
_BEGIN_RE = re.compile(r"-{3,}\s*BEGIN\b([^\n-]{0,80})(?:-{3,})?", re.IGNORECASE)
_END_RE = re.compile(r"-{3,}\s*END\b[^\n-]{0,80}(?:-{3,})?", re.IGNORECASE)
PUBLIC_LABELS = frozenset({"CERTIFICATE", "TRUSTED CERTIFICATE", "PUBLIC KEY", "X509 CRL", "CERTIFICATE REQUEST"})
PEM_OMITTED = "<PEM block omitted>"
# A run of base64 this long is key material (an OpenSSH key body line is 70 characters, a PEM line
# 64); hex digests and OpenSSH's `SHA256:` fingerprints are kept, they are what an auditor compares.
_BASE64_RUN_RE = re.compile(r"(?<![A-Za-z0-9+/])(SHA256:)?([A-Za-z0-9+/]{40,})={0,2}")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
# `password=...`, `export API_TOKEN=...`, and at a line's start `api_token: ...`: the value goes, the
# name stays. A colon elsewhere is not an assignment: "CRT-01 on db-secrets-1: ..." names a host.
_NAME_OF_SECRET = r"[A-Za-z0-9_]*(?:passw(?:or)?d|passphrase|secret|token|api_?key|private_?key)[A-Za-z0-9_]*"  # noqa: S105 (a pattern, not a password)
_VALUE_OF_SECRET = r"(?!<redacted)(\"[^\"\n]*\"|'[^'\n]*'|[^\s\"',;]+)"  # noqa: S105
_ASSIGNED_SECRET_RE = re.compile(
    rf"((?<![A-Za-z0-9_.-]){_NAME_OF_SECRET}\s*=\s*|^[ \t]*{_NAME_OF_SECRET}[ \t]*:[ \t]*){_VALUE_OF_SECRET}",
    re.IGNORECASE | re.MULTILINE,
)


def _base64_run(match: re.Match[str]) -> str:
    fingerprint, run = match.group(1), match.group(2)
    if fingerprint or _HEX_RE.fullmatch(run):
        return match.group(0)
    return KEY_MATERIAL


def _redact_pem(text: str) -> str:
    ends = [m.end() for m in _END_RE.finditer(text)]
    out: list[str] = []
    pos = 0
    for begin in _BEGIN_RE.finditer(text):
        if begin.start() < pos:
            continue  # inside a block already redacted
        label = " ".join(begin.group(1).split()).upper()
        after = bisect.bisect_left(ends, begin.end() + 1)
        if after < len(ends):
            # Both ends of a block: the label says which kind of block, nothing more.
            stop, shown = ends[after], (PEM_OMITTED if label in PUBLIC_LABELS else KEY_MATERIAL)
        elif label in PUBLIC_LABELS:
            continue  # a marker named in passing
        else:
            stop, shown = len(text), KEY_MATERIAL
        out += [text[pos : begin.start()], shown]
        pos = stop
    out.append(text[pos:])
    return "".join(out)


# Each pattern above needs one of these to match at all: a secret's name, three dashes (a PEM BEGIN),
# or 40 base64 characters in a row. Text with none of them is returned as it is after a look for
# each, not three regular expressions: most of what a snapshot holds (paths, modes, names, times,
# digests) is such text.
_SECRET_WORD_RE = re.compile(r"---|pass(?:w|phrase)|secret|token|api_?key|private_?key")  # on lowered text: faster than re.I
_NOT_BASE64_RE = re.compile(r"[^A-Za-z0-9+/]+")


def _may_hold_secret(text: str) -> bool:
    # Outside ASCII, re.IGNORECASE matches more than lower() shows (the long s, the Kelvin sign): every pattern then.
    if not text.isascii() or _SECRET_WORD_RE.search(text.lower()):
        return True
    return len(text) >= 40 and not _HEX_RE.fullmatch(text) and any(len(run) >= 40 for run in _NOT_BASE64_RE.split(text))


def redact_secrets(text: str) -> str:
    """`text` with assigned secrets, PEM blocks, OpenSSH key bodies and long base64 runs redacted.

    Idempotent: redacting again changes nothing.
    """
    if not _may_hold_secret(text):
        return text
    return redact_every_pattern(text)


def redact_every_pattern(text: str) -> str:
    """redact_secrets without its shortcut (each pattern applied in turn)."""
    text = _ASSIGNED_SECRET_RE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _redact_pem(text)
    return _BASE64_RUN_RE.sub(_base64_run, text)


def cut(text: str, limit: int) -> str:
    """`text`, or its start when longer than `limit`, saying it was cut and the length and SHA-256 of the whole.

    The result is never longer than `limit`, so cutting again changes nothing.
    """
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    mark = f" … {CUT_MARK} {len(text)} characters in all, SHA-256 {digest} of the whole]"
    return text[: max(0, limit - len(mark))] + mark


def untrusted(text: str, limit: int = TEXT_CAP) -> str:
    """The one way a string from ssh, openssl or the host is kept: secrets redacted, then cut to `limit`."""
    return cut(redact_secrets(text), limit)


_SHORT_INT = 10**18


def bounded(value: Any, limit: int = VALUE_CAP) -> Any:
    """A JSON-ready value with every string (and key) `untrusted`, and as a whole at most `limit`
    characters of JSON: a larger one is kept as the cut text of its JSON."""
    if isinstance(value, str):
        return untrusted(value, limit)
    if limit >= 64 and (value is None or isinstance(value, bool | float) or (isinstance(value, int) and abs(value) < _SHORT_INT)):
        return value  # nothing to redact, and far shorter than any limit
    clean = redacted_tree(value)
    dumped = json.dumps(clean, ensure_ascii=False, sort_keys=True)
    return clean if len(dumped) <= limit else cut(dumped, limit)


def redacted_tree(value: Any, key_limit: int = SHOWN_MAX * 4) -> Any:
    """The same shape with every string `untrusted` (keys cut at `key_limit`)."""
    if isinstance(value, str):
        return untrusted(value)
    if isinstance(value, dict):
        return {untrusted(str(k), key_limit): redacted_tree(v, key_limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted_tree(v, key_limit) for v in value]
    return value
