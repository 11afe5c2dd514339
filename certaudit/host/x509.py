"""Small typed verbs on `cryptography`'s X.509 objects, in the spirit of certbot's crypto_util.

Certificate files come from audited hosts, so they are untrusted: every way they can be wrong
(empty, DER, a private key, truncated PEM, a block that does not parse, binary junk) raises
CertificateError naming the path and the cause, and never quoting the file's bytes, which could
be a private key. All times are timezone-aware UTC (`not_valid_after_utc`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import warnings
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning

from certaudit.errors import PathError

__all__ = [
    "CertificateError",
    "days_left",
    "fingerprint_der_sha256",
    "fingerprint_sha256",
    "load_pem_certificates",
    "public_key_pem",
    "same_public_key",
    "seconds_left",
    "summary",
]


class CertificateError(PathError, ValueError):
    """A certificate (or key) could not be used; the message names the path and the cause."""


_BEGIN_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----")
_END_RE = re.compile(rb"-----END ([A-Z0-9 ]{1,64})-----")
_DER_SEQUENCE = 0x30


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _library_reason(exc: Exception) -> str:
    """cryptography's own wording of a parse failure (it never echoes input), kept short."""
    text = " ".join(str(exc).split())
    return text[:160] or type(exc).__name__


def _looks_like_der(data: bytes) -> bool:
    """A single DER SEQUENCE whose encoded length spans the file (trailing whitespace aside), so a
    text file that merely starts with "0" is not mistaken for DER."""
    if len(data) < 2 or data[0] != _DER_SEQUENCE:
        return False
    first = data[1]
    if first < 0x80:
        total = 2 + first
    elif 0x81 <= first <= 0x84:
        count = first & 0x7F
        if len(data) < 2 + count:
            return False
        total = 2 + count + int.from_bytes(data[2 : 2 + count], "big")
    else:
        return False
    return total <= len(data) and not data[total:].strip()


def load_pem_certificates(data: bytes, path: str, *, allow_private_key: bool = False) -> list[x509.Certificate]:
    """Every CERTIFICATE block of a PEM file, in file order.

    Other PEM blocks (a CRL, a CSR) and text between blocks are ignored. A PRIVATE KEY block
    raises unless `allow_private_key` (a combined key+chain file): in a certificate file it means
    the key is as readable as the certificate.
    """
    if not data.strip():
        raise CertificateError(path, "empty file")
    begins = list(_BEGIN_RE.finditer(data))
    if not begins:
        if _looks_like_der(data):
            raise CertificateError(path, "DER, not PEM: the file is binary ASN.1, expected -----BEGIN CERTIFICATE-----")
        raise CertificateError(path, "no PEM certificate found")
    certificates: list[x509.Certificate] = []
    other_labels: list[str] = []
    for index, begin in enumerate(begins):
        label = begin.group(1).decode("ascii")
        line = _line_of(data, begin.start())
        limit = begins[index + 1].start() if index + 1 < len(begins) else len(data)
        end = _END_RE.search(data, begin.end(), limit)
        if end is None or end.group(1) != begin.group(1):
            raise CertificateError(path, f"truncated PEM: BEGIN {label} at line {line} has no matching END {label}")
        if "PRIVATE KEY" in label:
            if allow_private_key:
                continue
            raise CertificateError(
                path, f"a {label} block (line {line}) where a certificate should be: the private key is in this file"
            )
        if label != "CERTIFICATE":
            other_labels.append(label)
            continue
        certificates.append(_load_block(data[begin.start() : end.end()], path, line))
    if not certificates:
        found = f" (found only: {', '.join(sorted(set(other_labels)))})" if other_labels else ""
        raise CertificateError(path, f"no PEM certificate found{found}")
    return certificates


