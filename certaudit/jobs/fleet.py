"""The fleet view: the hosts of one domain judged together (FLT-*), since how hosts relate is
what no per-host control can see: two renewers of one name, one host behind the balancer never
reloaded, the balancer itself serving what no host should.

A domain is every inventory host with the same `certaudit_domain`, taken from the whole
inventory (before --limit), so a deploy that touches one host of a domain is gated on all of
them. Its judging needs every one of those hosts: one not reached makes the domain's fleet
controls an error naming it, never a judgement on the hosts that answered.

DESIGN: one code path judges a domain, from *fleet summaries*, not from snapshots. A summary
(`HostSummary`) is the few facts of one host the fleet controls rest on, each either read whole
or with the reason it was not: whether the host was reached, its lineages for the domain and its
renewal schedule (FLT-01), the leaf its endpoint served the auditing machine and the leaf on its
disk (FLT-02, FLT-03), as fingerprint, serial and validity, never a file's content. An unsharded
run makes them from its snapshots and judges at once; every run also writes them into
evidence.json (`fleet`), with what it knows of each domain (`DomainSpec`: its hosts in the whole
inventory, its public endpoints, the policy values the judging uses). With `--shard` no shard sees
a whole domain, so the shard of its first host records a placeholder error (`SHARDED`), and
`certaudit merge` judges the domain on the union of the parts' summaries
(certaudit/evidence/fleet_merge.py) with these same functions: the same facts give the same
record. FLT-03 contacts the public endpoint from wherever it is judged, the auditing machine: the
run itself, or the merge job (unless the merge is told not to touch the network).
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from certaudit.errors import CertauditError, Undeterminable
from certaudit.gather.tls import fetch_leaf
from certaudit.host.certificates import certificate_at
from certaudit.host.chain import load_der_chain, name_of, trust_store, verify_served_chain
from certaudit.host.facts import Endpoint, HostFacts
from certaudit.host.schedule import renewal_schedule
from certaudit.host.x509 import fingerprint_sha256, summary
from certaudit.inventory import Target
from certaudit.policy import ENDPOINT_RE, Policy
from certaudit.readers import shown_text
from certaudit.record import Evidence
from certaudit.redact import TEXT_CAP, untrusted

SHARDED = (
    "judged by `certaudit merge` of every shard: no shard sees every host of the domain, so each writes its hosts' "
    "fleet summaries and the merge judges the domain on all of them"
)
MAX_SERIAL_HEX = 128  # RFC 5280 allows 20 octets; 64 is already absurd, and a summary stays bounded
MAX_NAME = 1024  # a host or domain name, a lineage name, a path in a summary


# --- domains ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Domain:
    """One domain and every inventory host that serves it; `policy` is its first host's (the
    fleet controls' applicability and FLT-02's window), `name` is what a record names."""

    name: str
    hosts: tuple[Target, ...]
    policy: Policy
    sharded: bool = False  # this run is one shard: the domain is judged by the merge

    @property
    def host_names(self) -> list[str]:
        return [t.name for t in self.hosts]

    def spec(self) -> DomainSpec:
        policy = self.policy
        return DomainSpec(
            name=self.name,
            hosts=tuple(self.host_names),
            public_endpoints=tuple(sorted({t.policy.public_endpoint for t in self.hosts if t.policy.public_endpoint})),
            fleet_window_days=policy.fleet_window_days,
            warn_days=policy.warn_days,
            crit_days=policy.crit_days,
            ca_bundle=policy.ca_bundle,
        )


@dataclass(frozen=True)
class DomainSpec:
    """What judging a domain needs of the inventory: its hosts (all of them, before --limit and
    --shard), the public endpoints they name, and its first host's policy values FLT-* use."""

    name: str
    hosts: tuple[str, ...]
    public_endpoints: tuple[str, ...]
    fleet_window_days: int
    warn_days: int
    crit_days: int
    ca_bundle: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "hosts": list(self.hosts),
            "public_endpoints": list(self.public_endpoints),
            "fleet_window_days": self.fleet_window_days,
            "warn_days": self.warn_days,
            "crit_days": self.crit_days,
            "ca_bundle": self.ca_bundle,
        }

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> DomainSpec:
        """A domain as a part's evidence describes it; ValueError saying what is wrong."""
        hosts = _names(data.get("hosts"), f"domain {shown_text(name, 80)}: hosts")
        if not hosts or len(set(hosts)) != len(hosts):
            raise ValueError(f"domain {shown_text(name, 80)}: hosts must name each host once")
        ints = {k: data.get(k) for k in ("fleet_window_days", "warn_days", "crit_days")}
        if not all(type(v) is int and 0 <= v <= 100_000 for v in ints.values()):
            raise ValueError(f"domain {shown_text(name, 80)}: fleet_window_days, warn_days, crit_days must be day counts")
        ca_bundle = data.get("ca_bundle")
        if ca_bundle is not None and not (isinstance(ca_bundle, str) and 0 < len(ca_bundle) <= MAX_NAME):
            raise ValueError(f"domain {shown_text(name, 80)}: ca_bundle must be a path")
        return cls(
            name=_name(name, "a domain"),
            hosts=tuple(hosts),
            public_endpoints=tuple(_names(data.get("public_endpoints"), f"domain {shown_text(name, 80)}: public_endpoints")),
            fleet_window_days=int(ints["fleet_window_days"] or 0),
            warn_days=int(ints["warn_days"] or 0),
            crit_days=int(ints["crit_days"] or 0),
            ca_bundle=ca_bundle,
        )


