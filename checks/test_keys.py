"""KEY-*: the private key stays private, belongs to the certificate, and the files the service reads belong to it."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from certaudit.controls import control
from certaudit.errors import Undeterminable
from certaudit.host.certificates import leaf_on_disk
from certaudit.host.facts import FileFact, HostFacts
from certaudit.host.x509 import public_key_pem, same_public_key, summary
from certaudit.policy import Policy
from certaudit.record import MAX_ENTRIES, Evidence


def _require_regular_file(evidence: Evidence, fact: FileFact, what: str) -> bool:
    problem = fact.problem()
    return evidence.require(problem is None, f"{what}: {problem}")


@control(
    "KEY-01",
    title="Keep the private key private: mode 0600 or stricter, owned by the service; archived keys closed to others",
    source="Resolution › Custom CA 3",
    gate=True,
)
def test_private_key_is_private(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: anyone who can read the private key can impersonate the service until the
    certificate expires, renewal or not. certbot keeps every generation of the key in
    `archive/`, and an old key is as good as the current one to an attacker while its
    certificate is valid.

    Check: the key the service reads (`certaudit_tls_dir/key.pem`, or the file its symlinks
    resolve to) is a regular file with no permission beyond 0600, owned by the service user and
    group; every `archive/<domain>/privkey*.pem` grants nothing to group or others.

    Fix: `chmod 600 /etc/stemedb/tls/key.pem && chown stemedb:stemedb /etc/stemedb/tls/key.pem`;
    `chmod 600 /etc/letsencrypt/archive/<domain>/privkey*.pem`.
    """
    key = facts.file(policy.tls_key)
    evidence.expect(
        mode="0600 or stricter",
        owner=f"{policy.service_user}:{policy.service_group}",
        archived_keys="no access for group or others",
    )
    evidence.observe(key=key.as_evidence())
    if _require_regular_file(evidence, key, "the service's key"):
        _require_mode(facts, evidence, key, 0o600)
        service_uid, service_gid = facts.service_ids()
        evidence.require(service_uid is not None, f"user {policy.service_user} does not exist on the host")
        evidence.require(service_gid is not None, f"group {policy.service_group} does not exist on the host")
        if service_uid is not None and service_gid is not None:
            evidence.require(
                (key.uid, key.gid) == (service_uid, service_gid),
                f"{key.where()} is owned by {key.owner_text}, not {policy.service_user}:{policy.service_group}",
            )
    # Every archived key, from the whole listing: a cut or unreadable archive raises (never judged in part).
    archived = [f for f in facts.files_in(policy.archive_dir) if f.path.rsplit("/", 1)[-1].startswith("privkey")]
    evidence.observe(
        archived_key_count=len(archived),
        archived_keys=[{"path": f.path, "mode": f.mode_text, "owner": f.owner_text} for f in archived[:MAX_NAMED]],
    )
    open_keys: list[FileFact] = []
    for archived_key in archived:
        if _require_regular_file(evidence, archived_key, "an archived key") and _known_mode(facts, archived_key) & 0o077:
            open_keys.append(archived_key)
    evidence.observe(open_archived_keys=[f.path for f in open_keys[:MAX_NAMED]], open_archived_key_count=len(open_keys))
    for archived_key in open_keys[:MAX_FINDINGS]:
        evidence.require(False, f"{archived_key.path} is mode {archived_key.mode_text}: group or others can read an archived key")
    if len(open_keys) > MAX_FINDINGS:
        more = len(open_keys) - MAX_FINDINGS
        evidence.require(False, f"and {more} more archived keys group or others can read (open_archived_key_count)")


MAX_NAMED = 100  # archived keys the evidence names one by one; the rest are counted
MAX_FINDINGS = MAX_ENTRIES - 1  # open keys named as findings; the last line the record keeps counts the rest


def _known_mode(facts: HostFacts, fact: FileFact) -> int:
    if fact.mode is None:
        raise Undeterminable(f"host {facts.host}: the mode of {fact.path} is unknown")
    return fact.mode


