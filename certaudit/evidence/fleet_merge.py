"""`certaudit merge` judges a sharded run's fleet controls (FLT-*) on the parts' fleet summaries.

DESIGN: with `--shard`, no shard sees every host of a domain. Each shard writes, in its
evidence.json `fleet`, a summary of each of its hosts of a fleet domain (certaudit/jobs/fleet.py:
reached or the probe's error, lineages and renewal schedule, served and on-disk leaf, each read
whole or why not) and what it knows of the domain from the whole inventory (its hosts, public
endpoints, policy values); the shard of the domain's first host records each FLT control as a
placeholder error (`SHARDED`). The merge takes the union of the summaries, refusing a part that
summarises a host it did not audit, describes a domain differently from another part, or holds
two different summaries of one host (hostile input: one line, exit status 4), and replaces each
placeholder with the record the unsharded run's control would have made, by the same functions
(`judge_renewers`, `judge_certificates`, `judge_public_endpoint`): same shape, outcome, evidence,
waivers applied as the plugin applies them, and the part's JUnit case rewritten to match, so the
report, JUnit and exit status the merge writes agree. A host of the domain in no part (its shard
ran with another --limit, or an older certaudit wrote it) or not reached keeps the domain an error
naming it. FLT-03 contacts the public endpoint from the machine that merges (the auditing side,
as an outside monitor), within the parts' --connect-timeout; `certaudit merge --no-network` makes
it an error saying so instead.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certaudit.controls import Control
from certaudit.errors import CertauditError
from certaudit.jobs.fleet import (
    SHARDED,
    DomainSpec,
    FleetView,
    HostSummary,
    judge_certificates,
    judge_public_endpoint,
    judge_renewers,
)
from certaudit.readers import shown_text
from certaudit.record import USER_PROPERTY, Evidence, Outcome, Record

JUDGES: dict[str, Callable[[FleetView, Evidence], None]] = {
    "FLT-01": judge_renewers,
    "FLT-02": judge_certificates,
    "FLT-03": judge_public_endpoint,
}
ABSENT = "in no part of the merge (no shard audited it: shards run with another --limit, or by an older certaudit)"
NO_NETWORK = "certaudit merge --no-network touches no network; merge without it, on the auditing machine, to check it"
DEFAULT_CONNECT_TIMEOUT = 10.0


class FleetMergeError(CertauditError):
    """The parts' fleet summaries cannot be judged together; the message says which part and why."""


@dataclass(frozen=True)
class Part:
    """One part of the merge as this module needs it: a label, its evidence, its JUnit tree."""

    label: str
    evidence: Mapping[str, Any]
    junit: ET.Element | None = None


@dataclass
class FleetUnion:
    """Every part's fleet summaries and domains, each host and domain once."""

    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    domains: dict[str, DomainSpec] = field(default_factory=dict)
    hosts: dict[str, HostSummary] = field(default_factory=dict)

    def view(self, domain: str, offline: str) -> FleetView | str:
        """The domain's view, or why no part describes it."""
        spec = self.domains.get(domain)
        if spec is None:
            return f"domain {domain}: no part of the merge holds its fleet summaries (written by an older certaudit?)"
        summaries = {h: self.hosts[h] for h in spec.hosts if h in self.hosts}
        return FleetView(spec, summaries, absent=ABSENT, connect_timeout=self.connect_timeout, offline=offline)


