"""FLT-* judged from fleet summaries (certaudit/jobs/fleet.py), and by `certaudit merge` on the union
of a sharded run's parts (certaudit/evidence/fleet_merge.py): one code path, bounded hostile input."""

from __future__ import annotations

import copy
import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import checks.test_fleet  # noqa: F401 (registers FLT-*)
from certaudit.cli import main
from certaudit.controls import REGISTRY
from certaudit.errors import Undeterminable
from certaudit.evidence.fleet_merge import (
    ABSENT,
    NO_NETWORK,
    FleetMergeError,
    FleetUnion,
    Part,
    is_placeholder,
    judge_fleet,
    judge_one,
    union_of,
)
from certaudit.evidence.manifest import write_manifest
from certaudit.evidence.merge import merge_runs
from certaudit.inventory import target_for
from certaudit.jobs.fleet import (
    SHARDED,
    Domain,
    FleetSection,
    FleetView,
    HostSummary,
    Leaf,
    Schedule,
    Unknown,
    domains_of,
    judge_certificates,
    judge_public_endpoint,
    judge_renewers,
)
from certaudit.record import Evidence
from tests.unit.test_shard import SCHEMA, evidence, record

DOMAIN = "a.example"
HOSTS = ["a1", "a2", "a3"]
TARGETS = [target_for(h, {"ansible_host": "127.0.0.9", "certaudit_domain": DOMAIN, "certaudit_renews": h == "a1"}) for h in HOSTS]
(THE_DOMAIN,) = domains_of(TARGETS, TARGETS)
SPEC = THE_DOMAIN.spec()
T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
NEW = ("1" * 64, "abc", T0, T0 + dt.timedelta(days=90))
OLD = ("2" * 64, "def", T0 - dt.timedelta(days=40), T0 + dt.timedelta(days=50))
RENEWAL_DIR = "/etc/letsencrypt/renewal"


def leaf(host: str, which: tuple[str, str, dt.datetime, dt.datetime] = NEW) -> Leaf:
    return Leaf(host, *which)


def host(name: str, *, renews: bool = False, served: tuple[str, str, dt.datetime, dt.datetime] = NEW) -> HostSummary:
    return HostSummary(
        name, DOMAIN, certaudit_renews=name == "a1", renewal_dir=RENEWAL_DIR,
        lineages=(DOMAIN,) if renews else (),
        schedule=Schedule(True, "certbot.timer is enabled and active") if renews else Schedule(False, "certbot.timer disabled"),
        served=leaf(name, served), disk=leaf(name),
    )  # fmt: skip


def fleet(**changed: HostSummary) -> dict[str, HostSummary]:
    base = {"a1": host("a1", renews=True), "a2": host("a2"), "a3": host("a3")}
    return {**base, **changed}


def judged(judge: Any, control: str, view: FleetView) -> Evidence:
    ev = Evidence(REGISTRY[control], DOMAIN)
    judge(view, ev)
    return ev


# --- judging from summaries ------------------------------------------------------------------------------
def test_one_renewer_and_one_certificate_pass_from_summaries() -> None:
    view = FleetView(SPEC, fleet())
    flt1 = judged(judge_renewers, "FLT-01", view)
    assert flt1.findings == [] and flt1.observed["renewers"] == ["a1"]
    assert flt1.observed["hosts"]["a2"] == {
        "renews": False, "lineages": [], "schedule": f"no lineage for {DOMAIN} in {RENEWAL_DIR}", "certaudit_renews": False,
    }  # fmt: skip
    flt2 = judged(judge_certificates, "FLT-02", view)
    assert flt2.findings == [] and flt2.observed["newest"] == {"sha256": NEW[0], "hosts": HOSTS}


