"""Whether the chain a TLS endpoint serves reaches a trusted root (CRT-03).

A client builds a path from the leaf, through the certificates the server sent, to a root it
trusts; it fetches nothing else. So the path here uses only the served certificates and the trust
store: `certaudit_ca_bundle` (a PEM file of roots, for a private CA, or pebble in tests) or the
auditing machine's system bundle. Each link is checked by its signature, not only by names.
Signatures are verified with the issuer's public key directly, so a SHA-1 signature is still
checked (and reported) rather than refused as unsupported.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from certaudit.errors import CertauditError
from certaudit.host.x509 import WEAK_HASHES, fingerprint_sha256, signature_hash
from certaudit.readers import ReadError, read_bounded

MAX_DEPTH = 8
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora
    "/etc/ssl/cert.pem",  # Alpine, macOS
)
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL)


class TrustStoreError(CertauditError):
    """The trust store cannot be used (a problem of the auditing machine, not of the host)."""


@dataclass(frozen=True)
class TrustStore:
    source: str
    roots: tuple[x509.Certificate, ...]
    skipped: int  # blocks of the bundle that do not parse (system bundles carry a few odd ones)

    @functools.cached_property
    def _by_subject(self) -> dict[bytes, list[x509.Certificate]]:
        index: dict[bytes, list[x509.Certificate]] = {}
        for root in self.roots:
            index.setdefault(root.subject.public_bytes(), []).append(root)
        return index

    @functools.cached_property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(fingerprint_sha256(r) for r in self.roots)

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        return self._by_subject.get(cert.issuer.public_bytes(), [])


def system_bundle() -> str:
    """The PEM bundle this machine's OpenSSL trusts by default."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *SYSTEM_BUNDLES):
        if candidate and os.path.isfile(candidate):
            return candidate
    raise TrustStoreError("no system CA bundle on the auditing machine: set certaudit_ca_bundle")


def trust_store(path: str | None) -> TrustStore:
    """The roots in `path` (None: the system bundle), parsed once per file version."""
    source = path or system_bundle()
    try:
        st = os.stat(source)
    except OSError as exc:
        raise TrustStoreError(f"CA bundle {source}: {exc.strerror or exc}") from None
    return _load(source, st.st_mtime_ns, st.st_size)


MAX_BUNDLE_BYTES = 16 * 1024 * 1024  # Debian's whole bundle is about 220 KB


