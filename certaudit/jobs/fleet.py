"""The fleet view: the hosts of one domain judged together (FLT-*), since how hosts relate is
what no per-host control can see: two renewers of one name, one host behind the balancer never
reloaded, the balancer itself serving what no host should.

A domain is every inventory host with the same `certaudit_domain`, taken from the whole
inventory (before --limit), so a deploy that touches one host of a domain is gated on all of
them. Its judging needs the snapshot of every one of those hosts: one not reached makes the
domain's fleet controls an error naming it, never a judgement on the hosts that answered.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509

from certaudit.errors import Undeterminable
from certaudit.gather.tls import fetch_leaf
from certaudit.host.facts import Endpoint, HostFacts
from certaudit.host.schedule import renewal_schedule
from certaudit.host.x509 import fingerprint_sha256
from certaudit.inventory import Target
from certaudit.policy import ENDPOINT_RE, Policy
from certaudit.readers import shown_text

SHARDED = (
    "judged only on an unsharded run: no shard sees every host of the domain, and `certaudit merge` does not "
    "judge fleet controls; audit the domain's hosts in one run (for example with --limit)"
)


@dataclass(frozen=True)
class Domain:
    """One domain and every inventory host that serves it; `policy` is its first host's (the
    fleet controls' applicability and FLT-02's window), `name` is what a record names."""

    name: str
    hosts: tuple[Target, ...]
    policy: Policy
    sharded: bool = False  # this run is one shard: the domain cannot be judged here

    @property
    def host_names(self) -> list[str]:
        return [t.name for t in self.hosts]


def domains_of(selected: Iterable[Target], whole: Iterable[Target]) -> list[Domain]:
    """The domains of the selected hosts, each with all of its hosts in the whole inventory, by name:
    those served by more than one host, or reached through a public endpoint. A domain of one host
    and no balancer has no fleet to judge (its host controls say all there is)."""
    members: dict[str, list[Target]] = {}
    for target in whole:
        members.setdefault(target.policy.domain, []).append(target)
    wanted = sorted({t.policy.domain for t in selected})
    domains = []
    for name in wanted:
        hosts = tuple(sorted(members.get(name) or [t for t in selected if t.policy.domain == name], key=lambda t: t.name))
        if len(hosts) > 1 or any(t.policy.public_endpoint for t in hosts):
            domains.append(Domain(name, hosts, hosts[0].policy))
    return domains


def owner_of(domain: Domain) -> str:
    """The host whose shard reports the domain's fleet controls (the first by name): exactly one shard does."""
    return domain.hosts[0].name


@dataclass(frozen=True)
class FleetView:
    """The snapshots of a domain's hosts, and why any of them is missing."""

    domain: Domain
    facts: Mapping[str, HostFacts]
    errors: Mapping[str, str]
    connect_timeout: float = 10.0  # FLT-03's handshake with the public endpoint, as every other connection

    def require_whole(self) -> None:
        """Raise Undeterminable naming every host of the domain whose facts are not in."""
        if self.domain.sharded:
            raise Undeterminable(f"domain {self.domain.name}: {SHARDED}")
        missing = [h for h in self.domain.host_names if h not in self.facts]
        if missing:
            why = "; ".join(shown_text(self.errors.get(h, f"host {h}: not probed"), 300) for h in missing)
            raise Undeterminable(
                f"domain {self.domain.name}: {len(missing)} of its {len(self.domain.hosts)} hosts not reached "
                f"({', '.join(missing)}), so the domain cannot be judged as a whole: {why}"
            )

    def each(self) -> list[tuple[Target, HostFacts]]:
        self.require_whole()
        return [(t, self.facts[t.name]) for t in self.domain.hosts]


# --- FLT-01: who renews ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RenewerVerdict:
    host: str
    renews: bool
    lineages: tuple[str, ...]
    schedule: str  # the effective schedule, or why there is none
    declared_receiver: bool

    def as_evidence(self) -> dict[str, object]:
        return {
            "renews": self.renews,
            "lineages": list(self.lineages),
            "schedule": self.schedule,
            "certaudit_renews": not self.declared_receiver,
        }


