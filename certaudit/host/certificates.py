"""The certificate the service uses, on disk and as served, shared by the CRT, LIVE and MON controls."""

from __future__ import annotations

from cryptography import x509

from certaudit.host.facts import HostFacts
from certaudit.host.x509 import CertificateError, load_pem_certificates
from certaudit.policy import Policy
from certaudit.record import Evidence


def leaf_on_disk(facts: HostFacts, policy: Policy, evidence: Evidence) -> x509.Certificate | None:
    """The first certificate of `certaudit_tls_dir/cert.pem`, or None with the finding recorded.

    A missing, unreadable-as-PEM or malformed file is an observation about the host (a failure);
    a permission problem is not (it raises Undeterminable).
    """
    cert_file = facts.file(policy.tls_cert)
    evidence.observe(file=cert_file.where())
    problem = cert_file.problem()
    if problem is not None:
        evidence.require(False, f"the service's certificate: {problem}")
        return None
    refused = cert_file.refused_content
    if refused is not None:
        evidence.require(False, f"the service's certificate {cert_file.where()}: {refused}")
        return None
    try:
        chain = load_pem_certificates(cert_file.read(), cert_file.where())
    except CertificateError as exc:
        evidence.require(False, f"the service's certificate is unusable: {exc}")
        return None
    return chain[0]


def certificate_at(facts: HostFacts, path: str) -> x509.Certificate | None:
    """The first certificate of a file on the host; None when the file is absent or holds no
    certificate (observations, which the caller judges). A file that could not be read raises
    Undeterminable: it is not absent."""
    fact = facts.file(path)
    if fact.problem() is not None or fact.refused_content is not None:
        return None
    try:
        return load_pem_certificates(fact.read(), fact.where())[0]
    except CertificateError:
        return None


def served_leaf(der: bytes, evidence: Evidence) -> x509.Certificate | None:
    """The certificate the endpoint presented, or None with the finding recorded (it does not parse)."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        evidence.require(False, f"the endpoint presents a certificate that does not parse: {exc}")
        return None
