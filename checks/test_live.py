"""LIVE-*: what the endpoint serves is what is on disk, reloaded since it last changed (runbook: Resolution)."""

from __future__ import annotations

import datetime as dt

from certaudit.controls import control
from certaudit.errors import Undeterminable
from certaudit.host.certificates import leaf_on_disk, served_leaf
from certaudit.host.facts import HostFacts
from certaudit.host.schedule import parse_systemd_time
from certaudit.host.x509 import fingerprint_sha256, summary
from certaudit.policy import Policy
from certaudit.record import Evidence


@control(
    "LIVE-01",
    title="Serve the renewed certificate: the endpoint presents the certificate on disk",
    source="Resolution › Let's Encrypt 3",
    gate=True,
)
def test_endpoint_serves_certificate_on_disk(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: a renewal that was never reloaded changes nothing for clients: the service
    keeps presenting the old certificate until it expires, while every on-disk check passes.

    Check: from the auditing machine, a TLS handshake with the host's endpoint
    (`certaudit_endpoint_port`, SNI `certaudit_domain`) presents a leaf whose SHA-256
    fingerprint equals that of the leaf in `certaudit_tls_dir/cert.pem`.

    Fix: `systemctl reload stemedb-api` (or restart it), then make the deploy hook reload it
    (REN-02) so the next renewal does not repeat this.
    """
    endpoint = facts.endpoint
    if endpoint is None:
        raise Undeterminable(f"host {facts.host}: the endpoint was not contacted")
    evidence.expect(
        served_sha256="the SHA-256 fingerprint of the leaf on disk",
        endpoint=f"{endpoint.address}:{endpoint.port} (SNI {endpoint.server_name})",
    )
    if not endpoint.determinable:
        raise Undeterminable(f"host {facts.host}: {endpoint.error}")
    leaf = leaf_on_disk(facts, policy, evidence)
    disk_sha256 = fingerprint_sha256(leaf) if leaf is not None else None
    evidence.observe(disk_sha256=disk_sha256)
    if endpoint.leaf_der is None:
        evidence.observe(served_sha256=None, endpoint_error=endpoint.error)
        evidence.require(False, f"the endpoint serves no certificate: {endpoint.error}")
        return
    served = served_leaf(endpoint.leaf_der, evidence)
    if served is None:
        return
    served_sha256 = fingerprint_sha256(served)
    evidence.observe(served_sha256=served_sha256, served=summary(served))
    if disk_sha256 is not None:
        evidence.require(
            served_sha256 == disk_sha256,
            f"the endpoint serves {served_sha256[:16]}… (expires {served.not_valid_after_utc.date()}), "
            f"not the certificate on disk {disk_sha256[:16]}… (expires {leaf.not_valid_after_utc.date() if leaf else '?'}): "
            f"{policy.service} was not reloaded after the certificate changed",
        )


def _utc(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="microseconds")


@control(
    "LIVE-02",
    title="Reload after the certificate changes: the service's last start or reload is later than the certificate",
    source="Resolution › Let's Encrypt 2; Resolution › Custom CA 4",
)
def test_service_reloaded_after_certificate_changed(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    """Rationale: the service reads its certificate when it starts or reloads, and not otherwise. A
    certificate replaced after the last start or reload is not the one served; LIVE-01 sees that
    from outside, this sees it on the host, where a firewall or a load balancer in front cannot
    hide it.

    Check: the certificate the service reads (`certaudit_tls_dir/cert.pem`, symlinks followed)
    last changed (its ctime) before the service's unit last started, restarted or reloaded. A
    start is in `systemctl show`; a reload only in the unit's journal (a finished reload job, or
    the service's own "certificate reloaded" line), read from the certificate's ctime on.

    Fix: `systemctl reload stemedb-api` (or restart it), then make sure the deploy hook reloads it
    (REN-02) after it installs the certificate.
    """
    service = f"{policy.service}.service"
    cert = facts.file(policy.tls_cert)
    evidence.expect(last_start_or_reload=f"later than the last change of {policy.tls_cert}")
    evidence.observe(certificate=cert.where())
    problem = cert.problem()
    if problem is not None:
        evidence.require(False, f"the service's certificate: {problem}")
        return
    if not facts.systemd:
        raise Undeterminable(f"host {facts.host}: systemd is not running, so nothing records when {service} started")
    assert cert.ctime is not None
    changed = cert.ctime
    unit = facts.unit(service)
    started = parse_systemd_time(unit.get("ExecMainStartTimestamp", ""))
    evidence.observe(
        certificate_changed=_utc(changed),
        unit=service,
        active_state=unit.get("ActiveState"),
        last_start=started.isoformat() if started else None,
    )
    if unit.get("LoadState") != "loaded" or unit.get("ActiveState") != "active":
        evidence.require(
            False,
            f"{service} is not running (LoadState={unit.get('LoadState') or 'unknown'}, "
            f"ActiveState={unit.get('ActiveState') or 'unknown'}): it serves no certificate",
        )
        return
    # systemctl keeps start times to the second: a start in a later second is surely later.
    if started is not None and started.timestamp() >= changed + 1:
        evidence.observe(reloaded_by="start", last_event=started.isoformat())
        return
    events = facts.service_events()
    if events is None or events.error:
        reason = events.error if events is not None else "the journal was not read"
        raise Undeterminable(f"host {facts.host}: cannot tell whether {service} reloaded since {_utc(changed)}: {reason}")
    after = [e for e in events.events if e.time >= changed]
    evidence.observe(journal_entries_read=events.entries_read)
    if after:
        # systemd's own record of the job first; the service's log line when it is all there is.
        last = ([e for e in after if e.kind != "service-reloaded"] or after)[-1]
        evidence.observe(reloaded_by=last.kind, last_event=_utc(last.time), last_event_message=last.message)
        return
    if events.truncated:
        raise Undeterminable(
            f"host {facts.host}: {service}'s journal since {_utc(changed)} is over {events.entries_read - 1} entries: "
            "a reload may be among those not read"
        )
    evidence.require(
        False,
        f"{service} has not started or reloaded since its certificate changed at {_utc(changed)} "
        f"(last start {started.isoformat() if started else 'unknown'}): it still serves what it read before",
    )