def domains_of(selected: Iterable[Target], whole: Iterable[Target]) -> list[Domain]:
    """The domains of the selected hosts, each with all of its hosts in the whole inventory, by name:
    those served by more than one host, or reached through a public endpoint. A domain of one host
    and no balancer has no fleet to judge (its host controls say all there is)."""
    members: dict[str, list[Target]] = {}
    for target in whole:
        members.setdefault(target.policy.domain, []).append(target)
    selected = list(selected)
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


# --- a host's fleet summary -------------------------------------------------------------------------
@dataclass(frozen=True)
class Unknown:
    """A fact not read whole, with the reason (a judgement resting on it is an error)."""

    reason: str


@dataclass(frozen=True)
class Leaf:
    """A certificate as the fleet controls compare it: fingerprint, serial and validity."""

    host: str
    sha256: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime

    @classmethod
    def of(cls, host: str, certificate: x509.Certificate) -> Leaf | str:
        serial = format(certificate.serial_number, "x")
        if len(serial) > MAX_SERIAL_HEX:
            return f"presents a certificate whose serial has {len(serial)} hex digits (RFC 5280: at most 40)"
        return cls(host, fingerprint_sha256(certificate), serial, certificate.not_valid_before_utc,
                   certificate.not_valid_after_utc)  # fmt: skip

    def as_evidence(self) -> dict[str, str]:
        return {
            "sha256": self.sha256,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
        }

    @classmethod
    def from_json(cls, host: str, data: Any) -> Leaf:
        if not isinstance(data, dict) or set(data) != {"sha256", "serial", "not_before", "not_after"}:
            raise ValueError(f"host {shown_text(host, 80)}: a leaf is sha256, serial, not_before and not_after")
        sha, serial = data["sha256"], data["serial"]
        if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
            raise ValueError(f"host {shown_text(host, 80)}: a leaf's sha256 is 64 lowercase hex digits")
        if not (isinstance(serial, str) and re.fullmatch(rf"[0-9a-f]{{1,{MAX_SERIAL_HEX}}}", serial)):
            raise ValueError(f"host {shown_text(host, 80)}: a leaf's serial is at most {MAX_SERIAL_HEX} hex digits")
        return cls(host, sha, serial, _instant(host, data["not_before"]), _instant(host, data["not_after"]))


Lineages = tuple[str, ...] | Unknown


@dataclass(frozen=True)
class Schedule:
    active: bool
    detail: str  # the schedule that runs certbot, or why none does