def _load_block(block: bytes, path: str, line: int) -> x509.Certificate:
    """One CERTIFICATE block. cryptography only warns about some RFC 5280 violations it will
    refuse in a later release (a serial that is not positive); they are refused here already, so
    the outcome does not depend on the process's warning filters."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CryptographyDeprecationWarning)
        try:
            return x509.load_pem_x509_certificate(block)
        except CryptographyDeprecationWarning as exc:
            cause = f"CERTIFICATE block at line {line} violates RFC 5280: {_library_reason(exc)}"
        except ValueError as exc:
            cause = f"CERTIFICATE block at line {line} does not parse: {_library_reason(exc)}"
    raise CertificateError(path, cause)


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex without colons (as certbot logs it)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def fingerprint_der_sha256(der: bytes) -> str:
    """Same fingerprint from raw DER bytes, e.g. what a TLS handshake served."""
    return hashlib.sha256(der).hexdigest()


def _require_aware(now: dt.datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise CertificateError("", "now must be a timezone-aware datetime")


def seconds_left(cert: x509.Certificate, now: dt.datetime) -> float:
    """Seconds from `now` until notAfter; negative once expired."""
    _require_aware(now)
    return (cert.not_valid_after_utc - now).total_seconds()


def days_left(cert: x509.Certificate, now: dt.datetime) -> float:
    """Days (fractional) from `now` until notAfter; negative once expired."""
    return seconds_left(cert, now) / 86400


def public_key_pem(cert: x509.Certificate) -> str:
    """The certificate's SubjectPublicKeyInfo as PEM, comparable with `openssl pkey -pubout`."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm, CryptographyDeprecationWarning) as exc:
        raise CertificateError("", f"unsupported public key: {_library_reason(exc)}") from None
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def _public_der(pem: str, which: str) -> bytes:
    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8", "replace"))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateError("", f"public key {which} does not parse: {_library_reason(exc)}") from None
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def same_public_key(pem_a: str, pem_b: str) -> bool:
    """Whether two PEM public keys are the same key (DER SubjectPublicKeyInfo compared, so
    PEM line wrapping and `RSA PUBLIC KEY` vs `PUBLIC KEY` framing do not matter)."""
    return _public_der(pem_a, "A") == _public_der(pem_b, "B")


_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _key_description(cert: x509.Certificate) -> str:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm, CryptographyDeprecationWarning) as exc:
        return f"unsupported ({_library_reason(exc)})"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


# Signature algorithms named by their OID: cryptography refuses to name some of them (MD2, MD4),
# and a certificate signed with one is still something to report by name.
WEAK_SIGNATURE_OIDS = {
    "1.2.840.113549.1.1.2": "md2",
    "1.2.840.113549.1.1.3": "md4",
    "1.2.840.113549.1.1.4": "md5",
    "1.2.840.113549.1.1.5": "sha1",
    "1.2.840.10045.4.1": "sha1",
    "1.2.840.10040.4.3": "sha1",
    "1.3.14.3.2.29": "sha1",
}
WEAK_HASHES = ("md2", "md4", "md5", "sha1")


def signature_hash(cert: x509.Certificate) -> str:
    """The hash of the certificate's signature: "sha256", "sha1", ...; "none" for Ed25519 and Ed448;
    "unknown (<oid>)" for an algorithm nobody here can name."""
    oid = cert.signature_algorithm_oid.dotted_string
    if oid in WEAK_SIGNATURE_OIDS:
        return WEAK_SIGNATURE_OIDS[oid]
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return f"unknown ({oid})"
    return "none" if algorithm is None else algorithm.name


def _san_dns(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ""
    except (ValueError, CryptographyDeprecationWarning) as exc:
        return f"unparsable ({_library_reason(exc)})"
    return ",".join(san.value.get_values_for_type(x509.DNSName))


def _name(cert: x509.Certificate, which: str) -> str:
    # cryptography only warns (UserWarning) about some malformed attributes, such as a country
    # that is not two letters: caught here as the finding it is, whatever the warning filters say.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            name: x509.Name = cert.subject if which == "subject" else cert.issuer
            return name.rfc4514_string()
        except (ValueError, Warning) as exc:
            return f"unparsable ({_library_reason(exc)})"


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary(cert: x509.Certificate) -> dict[str, str]:
    """What a report shows of a certificate: subject, issuer, serial (hex), not_before and
    not_after (ISO-8601 UTC), sha256, key ("EC P-256", "RSA 2048"), signature_hash ("sha256";
    "none" for Ed25519) and san_dns (comma-joined DNS names, "" without SAN).

    It never raises for a certificate that loaded: a part cryptography cannot decode (an
    unknown key or signature algorithm, a malformed SAN) reads "unsupported (...)" or
    "unparsable (...)", which is itself the finding.
    """
    return dict(_summary(cert))  # a copy: the caller may add to it


# Several controls of a host show the same certificates (its leaf, its chain): each is described once.
# Certificates compare and hash by their DER bytes; a few are kept, so memory stays bounded.
@lru_cache(maxsize=32)
def _summary(cert: x509.Certificate) -> dict[str, str]:
    return {
        "subject": _name(cert, "subject"),
        "issuer": _name(cert, "issuer"),
        "serial": format(cert.serial_number, "x"),
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "sha256": fingerprint_sha256(cert),
        "key": _key_description(cert),
        "signature_hash": signature_hash(cert),
        "san_dns": _san_dns(cert),
    }