def test_two_renewers_and_a_stale_host_fail_from_summaries() -> None:
    view = FleetView(SPEC, fleet(a2=host("a2", renews=True), a3=host("a3", served=OLD)))
    assert judged(judge_renewers, "FLT-01", view).findings == [
        f"2 hosts renew {DOMAIN}: a1, a2; their HTTP-01 challenges race behind the balancer and count together "
        "against the CA's rate limits"
    ]
    assert judged(judge_certificates, "FLT-02", view).findings == [
        f"a3 serves {OLD[0][:16]}… (serial def, issued {OLD[2].isoformat()}, expires {OLD[3].date()}), 40 days older "
        f"than the newest {NEW[0][:16]}… that a1, a2 serve"
    ]


def test_a_fact_not_read_whole_is_an_error_never_a_pass() -> None:
    unread = HostSummary("a2", DOMAIN, renewal_dir=RENEWAL_DIR, lineages=Unknown("host a2: /etc/letsencrypt/renewal cut"),
                         schedule=Schedule(False, "x"), served=Unknown("host a2: handshake timed out"), disk=None)  # fmt: skip
    view = FleetView(SPEC, fleet(a2=unread))
    with pytest.raises(Undeterminable, match=r"^host a2: /etc/letsencrypt/renewal cut$"):
        judged(judge_renewers, "FLT-01", view)
    with pytest.raises(Undeterminable, match=r"^host a2: handshake timed out$"):
        judged(judge_certificates, "FLT-02", view)


def test_a_summary_survives_the_evidence_unchanged() -> None:
    hosts = {**fleet(a3=host("a3", served=OLD)), "a2": HostSummary.unreached("a2", DOMAIN, "host a2 (127.0.0.9): refused")}
    section = FleetSection(5.0, {DOMAIN: SPEC}, hosts).as_json()
    document = {**evidence(HOSTS, (1, 1), 3, {}), "fleet": section}
    jsonschema.validate(document, SCHEMA)
    union = union_of([Part("part", document)])
    assert union.hosts == hosts and union.domains == {DOMAIN: SPEC} and union.connect_timeout == 5.0


# --- the merge's union ----------------------------------------------------------------------------------
def part(label: str, hosts: dict[str, HostSummary], audited: list[str] | None = None, **section: Any) -> Part:
    document = {
        "run": {"hosts_expected": audited if audited is not None else sorted(hosts)},
        "fleet": {"connect_timeout": 10.0, "domains": {DOMAIN: SPEC.as_json()},
                  "hosts": {h: s.as_json() for h, s in hosts.items()}, **section},
    }  # fmt: skip
    return Part(label, document)


def placeholder(control: str) -> dict[str, Any]:
    return record(
        control, DOMAIN, "error", message=f"domain {DOMAIN}: {SHARDED}", nodeid=f"checks/test_fleet.py::{control}[{DOMAIN}]"
    )


def test_a_host_in_no_part_keeps_the_domain_an_error_naming_it() -> None:
    every = fleet()
    union = union_of([part("shard-1", {"a1": every["a1"]}), part("shard-2", {"a2": every["a2"]})])
    merged: dict[str, Any] = {
        "results": [placeholder("FLT-01")],
        "waivers": {"entries": [], "unused": []},
        "run": {"exit_status": 1},
    }
    assert len(judge_fleet([Part("shard-1", {"run": {"hosts_expected": []}})], copy.deepcopy(merged))) == 1  # no summaries at all
    result = judge_one(placeholder("FLT-01"), union, "", merged["waivers"])
    assert result.outcome == "error"
    assert result.message == (
        f"domain {DOMAIN}: 1 of its 3 hosts not reached (a3), so the domain cannot be judged as a whole: host a3: {ABSENT}"
    )


def test_a_host_not_reached_is_the_same_error_as_in_the_unsharded_run() -> None:
    down = HostSummary.unreached("a3", DOMAIN, "host a3 (127.0.0.9): cannot connect: refused")
    union = union_of([part("shard-1", fleet(a3=down))])
    merged = judge_one(placeholder("FLT-02"), union, "", {"entries": []})
    unsharded = FleetView.of_facts(THE_DOMAIN, {}, {"a3": "host a3 (127.0.0.9): cannot connect: refused"})
    with pytest.raises(Undeterminable) as caught:
        unsharded.require_whole()
    assert (
        merged.outcome == "error"
        and "(a3)" in merged.message
        and merged.message.endswith("host a3 (127.0.0.9): cannot connect: refused")
    )
    assert str(caught.value).endswith("host a3 (127.0.0.9): cannot connect: refused")