@dataclass(frozen=True)
class HostSummary:
    """What FLT-* need of one host, each fact known whole or Unknown with the reason."""

    host: str
    domain: str
    error: str = ""  # not reached: the probe's error (then nothing else is known)
    certaudit_renews: bool = True
    renewal_dir: str = ""
    lineages: Lineages = Unknown("not read")
    schedule: Schedule | Unknown = Unknown("not read")
    served: Leaf | str | Unknown = Unknown("not read")  # str: why the endpoint served no usable leaf
    disk: Leaf | Unknown | None = Unknown("not read")  # None: no certificate at certaudit_tls_dir/cert.pem

    @property
    def reached(self) -> bool:
        return not self.error

    @classmethod
    def unreached(cls, host: str, domain: str, error: str) -> HostSummary:
        return cls(host, domain, error=untrusted(error or f"host {host}: not reached"))

    @classmethod
    def of(cls, facts: HostFacts, policy: Policy) -> HostSummary:
        """The summary of a host's snapshot; every reason kept redacted and bounded, as evidence."""
        renewal_root = posixpath.join(policy.letsencrypt_dir, "renewal")
        return cls(
            host=facts.host,
            domain=policy.domain,
            certaudit_renews=policy.renews,
            renewal_dir=renewal_root,
            lineages=_known(lambda: _lineages(facts, renewal_root, policy.domain)),
            schedule=_known(lambda: _schedule(facts)),
            served=_known(lambda: _served(facts)),
            disk=_known(lambda: _disk(facts, policy.tls_cert)),
        )

    def as_json(self) -> dict[str, Any]:
        if not self.reached:
            return {"domain": self.domain, "reached": False, "error": self.error}
        return {
            "domain": self.domain,
            "reached": True,
            "certaudit_renews": self.certaudit_renews,
            "renewal_dir": self.renewal_dir,
            "lineages": _lineages_json(self.lineages),
            "schedule": _schedule_json(self.schedule),
            "served": _leaf_json(self.served),
            "disk": _leaf_json(self.disk),
        }

    @classmethod
    def from_json(cls, host: str, data: Any) -> HostSummary:
        """A summary as a part's evidence holds it; ValueError saying what is wrong (hostile input)."""
        who = f"host {shown_text(host, 80)}"
        if not isinstance(data, dict):
            raise ValueError(f"{who}: a fleet summary is an object")
        host, domain = _name(host, "a host"), _name(data.get("domain"), f"{who}: domain")
        if data.get("reached") is False:
            return cls(host, domain, error=_text(data.get("error"), f"{who}: error") or f"host {host}: not reached")
        if data.get("reached") is not True or not isinstance(data.get("certaudit_renews"), bool):
            raise ValueError(f"{who}: reached and certaudit_renews must be true or false")
        lineages = data.get("lineages")
        schedule = data.get("schedule")
        return cls(
            host,
            domain,
            certaudit_renews=data["certaudit_renews"],
            renewal_dir=_name(data.get("renewal_dir"), f"{who}: renewal_dir"),
            lineages=_unknown_of(lineages, who) or tuple(_names(_field(lineages, "names", who), f"{who}: lineages")),
            schedule=_unknown_of(schedule, who) or _schedule_of(schedule, who),
            served=_served_of(data.get("served"), host, who),
            disk=_disk_of(data.get("disk"), host, who),
        )


def _known(read: Any) -> Any:
    """What `read` returns, or Unknown with the reason it could not be read whole."""
    try:
        return read()
    except CertauditError as exc:  # Undeterminable, a file the probe refused, a listing cut
        return Unknown(untrusted(str(exc)))


def _lineages(facts: HostFacts, renewal_root: str, domain: str) -> tuple[str, ...]:
    sibling = re.compile(re.escape(domain) + r"(-\d{4})?\.conf")
    names = facts.listing(renewal_root).names
    return tuple(sorted(untrusted(n.removesuffix(".conf")) for n in names if sibling.fullmatch(n)))


def _schedule(facts: HostFacts) -> Schedule | Unknown:
    schedule = renewal_schedule(facts)
    if schedule.proof is not None:
        return Schedule(True, untrusted(schedule.proof.reason))
    if schedule.unknown:
        return Unknown(untrusted("; ".join(schedule.unknown)))
    return Schedule(False, untrusted(schedule.absent))


