"""A pass is proof for the fleet controls too: take a domain of two hosts that FLT-01 and FLT-02
pass (one renewer by its timer, one receiver; both serving the same certificate), remove or cut
any fact either host's part of the pass rests on, and the control never passes.

The receiver matters as much as the renewer: an unread renewal listing or schedule on it may hide
a second renewer, and an unread endpoint may hide a stale certificate.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import checks.test_fleet as fleet_checks
from certaudit.controls import REGISTRY
from certaudit.errors import Undeterminable
from certaudit.host.facts import facts_from_probe
from certaudit.inventory import target_for
from certaudit.jobs.fleet import Domain, FleetView
from certaudit.record import Evidence
from tests.unit.test_properties_judging import (
    DEBIAN_SERVICE,
    DOMAIN,
    NOW,
    RENEWAL_ROOT,
    SERVED,
    TIMER,
    Mutation,
    Passing,
    _listing,
    apply,
    mutations,
)

HOSTS = ("renewer", "receiver")
TARGETS = {name: target_for(name, {"ansible_host": "127.0.0.9", "certaudit_domain": DOMAIN}) for name in HOSTS}
DOMAIN_OF_TWO = Domain(DOMAIN, tuple(TARGETS.values()), TARGETS["renewer"].policy)


def _flt01() -> dict[str, Passing]:
    return {
        "renewer": Passing(
            listings={RENEWAL_ROOT: _listing(RENEWAL_ROOT, f"{DOMAIN}.conf")},
            units={"certbot.timer": TIMER, "certbot.service": DEBIAN_SERVICE},
        ),
        "receiver": Passing(listings={RENEWAL_ROOT: _listing(RENEWAL_ROOT)}),  # no lineage: nothing else is read
    }


def _flt02() -> dict[str, Passing]:
    return {name: Passing(endpoint=SERVED) for name in HOSTS}


Judge = Callable[[FleetView, Evidence], None]
CASES: dict[str, tuple[str, Judge, Callable[[], dict[str, Passing]]]] = {
    "FLT-01": ("FLT-01", fleet_checks.test_one_renewer_per_domain, _flt01),
    "FLT-02": (
        "FLT-02",
        fleet_checks.test_one_certificate_per_domain,
        _flt02,
    ),
}


def outcome(control: str, judge: Judge, snapshots: dict[str, Passing], mutated: str | None, chosen: list[Mutation]) -> str:
    facts = {}
    for name, snapshot in snapshots.items():
        raw, endpoint = apply(snapshot, chosen) if name == mutated else (snapshot.raw(), snapshot.endpoint)
        try:
            facts[name] = facts_from_probe(name, raw, NOW, endpoint)
        except (KeyError, TypeError, ValueError):
            return "error"  # the plugin ends every control of a host whose answer it cannot type in error
    evidence = Evidence(REGISTRY[control], DOMAIN)
    try:
        judge(FleetView.of_facts(DOMAIN_OF_TWO, facts, {}), evidence)
    except Undeterminable:
        return "error"
    return "fail" if evidence.findings else "pass"


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_domain_passes(case: str) -> None:
    control, judge, build = CASES[case]
    assert outcome(control, judge, build(), None, []) == "pass"


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_no_fleet_pass_without_any_fact_of_any_host(case: str, host: str) -> None:
    control, judge, build = CASES[case]
    snapshots = build()
    every = mutations(snapshots[host])
    assert every, f"{case}: nothing of {host} to mutate"
    passed = [m for m in every if outcome(control, judge, snapshots, host, [m]) == "pass"]
    assert passed == [], f"{case} passes without {host}'s {passed}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_host_not_reached_is_never_a_pass(case: str) -> None:
    control, judge, build = CASES[case]
    snapshots = build()
    facts = {"renewer": facts_from_probe("renewer", snapshots["renewer"].raw(), NOW, snapshots["renewer"].endpoint)}
    evidence = Evidence(REGISTRY[control], DOMAIN)
    with pytest.raises(Undeterminable, match="1 of its 2 hosts not reached \\(receiver\\)"):
        judge(FleetView.of_facts(DOMAIN_OF_TWO, facts, {"receiver": "host receiver: cannot connect"}), evidence)