def union_of(parts: Sequence[Part]) -> FleetUnion:
    """The union of the parts' `fleet` sections; FleetMergeError on a part that contradicts
    itself or another (a summary of a host it did not audit, two different ones of one host)."""
    union = FleetUnion()
    timeouts: list[float] = []
    domain_from: dict[str, str] = {}
    host_from: dict[str, str] = {}
    for part in parts:
        section = part.evidence.get("fleet")
        if section is None:
            continue
        domains, hosts, timeout = _parse(part, section)
        timeouts.append(timeout)
        for name, spec in domains.items():
            if name in union.domains and union.domains[name] != spec:
                raise FleetMergeError(f"{part.label} and {domain_from[name]} describe domain {shown_text(name, 80)} differently")
            union.domains[name], domain_from[name] = spec, part.label
        audited = set(part.evidence.get("run", {}).get("hosts_expected", []))
        for host, summary in hosts.items():
            if host not in audited:
                raise FleetMergeError(
                    f"{part.label} holds a fleet summary of host {shown_text(host, 80)}, which it did not audit"
                )
            if host in union.hosts and union.hosts[host] != summary:
                raise FleetMergeError(
                    f"{part.label} and {host_from[host]} hold different fleet summaries of host {shown_text(host, 80)}"
                )
            union.hosts[host], host_from[host] = summary, part.label
    for host, summary in union.hosts.items():
        listed = union.domains.get(summary.domain)
        if listed is None or host not in listed.hosts:
            raise FleetMergeError(
                f"{host_from[host]}: the fleet summary of host {shown_text(host, 80)} names domain "
                f"{shown_text(summary.domain, 80)}, which no part lists it in"
            )
    union.connect_timeout = max(timeouts, default=DEFAULT_CONNECT_TIMEOUT)
    return union


def _parse(part: Part, section: Any) -> tuple[dict[str, DomainSpec], dict[str, HostSummary], float]:
    try:
        if (
            not isinstance(section, dict)
            or not isinstance(section.get("domains"), dict)
            or not isinstance(section.get("hosts"), dict)
        ):
            raise ValueError("expected {connect_timeout, domains, hosts}")
        timeout = section.get("connect_timeout")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 86400:
            raise ValueError("connect_timeout must be a number of seconds")
        domains = {str(n): DomainSpec.from_json(n, d if isinstance(d, dict) else {}) for n, d in section["domains"].items()}
        hosts = {str(h): HostSummary.from_json(h, s) for h, s in section["hosts"].items()}
    except ValueError as exc:
        raise FleetMergeError(f"{part.label}: its fleet summaries are not valid: {exc}") from None
    return domains, hosts, float(timeout)


def is_placeholder(record: Mapping[str, Any]) -> bool:
    """A shard's FLT record of a domain it could not judge, which the merge judges."""
    return (
        record.get("control") in JUDGES
        and record.get("outcome") == "error"
        and record.get("message") == f"domain {record.get('host')}: {SHARDED}"
    )


def judge_fleet(
    parts: Sequence[Part],
    evidence: dict[str, Any],
    *,
    network: bool = True,
    results: Callable[[], Iterable[Mapping[str, Any]]] | None = None,
) -> dict[int, dict[str, Any]]:
    """Judge every placeholder FLT record of the merged results on the parts' summaries (and rewrite
    its JUnit case in its part); returns the judged records by their position in the results.

    `results` iterates the merged results afresh at each call (a merge reads them back from its
    spool); without it they are `evidence["results"]`, a list, whose placeholders are replaced here."""
    union = union_of(parts)  # hostile summaries are refused even when no placeholder needs them
    offline = "" if network else NO_NETWORK
    listed = results if results is not None else (lambda: evidence["results"])
    judged: dict[int, dict[str, Any]] = {}
    for index, old in enumerate(listed()):
        if not is_placeholder(old):
            continue
        record = judge_one(old, union, offline, evidence["waivers"])
        judged[index] = json.loads(record.to_json())
        for part in parts:
            if part.junit is not None:
                _rewrite_case(part.junit, record, evidence["waivers"].get("file"))
    if results is None:
        for index, judged_record in judged.items():
            evidence["results"][index] = judged_record
    if judged:
        waivers = evidence["waivers"]
        used = {e["index"] for e in waivers["entries"] if e.get("covered")}
        waivers["unused"] = [i for i in waivers["unused"] if i not in used]
        now = (judged.get(i, r) for i, r in enumerate(listed()))
        evidence["run"]["exit_status"] = _exit_status(evidence, now, parts)
    return judged


