"""The fleet view (certaudit/jobs/fleet.py): domains from the whole inventory, no judgement on part
of a domain, the FLT-02 window, the gate's domain line, and merged evidence naming a domain."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from certaudit.controls import renewal_by_certbot
from certaudit.errors import Undeterminable
from certaudit.evidence.merge import _inconsistency
from certaudit.inventory import Target, target_for
from certaudit.jobs.fleet import SHARDED, Domain, FleetView, Leaf, domains_of, newest, older_than_window, public_endpoint
from certaudit.jobs.gate import summary, verdicts
from certaudit.policy import PolicyError, policy_for
from certaudit.record import Record
from tests.fleet import pki


def _host(name: str, domain: str, **variables: object) -> Target:
    return target_for(name, {"ansible_host": "127.0.0.1", "certaudit_domain": domain, **variables})


def test_policy_reads_the_fleet_variables() -> None:
    policy = policy_for("a", {"certaudit_renews": "false", "certaudit_public_endpoint": "lb.example.com:443",
                              "certaudit_fleet_window_days": 3})  # fmt: skip
    assert (policy.renews, policy.public_endpoint, policy.fleet_window_days) == (False, "lb.example.com:443", 3)
    assert policy_for("a", {"certaudit_public_endpoint": "[::1]:8443"}).public_endpoint == "[::1]:8443"


@pytest.mark.parametrize("value", ["lb.example.com", "lb:0", "lb:70000", "lb:443; rm -rf /", ":443", 443, "a b:1"])
def test_a_public_endpoint_that_is_not_host_port_stops_the_run(value: object) -> None:
    with pytest.raises(PolicyError, match="certaudit_public_endpoint"):
        policy_for("a", {"certaudit_public_endpoint": value})


def test_domains_come_from_the_whole_inventory_and_need_a_fleet() -> None:
    whole = [_host("a1", "a.example"), _host("a2", "a.example"), _host("b1", "b.example"),
             _host("c1", "c.example", certaudit_public_endpoint="127.0.0.1:9")]  # fmt: skip
    # A --limit to a1 still judges a.example over a1 and a2; b.example (one host, no balancer) is no fleet.
    (only,) = domains_of([whole[0]], whole)
    assert (only.name, only.host_names) == ("a.example", ["a1", "a2"])
    assert [d.name for d in domains_of(whole, whole)] == ["a.example", "c.example"]


def test_a_domain_not_wholly_reached_is_undeterminable_naming_the_hosts() -> None:
    whole = [_host("a1", "a.example"), _host("a2", "a.example"), _host("a3", "a.example")]
    (domain,) = domains_of(whole, whole)
    view = FleetView.of_facts(domain, {}, {"a2": "host a2 (10.0.0.2): cannot connect: timed out"})
    with pytest.raises(Undeterminable) as caught:
        view.each()
    assert str(caught.value) == (
        "domain a.example: 3 of its 3 hosts not reached (a1, a2, a3), so the domain cannot be judged as a whole: "
        "host a1: not probed; host a2 (10.0.0.2): cannot connect: timed out; host a3: not probed"
    )
    sharded = FleetView.of_facts(Domain(domain.name, domain.hosts, domain.policy, sharded=True), {}, {})
    with pytest.raises(Undeterminable, match=SHARDED.split(":")[0]):
        sharded.require_whole()


def _served(host: str, days_left: float) -> Leaf:
    leaf = Leaf.of(host, x509.load_pem_x509_certificate(pki.issue("a.example", days_left=days_left).cert_pem))
    assert isinstance(leaf, Leaf)
    return leaf


def test_the_window_allows_certificates_issued_close_to_the_newest() -> None:
    current, sibling, old = _served("a1", 60), _served("a2", 59.5), _served("a3", 20)
    assert newest([old, sibling, current]) is current
    window = dt.timedelta(days=1)
    assert not older_than_window(current, current, window)
    assert not older_than_window(sibling, current, window)  # issued half a day earlier
    assert older_than_window(old, current, window)  # 40 days earlier


def test_the_public_endpoint_is_the_domains_own() -> None:
    hosts = [_host("a1", "a.example", certaudit_public_endpoint="127.0.0.1:8443"), _host("a2", "a.example")]
    (domain,) = domains_of(hosts, hosts)
    assert public_endpoint(domain.spec()) == ("127.0.0.1", 8443)
    split = [hosts[0], _host("a2", "a.example", certaudit_public_endpoint="127.0.0.2:8443")]
    with pytest.raises(Undeterminable, match="different certaudit_public_endpoint values"):
        public_endpoint(domains_of(split, split)[0].spec())


def test_the_gate_names_a_domain_as_a_domain() -> None:
    records = [
        Record("KEY-01", "t", "web-1", "pass", gate=True),
        Record("FLT-02", "t", "a.example", "fail", findings=["web-2 serves 0123… older"], gate=True),
    ]
    found = verdicts(records, ["web-1"], ["a.example"])
    assert [v.line for v in found] == [
        "GATE PASS web-1 (KEY-01 pass)",
        "GATE FAIL domain a.example (FLT-02 fail: web-2 serves 0123… older)",
    ]
    assert summary(found) == "GATE FAIL: 1 of 1 host and 1 domain blocks the deploy (a.example)"


def _evidence(results_hosts: list[str]) -> dict[str, object]:
    return {
        "run": {"hosts_expected": ["web-1"], "hosts_reached": ["web-1"], "policies": {"web-1": {"domain": "a.example"}},
                "started": "2026-11-29T00:00:00+00:00", "finished": "2026-11-29T00:01:00+00:00"},
        "results": [{"host": h} for h in results_hosts], "unreachable": {}, "snapshots": {},
        "waivers": {"entries": [], "unused": []},
    }  # fmt: skip


def test_merged_evidence_may_name_a_domain_of_its_hosts_and_nothing_else() -> None:
    assert _inconsistency(_evidence(["web-1", "a.example"])) == ""
    assert "names host b.example" in _inconsistency(_evidence(["web-1", "b.example"]))


def test_a_receiver_is_not_judged_on_renewing() -> None:
    assert renewal_by_certbot(policy_for("a", {"certaudit_renews": False})) == (
        "certaudit_renews is false: this host receives its certificate from its domain's renewer, it does not renew"
    )
    assert renewal_by_certbot(policy_for("a", {})) is None