def test_conflicting_summaries_of_one_host_are_refused() -> None:
    one, other = fleet(), fleet(a2=host("a2", served=OLD))
    with pytest.raises(FleetMergeError) as caught:
        union_of([part("shard-1", one, audited=HOSTS), part("shard-2", other, audited=HOSTS)])
    assert str(caught.value) == "shard-2 and shard-1 hold different fleet summaries of host a2"
    assert len(union_of([part("shard-1", one), part("shard-2", one)]).hosts) == 3  # the same facts twice: one host


@pytest.mark.parametrize(
    ("audited", "domains", "message"),
    [
        (["a1"], None, "shard-1 holds a fleet summary of host a2, which it did not audit"),
        (
            None,
            {"b.example": SPEC.as_json()},
            "shard-1: the fleet summary of host a1 names domain a.example, which no part lists it in",
        ),
    ],
)
def test_a_part_contradicting_itself_is_refused(audited: list[str] | None, domains: Any, message: str) -> None:
    extra = {"domains": domains} if domains else {}
    with pytest.raises(FleetMergeError) as caught:
        union_of([part("shard-1", {"a1": host("a1", renews=True), "a2": host("a2")}, audited=audited, **extra)])
    assert str(caught.value) == message


def test_two_parts_describing_a_domain_differently_are_refused() -> None:
    wider = {DOMAIN: {**SPEC.as_json(), "hosts": [*HOSTS, "a4"]}}
    with pytest.raises(FleetMergeError, match=r"^shard-2 and shard-1 describe domain a.example differently$"):
        union_of([part("shard-1", {"a1": host("a1", renews=True)}), part("shard-2", {"a2": host("a2")}, domains=wider)])


