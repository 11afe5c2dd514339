"""CRT-*: the certificate the service uses is far from expiry, acceptable to clients, served with its chain, and the newest."""

from __future__ import annotations

import datetime as dt
import posixpath
import re

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certaudit.controls import control, renewal_by_certbot
from certaudit.errors import Undeterminable
from certaudit.host.certificates import certificate_at, leaf_on_disk
from certaudit.host.chain import describe, load_der_chain, name_of, trust_store, verify_served_chain
from certaudit.host.facts import HostFacts
from certaudit.host.thresholds import judge_expiry
from certaudit.host.x509 import WEAK_HASHES, fingerprint_sha256, summary
from certaudit.policy import Policy
from certaudit.record import Evidence


@control(
    "CRT-01",
    title="Renew before expiry: more than 30 days left (warning tier) and more than 7 (critical tier)",
    source="Prevention › Monitoring 1",
    gate=True,
)
def test_certificate_does_not_expire_soon(facts: HostFacts, policy: Policy, evidence: Evidence, gate_mode: bool) -> None:
    """Rationale: when the certificate expires every TLS connection fails: a full outage. Under
    30 days left, automated renewal has already failed at least once (it starts at 30); under 7,
    the outage is days away and the runbook's critical alert fires.

    Check: the leaf certificate in `certaudit_tls_dir/cert.pem` (the one the service reads) has
    more than `certaudit_warn_days` (30) days left; a certificate under `certaudit_crit_days`
    (7) fails in the critical tier, one under 30 in the warning tier. The pre-deploy gate
    (`--gate`, `-m gate`) fails in the critical tier only: a warning must not block a release.
    That is the rule for a certificate of the runbook's 90 days; a shorter one (64, 45 or 6 days) is
    judged, by default (`certaudit_threshold_mode: auto`), by the same days scaled to its lifetime:
    warning under 30/90 of it left (a third, where certbot 4.0 and later renew), critical under
    7/90. The evidence (`threshold_rule`) says which rule applied and why. With
    `certaudit_threshold_mode: lifetime` the tiers are `certaudit_warn_fraction` and
    `certaudit_crit_fraction` of the lifetime, and so are they under `days` for a certificate whose
    whole lifetime is no longer than the warning threshold (REN-04).

    Fix: `certbot renew --cert-name <domain> --force-renewal`, then `systemctl reload stemedb-api`;
    for a custom CA, follow the runbook's CSR steps. Then find out why renewal did not happen.
    """
    leaf = leaf_on_disk(facts, policy, evidence)
    if leaf is None:
        evidence.expect(days_left=f"more than {policy.warn_days} (warning tier), more than {policy.crit_days} (critical tier)")
        return
    now = dt.datetime.fromtimestamp(facts.audited_at, dt.UTC)
    judged = judge_expiry(leaf, now, policy)
    tier = judged.tier
    evidence.observe(certificate=summary(leaf), judged_at=now.isoformat(), **judged.observed())
    if judged.mode == "lifetime":
        evidence.expect(share_left=judged.thresholds(policy))
        crit = f"{judged.crit_share:.0%} of the lifetime ({judged.crit_days:.1f} days)"
    else:
        evidence.expect(days_left=f"more than {policy.warn_days} (warning tier), more than {policy.crit_days} (critical tier)")
        crit = f"{policy.crit_days} days"
    if gate_mode:
        evidence.expect(gate=f"more than {crit}: only the critical tier stops a deploy")
    if judged.needs_lifetime:
        evidence.note(
            f"certaudit_threshold_mode is days, but the certificate's whole lifetime ({judged.lifetime_days:.1f} days) "
            f"is no longer than the {policy.warn_days}-day warning threshold: judged by share of lifetime (see REN-04)"
        )
    finding = judged.finding(policy, leaf.not_valid_after_utc.isoformat())
    if finding is None:
        return
    if tier == "warning" and gate_mode:
        # The gate stops a deploy for the critical tier only; the warning stays in the evidence.
        evidence.note(f"{finding}: not a gate failure")
    else:
        evidence.require(False, finding)