def _served(facts: HostFacts) -> Leaf | str:
    """The leaf a host's endpoint served the auditing machine, or why it served none (an
    observation); raises Undeterminable when the handshake itself timed out or was not made."""
    endpoint = facts.endpoint
    if endpoint is None:
        raise Undeterminable(f"host {facts.host}: the endpoint was not contacted")
    leaf = leaf_of(endpoint, f"host {facts.host}")
    return leaf if isinstance(leaf, str) else _leaf_or_why(facts.host, leaf)


def _disk(facts: HostFacts, path: str) -> Leaf | None:
    certificate = certificate_at(facts, path)
    if certificate is None:
        return None
    leaf = Leaf.of(facts.host, certificate)
    return leaf if isinstance(leaf, Leaf) else None  # an absurd serial on disk: no certificate FLT-03 can compare


def _leaf_or_why(host: str, certificate: x509.Certificate) -> Leaf | str:
    leaf = Leaf.of(host, certificate)
    return leaf if isinstance(leaf, Leaf) else untrusted(leaf)


def leaf_of(endpoint: Endpoint, who: str) -> x509.Certificate | str:
    """The leaf an endpoint presented, or why it presented none that parses (observations);
    raises Undeterminable when the handshake was not made (a timeout: nothing observed)."""
    if not endpoint.determinable:
        raise Undeterminable(f"{who}: {endpoint.error}")
    if endpoint.leaf_der is None:
        return untrusted(f"{endpoint.address}:{endpoint.port} serves no certificate: {endpoint.error}")
    try:
        return x509.load_der_x509_certificate(endpoint.leaf_der)
    except ValueError as exc:
        return untrusted(f"{endpoint.address}:{endpoint.port} presents a certificate that does not parse: {exc}")


# --- (de)serialising summaries: bounded, every field checked ----------------------------------------
def _lineages_json(value: Lineages) -> dict[str, Any]:
    return {"error": value.reason} if isinstance(value, Unknown) else {"names": list(value)}


def _schedule_json(value: Schedule | Unknown) -> dict[str, Any]:
    return {"error": value.reason} if isinstance(value, Unknown) else {"active": value.active, "detail": value.detail}


def _leaf_json(value: Leaf | str | Unknown | None) -> dict[str, Any]:
    if isinstance(value, Unknown):
        return {"error": value.reason}
    if isinstance(value, Leaf):
        return {"leaf": value.as_evidence()}
    return {"none": value or ""}


def _field(data: Any, key: str, who: str) -> Any:
    if not isinstance(data, dict) or set(data) != {key}:
        raise ValueError(f"{who}: expected {{{key!r}: ...}} or {{'error': ...}}")
    return data[key]


def _unknown_of(data: Any, who: str) -> Unknown | None:
    if isinstance(data, dict) and set(data) == {"error"}:
        return Unknown(_text(data["error"], f"{who}: error") or "not read")
    return None


def _schedule_of(data: Any, who: str) -> Schedule:
    if not (isinstance(data, dict) and set(data) == {"active", "detail"} and isinstance(data["active"], bool)):
        raise ValueError(f"{who}: schedule is {{active, detail}} or {{error}}")
    return Schedule(data["active"], _text(data["detail"], f"{who}: schedule detail"))


def _served_of(data: Any, host: str, who: str) -> Leaf | str | Unknown:
    if isinstance(data, dict) and set(data) == {"none"}:
        return _text(data["none"], f"{who}: served") or "serves no certificate"
    return _unknown_of(data, who) or Leaf.from_json(host, _field(data, "leaf", f"{who}: served"))


def _disk_of(data: Any, host: str, who: str) -> Leaf | Unknown | None:
    if isinstance(data, dict) and set(data) == {"none"}:
        return None
    return _unknown_of(data, who) or Leaf.from_json(host, _field(data, "leaf", f"{who}: disk"))


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > 2 * TEXT_CAP:
        raise ValueError(f"{what}: expected a text of at most {2 * TEXT_CAP} characters")
    return untrusted(value)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise ValueError(f"{what}: expected a name of 1 to {MAX_NAME} characters")
    return value


def _names(value: Any, what: str) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"{what}: expected a list of names")
    return [_name(v, what) for v in value]


