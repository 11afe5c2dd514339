"""CRT-03's path building: completeness, trust, signatures (SHA-1 still checked), the intermediates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from certaudit.host.chain import TrustStoreError, issued_by, load_der_chain, trust_store, verify_served_chain
from certaudit.host.x509 import fingerprint_sha256
from tests.fleet import pki

NOW = dt.datetime.now(dt.UTC)
Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def make(
    name: str,
    key: Key,
    issuer: tuple[x509.Certificate, Key] | None = None,
    *,
    ca: bool = True,
    days: float = 3650,
    not_before_days: float = -1,
    rsa_padding: padding.PSS | None = None,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + dt.timedelta(days=not_before_days))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if rsa_padding is not None:
        assert isinstance(signer, rsa.RSAPrivateKey)
        return builder.sign(signer, hashes.SHA256(), rsa_padding=rsa_padding)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def pki_tree() -> dict[str, tuple[x509.Certificate, Key]]:
    root_key, inter_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root = make("Root", root_key)
    inter = make("Intermediate", inter_key, (root, root_key))
    leaf = make("stemedb.example.com", leaf_key, (inter, inter_key), ca=False, days=60)
    return {"root": (root, root_key), "inter": (inter, inter_key), "leaf": (leaf, leaf_key)}


def store_of(tmp_path: Path, *certs: x509.Certificate, junk: bytes = b"") -> Path:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(junk + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return bundle


def test_complete_chain_reaches_the_root(pki_tree: dict[str, tuple[x509.Certificate, Key]], tmp_path: Path) -> None:
    root, inter, leaf = pki_tree["root"][0], pki_tree["inter"][0], pki_tree["leaf"][0]
    store = trust_store(str(store_of(tmp_path, root)))
    verdict = verify_served_chain([leaf, inter], store, NOW)
    assert verdict.findings == ()
    assert verdict.path == (leaf, inter) and verdict.anchor == root and verdict.intermediates == (inter,)
    # The root served too is fine: it is the anchor itself, on no path as an intermediate.
    verdict = verify_served_chain([leaf, inter, root], store, NOW)
    assert verdict.findings == () and verdict.intermediates == (inter,)


def test_leaf_alone_is_incomplete(pki_tree: dict[str, tuple[x509.Certificate, Key]], tmp_path: Path) -> None:
    store = trust_store(str(store_of(tmp_path, pki_tree["root"][0])))
    (finding,) = verify_served_chain([pki_tree["leaf"][0]], store, NOW).findings
    assert finding.startswith("the chain is incomplete: the endpoint serves the leaf alone, and its issuer CN=Intermediate")


def test_untrusted_root_and_missing_link(pki_tree: dict[str, tuple[x509.Certificate, Key]], tmp_path: Path) -> None:
    other = make("Other root", ec.generate_private_key(ec.SECP256R1()))
    store = trust_store(str(store_of(tmp_path, other)))
    root, inter, leaf = pki_tree["root"][0], pki_tree["inter"][0], pki_tree["leaf"][0]
    (finding,) = verify_served_chain([leaf, inter, root], store, NOW).findings
    assert finding.startswith("the chain ends at CN=Root, a self-signed certificate not in the trust store")
    (finding,) = verify_served_chain([leaf, inter], store, NOW).findings
    assert finding.startswith("the chain stops at CN=Intermediate: its issuer CN=Root is neither served nor in the trust store")


def test_names_alone_do_not_link(pki_tree: dict[str, tuple[x509.Certificate, Key]], tmp_path: Path) -> None:
    """An impostor intermediate with the right name but another key does not complete the chain."""
    root = pki_tree["root"]
    impostor = make("Intermediate", ec.generate_private_key(ec.SECP384R1()), root)
    store = trust_store(str(store_of(tmp_path, root[0])))
    assert not issued_by(pki_tree["leaf"][0], impostor)
    (finding,) = verify_served_chain([pki_tree["leaf"][0], impostor], store, NOW).findings
    assert "serves the leaf alone" not in finding and "nothing" not in finding
    assert finding.startswith("the chain stops at the leaf")


def test_intermediate_problems(tmp_path: Path) -> None:
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = make("Root", root_key)
    store = trust_store(str(store_of(tmp_path, root)))
    short = make("Short", key, (root, root_key), days=20)
    leaf = make("leaf", ec.generate_private_key(ec.SECP256R1()), (short, key), ca=False, days=60)
    (finding,) = verify_served_chain([leaf, short], store, NOW).findings
    assert finding.startswith("intermediate CN=Short expires on") and "before the leaf" in finding
    expired = make("Expired", key, (root, root_key), days=-1, not_before_days=-30)
    leaf = make("leaf", ec.generate_private_key(ec.SECP256R1()), (expired, key), ca=False, days=-2, not_before_days=-3)
    assert verify_served_chain([leaf, expired], store, NOW).findings[0].startswith("intermediate CN=Expired expired on")
    not_ca = make("Not a CA", key, (root, root_key), ca=False)
    leaf = make("leaf", ec.generate_private_key(ec.SECP256R1()), (not_ca, key), ca=False, days=60)
    assert verify_served_chain([leaf, not_ca], store, NOW).findings == (
        "CN=Not a CA signs the chain but is not a CA certificate (basicConstraints CA:TRUE missing)",
    )


def test_rsa_pss_and_sha1_signatures_verify(tmp_path: Path) -> None:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = make("RSA root", root_key)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    leaf = make("leaf", ec.generate_private_key(ec.SECP256R1()), (root, root_key), ca=False, rsa_padding=pss)
    assert issued_by(leaf, root)
    # cryptography refuses to sign with SHA-1 and names no parameters for it: the openssl command signs.
    issued = pki.issue_spec("stemedb.example.com", pki.LeafSpec(key="rsa-2048", signature_hash="sha1"), days_left=30)
    sha1_leaf = x509.load_pem_x509_certificate(issued.cert_pem)
    ca = x509.load_pem_x509_certificate(issued.chain_pem)
    assert sha1_leaf.signature_hash_algorithm is not None and sha1_leaf.signature_hash_algorithm.name == "sha1"
    assert issued_by(sha1_leaf, ca)


def test_trust_store_skips_odd_blocks_and_refuses_empty_files(
    pki_tree: dict[str, tuple[x509.Certificate, Key]], tmp_path: Path
) -> None:
    junk = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    store = trust_store(str(store_of(tmp_path, pki_tree["root"][0], junk=junk)))
    assert (len(store.roots), store.skipped) == (1, 1)
    assert fingerprint_sha256(pki_tree["root"][0]) in store.fingerprints
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here\n")
    with pytest.raises(TrustStoreError, match="no PEM certificate in it"):
        trust_store(str(empty))
    with pytest.raises(TrustStoreError, match="No such file"):
        trust_store(str(tmp_path / "missing.pem"))
    # Over the bound, the bundle is refused whole: never judged from its first part alone.
    huge = tmp_path / "huge.pem"
    huge.write_bytes(pki_tree["root"][0].public_bytes(serialization.Encoding.PEM) + b"#" * (16 * 1024 * 1024))
    with pytest.raises(TrustStoreError, match=r"huge\.pem: is \d+ bytes, more than the 16777216 a real one needs"):
        trust_store(str(huge))


def test_system_store_loads() -> None:
    store = trust_store(None)
    assert len(store.roots) > 20 and store.source.startswith("/")


def test_served_der_that_does_not_parse_is_named() -> None:
    with pytest.raises(ValueError, match="served certificate #2 does not parse"):
        load_der_chain(
            [pki.issue("a.example", days_left=5).certificate.public_bytes(serialization.Encoding.DER), b"\x30\x03junk"]
        )