_KEY_ADVICE = "use RSA of at least 2048 bits or EC P-256, P-384 or P-521"
_NIST_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _covering_name(names: list[str], domain: str) -> str | None:
    """The SAN entry that names `domain`: the same name, or a wildcard for exactly its first label."""
    for name in names:
        candidate = name.lower().rstrip(".")
        if candidate == domain:
            return name
        if candidate.startswith("*.") and "." in domain and domain.split(".", 1)[1] == candidate[2:]:
            return name
    return None


def _require_domain_in_san(leaf: x509.Certificate, policy: Policy, evidence: Evidence) -> None:
    """A DNS subjectAltName covers the domain: no SAN, one that does not parse, one that holds no
    DNS name at all (only IP addresses, e-mail, URIs) or none that covers the domain each fail."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        evidence.require(False, f"it has no subjectAltName: clients match {policy.domain} there only, never in the CN")
        return
    except ValueError as exc:
        evidence.require(False, f"its subjectAltName does not parse ({exc}): clients cannot match {policy.domain}")
        return
    names = list(san.get_values_for_type(x509.DNSName))
    covering = _covering_name(names, policy.domain)
    evidence.observe(covering_name=covering)
    if not names:
        evidence.require(False, f"its subjectAltName holds no DNS name ({_san_text(san)}): clients cannot match {policy.domain}")
        return
    evidence.require(covering is not None, f"its subjectAltName ({', '.join(names)}) does not name {policy.domain}")


def _san_text(san: x509.SubjectAlternativeName) -> str:
    """The subjectAltName's entries as `TYPE:value` (the first ten), for the finding."""
    shown = [f"{type(e).__name__}:{e.value}" for e in list(san)[:10]]
    return ", ".join(shown) or "empty"


def _key_problem(cert: x509.Certificate) -> str | None:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        return f"its public key cannot be used ({exc}): {_KEY_ADVICE}"
    if isinstance(key, rsa.RSAPublicKey):
        return None if key.key_size >= 2048 else f"its key is RSA {key.key_size}, under 2048 bits: {_KEY_ADVICE}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name in _NIST_CURVES:
            return None
        return f"its key is EC on {key.curve.name}, not P-256 or larger: {_KEY_ADVICE}"
    return f"its key is {summary(cert)['key']}, which is neither RSA nor EC: {_KEY_ADVICE}"


