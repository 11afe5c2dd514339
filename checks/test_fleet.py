"""FLT-*: what only the hosts of one domain seen together can prove (runbook: If Renewal Fails; Monitoring).

These controls are parametrised over the inventory's domains (`FLT-01[stemedb.example.com]`), not
its hosts: each judges the fleet summaries (certaudit/jobs/fleet.py) of every host whose
`certaudit_domain` is that domain, made from snapshots taken before any control judges. One host of
the domain not reached makes them an error naming it. The judging lives in certaudit/jobs/fleet.py,
since `certaudit merge` judges a sharded run's domains with the same functions.
"""

from __future__ import annotations

from certaudit.controls import control
from certaudit.jobs.fleet import FleetView, judge_certificates, judge_public_endpoint, judge_renewers
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
    judge_renewers(fleet_view, evidence)


@control(
    "FLT-02",
    title="Serve one certificate per domain: no host serves one older than the newest issuance by more than the window",
    source="Resolution › Let's Encrypt 3",
    gate=True,
)
def test_one_certificate_per_domain(fleet_view: FleetView, evidence: Evidence) -> None:
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
    judge_certificates(fleet_view, evidence)


@control(
    "FLT-03",
    title="Serve the domain to outsiders: the public endpoint presents the fleet's newest certificate, valid, chained",
    source="Investigation 2 (from outside: catches firewall issues); Prevention › Monitoring 1",
    not_applicable=_no_public_endpoint,
)
def test_public_endpoint(fleet_view: FleetView, evidence: Evidence) -> None:
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
    judge_public_endpoint(fleet_view, evidence)
