"""LIVE-*: what the endpoint serves is what is on disk (runbook: Resolution › Let's Encrypt 3)."""

from __future__ import annotations

from cryptography import x509 as cx509

from certaudit.certificates import leaf_on_disk
from certaudit.controls import control
from certaudit.errors import Undeterminable
from certaudit.evidence import Evidence
from certaudit.facts import HostFacts
from certaudit.policy import Policy
from certaudit.x509 import fingerprint_sha256, summary


@control(
    "LIVE-01",
    title="Serve the renewed certificate: the endpoint presents the certificate on disk",
    source="Resolution › Let's Encrypt 3",
    gate=True,
)
def test_endpoint_serves_certificate_on_disk(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: a renewal that was never reloaded changes nothing for clients: the service
    keeps presenting the old certificate until it expires, while every on-disk check passes.

    Check: from the auditing machine, a TLS handshake with the host's endpoint
    (`certaudit_endpoint_port`, SNI `certaudit_domain`) presents a leaf whose SHA-256
    fingerprint equals that of the leaf in `certaudit_tls_dir/cert.pem`.

    Fix: `systemctl reload stemedb-api` (or restart it), then make the deploy hook reload it
    (REN-02) so the next renewal does not repeat this.
    """
    endpoint = facts.endpoint
    if endpoint is None:
        raise Undeterminable(f"host {facts.host}: the endpoint was not contacted")
    evidence.expect(
        served_sha256="the SHA-256 fingerprint of the leaf on disk",
        endpoint=f"{endpoint.address}:{endpoint.port} (SNI {endpoint.server_name})",
    )
    if not endpoint.determinable:
        raise Undeterminable(f"host {facts.host}: {endpoint.error}")
    leaf = leaf_on_disk(facts, policy, evidence)
    disk_sha256 = fingerprint_sha256(leaf) if leaf is not None else None
    evidence.observe(disk_sha256=disk_sha256)
    if endpoint.leaf_der is None:
        evidence.observe(served_sha256=None, endpoint_error=endpoint.error)
        evidence.require(False, f"the endpoint serves no certificate: {endpoint.error}")
        return
    try:
        served = cx509.load_der_x509_certificate(endpoint.leaf_der)
    except ValueError as exc:
        evidence.require(False, f"the endpoint presents a certificate that does not parse: {exc}")
        return
    served_sha256 = fingerprint_sha256(served)
    evidence.observe(served_sha256=served_sha256, served=summary(served))
    if disk_sha256 is not None:
        evidence.require(
            served_sha256 == disk_sha256,
            f"the endpoint serves {served_sha256[:16]}… (expires {served.not_valid_after_utc.date()}), "
            f"not the certificate on disk {disk_sha256[:16]}… (expires {leaf.not_valid_after_utc.date() if leaf else '?'}): "
            f"{policy.service} was not reloaded after the certificate changed",
        )