def _require_mode(facts: HostFacts, evidence: Evidence, fact: FileFact, allowed: int) -> None:
    mode = _known_mode(facts, fact)
    evidence.require(mode & ~allowed == 0, f"{fact.where()} is mode {fact.mode_text}: it grants more than {allowed:04o}")


@control(
    "KEY-02",
    title="Let the service own its certificate: mode 0644, owned by the service user",
    source="Resolution › Custom CA 3",
)
def test_certificate_file_is_owned_by_service(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: a certificate file others can write lets them swap what the service presents
    (and break the next reload); one the service cannot read stops it at its next restart.

    Check: the certificate the service reads (`certaudit_tls_dir/cert.pem`, or the file its
    symlinks resolve to) is a regular file with no permission beyond 0644 and readable by its
    owner, and its owner is the service user.

    Fix: `chmod 644 /etc/stemedb/tls/cert.pem && chown stemedb:stemedb /etc/stemedb/tls/cert.pem`.
    """
    cert = facts.file(policy.tls_cert)
    evidence.expect(mode="0644", owner=policy.service_user)
    evidence.observe(certificate=cert.as_evidence())
    if not _require_regular_file(evidence, cert, "the service's certificate"):
        return
    _require_mode(facts, evidence, cert, 0o644)
    evidence.require(_known_mode(facts, cert) & 0o400 != 0, f"{cert.where()} is mode {cert.mode_text}: its owner cannot read it")
    service_uid, _ = facts.service_ids()
    evidence.require(service_uid is not None, f"user {policy.service_user} does not exist on the host")
    if service_uid is not None:
        evidence.require(cert.uid == service_uid, f"{cert.where()} is owned by {cert.owner_text}, not {policy.service_user}")


def _spki_sha256(pem: str) -> str:
    """SHA-256 of a public key's DER SubjectPublicKeyInfo: comparable, and safe to show."""
    key = serialization.load_pem_public_key(pem.encode("ascii", "replace"))
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@control(
    "KEY-03",
    title="Pair the key with its certificate: the private key's public half is the certificate's public key",
    source="Resolution › Custom CA 3; If Certificate Already Expired 2",
)
def test_private_key_matches_certificate(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: a certificate installed with the wrong key (a new key.pem from a fresh CSR beside
    the old cert.pem, or the reverse) is accepted on disk and by every check of modes and dates,
    but the service refuses the pair at its next reload or restart: an outage that waits for the
    next renewal to happen.

    Check: the public half of `certaudit_tls_dir/key.pem`, derived on the host by
    `openssl pkey -pubout` (the private key never leaves the host), is the same key (DER
    SubjectPublicKeyInfo compared) as the public key of the leaf in `certaudit_tls_dir/cert.pem`.

    Fix: install the key that belongs to the certificate (certbot's `live/<domain>/privkey.pem`
    with `fullchain.pem`; for a custom CA, the key the CSR was made from), `chmod 600` it, then
    `systemctl reload stemedb-api`.
    """
    evidence.expect(key="the public key of the service's certificate")
    leaf = leaf_on_disk(facts, policy, evidence)
    key_file = facts.file(policy.tls_key)
    evidence.observe(key=key_file.where())
    if not _require_regular_file(evidence, key_file, "the service's key") or leaf is None:
        return
    derived = facts.public_key(policy.tls_key)
    if derived.pem is None:
        if derived.reason.startswith("openssl pkey could not read"):
            evidence.require(False, f"{key_file.where()} is not a usable private key: {derived.reason}")
            return
        raise Undeterminable(f"host {facts.host}: cannot derive the public key of {policy.tls_key}: {derived.reason}")
    try:
        cert_pem = public_key_pem(leaf)
        evidence.observe(
            certificate_public_key_sha256=_spki_sha256(cert_pem),
            key_public_key_sha256=_spki_sha256(derived.pem),
            certificate_key=summary(leaf)["key"],
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise Undeterminable(f"host {facts.host}: cannot compare the public keys: {exc}") from None
    evidence.require(
        same_public_key(cert_pem, derived.pem),
        f"{key_file.where()} is not the key of {policy.tls_cert} ({summary(leaf)['subject']}, expires "
        f"{leaf.not_valid_after_utc.date()}): the service will refuse the pair at its next reload or restart",
    )