@control(
    "CRT-02",
    title="Present a certificate clients accept: the domain in its SAN, already valid, RSA 2048+ or EC P-256+, not SHA-1/MD5",
    source="Investigation 2; Resolution › Custom CA 1",
)
def test_certificate_is_acceptable(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: a renewal that produces a certificate clients reject is an outage that looks like a
    success: the dates are fine, the service reloads, and every handshake fails. Clients match the
    host name against the subjectAltName only (never the CN), refuse a certificate before its
    notBefore, and refuse keys under RSA 2048 or P-256 and SHA-1 or MD5 signatures.

    Check: the leaf in `certaudit_tls_dir/cert.pem` has a DNS subjectAltName equal to
    `certaudit_domain` (or a wildcard for its first label), a notBefore in the past (the auditing
    machine's clock), an RSA key of at least 2048 bits or an EC key on P-256, P-384 or P-521, and
    a signature made with neither SHA-1 nor MD5.

    Fix: request a new certificate for the domain: `certbot certonly --cert-name <domain> -d <domain>
    --key-type ecdsa` (or `--rsa-key-size 2048`); for a custom CA, a CSR from
    `openssl req -new -newkey rsa:4096 -subj /CN=<domain> -addext subjectAltName=DNS:<domain>`.
    A notBefore in the future means a clock (the CA's or the host's) is wrong.
    """
    evidence.expect(
        san=f"a DNS name covering {policy.domain}",
        not_before="in the past",
        key="RSA of at least 2048 bits, or EC P-256, P-384 or P-521",
        signature="not SHA-1 or MD5",
    )
    leaf = leaf_on_disk(facts, policy, evidence)
    if leaf is None:
        return
    now = dt.datetime.fromtimestamp(facts.audited_at, dt.UTC)
    shown = summary(leaf)
    algorithm = shown["signature_hash"]  # the summary names it as signature_hash() does
    evidence.observe(certificate=shown, signature_hash=algorithm, judged_at=now.isoformat())
    _require_domain_in_san(leaf, policy, evidence)
    not_before = leaf.not_valid_before_utc
    evidence.require(
        not_before <= now,
        f"it is not valid before {not_before.isoformat()} ({(not_before - now).total_seconds() / 86400:.1f} days from now): "
        "clients reject it until then",
    )
    problem = _key_problem(leaf)
    evidence.require(problem is None, problem or "")
    evidence.require(
        algorithm not in WEAK_HASHES and not algorithm.startswith("unknown"),
        f"it is signed with {algorithm.upper()}: clients reject SHA-1 and MD5 signatures",
    )


@control(
    "CRT-03",
    title="Serve a complete chain to a trusted root: no intermediate missing, and none expiring before the leaf",
    source="Investigation 1-2; Resolution › Let's Encrypt 3",
)
def test_served_chain_reaches_trusted_root(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: browsers often paper over a missing intermediate by fetching or caching it; API
    clients, mobile apps and other services do not, and fail the handshake. An intermediate that
    expires before the leaf breaks every client on its expiry date while the leaf, and CRT-01,
    still look fine.

    Check: from the auditing machine, the certificates the endpoint serves (`certaudit_endpoint_port`,
    SNI `certaudit_domain`) chain, signature by signature, from the leaf through the served
    intermediates to a root in `certaudit_ca_bundle` (a PEM file on the auditing machine; by
    default its system bundle); every intermediate is a CA certificate, valid now, not SHA-1 or
    MD5 signed, and expires no earlier than the leaf.

    Fix: serve the full chain: point the service at certbot's `fullchain.pem`, not `cert.pem`
    (the runbook's deploy hook installs fullchain.pem as `/etc/stemedb/tls/cert.pem`); for a
    custom CA, append its intermediates to cert.pem, then `systemctl reload stemedb-api`. For an
    intermediate that expires first, get the CA's current chain.
    """
    endpoint = facts.endpoint
    if endpoint is None:
        raise Undeterminable(f"host {facts.host}: the endpoint was not contacted")
    store = trust_store(policy.ca_bundle)
    evidence.expect(
        chain=f"leaf, then the served intermediates, to a root in {store.source}",
        intermediates="CA certificates, valid now, not SHA-1 or MD5 signed, expiring no earlier than the leaf",
        endpoint=f"{endpoint.address}:{endpoint.port} (SNI {endpoint.server_name})",
    )
    if not endpoint.determinable:
        raise Undeterminable(f"host {facts.host}: {endpoint.error}")
    if endpoint.leaf_der is None:
        evidence.observe(served=[], endpoint_error=endpoint.error)
        evidence.require(False, f"the endpoint serves no certificate: {endpoint.error}")
        return
    if not endpoint.chain_der:
        raise Undeterminable(f"host {facts.host}: the served chain was not read: {endpoint.chain_error or 'no certificates'}")
    try:
        served = load_der_chain(endpoint.chain_der)
    except ValueError as exc:
        evidence.require(False, f"the endpoint presents a chain that does not parse: {exc}")
        return
    now = dt.datetime.fromtimestamp(facts.audited_at, dt.UTC)
    verdict = verify_served_chain(served, store, now)
    evidence.observe(
        served=[describe(c) for c in served],
        path=[name_of(c) for c in verdict.path],
        trusted_root=describe(verdict.anchor) if verdict.anchor is not None else None,
        trust_store=f"{store.source} ({len(store.roots)} roots)",
    )
    for cert in verdict.unused:
        evidence.note(f"served but on no path to the root (clients ignore it): {name_of(cert)}")
    for finding in verdict.findings:
        evidence.require(False, finding)


def _archived_generation(facts: HostFacts, policy: Policy, fingerprint: str) -> str | None:
    """The archived generation of the domain's lineage (archive/<domain>/certN.pem) with this fingerprint."""
    for fact in facts.files_in(policy.archive_dir):
        if posixpath.basename(fact.path).startswith("cert"):
            cert = certificate_at(facts, fact.path)
            if cert is not None and fingerprint_sha256(cert) == fingerprint:
                return fact.path
    return None


def _issued(cert: x509.Certificate) -> tuple[dt.datetime, dt.datetime]:
    return cert.not_valid_before_utc, cert.not_valid_after_utc


@control(
    "CRT-04",
    title="Use the lineage's newest certificate: no stale copy in the TLS directory, no orphan lineage renewed instead",
    source="Investigation 3; Resolution › Let's Encrypt 1-3",
    not_applicable=renewal_by_certbot,
)
def test_service_uses_newest_lineage_certificate(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: certbot renews a lineage under `/etc/letsencrypt/live/<name>/`; the service reads a
    copy in its own TLS directory. If the deploy hook never copies the renewal, or certbot created
    a second lineage (`<domain>-0001`, after a `certonly` whose names or key type differed) and
    renews that one, every renewal succeeds and the certificate the service reads still expires.

    Check: the leaf in `certaudit_tls_dir/cert.pem` is the newest certificate
    (`live/<lineage>/cert.pem`) of a lineage for `certaudit_domain` that certbot renews (it has
    `renewal/<lineage>.conf`); no other renewed lineage for the domain (`<domain>-NNNN`) holds a
    newer certificate; a copy that is an older generation in `archive/<domain>/` is stale.

    Fix: copy the newest certificate in place (the runbook's deploy hook does it on every renewal:
    `RENEWED_LINEAGE=/etc/letsencrypt/live/<domain> /etc/letsencrypt/renewal-hooks/deploy/reload-stemedb.sh`);
    for an orphan lineage, keep one: `certbot delete --cert-name <domain>-0001`, or point the
    service and `certaudit_domain`'s lineage at it.
    """
    live_root = posixpath.join(policy.letsencrypt_dir, "live")
    renewal_root = posixpath.join(policy.letsencrypt_dir, "renewal")
    evidence.expect(certificate=f"the newest certificate of the lineage certbot renews for {policy.domain}")
    leaf = leaf_on_disk(facts, policy, evidence)
    if leaf is None:
        return
    live, renewal = facts.listing(live_root), facts.listing(renewal_root)  # whole listings, or Undeterminable
    sibling = re.compile(re.escape(policy.domain) + r"-\d{4}")
    names = [policy.domain, *sorted(n for n in live.names if sibling.fullmatch(n))]
    newest = {name: certificate_at(facts, posixpath.join(live_root, name, "cert.pem")) for name in names}
    renewed = {name: f"{name}.conf" in renewal.names for name in names}
    used = fingerprint_sha256(leaf)
    evidence.observe(
        service_certificate={"sha256": used, "not_after": leaf.not_valid_after_utc.isoformat()},
        lineages=[
            {
                "lineage": name,
                "newest": summary(cert) if cert is not None else None,
                "renewed": renewed[name],
                "service_reads_it": cert is not None and fingerprint_sha256(cert) == used,
            }
            for name, cert in newest.items()
        ],
    )
    present = {name: cert for name, cert in newest.items() if cert is not None}
    if not present:
        evidence.require(False, f"no certbot lineage for {policy.domain} in {live_root}: nothing renews what the service reads")
        return
    lineage = next((name for name, cert in present.items() if fingerprint_sha256(cert) == used), None)
    if lineage is None:
        generation = _archived_generation(facts, policy, used)
        if generation is not None and policy.domain in present:
            lineage = policy.domain
            current = present[lineage]
            evidence.require(
                False,
                f"the service's copy is stale: it is {generation} (expires {leaf.not_valid_after_utc.date()}), but the "
                f"lineage's newest is {facts.file(posixpath.join(live_root, lineage, 'cert.pem')).where()} (expires "
                f"{current.not_valid_after_utc.date()}): the renewal never reached {policy.tls_dir}",
            )
        else:
            evidence.require(
                False,
                f"the service's certificate (expires {leaf.not_valid_after_utc.date()}) is not the newest certificate of "
                f"any lineage for {policy.domain} ({', '.join(present)})",
            )
    if lineage is not None:
        evidence.observe(service_lineage=lineage)
        evidence.require(
            renewed[lineage],
            f"certbot does not renew the lineage the service reads: {renewal_root}/{lineage}.conf does not exist",
        )
    for name, cert in present.items():
        if name != lineage and renewed[name] and _issued(cert) > _issued(leaf):
            evidence.require(
                False,
                f"certbot renews lineage {name} (newest issued {cert.not_valid_before_utc.isoformat()}, expires "
                f"{cert.not_valid_after_utc.date()}) while the service reads "
                f"{'lineage ' + lineage if lineage else 'another certificate'} (issued {leaf.not_valid_before_utc.isoformat()}, "
                f"expires {leaf.not_valid_after_utc.date()})",
            )