def judge_one(old: Mapping[str, Any], union: FleetUnion, offline: str, waivers: Mapping[str, Any]) -> Record:
    """The record the unsharded control would make of the placeholder's domain (as the plugin makes it)."""
    control = Control(old["control"], old["title"], "", "", "", old.get("fix", ""), bool(old.get("gate")), None, "")
    evidence = Evidence(control, old["host"])
    started = time.monotonic()
    at = dt.datetime.now(dt.UTC).isoformat()
    view = union.view(old["host"], offline)
    outcome: Outcome
    try:
        if isinstance(view, str):
            raise CertauditError(view)
        JUDGES[old["control"]](view, evidence)
        outcome, message = ("fail", evidence.failure_message()) if evidence.findings else ("pass", "")
    except CertauditError as exc:
        outcome, message = "error", str(exc)
    except Exception as exc:
        outcome, message = "error", f"certaudit could not judge this control: {type(exc).__name__}: {exc}"
    name = str(old["nodeid"]).rpartition("::")[2]
    waiver = _waiver_for(waivers, old["control"], old["host"]) if outcome in ("fail", "pass") else None
    if waiver is not None and outcome == "pass":
        waiver.setdefault("matched_passing", []).append(name)
    elif waiver is not None:
        outcome = "waived"
        waiver.setdefault("covered", []).append(name)
    return Record(
        control=old["control"],
        title=old["title"],
        host=old["host"],
        outcome=outcome,
        message=message,
        observed=evidence.observed,
        expected=evidence.expected,
        findings=evidence.findings or ([message.splitlines()[0]] if outcome == "fail" else []),
        notes=evidence.notes,
        fix=old.get("fix", ""),
        gate=bool(old.get("gate")),
        nodeid=old["nodeid"],
        started=at,
        duration_s=round(time.monotonic() - started, 4),
        waiver=dict(waiver) if waiver is not None and outcome == "waived" else None,
    )


def _waiver_for(waivers: Mapping[str, Any], control: str, host: str) -> dict[str, Any] | None:
    """The first valid waiver of the control whose host pattern matches the domain (waivers.Waiver.covers)."""
    entries: list[dict[str, Any]] = [e for e in waivers.get("entries", []) if isinstance(e, dict)]
    for entry in entries:
        if (
            entry.get("status") == "valid"
            and entry.get("control") == control
            and fnmatch.fnmatchcase(host, entry.get("hosts") or "")
        ):
            return entry
    return None


def _rewrite_case(junit: ET.Element, record: Record, waivers_file: str | None) -> None:
    """The part's test case of the record, made to say what the record says (as pytest's junitxml would)."""
    path, _, name = record.nodeid.partition("::")
    classname = path.removesuffix(".py").replace("/", ".")
    for case in junit.iter("testcase"):
        if case.get("name") != name or case.get("classname") != classname:
            continue
        for child in [c for c in case if c.tag in ("failure", "error", "skipped")]:
            case.remove(child)
        verdict = _verdict_element(record, waivers_file)
        if verdict is not None:
            case.insert(0, verdict)
        for prop in case.iter("property"):
            if prop.get("name") == USER_PROPERTY:
                prop.set("value", record.to_json())


def _verdict_element(record: Record, waivers_file: str | None) -> ET.Element | None:
    first = record.message.splitlines()[0] if record.message else ""
    if record.outcome == "fail":
        element = ET.Element("failure", message=first)
    elif record.outcome == "error":
        element = ET.Element("error", message=f'failed on setup with "{first}"')
    elif record.outcome == "waived" and record.waiver is not None:
        w = record.waiver
        label = f"{shown_text(waivers_file or 'waivers', 80)} waiver #{w.get('index')} ({w.get('control')} on {w.get('hosts')})"
        reason = (f"waived by {label}: {w.get('reason')} (approved by {w.get('approver')}, ticket {w.get('ticket')}, "
                  f"expires {w.get('expires')})")  # fmt: skip
        return ET.Element("skipped", type="pytest.xfail", message=reason)
    else:
        return None
    element.text = record.message
    return element


def _exit_status(evidence: Mapping[str, Any], results: Iterable[Mapping[str, Any]], parts: Sequence[Part]) -> int:
    """pytest's status of the whole: 1 when any result or JUnit case fails or errs, else 0 (a part's
    other status, an interrupt or internal error, is kept: it says more than the judging can)."""
    status = int(evidence["run"]["exit_status"])
    if status not in (0, 1):
        return status
    failing = any(r["outcome"] in ("fail", "error") for r in results) or any(
        case.find("failure") is not None or case.find("error") is not None
        for part in parts
        if part.junit is not None
        for case in part.junit.iter("testcase")
    )
    return 1 if failing else 0
