"""certaudit.host.x509: loading untrusted certificate files and describing certificates."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtensionOID, NameOID

from certaudit.host.x509 import (
    CertificateError,
    days_left,
    fingerprint_der_sha256,
    fingerprint_sha256,
    load_pem_certificates,
    public_key_pem,
    same_public_key,
    seconds_left,
    summary,
)

NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2024, 3, 31, tzinfo=dt.UTC)  # 90 days
PATH = "/etc/stemedb/tls/cert.pem"
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(
    key: CertificateIssuerPrivateKeyTypes = EC_KEY,
    *,
    sans: tuple[str, ...] = ("stemedb.example.com", "www.stemedb.example.com"),
    serial: int = 0x1234ABCD,
    algorithm: hashes.SHA256 | hashes.SHA384 | None = None,
    extension: x509.ExtensionType | None = None,
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
            x509.NameAttribute(NameOID.COMMON_NAME, "stemedb.example.com"),
        ]
    )
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    if extension is not None:
        builder = builder.add_extension(extension, critical=False)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return builder.sign(key, None)
    return builder.sign(key, algorithm or hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


CERT = make_cert()


# --- load_pem_certificates --------------------------------------------------------------------


def test_loads_one_certificate() -> None:
    [loaded] = load_pem_certificates(pem(CERT), PATH)
    assert loaded == CERT


def test_loads_a_trustme_chain_in_file_order() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("stemedb.example.com", not_before=NOT_BEFORE, not_after=NOT_AFTER)
    data = b"".join(blob.bytes() for blob in leaf.cert_chain_pems) + ca.cert_pem.bytes()
    chain = load_pem_certificates(data, PATH)
    assert len(chain) == 2
    assert chain[0].not_valid_after_utc == NOT_AFTER
    assert chain[0].issuer == chain[1].subject
    assert chain[1].subject == chain[1].issuer


def test_text_between_blocks_and_other_blocks_are_ignored() -> None:
    second = make_cert(serial=2)
    csr_block = b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
    data = b"Bag Attributes\n    friendlyName: x\n" + pem(CERT) + csr_block + b"subject=CN = x\r\n" + pem(second)
    assert load_pem_certificates(data, PATH) == [CERT, second]


def test_crlf_pem_loads() -> None:
    assert load_pem_certificates(pem(CERT).replace(b"\n", b"\r\n"), PATH) == [CERT]


@pytest.mark.parametrize("data", [b"", b"\n", b"  \r\n\t"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(data, PATH)
    assert str(info.value) == f"{PATH}: empty file"
    assert (info.value.path, info.value.cause) == (PATH, "empty file")


def test_der_is_named_as_der() -> None:
    der = CERT.public_bytes(serialization.Encoding.DER)
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(der, PATH)
    assert str(info.value) == f"{PATH}: DER, not PEM: the file is binary ASN.1, expected -----BEGIN CERTIFICATE-----"


def test_der_with_trailing_newline_is_still_der() -> None:
    der = CERT.public_bytes(serialization.Encoding.DER) + b"\n"
    with pytest.raises(CertificateError, match="DER, not PEM"):
        load_pem_certificates(der, PATH)


def test_text_starting_with_zero_is_not_called_der() -> None:
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(b"0 */12 * * * root certbot renew\n", PATH)
    assert str(info.value) == f"{PATH}: no PEM certificate found"


@pytest.mark.parametrize(
    ("key_pem_format", "label"),
    [
        (serialization.PrivateFormat.PKCS8, "PRIVATE KEY"),
        (serialization.PrivateFormat.TraditionalOpenSSL, "EC PRIVATE KEY"),
    ],
)
def test_private_key_where_a_certificate_should_be(key_pem_format: serialization.PrivateFormat, label: str) -> None:
    key_pem = EC_KEY.private_bytes(serialization.Encoding.PEM, key_pem_format, serialization.NoEncryption())
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(key_pem, PATH)
    message = str(info.value)
    assert message == f"{PATH}: a {label} block (line 1) where a certificate should be: the private key is in this file"
    body = key_pem.splitlines()[1]
    assert body not in message.encode()


def test_private_key_after_the_certificate_raises_too() -> None:
    key_pem = EC_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    data = pem(CERT) + key_pem
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(data, PATH)
    line = pem(CERT).count(b"\n") + 1
    assert str(info.value) == (
        f"{PATH}: a PRIVATE KEY block (line {line}) where a certificate should be: the private key is in this file"
    )


def test_combined_key_and_chain_loads_when_allowed() -> None:
    key_pem = EC_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert load_pem_certificates(key_pem + pem(CERT), PATH, allow_private_key=True) == [CERT]


def test_truncated_pem() -> None:
    text = pem(CERT)
    cut = text[: len(text) // 2]
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(cut, PATH)
    assert str(info.value) == f"{PATH}: truncated PEM: BEGIN CERTIFICATE at line 1 has no matching END CERTIFICATE"


def test_truncated_first_block_is_not_glued_to_the_next() -> None:
    text = pem(CERT)
    first = text[: len(text) // 2] + b"\n"
    data = first + pem(make_cert(serial=2))
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(data, PATH)
    assert str(info.value) == f"{PATH}: truncated PEM: BEGIN CERTIFICATE at line 1 has no matching END CERTIFICATE"


def test_end_line_of_another_label_does_not_close_the_block() -> None:
    lines = pem(CERT).splitlines()
    data = b"\n".join([*lines[:-1], b"-----END X509 CRL-----"]) + b"\n"
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(data, PATH)
    assert str(info.value) == f"{PATH}: truncated PEM: BEGIN CERTIFICATE at line 1 has no matching END CERTIFICATE"


def test_block_that_does_not_parse() -> None:
    lines = pem(CERT).splitlines()
    broken_body = b"QUJD" * 16
    data = b"\n".join([b"# leading comment", lines[0], broken_body, lines[-1]]) + b"\n"
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(data, PATH)
    message = str(info.value)
    assert message.startswith(f"{PATH}: CERTIFICATE block at line 2 does not parse: ")
    assert len(message) > len(f"{PATH}: CERTIFICATE block at line 2 does not parse: ")
    assert "QUJD" not in message


def test_non_positive_serial_is_refused_whatever_the_warning_filters() -> None:
    der = CERT.public_bytes(serialization.Encoding.DER)
    serial = bytes.fromhex("02041234abcd")  # INTEGER 0x1234ABCD
    assert der.count(serial) == 1
    negative = der.replace(serial, bytes.fromhex("02049234abcd"))
    data = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(negative) + b"-----END CERTIFICATE-----\n"
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(data, PATH)
    message = str(info.value)
    assert message.startswith(f"{PATH}: CERTIFICATE block at line 1 violates RFC 5280: Parsed a serial number")


@pytest.mark.parametrize(
    "data",
    [bytes(range(1, 256)) * 4, b"\xff\xfe\x00garbage", b"hello world\n", b"-----END CERTIFICATE-----\n"],
)
def test_binary_garbage(data: bytes) -> None:
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(data, PATH)
    assert str(info.value) == f"{PATH}: no PEM certificate found"


def test_only_other_blocks() -> None:
    data = b"-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n"
    with pytest.raises(CertificateError) as info:
        load_pem_certificates(data, PATH)
    assert str(info.value) == f"{PATH}: no PEM certificate found (found only: X509 CRL)"


# --- fingerprints and time left ---------------------------------------------------------------


def test_fingerprints_agree_with_hashlib() -> None:
    der = CERT.public_bytes(serialization.Encoding.DER)
    expected = hashlib.sha256(der).hexdigest()
    assert fingerprint_sha256(CERT) == expected
    assert fingerprint_der_sha256(der) == expected
    assert len(expected) == 64
    assert expected == expected.lower()
    assert ":" not in expected


@pytest.mark.parametrize(
    ("now", "days", "seconds"),
    [
        (dt.datetime(2024, 3, 1, tzinfo=dt.UTC), 30.0, 30 * 86400.0),
        (dt.datetime(2024, 3, 30, 12, tzinfo=dt.UTC), 0.5, 43200.0),
        (dt.datetime(2024, 3, 31, tzinfo=dt.UTC), 0.0, 0.0),
        (dt.datetime(2024, 4, 2, tzinfo=dt.UTC), -2.0, -2 * 86400.0),
        (dt.datetime(2024, 3, 31, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))), 0.0, 0.0),
    ],
)
def test_time_left(now: dt.datetime, days: float, seconds: float) -> None:
    assert days_left(CERT, now) == days
    assert seconds_left(CERT, now) == seconds


def test_time_left_needs_an_aware_now() -> None:
    with pytest.raises(CertificateError) as info:
        days_left(CERT, dt.datetime(2024, 3, 1))
    assert str(info.value) == "now must be a timezone-aware datetime"


# --- public keys --------------------------------------------------------------------------------


def test_public_key_pem_is_subject_public_key_info() -> None:
    text = public_key_pem(CERT)
    assert text.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert text.rstrip().endswith("-----END PUBLIC KEY-----")
    expected = EC_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert text == expected.decode()


def test_same_public_key() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    assert same_public_key(public_key_pem(CERT), public_key_pem(make_cert(serial=9))) is True
    assert same_public_key(public_key_pem(CERT), public_key_pem(make_cert(other))) is False


def test_same_public_key_ignores_pem_framing() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1 = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    assert pkcs1.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    assert same_public_key(spki.decode(), pkcs1.decode()) is True


@pytest.mark.parametrize(("a", "b", "which"), [("junk", "", "A"), ("", "junk", "B")])
def test_same_public_key_rejects_unparsable_input(a: str, b: str, which: str) -> None:
    good = public_key_pem(CERT)
    with pytest.raises(CertificateError) as info:
        same_public_key(a or good, b or good)
    assert str(info.value).startswith(f"public key {which} does not parse: ")


# --- summary ------------------------------------------------------------------------------------


def test_summary_of_an_ec_certificate() -> None:
    assert summary(CERT) == {
        "subject": "CN=stemedb.example.com,O=Example",
        "issuer": "CN=Test CA",
        "serial": "1234abcd",
        "not_before": "2024-01-01T00:00:00Z",
        "not_after": "2024-03-31T00:00:00Z",
        "sha256": fingerprint_sha256(CERT),
        "key": "EC P-256",
        "signature_hash": "sha256",
        "san_dns": "stemedb.example.com,www.stemedb.example.com",
    }


def test_summary_key_and_hash_of_other_algorithms() -> None:
    rsa_cert = make_cert(rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm=hashes.SHA384())
    p384_cert = make_cert(ec.generate_private_key(ec.SECP384R1()), algorithm=hashes.SHA384())
    k1_cert = make_cert(ec.generate_private_key(ec.SECP256K1()))
    ed_cert = make_cert(ed25519.Ed25519PrivateKey.generate())
    assert (summary(rsa_cert)["key"], summary(rsa_cert)["signature_hash"]) == ("RSA 2048", "sha384")
    assert (summary(p384_cert)["key"], summary(p384_cert)["signature_hash"]) == ("EC P-384", "sha384")
    assert summary(k1_cert)["key"] == "EC secp256k1"
    assert (summary(ed_cert)["key"], summary(ed_cert)["signature_hash"]) == ("Ed25519", "none")


def test_summary_without_san() -> None:
    assert summary(make_cert(sans=()))["san_dns"] == ""


def test_summary_of_a_trustme_leaf() -> None:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    leaf = ca.issue_cert("a.example", "b.example", not_before=NOT_BEFORE, not_after=NOT_AFTER, key_type=trustme.KeyType.RSA)
    [cert] = load_pem_certificates(leaf.cert_chain_pems[0].bytes(), PATH)
    info = summary(cert)
    assert (info["san_dns"], info["not_before"], info["not_after"]) == (
        "a.example,b.example",
        "2024-01-01T00:00:00Z",
        "2024-03-31T00:00:00Z",
    )
    assert info["key"] == "RSA 2048"


def test_summary_reports_a_malformed_san_instead_of_raising() -> None:
    broken = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x04\x03junk")
    cert = make_cert(sans=(), extension=broken)
    assert summary(cert)["san_dns"].startswith("unparsable (")


def test_a_summary_is_a_copy_of_what_is_kept_for_the_certificate() -> None:
    """summary() remembers a few certificates (by their DER): what a caller adds to its dict is its own."""
    shown = summary(CERT)
    shown["subject"] = "changed by a caller"
    shown["extra"] = "x"
    again = summary(x509.load_der_x509_certificate(CERT.public_bytes(serialization.Encoding.DER)))
    assert again["subject"] != "changed by a caller" and "extra" not in again
    assert again == summary(CERT)