def _instant(host: str, value: Any) -> dt.datetime:
    try:
        instant = dt.datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        instant = None
    if instant is None or instant.utcoffset() != dt.timedelta(0):
        raise ValueError(f"host {shown_text(host, 80)}: a leaf's validity is two UTC date-times")
    return instant


# --- the view FLT-* judge ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetView:
    """The summaries of a domain's hosts, as far as they are in."""

    domain: DomainSpec
    summaries: Mapping[str, HostSummary]
    absent: str = "not probed"  # why a host of the domain has no summary at all
    connect_timeout: float = 10.0  # FLT-03's handshake with the public endpoint, as every other connection
    offline: str = ""  # FLT-03 must not contact the endpoint: why (a merge told not to touch the network)
    placeholder: str = ""  # this run cannot judge the domain: why (a shard)

    @classmethod
    def of_facts(cls, domain: Domain, facts: Mapping[str, HostFacts], errors: Mapping[str, str],
                 connect_timeout: float = 10.0) -> FleetView:  # fmt: skip
        """The view of an unsharded run: its snapshots summarised, its probe errors kept."""
        summaries = {t.name: HostSummary.of(facts[t.name], t.policy) for t in domain.hosts if t.name in facts}
        return cls.of_summaries(domain, summaries, errors, connect_timeout)

    @classmethod
    def of_summaries(cls, domain: Domain, summaries: Mapping[str, HostSummary], errors: Mapping[str, str],
                     connect_timeout: float = 10.0) -> FleetView:  # fmt: skip
        """The view of an unsharded run from its hosts' summaries (HostSummary.of each reached
        host's snapshot), its probe errors kept."""
        ours = {t.name: summaries[t.name] for t in domain.hosts if t.name in summaries}
        for target in domain.hosts:
            if target.name not in summaries and target.name in errors:
                ours[target.name] = HostSummary.unreached(target.name, domain.name, errors[target.name])
        placeholder = f"domain {domain.name}: {SHARDED}" if domain.sharded else ""
        return cls(domain.spec(), ours, connect_timeout=connect_timeout, placeholder=placeholder)

    def require_whole(self) -> None:
        """Raise Undeterminable naming every host of the domain whose summary is not in."""
        if self.placeholder:
            raise Undeterminable(self.placeholder)
        missing = [h for h in self.domain.hosts if h not in self.summaries or not self.summaries[h].reached]
        if missing:
            why = "; ".join(
                shown_text(self.summaries[h].error if h in self.summaries else f"host {h}: {self.absent}", 300) for h in missing
            )
            raise Undeterminable(
                f"domain {self.domain.name}: {len(missing)} of its {len(self.domain.hosts)} hosts not reached "
                f"({', '.join(missing)}), so the domain cannot be judged as a whole: {why}"
            )

    def each(self) -> list[HostSummary]:
        self.require_whole()
        return [self.summaries[h] for h in self.domain.hosts]


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


def renewer_verdict(host: HostSummary, domain: str) -> RenewerVerdict:
    """Whether a host renews its domain: a lineage for the name (a renewal conf certbot renews)
    and an effective schedule that runs certbot. Either read incompletely raises Undeterminable,
    since an unread lineage or crontab may be a second renewer."""
    declared_receiver = not host.certaudit_renews
    if isinstance(host.lineages, Unknown):
        raise Undeterminable(host.lineages.reason)
    if not host.lineages:
        return RenewerVerdict(host.host, False, (), f"no lineage for {domain} in {host.renewal_dir}", declared_receiver)
    if isinstance(host.schedule, Unknown):
        raise Undeterminable(
            f"host {host.host}: holds lineage {', '.join(host.lineages)} and whether anything renews it is unknown: "
            f"{host.schedule.reason}"
        )
    return RenewerVerdict(host.host, host.schedule.active, host.lineages, host.schedule.detail, declared_receiver)


def judge_renewers(view: FleetView, evidence: Evidence) -> None:
    """FLT-01 on a domain's summaries: at most one host renews it."""
    domain = view.domain
    evidence.expect(renewers="at most one host of the domain renews it")
    verdicts = [renewer_verdict(host, domain.name) for host in view.each()]
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


