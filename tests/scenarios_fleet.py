"""Scenario hosts of the fleet controls (FLT-*), address block 127.77.8.x: several hosts per domain.

Each domain's hosts sit behind a real HAProxy on the auditing side (tests/integration/
test_fleet_controls_on_fleet.py starts it on 127.<77+fleet id>.8.1, one port per domain, TLS
passed through to the hosts' stemedb-api on port 18180). A domain's certificate is issued once,
in code, and laid out on each of its hosts: the renewer's lineage holds it, the receivers' TLS
directories a copy, as a renewer's deploy hook would push it.

- one.fleet.example.com: one renewer, two receivers, one certificate: every FLT control passes;
- two.fleet.example.com: two hosts renew (lineage and active timer each), one receives: FLT-01 fails;
- stale.fleet.example.com: one receiver got the renewed certificate but never reloaded, so it serves
  one issued 40 days earlier; the balancer (`balance first`, that host first) sends every client to it;
- down.fleet.example.com: one host up, one in the inventory but down: every FLT control errors.
"""

from __future__ import annotations

from functools import cache

from tests.fleet import pki
from tests.fleet.fleet import fleet_address
from tests.fleet.scenario import LE, SERVICE_USER, TLS_DIR, HostFile, Scenario

BALANCER = "127.77.8.1"
PORTS = {"one": 18443, "two": 18444, "stale": 18445, "down": 18446}


def domain(name: str) -> str:
    return f"{name}.fleet.example.com"


def public_endpoint(name: str) -> str:
    return f"{fleet_address(BALANCER)}:{PORTS[name]}"


@cache
def shared(name: str) -> pki.IssuedCertificate:
    """The domain's one current certificate: issued 30 days ago, 60 days left."""
    return pki.issue(domain(name), days_left=60)


def _tls_copy(name: str, where: str = TLS_DIR) -> tuple[HostFile, ...]:
    cert = shared(name)
    return (
        HostFile(f"{where}/cert.pem", data=b"", mode=0o644, owner=SERVICE_USER, produce=lambda: cert.fullchain_pem),
        HostFile(f"{where}/key.pem", data=b"", mode=0o600, owner=SERVICE_USER, produce=lambda: cert.key_pem),
    )


def _lineage_copy(name: str) -> tuple[HostFile, ...]:
    cert, archive = shared(name), f"{LE}/archive/{domain(name)}"
    parts = {"cert1": cert.cert_pem, "chain1": cert.chain_pem, "fullchain1": cert.fullchain_pem}
    files = tuple(HostFile(f"{archive}/{part}.pem", mode=0o644, data=pem) for part, pem in parts.items())
    return (*files, HostFile(f"{archive}/privkey1.pem", mode=0o600, produce=lambda: cert.key_pem))


def _vars(name: str, renews: bool) -> dict[str, object]:
    variables: dict[str, object] = {"certaudit_domain": domain(name), "certaudit_public_endpoint": public_endpoint(name)}
    if not renews:
        variables["certaudit_renews"] = False
    return variables


def renewer(name: str, host: str, address: str) -> Scenario:
    """certbot's lineage for the domain and an active certbot.timer: this host renews it."""
    return Scenario(
        host,
        address,
        f"renews {domain(name)} (lineage, certbot.timer), serves its certificate",
        inventory_vars=_vars(name, renews=True),
        files=(*_lineage_copy(name), *_tls_copy(name)),
    )


def receiver(name: str, host: str, address: str, *, stale: bool = False) -> Scenario:
    """No lineage, no timer: the certificate arrives from the renewer (`certaudit_renews: false`)."""
    why = "received the renewed certificate but never reloaded" if stale else "serves the renewer's certificate"
    return Scenario(
        host,
        address,
        f"receives {domain(name)}: {why}",
        lineage=False,
        hook=None,
        timer="disabled",
        serve_stale=stale,
        inventory_vars=_vars(name, renews=False),
        # A stale host starts on an older certificate, and the current one lands after boot, unreloaded.
        files=_tls_copy(name, "/root/pending") if stale else _tls_copy(name),
    )


ONE = [
    renewer("one", "flt-one-renewer", "127.77.8.10"),
    *(receiver("one", f"flt-one-receiver-{i}", f"127.77.8.{10 + i}") for i in (1, 2)),
]
TWO = [
    renewer("two", "flt-two-renewer-a", "127.77.8.20"),
    renewer("two", "flt-two-renewer-b", "127.77.8.21"),
    receiver("two", "flt-two-receiver", "127.77.8.22"),
]
STALE = [
    renewer("stale", "flt-stale-renewer", "127.77.8.30"),
    receiver("stale", "flt-stale-receiver", "127.77.8.31"),
    receiver("stale", "flt-stale-unreloaded", "127.77.8.32", stale=True),
]
DOWN = [
    renewer("down", "flt-down-up", "127.77.8.40"),
    Scenario(
        "flt-down-off", "127.77.8.41", "in the inventory for down.fleet.example.com, but down", booted=False,
        inventory_vars=_vars("down", renews=False),
    ),
]  # fmt: skip
DOMAINS = {"one": ONE, "two": TWO, "stale": STALE, "down": DOWN}
SCENARIOS: list[Scenario] = [*ONE, *TWO, *STALE, *DOWN]