HOSTILE: dict[str, tuple[str, Any]] = {
    "a reason past the bound": ("error", {"domain": DOMAIN, "reached": False, "error": "x" * 100_000}),
    "a serial past the bound": ("serial", {"leaf": {**leaf("a2").as_evidence(), "serial": "f" * 129}}),
    "a fingerprint not hex": ("sha256", {"leaf": {**leaf("a2").as_evidence(), "sha256": "Z" * 64}}),
    "a local time": ("validity", {"leaf": {**leaf("a2").as_evidence(), "not_before": "2026-10-01T00:00:00"}}),
    "a date of a megabyte": ("validity", {"leaf": {**leaf("a2").as_evidence(), "not_after": "2026" * 250_000}}),
    "a leaf with more": ("a leaf is", {"leaf": {**leaf("a2").as_evidence(), "pem": "-----BEGIN"}}),
    "reached as text": ("reached", {**host("a2").as_json(), "reached": "yes"}),
    "lineages not a list": ("lineages", {**host("a2").as_json(), "lineages": {"names": "a.example"}}),
    "a name of a megabyte": ("renewal_dir", {**host("a2").as_json(), "renewal_dir": "/" * 1_000_000}),
    "a summary as a list": ("an object", ["a.example"]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_summary_is_refused_in_one_bounded_line(case: str) -> None:
    what, value = HOSTILE[case]
    hostile = part("shard-1", fleet())
    summary = value if not (isinstance(value, dict) and set(value) == {"leaf"}) else {**host("a2").as_json(), "served": value}
    hostile.evidence["fleet"]["hosts"]["a2"] = summary
    with pytest.raises(FleetMergeError) as caught:
        union_of([hostile])
    message = str(caught.value)
    assert message.startswith("shard-1: its fleet summaries are not valid: host a2") and what in message, message
    assert "\n" not in message and len(message) < 300


# --- certaudit merge end to end: the placeholders replaced, JUnit and exit status following ----------------
def write_part(path: Path, document: dict[str, Any], cases: list[tuple[str, str]]) -> Path:
    path.mkdir(parents=True)
    (path / "evidence.json").write_text(json.dumps(document))
    body = "".join(
        f'<testcase classname="{c}" name="{n}" time="0.01">'
        + (
            f'<error message="e">{n}</error><properties><property name="certaudit" value="{{}}"/></properties>'
            if "FLT" in n
            else ""
        )
        + "</testcase>"
        for c, n in cases
    )
    (path / "junit.xml").write_text(f'<testsuites><testsuite name="pytest" tests="{len(cases)}">{body}</testsuite></testsuites>')
    (path / "report.html").write_text("<html>part</html>")
    jsonschema.validate(document, SCHEMA)
    write_manifest(path, None)
    return path


def sharded(tmp_path: Path, summaries: dict[str, HostSummary], waiver: dict[str, Any] | None = None) -> list[Path]:
    parts = []
    for index, hosts in enumerate((["a1", "a2"], ["a3"]), 1):
        document = evidence(hosts, (index, 2), 3, {})
        document["run"]["exit_status"] = 1
        document["run"]["policies"] = {t.name: t.policy.as_dict() for t in TARGETS if t.name in hosts}
        section = FleetSection(10.0, {DOMAIN: SPEC}, {h: summaries[h] for h in hosts})
        document["fleet"] = section.as_json()
        if waiver is not None:
            document["waivers"]["entries"] = [waiver]
            document["waivers"]["unused"] = [1]
        cases = [("checks.test_x", f"{c}[{h}]") for h in hosts for c in ("CRT-01", "KEY-01")]
        if index == 1:
            document["results"] += [placeholder("FLT-01"), placeholder("FLT-02")]
            cases += [("checks.test_fleet", f"FLT-01[{DOMAIN}]"), ("checks.test_fleet", f"FLT-02[{DOMAIN}]")]
        parts.append(write_part(tmp_path / f"shard-{index}", document, cases))
    return parts


def merged_of(out: Path) -> tuple[dict[str, Any], dict[str, str]]:
    document = json.loads((out / "evidence.json").read_text())
    kinds = {}
    for case in ET.parse(out / "junit.xml").getroot().iter("testcase"):
        kinds[case.get("name", "")] = ",".join(c.tag for c in case if c.tag in ("failure", "error", "skipped")) or "passed"
    return document, kinds


def flt(document: dict[str, Any], control: str) -> dict[str, Any]:
    (found,) = [r for r in document["results"] if r["control"] == control]
    return dict(found)


def test_the_merge_judges_the_domain_the_unsharded_way(tmp_path: Path) -> None:
    summaries = fleet()
    merged = merge_runs(sharded(tmp_path, summaries), tmp_path / "merged")
    document, kinds = merged_of(tmp_path / "merged")
    jsonschema.validate(document, SCHEMA)
    assert merged.exit_status == document["run"]["exit_status"] == 0  # the placeholders were the only errors
    view = FleetView(SPEC, summaries)
    for control, judge in (("FLT-01", judge_renewers), ("FLT-02", judge_certificates)):
        got, want = flt(document, control), judged(judge, control, view)
        assert (got["outcome"], got["message"], got["findings"]) == ("pass", "", [])
        assert (got["observed"], got["expected"], got["nodeid"]) == (
            json.loads(json.dumps(want.observed)),
            want.expected,
            f"checks/test_fleet.py::{control}[{DOMAIN}]",
        )
        assert kinds[f"{control}[{DOMAIN}]"] == "passed"
    assert "fleet" not in document  # the merged run keeps the judgements, not the summaries


def test_the_merge_fails_two_renewers_and_a_waiver_covers_it_as_in_a_run(tmp_path: Path) -> None:
    waiver = {"index": 1, "control": "FLT-01", "hosts": "a.*", "reason": "migration", "approver": "Dana", "ticket": "OPS-9",
              "expires": "2099-01-31", "status": "valid", "problem": "", "covered": [], "matched_passing": []}  # fmt: skip
    summaries = fleet(a2=host("a2", renews=True), a3=host("a3", served=OLD))
    merge_runs(sharded(tmp_path, summaries, waiver), tmp_path / "merged")
    document, kinds = merged_of(tmp_path / "merged")
    flt1, flt2 = flt(document, "FLT-01"), flt(document, "FLT-02")
    assert flt1["outcome"] == "waived" and flt1["waiver"]["covered"] == [f"FLT-01[{DOMAIN}]"]
    assert flt1["findings"][0].startswith(f"2 hosts renew {DOMAIN}: a1, a2;")
    assert flt2["outcome"] == "fail" and flt2["message"].startswith(f"FLT-02 on {DOMAIN}: a3 serves {OLD[0][:16]}…")
    assert document["waivers"]["unused"] == [] and document["waivers"]["entries"][0]["covered"] == [f"FLT-01[{DOMAIN}]"]
    assert (kinds[f"FLT-01[{DOMAIN}]"], kinds[f"FLT-02[{DOMAIN}]"]) == ("skipped", "failure")
    assert document["run"]["exit_status"] == 1
    root = ET.parse(tmp_path / "merged" / "junit.xml").getroot()
    (case,) = [c for c in root.iter("testcase") if c.get("name") == f"FLT-02[{DOMAIN}]"]
    prop = case.find("properties/property")
    assert prop is not None and json.loads(prop.get("value", ""))["outcome"] == "fail"


def test_a_merge_without_network_says_why_flt03_is_not_judged(tmp_path: Path) -> None:
    spec = FleetUnion(domains={DOMAIN: SPEC}, hosts=fleet())
    view = spec.view(DOMAIN, NO_NETWORK)
    assert isinstance(view, FleetView)
    endpoint_spec = FleetView(type(SPEC)(**{**SPEC.__dict__, "public_endpoints": ("127.0.0.1:9",)}), fleet(), offline=NO_NETWORK)
    with pytest.raises(Undeterminable) as caught:
        judge_public_endpoint(endpoint_spec, Evidence(REGISTRY["FLT-03"], DOMAIN))
    assert str(caught.value) == f"domain {DOMAIN}: the public endpoint 127.0.0.1:9 was not contacted: {NO_NETWORK}"


def test_a_conflicting_part_stops_the_merge_command_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parts = sharded(tmp_path, fleet())
    document = json.loads((parts[1] / "evidence.json").read_text())
    document["fleet"]["hosts"]["a1"] = host("a1").as_json()  # shard 2 did not audit a1, and says otherwise
    (parts[1] / "evidence.json").write_text(json.dumps(document))
    write_manifest(parts[1], None)
    assert main(["merge", *map(str, parts), "--out", str(tmp_path / "merged")]) == 4
    err = capsys.readouterr().err
    assert err == f"certaudit: {parts[1]} (shard 2/2) holds a fleet summary of host a1, which it did not audit\n"
    assert not (tmp_path / "merged").exists()


def test_an_oversized_summary_fails_the_parts_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parts = sharded(tmp_path, fleet())
    document = json.loads((parts[0] / "evidence.json").read_text())
    document["fleet"]["hosts"]["a2"]["schedule"]["detail"] = "x" * 10_000
    (parts[0] / "evidence.json").write_text(json.dumps(document))
    write_manifest(parts[0], None)
    assert main(["merge", *map(str, parts), "--out", str(tmp_path / "merged")]) == 4
    err = capsys.readouterr().err
    assert err.startswith(f"certaudit: {parts[0] / 'evidence.json'}: not valid certaudit evidence: at fleet/hosts/a2")
    assert err.count("\n") == 1 and len(err) < 600


def test_the_placeholder_is_the_one_a_shard_writes() -> None:
    domain = Domain(DOMAIN, THE_DOMAIN.hosts, THE_DOMAIN.policy, sharded=True)
    with pytest.raises(Undeterminable) as caught:
        FleetView.of_facts(domain, {}, {}).require_whole()
    assert is_placeholder({**placeholder("FLT-03"), "message": str(caught.value)})
    assert not is_placeholder({**placeholder("FLT-03"), "control": "CRT-01"})