# --- FLT-02 and FLT-03: which certificate ---------------------------------------------------------
def served_by(host: HostSummary) -> Leaf | str:
    """The leaf a host served the auditing machine, or why none (an observation); Undeterminable
    when the handshake was not made."""
    if isinstance(host.served, Unknown):
        raise Undeterminable(host.served.reason)
    return host.served


def newest(leaves: Iterable[Leaf]) -> Leaf | None:
    """The most recently issued (notBefore, then notAfter, then fingerprint: deterministic)."""
    return max(leaves, key=lambda s: (s.not_before, s.not_after, s.sha256), default=None)


def older_than_window(leaf: Leaf, reference: Leaf, window: dt.timedelta) -> bool:
    return leaf.sha256 != reference.sha256 and reference.not_before - leaf.not_before > window


def hosts_of(records: Sequence[Leaf]) -> dict[str, list[str]]:
    by_sha: dict[str, list[str]] = {}
    for served in records:
        by_sha.setdefault(served.sha256, []).append(served.host)
    return by_sha


def judge_certificates(view: FleetView, evidence: Evidence) -> None:
    """FLT-02 on a domain's summaries: no host serves a certificate older than the newest by more than the window."""
    days = view.domain.fleet_window_days
    window = dt.timedelta(days=days)
    evidence.expect(served=f"one certificate, or none issued more than {days} day(s) before the newest")
    served: list[Leaf] = []
    unserved: dict[str, str] = {}
    for host in view.each():
        leaf = served_by(host)
        if isinstance(leaf, Leaf):
            served.append(leaf)
        else:
            unserved[host.host] = leaf
    evidence.observe(hosts={**{s.host: s.as_evidence() for s in served}, **{h: {"error": e} for h, e in unserved.items()}})
    for name, why in unserved.items():
        evidence.require(False, f"{name}: {why}")
    reference = newest(served)
    if reference is None:
        return
    holders = hosts_of(served)
    evidence.observe(newest={"sha256": reference.sha256, "hosts": holders[reference.sha256]})
    for leaf in served:
        evidence.require(
            not older_than_window(leaf, reference, window),
            f"{leaf.host} serves {leaf.sha256[:16]}… (serial {leaf.serial}, issued {leaf.not_before.isoformat()}, "
            f"expires {leaf.not_after.date()}), {(reference.not_before - leaf.not_before).days} days older than "
            f"the newest {reference.sha256[:16]}… that {', '.join(holders[reference.sha256])} serve",
        )


def public_endpoint(domain: DomainSpec) -> tuple[str, int]:
    """The domain's certaudit_public_endpoint as (host, port); its hosts must agree on it."""
    given = list(domain.public_endpoints)
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


def judge_public_endpoint(view: FleetView, evidence: Evidence, now: dt.datetime | None = None) -> None:
    """FLT-03 on a domain's summaries and a handshake with its public endpoint from here."""
    domain = view.domain
    address, port = public_endpoint(domain)
    evidence.expect(
        endpoint=f"{address}:{port} (SNI {domain.name}) reachable from the auditing machine",
        certificate=f"names {domain.name}, more than {domain.warn_days} days left, the newest the hosts hold, "
        "chained to a trusted root",
    )
    held: list[Leaf] = []
    for host in view.each():
        leaf = served_by(host)
        if isinstance(leaf, Leaf):
            held.append(leaf)
        if isinstance(host.disk, Unknown):
            raise Undeterminable(host.disk.reason)
        if host.disk is not None:
            held.append(host.disk)
    reference = newest(held)
    if view.offline:
        raise Undeterminable(f"domain {domain.name}: the public endpoint {address}:{port} was not contacted: {view.offline}")
    endpoint = fetch_public(address, port, domain.name, view.connect_timeout)
    cert = leaf_of(endpoint, f"domain {domain.name}: the public endpoint")
    if isinstance(cert, str):
        evidence.observe(public_error=cert)
        evidence.require(False, f"the public endpoint {cert}")
        return
    _judge_public_leaf(domain, cert, reference, endpoint, evidence, now or dt.datetime.now(dt.UTC))


