"""What evidence.json keeps of a host's snapshot: the facts, never the files' content.

The probe reads whole files (crontabs, /etc/cron.d, deploy hooks, renewal confs, whatever the
configured paths reach) so the controls can judge them; the controls keep in their own `observed`
values the lines they used (the cron entry that runs certbot, the hook's reload line, the parsed
renew_before_expiry). A crontab also holds tokens, and a `cert.pem` can be a symlink to a file of
passwords, so the evidence keeps of each file read only its SHA-256 and size, plus its certificates
when the file is nothing but certificates (PEM CERTIFICATE blocks that parse as X.509). Every other
string the host sent (names, journal and log lines, error reasons) goes through `redact.untrusted`.
The in-memory facts the controls judge are untouched: this shapes only what is written down.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certaudit.redact import TEXT_CAP, bounded, redacted_tree, untrusted

# One PEM CERTIFICATE block: its base64 body only (RFC 7468's strict form, any line length).
_CERTIFICATE_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----")
_WHITESPACE = b" \t\r\n"


def certificates_only(data: bytes) -> list[str] | None:
    """The PEM of every certificate in `data` when it holds nothing else (whitespace aside) and each
    block parses as X.509; None otherwise (text between blocks, a key, a block that is not a certificate)."""
    blocks: list[str] = []
    pos = 0
    for match in _CERTIFICATE_RE.finditer(data):
        if data[pos : match.start()].strip(_WHITESPACE):
            return None
        try:
            der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
            with warnings.catch_warnings():  # a certificate cryptography frowns on is one all the same
                warnings.simplefilter("ignore")
                certificate = x509.load_der_x509_certificate(der)
            # Written again from the parsed certificate: the evidence holds its DER, nothing around it.
            blocks.append(certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"))
        except (ValueError, binascii.Error):
            return None
        pos = match.end()
    if not blocks or data[pos:].strip(_WHITESPACE):
        return None
    return blocks


def file_evidence(item: dict[str, Any]) -> dict[str, Any]:
    """A file fact as evidence: lstat/stat and errors as the probe gave them, the content as
    content_sha256 and content_size (and certificates_pem when it is only certificates)."""
    kept = {k: bounded(v) for k, v in item.items() if k not in ("content_b64", "certificates_pem")}
    earlier = item.get("certificates_pem")  # a snapshot made minimal before (a merged part's)
    if isinstance(earlier, list) and all(isinstance(p, str) for p in earlier):
        checked = certificates_only("".join(earlier).encode("utf-8", "replace"))
        if checked is not None:
            kept["certificates_pem"] = checked
    content = item.get("content_b64")
    if isinstance(content, str):
        try:
            data = base64.b64decode(content, validate=True)
        except (ValueError, binascii.Error):
            kept["content_error"] = "the probe's content_b64 is not base64"
            return kept
        kept["content_sha256"] = hashlib.sha256(data).hexdigest()
        kept["content_size"] = len(data)
        certificates = certificates_only(data)
        if certificates is not None:
            kept["certificates_pem"] = certificates
    return kept


def _public_key_evidence(item: Any) -> Any:
    """A derived public key as evidence: kept only when it is one (the host's python3 wrote it)."""
    if not isinstance(item, dict):
        return bounded(item)
    kept = {k: bounded(v) for k, v in item.items() if k != "public_pem"}
    pem = item.get("public_pem")
    if isinstance(pem, str):
        try:
            key = serialization.load_pem_public_key(pem.encode("ascii"))
            kept["public_pem"] = key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode("ascii")
        except (ValueError, TypeError, UnicodeEncodeError):
            kept["public_pem_error"] = "the probe's public_pem is not a PEM public key: not kept"
    return kept


def minimal_snapshot(raw: dict[str, Any]) -> dict[str, Any]:
    """The probe's document as evidence.json keeps it (see the module's docstring)."""
    snapshot: dict[str, Any] = {}
    for section, value in raw.items():
        if section == "files" and isinstance(value, dict):
            snapshot["files"] = {
                untrusted(str(path)): file_evidence(item) if isinstance(item, dict) else bounded(item)
                for path, item in value.items()
            }
        elif section == "public_keys" and isinstance(value, dict):
            snapshot["public_keys"] = {untrusted(str(path)): _public_key_evidence(item) for path, item in value.items()}
        else:
            snapshot[section] = redacted_tree(value, key_limit=TEXT_CAP)  # the shape kept: the probe bounds a section's size
    return snapshot
