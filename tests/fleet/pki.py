"""Certificates the scenarios need, built in code with explicit lifetimes (trustme for the CAs)."""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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


@dataclass(frozen=True)
class LeafSpec:
    """A leaf unlike trustme's: its key, signature hash and names, and an intermediate CA between it
    and the root (as Let's Encrypt issues), expiring when asked."""

    key: str = "ec-p256"  # ec-p256, ec-p384, rsa-1024, rsa-2048, ...
    signature_hash: str = "sha256"  # sha1 is signed by the openssl command: cryptography refuses to
    san: tuple[str, ...] = ()  # DNS names; empty: the domain
    intermediate_days_left: float | None = None  # None: the root issues the leaf directly


SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _signing_key(pem: bytes) -> SigningKey:
    key = serialization.load_pem_private_key(pem, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError(f"a CA key of type {type(key).__name__} cannot sign here")
    return key


def _private_key(spec: str) -> SigningKey:
    kind, _, size = spec.partition("-")
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=int(size))
    curves: dict[str, ec.EllipticCurve] = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}
    return ec.generate_private_key(curves[size])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: SigningKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def issue_spec(
    domain: str,
    spec: LeafSpec,
    *,
    days_left: float,
    lifetime_days: float = 90,
    ca_name: str = "letsencrypt-like",
    now: dt.datetime | None = None,
) -> IssuedCertificate:
    """A leaf for `domain` as `spec` says, issued under the named CA (the chain holds the
    intermediate when there is one, else the root, as `issue` does)."""
    now = now or dt.datetime.now(UTC)
    root = authority(ca_name)
    root_cert = x509.load_pem_x509_certificate(root.cert_pem.bytes())
    issuer_cert, issuer_key = root_cert, _signing_key(root.private_key_pem.bytes())
    chain_pem = root.cert_pem.bytes()
    if spec.intermediate_days_left is not None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"certaudit test {ca_name} intermediate")])
        intermediate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(root_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=365))
            .not_valid_after(now + dt.timedelta(days=spec.intermediate_days_left))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256())
        )
        issuer_cert, issuer_key, chain_pem = intermediate, key, _pem(intermediate)
    leaf_key = _private_key(spec.key)
    names = spec.san or (domain,)
    not_after = now + dt.timedelta(days=days_left)
    if spec.signature_hash != "sha256":
        signed = _openssl_sign(names, leaf_key, issuer_cert, issuer_key, spec.signature_hash, days_left)
        return IssuedCertificate(signed, chain_pem, _key_pem(leaf_key))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(issuer_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=lifetime_days))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return IssuedCertificate(_pem(leaf), chain_pem, _key_pem(leaf_key))


def _openssl_sign(
    names: tuple[str, ...],
    leaf_key: SigningKey,
    issuer_cert: x509.Certificate,
    issuer_key: SigningKey,
    digest: str,
    days: float,
) -> bytes:
    """A leaf signed with a digest cryptography will not sign with (SHA-1), by the openssl command."""
    with tempfile.TemporaryDirectory(prefix="certaudit-pki-") as tmp:
        d = Path(tmp)
        (d / "leaf.key").write_bytes(_key_pem(leaf_key))
        (d / "ca.pem").write_bytes(_pem(issuer_cert))
        (d / "ca.key").write_bytes(_key_pem(issuer_key))
        (d / "ext.cnf").write_text(
            "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
            "subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n"
        )
        subject = f"/CN={names[0]}"
        subprocess.run(
            ["openssl", "req", "-new", "-key", str(d / "leaf.key"), "-subj", subject, "-out", str(d / "leaf.csr")],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["openssl", "x509", "-req", "-in", str(d / "leaf.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
             "-set_serial", str(x509.random_serial_number()), f"-{digest}", "-days", str(max(1, round(days))),
             "-extfile", str(d / "ext.cnf"), "-out", str(d / "leaf.pem")],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return (d / "leaf.pem").read_bytes()