def _judge_public_leaf(domain: DomainSpec, cert: x509.Certificate, reference: Leaf | None, endpoint: Endpoint,
                       evidence: Evidence, now: dt.datetime) -> None:  # fmt: skip
    leaf = Leaf.of("", cert)
    sha = leaf.sha256 if isinstance(leaf, Leaf) else fingerprint_sha256(cert)
    days = (cert.not_valid_after_utc - now).total_seconds() / 86400
    evidence.observe(
        served={**(leaf.as_evidence() if isinstance(leaf, Leaf) else {"sha256": sha}), **summary(cert)},
        days_left=round(days, 2),
        newest_held={"sha256": reference.sha256, "host": reference.host} if reference else None,
    )
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except (x509.ExtensionNotFound, ValueError):  # no SAN, or one that does not parse: the domain is not in it
        names = []
    evidence.require(_covers(names, domain.name), f"the public endpoint's certificate does not name {domain.name} (SAN {names})")
    if days <= domain.crit_days:
        evidence.require(
            False, f"the public endpoint's certificate expires in {days:.1f} days (critical tier: {domain.crit_days})"
        )
    elif days <= domain.warn_days:
        evidence.require(
            False, f"the public endpoint's certificate expires in {days:.1f} days (warning tier: {domain.warn_days})"
        )
    if reference is not None:
        evidence.require(
            sha == reference.sha256,
            f"the public endpoint serves {sha[:16]}… (issued {cert.not_valid_before_utc.isoformat()}), not the newest "
            f"certificate the domain's hosts hold, {reference.sha256[:16]}… on {reference.host} (issued "
            f"{reference.not_before.isoformat()}): the balancer sends clients to a stale backend",
        )
    _judge_chain(endpoint.chain_der, endpoint.chain_error, domain.ca_bundle, now, evidence)


def _judge_chain(chain_der: tuple[bytes, ...], chain_error: str, ca_bundle: str | None, now: dt.datetime,
                 evidence: Evidence) -> None:  # fmt: skip
    if chain_error:
        raise Undeterminable(f"the public endpoint's chain was not read: {chain_error}")
    try:
        served = load_der_chain(chain_der)
    except ValueError as exc:
        evidence.require(False, f"the public endpoint's chain does not parse: {exc}")
        return
    verdict = verify_served_chain(served, trust_store(ca_bundle), now)  # an unreadable bundle: error
    evidence.observe(chain=[name_of(c) for c in verdict.path], anchor=name_of(verdict.anchor) if verdict.anchor else None)
    for finding in verdict.findings:
        evidence.require(False, f"the public endpoint's chain: {finding}")


def _covers(names: list[str], domain: str) -> bool:
    for name in names:
        candidate = name.lower().rstrip(".")
        if candidate == domain or (candidate.startswith("*.") and domain.partition(".")[2] == candidate[2:]):
            return True
    return False


# --- the evidence section -----------------------------------------------------------------------------
@dataclass
class FleetSection:
    """evidence.json's `fleet`: what each run knows of its fleet domains and its own hosts in them."""

    connect_timeout: float
    domains: dict[str, DomainSpec] = field(default_factory=dict)
    hosts: dict[str, HostSummary] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "connect_timeout": self.connect_timeout,
            "domains": {name: spec.as_json() for name, spec in sorted(self.domains.items())},
            "hosts": {name: host.as_json() for name, host in sorted(self.hosts.items())},
        }


def fleet_section(
    selected: Sequence[Target],
    whole: Iterable[Target],
    summaries: Mapping[str, HostSummary],
    errors: Mapping[str, str],
    connect_timeout: float,
) -> FleetSection | None:
    """The run's fleet summaries: every selected host of a fleet domain, reached (its summary), not
    reached (its probe error) or not probed; None when the run's hosts have no fleet domain."""
    domains = domains_of(selected, whole)
    if not domains:
        return None
    section = FleetSection(connect_timeout, {d.name: d.spec() for d in domains})
    ours = {t.name for t in selected}
    for domain in domains:
        for target in domain.hosts:
            if target.name not in ours:
                continue
            if target.name in summaries:
                section.hosts[target.name] = summaries[target.name]
            else:
                why = errors.get(target.name, f"host {target.name}: not probed in this run")
                section.hosts[target.name] = HostSummary.unreached(target.name, domain.name, why)
    return section
