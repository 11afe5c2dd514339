"""FLT-*: what only the hosts of one domain seen together can prove (runbook: If Renewal Fails; Monitoring).

These controls are parametrised over the inventory's domains (`FLT-01[stemedb.example.com]`), not
its hosts: each judges the snapshots of every host whose `certaudit_domain` is that domain, taken
before any control judges. One host of the domain not reached makes them an error naming it.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from certaudit.controls import control
from certaudit.errors import Undeterminable
from certaudit.host.certificates import certificate_at
from certaudit.host.chain import load_der_chain, name_of, trust_store, verify_served_chain
from certaudit.host.x509 import summary
from certaudit.jobs.fleet import (
    FleetView,
    Served,
    fetch_public,
    hosts_of,
    leaf_of,
    newest,
    older_than_window,
    public_endpoint,
    renewer_verdict,
    served_by,
)
from certaudit.policy import Policy
from certaudit.record import Evidence


def _no_public_endpoint(policy: Policy) -> str | None:
    if policy.public_endpoint is None:
        return "no certaudit_public_endpoint for this domain: nothing outside the hosts to check"
    return None


@control(
    "FLT-01",
    title="Renew each domain on one host: at most one host of a domain renews it, the others receive it",
    source="If Renewal Fails › rate limits, HTTP validation",
)
def test_one_renewer_per_domain(fleet_view: FleetView, evidence: Evidence) -> None:
    """Rationale: behind a load balancer, every host that runs certbot for the same name renews it:
    HTTP-01 challenges land on whichever host the balancer picks and fail at random, and five
    hosts renewing one name reach the CA's duplicate-certificate limit (five a week at Let's
    Encrypt), after which nobody can renew.

    Check: among the hosts whose `certaudit_domain` is the domain, at most one renews it: it holds
    a lineage for the name (`renewal/<domain>.conf` or `<domain>-NNNN.conf`) and an effective
    schedule runs certbot (REN-01's rules). The others receive the certificate: no lineage of
    their own (and `certaudit_renews: false` in the inventory, which makes REN-* not applicable
    there). A host that declares `certaudit_renews: false` and still renews counts as a renewer.

    Fix: keep certbot on one host (or a dedicated one) and let its deploy hook push the renewed
    certificate to the others; on every other host `systemctl disable --now certbot.timer`,
    `certbot delete --cert-name <domain>`, and set `certaudit_renews: false`.
    """
    domain = fleet_view.domain
    evidence.expect(renewers="at most one host of the domain renews it")
    verdicts = [renewer_verdict(facts, target.policy) for target, facts in fleet_view.each()]
    renewers = [v.host for v in verdicts if v.renews]
    evidence.observe(hosts={v.host: v.as_evidence() for v in verdicts}, renewers=renewers)
    for verdict in verdicts:
        if verdict.renews and verdict.declared_receiver:
            evidence.note(f"{verdict.host} sets certaudit_renews: false, yet renews {', '.join(verdict.lineages)}")
    if not renewers:
        evidence.note(f"no host renews {domain.name}: REN-01 on each host says why")
    evidence.require(
        len(renewers) <= 1,
        f"{len(renewers)} hosts renew {domain.name}: {', '.join(renewers)}; "
        "their HTTP-01 challenges race behind the balancer and count together against the CA's rate limits",
    )


@control(
    "FLT-02",
    title="Serve one certificate per domain: no host serves one older than the newest issuance by more than the window",
    source="Resolution › Let's Encrypt 3",
    gate=True,
)
def test_one_certificate_per_domain(fleet_view: FleetView, policy: Policy, evidence: Evidence) -> None:
    """Rationale: when one host behind the balancer was never reloaded, one request in N gets the
    old certificate; each host's own expiry alert is silent until that old certificate expires,
    and then one request in N fails.

    Check: from the auditing machine, every host of the domain serves (its endpoint, SNI the
    domain) the same certificate, or none issued (notBefore) more than
    `certaudit_fleet_window_days` (1) before the newest one served. The evidence lists each host's
    served SHA-256 fingerprint, serial, notBefore and notAfter. A host that serves nothing fails.

    Fix: on each host named, install the domain's current certificate and reload the service
    (`systemctl reload stemedb-api`); then find why its deploy hook or the distribution missed it.
    """
    window = dt.timedelta(days=policy.fleet_window_days)
    evidence.expect(served=f"one certificate, or none issued more than {policy.fleet_window_days} day(s) before the newest")
    served: list[Served] = []
    unserved: dict[str, str] = {}
    for _target, facts in fleet_view.each():
        leaf = served_by(facts)
        if isinstance(leaf, Served):
            served.append(leaf)
        else:
            unserved[facts.host] = leaf
    evidence.observe(hosts={**{s.host: s.as_evidence() for s in served}, **{h: {"error": e} for h, e in unserved.items()}})
    for host, why in unserved.items():
        evidence.require(False, f"{host}: {why}")
    reference = newest(served)
    if reference is None:
        return
    evidence.observe(newest={"sha256": reference.sha256, "hosts": hosts_of(served)[reference.sha256]})
    for leaf in served:
        evidence.require(
            not older_than_window(leaf, reference, window),
            f"{leaf.host} serves {leaf.sha256[:16]}… (serial {leaf.as_evidence()['serial']}, issued "
            f"{leaf.certificate.not_valid_before_utc.isoformat()}, expires {leaf.certificate.not_valid_after_utc.date()}), "
            f"{(reference.certificate.not_valid_before_utc - leaf.certificate.not_valid_before_utc).days} days older than "
            f"the newest {reference.sha256[:16]}… that {', '.join(hosts_of(served)[reference.sha256])} serve",
        )


@control(
    "FLT-03",
    title="Serve the domain to outsiders: the public endpoint presents the fleet's newest certificate, valid, chained",
    source="Investigation 2 (from outside: catches firewall issues); Prevention › Monitoring 1",
    not_applicable=_no_public_endpoint,
)
def test_public_endpoint(fleet_view: FleetView, policy: Policy, evidence: Evidence) -> None:
    """Rationale: clients reach the domain through the balancer or VIP, not a host: a firewall, a
    balancer pinned to a stale backend or a certificate configured on the balancer itself is seen
    only there, and the runbook asks for a check from outside.

    Check: from the auditing machine, a TLS handshake with `certaudit_public_endpoint` (host:port,
    SNI the domain, within --connect-timeout) presents a leaf whose SAN names the domain, with more
    than `certaudit_warn_days` (30) days left (`certaudit_crit_days`, 7: critical tier), that is the
    newest certificate the domain's hosts hold (served or in `certaudit_tls_dir/cert.pem`), and
    whose served chain reaches a trusted root (`certaudit_ca_bundle`, as CRT-03).

    Fix: unreachable: open the firewall or start the balancer; an old certificate: reload the
    backend named in FLT-02 (or the balancer, when it terminates TLS itself); a broken chain: serve
    the fullchain.
    """
    domain = fleet_view.domain
    address, port = public_endpoint(domain)
    evidence.expect(
        endpoint=f"{address}:{port} (SNI {domain.name}) reachable from the auditing machine",
        certificate=f"names {domain.name}, more than {policy.warn_days} days left, the newest the hosts hold, "
        "chained to a trusted root",
    )
    fleet = fleet_view.each()
    held: list[Served] = []
    for target, facts in fleet:
        leaf = served_by(facts)
        if isinstance(leaf, Served):
            held.append(leaf)
        disk = certificate_at(facts, target.policy.tls_cert)
        if disk is not None:
            held.append(Served(facts.host, disk))
    reference = newest(held)
    endpoint = fetch_public(address, port, domain.name, fleet_view.connect_timeout)
    leaf = leaf_of(endpoint, f"domain {domain.name}: the public endpoint")
    if not isinstance(leaf, Served):
        evidence.observe(public_error=leaf)
        evidence.require(False, f"the public endpoint {leaf}")
        return
    cert = leaf.certificate
    now = dt.datetime.now(dt.UTC)
    days = (cert.not_valid_after_utc - now).total_seconds() / 86400
    evidence.observe(
        served={**leaf.as_evidence(), **summary(cert)},
        days_left=round(days, 2),
        newest_held={"sha256": reference.sha256, "host": reference.host} if reference else None,
    )
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except (x509.ExtensionNotFound, ValueError):  # no SAN, or one that does not parse: the domain is not in it
        names = []
    evidence.require(_covers(names, domain.name), f"the public endpoint's certificate does not name {domain.name} (SAN {names})")
    if days <= policy.crit_days:
        evidence.require(
            False, f"the public endpoint's certificate expires in {days:.1f} days (critical tier: {policy.crit_days})"
        )
    elif days <= policy.warn_days:
        evidence.require(
            False, f"the public endpoint's certificate expires in {days:.1f} days (warning tier: {policy.warn_days})"
        )
    if reference is not None:
        evidence.require(
            leaf.sha256 == reference.sha256,
            f"the public endpoint serves {leaf.sha256[:16]}… (issued {cert.not_valid_before_utc.isoformat()}), not the newest "
            f"certificate the domain's hosts hold, {reference.sha256[:16]}… on {reference.host} (issued "
            f"{reference.certificate.not_valid_before_utc.isoformat()}): the balancer sends clients to a stale backend",
        )
    _judge_chain(endpoint.chain_der, endpoint.chain_error, policy, now, evidence)


def _judge_chain(chain_der: tuple[bytes, ...], chain_error: str, policy: Policy, now: dt.datetime, evidence: Evidence) -> None:
    if chain_error:
        raise Undeterminable(f"the public endpoint's chain was not read: {chain_error}")
    try:
        served = load_der_chain(chain_der)
    except ValueError as exc:
        evidence.require(False, f"the public endpoint's chain does not parse: {exc}")
        return
    verdict = verify_served_chain(served, trust_store(policy.ca_bundle), now)  # an unreadable bundle: error
    evidence.observe(chain=[name_of(c) for c in verdict.path], anchor=name_of(verdict.anchor) if verdict.anchor else None)
    for finding in verdict.findings:
        evidence.require(False, f"the public endpoint's chain: {finding}")


def _covers(names: list[str], domain: str) -> bool:
    for name in names:
        candidate = name.lower().rstrip(".")
        if candidate == domain or (candidate.startswith("*.") and domain.partition(".")[2] == candidate[2:]):
            return True
    return False