def renewer_verdict(facts: HostFacts, policy: Policy) -> RenewerVerdict:
    """Whether a host renews its domain: a lineage for the name (a renewal conf certbot renews)
    and an effective schedule that runs certbot. Either read incompletely raises Undeterminable,
    since an unread lineage or crontab may be a second renewer."""
    renewal_root = posixpath.join(policy.letsencrypt_dir, "renewal")
    sibling = re.compile(re.escape(policy.domain) + r"(-\d{4})?\.conf")
    lineages = tuple(sorted(n.removesuffix(".conf") for n in facts.listing(renewal_root).names if sibling.fullmatch(n)))
    declared_receiver = not policy.renews
    if not lineages:
        return RenewerVerdict(facts.host, False, (), f"no lineage for {policy.domain} in {renewal_root}", declared_receiver)
    schedule = renewal_schedule(facts)
    if schedule.proof is not None:
        return RenewerVerdict(facts.host, True, lineages, schedule.proof.reason, declared_receiver)
    if schedule.unknown:
        raise Undeterminable(
            f"host {facts.host}: holds lineage {', '.join(lineages)} and whether anything renews it is unknown: "
            f"{'; '.join(schedule.unknown)}"
        )
    return RenewerVerdict(facts.host, False, lineages, schedule.absent, declared_receiver)


# --- FLT-02 and FLT-03: which certificate ---------------------------------------------------------
@dataclass(frozen=True)
class Served:
    host: str
    certificate: x509.Certificate

    @property
    def sha256(self) -> str:
        return fingerprint_sha256(self.certificate)

    def as_evidence(self) -> dict[str, str]:
        cert = self.certificate
        return {
            "sha256": self.sha256,
            "serial": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
        }


def served_by(facts: HostFacts) -> Served | str:
    """The leaf a host's endpoint served the auditing machine, or why it served none (an
    observation); raises Undeterminable when the handshake itself timed out or was not made."""
    endpoint = facts.endpoint
    if endpoint is None:
        raise Undeterminable(f"host {facts.host}: the endpoint was not contacted")
    return leaf_of(endpoint, f"host {facts.host}")


def leaf_of(endpoint: Endpoint, who: str) -> Served | str:
    if not endpoint.determinable:
        raise Undeterminable(f"{who}: {endpoint.error}")
    if endpoint.leaf_der is None:
        return f"{endpoint.address}:{endpoint.port} serves no certificate: {endpoint.error}"
    try:
        return Served(who.removeprefix("host "), x509.load_der_x509_certificate(endpoint.leaf_der))
    except ValueError as exc:
        return f"{endpoint.address}:{endpoint.port} presents a certificate that does not parse: {exc}"


def newest(certificates: Iterable[Served]) -> Served | None:
    """The most recently issued (notBefore, then notAfter, then fingerprint: deterministic)."""
    return max(
        certificates,
        key=lambda s: (s.certificate.not_valid_before_utc, s.certificate.not_valid_after_utc, s.sha256),
        default=None,
    )


def older_than_window(served: Served, reference: Served, window: dt.timedelta) -> bool:
    return (
        served.sha256 != reference.sha256
        and reference.certificate.not_valid_before_utc - served.certificate.not_valid_before_utc > window
    )


def public_endpoint(domain: Domain) -> tuple[str, int]:
    """The domain's certaudit_public_endpoint as (host, port); its hosts must agree on it."""
    given = sorted({t.policy.public_endpoint for t in domain.hosts if t.policy.public_endpoint})
    if len(given) > 1:
        raise Undeterminable(
            f"domain {domain.name}: its hosts name different certaudit_public_endpoint values ({', '.join(given)})"
        )
    match = ENDPOINT_RE.fullmatch(given[0]) if given else None
    if match is None:
        raise Undeterminable(f"domain {domain.name}: no certaudit_public_endpoint")
    return match.group("host").strip("[]"), int(match.group("port"))


def fetch_public(address: str, port: int, domain: str, timeout: float) -> Endpoint:
    """What an outside monitor sees: a handshake from the auditing machine, SNI the domain."""
    return fetch_leaf(address, port, domain, timeout=timeout)


def hosts_of(records: Sequence[Served]) -> dict[str, list[str]]:
    by_sha: dict[str, list[str]] = {}
    for served in records:
        by_sha.setdefault(served.sha256, []).append(served.host)
    return by_sha
