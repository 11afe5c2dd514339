"""Certificates the scenarios need, built in code with explicit lifetimes (trustme for the CAs)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

UTC = dt.UTC


@dataclass(frozen=True)
class IssuedCertificate:
    cert_pem: bytes
    chain_pem: bytes  # the intermediates (here: the issuing CA itself)
    key_pem: bytes

    @property
    def fullchain_pem(self) -> bytes:
        return self.cert_pem + self.chain_pem

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


@cache
def authority(name: str) -> trustme.CA:
    """One CA per name for the whole session: "letsencrypt-like" or "custom"."""
    return trustme.CA(organization_name=f"certaudit test {name} CA")


def issue(
    domain: str,
    *,
    days_left: float,
    lifetime_days: float = 90,
    ca_name: str = "letsencrypt-like",
    now: dt.datetime | None = None,
) -> IssuedCertificate:
    """A leaf for `domain` that expires `days_left` days from now and was valid for `lifetime_days`."""
    now = now or dt.datetime.now(UTC)
    not_after = now + dt.timedelta(days=days_left)
    not_before = not_after - dt.timedelta(days=lifetime_days)
    ca = authority(ca_name)
    leaf = ca.issue_cert(domain, not_before=not_before, not_after=not_after)
    return IssuedCertificate(
        cert_pem=leaf.cert_chain_pems[0].bytes(),
        chain_pem=ca.cert_pem.bytes(),
        key_pem=leaf.private_key_pem.bytes(),
    )


def ca_pem(ca_name: str) -> bytes:
    return authority(ca_name).cert_pem.bytes()


def server_identity(address: str) -> tuple[bytes, bytes, bytes]:
    """cert, key and CA for a loopback server (pebble's own HTTPS listener)."""
    ca = authority("fleet-services")
    leaf = ca.issue_cert(address)
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return leaf.cert_chain_pems[0].bytes(), key_pem, ca.cert_pem.bytes()