@functools.lru_cache(maxsize=8)
def _load(source: str, mtime_ns: int, size: int) -> TrustStore:
    try:
        # Read whole or not at all: a bundle cut at a bound would be judged as if it held every root.
        data = read_bounded(Path(source), MAX_BUNDLE_BYTES)
    except ReadError as exc:
        raise TrustStoreError(f"CA bundle {exc}") from None
    roots: list[x509.Certificate] = []
    skipped = 0
    for block in _PEM_BLOCK.finditer(data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            try:
                roots.append(x509.load_pem_x509_certificate(block.group(0)))
            except ValueError:
                skipped += 1
    if not roots:
        raise TrustStoreError(f"CA bundle {source}: no PEM certificate in it")
    return TrustStore(source, tuple(roots), skipped)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer`'s name is `cert`'s issuer and its key made `cert`'s signature."""
    if cert.issuer.public_bytes() != issuer.subject.public_bytes():
        return False
    try:
        key = issuer.public_key()
        algorithm = cert.signature_hash_algorithm
        # cryptography gives no parameters for the algorithms it deprecates (SHA-1): PKCS#1 v1.5 and
        # ECDSA over the named hash are what those certificates use.
        parameters = cert.signature_algorithm_parameters
        if isinstance(key, rsa.RSAPublicKey) and algorithm:
            scheme = parameters if isinstance(parameters, padding.PSS | padding.PKCS1v15) else padding.PKCS1v15()
            key.verify(cert.signature, cert.tbs_certificate_bytes, scheme, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        elif isinstance(key, dsa.DSAPublicKey) and algorithm:
            key.verify(cert.signature, cert.tbs_certificate_bytes, algorithm)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    return issued_by(cert, cert)


def name_of(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or f"(empty subject, serial {cert.serial_number:x})"
    except ValueError:
        return f"(unparsable subject, serial {cert.serial_number:x})"


def _issuer_name(cert: x509.Certificate) -> str:
    try:
        return cert.issuer.rfc4514_string()
    except ValueError:
        return "(unparsable issuer)"


def _day(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class ChainVerdict:
    path: tuple[x509.Certificate, ...]  # leaf first, then the served certificates the path uses
    anchor: x509.Certificate | None  # the trusted root the path reaches
    findings: tuple[str, ...]
    unused: tuple[x509.Certificate, ...]  # served but on no path: harmless, worth a note

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        anchor = fingerprint_sha256(self.anchor) if self.anchor is not None else None
        return tuple(c for c in self.path[1:] if fingerprint_sha256(c) != anchor)


def verify_served_chain(served: Sequence[x509.Certificate], store: TrustStore, now: dt.datetime) -> ChainVerdict:
    """Build the path a client builds from what was served; every way it breaks is a finding.

    The leaf's own dates, names and algorithms are CRT-01's and CRT-02's; here: completeness,
    trust, and the intermediates (valid now, CA certificates, not SHA-1 or MD5 signed, and not
    expiring before the leaf, which would break the chain while the leaf is still valid).
    """
    leaf, pool = served[0], list(served[1:])
    path = [leaf]
    findings: list[str] = []
    anchor: x509.Certificate | None = None
    while True:
        current = path[-1]
        if fingerprint_sha256(current) in store.fingerprints:
            anchor = current
            break
        trusted = [root for root in store.issuers_of(current) if issued_by(current, root)]
        if trusted:
            anchor = trusted[0]
            break
        following = next((c for c in pool if c not in path and issued_by(current, c)), None)
        if following is None:
            if _self_signed(current):
                findings.append(
                    f"the chain ends at {name_of(current)}, a self-signed certificate not in the trust store {store.source}"
                )
            elif current is leaf and not pool:
                findings.append(
                    f"the chain is incomplete: the endpoint serves the leaf alone, and its issuer {_issuer_name(current)} "
                    f"is not in the trust store {store.source}; serve the intermediates too (fullchain.pem, not cert.pem)"
                )
            else:
                what = "the leaf" if current is leaf else name_of(current)
                findings.append(
                    f"the chain stops at {what}: its issuer {_issuer_name(current)} is neither served nor in the trust "
                    f"store {store.source} (an untrusted root, or a missing intermediate)"
                )
            break
        if len(path) >= MAX_DEPTH:
            findings.append(f"the chain is longer than {MAX_DEPTH} certificates without reaching a trusted root")
            break
        path.append(following)
    verdict = ChainVerdict(tuple(path), anchor, (), tuple(c for c in pool if c not in path))
    for cert in verdict.intermediates:
        name = name_of(cert)
        if cert.not_valid_after_utc < now:
            findings.append(f"intermediate {name} expired on {_day(cert.not_valid_after_utc)}")
        elif cert.not_valid_before_utc > now:
            findings.append(f"intermediate {name} is not valid before {_day(cert.not_valid_before_utc)}")
        if cert.not_valid_after_utc < leaf.not_valid_after_utc:
            findings.append(
                f"intermediate {name} expires on {_day(cert.not_valid_after_utc)}, before the leaf "
                f"({_day(leaf.not_valid_after_utc)}): from then on clients reject the chain"
            )
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except (x509.ExtensionNotFound, ValueError):
            is_ca = False
        if not is_ca:
            findings.append(f"{name} signs the chain but is not a CA certificate (basicConstraints CA:TRUE missing)")
        algorithm = signature_hash(cert)
        if algorithm in WEAK_HASHES:
            findings.append(f"intermediate {name} is signed with {algorithm.upper()}, which clients reject")
    return ChainVerdict(verdict.path, anchor, tuple(findings), verdict.unused)


def load_der_chain(ders: Sequence[bytes]) -> list[x509.Certificate]:
    """The served certificates; raises ValueError naming the position of one that does not parse."""
    chain = []
    for position, der in enumerate(ders, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            try:
                chain.append(x509.load_der_x509_certificate(der))
            except (ValueError, CryptographyDeprecationWarning) as exc:
                raise ValueError(f"served certificate #{position} does not parse: {' '.join(str(exc).split())[:160]}") from None
    return chain


def describe(cert: x509.Certificate) -> dict[str, str]:
    """What the evidence shows of one certificate on a chain."""
    return {
        "subject": name_of(cert),
        "issuer": _issuer_name(cert),
        "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signature_hash": signature_hash(cert),
        "sha256": fingerprint_sha256(cert),
    }
