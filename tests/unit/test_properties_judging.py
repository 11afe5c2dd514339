"""A pass is proof: for every control, take a snapshot it passes, remove or cut any facts its pass
rests on (a file fact, a file's bytes, a directory listing, a unit's state, a derived public key,
a section of the probe's answer, the endpoint's answer), and the control never passes: it ends in
`error` (Undeterminable, or a snapshot the probe's typing refuses) or in a failure.

Each control's passing snapshot holds only what its pass rests on, so every fact in it is one the
control reads. Mutations are drawn by hypothesis (derandomized, no example database).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import errno
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import checks.test_certificate as certificate
import checks.test_keys as keys
import checks.test_live as live
import checks.test_monitoring as monitoring
import checks.test_renewal as renewal
from certaudit.controls import REGISTRY
from certaudit.errors import Undeterminable
from certaudit.host.facts import Endpoint, MetricsPage, facts_from_probe
from certaudit.policy import Policy
from certaudit.record import Evidence
from tests.fleet import pki
from tests.fleet.scenario import RELOAD_HOOK, renewal_conf
from tests.scenarios_catalog import PROMETHEUS_CONFIG, RUNBOOK_RULES
from tests.unit.test_catalog_controls import NOT_INSTALLED

NOW = dt.datetime.now(dt.UTC).timestamp()
DOMAIN = "stemedb.example.com"
SERVICE = 998
ISSUED = pki.issue(DOMAIN, days_left=60)
LEAF_DER = ISSUED.certificate.public_bytes(serialization.Encoding.DER)
ROOT_DER = x509.load_pem_x509_certificate(pki.ca_pem("letsencrypt-like")).public_bytes(serialization.Encoding.DER)
POLICY = Policy()
CERT, KEY = POLICY.tls_cert, POLICY.tls_key
LE = POLICY.letsencrypt_dir
ARCHIVE, HOOKS, CONF = POLICY.archive_dir, POLICY.deploy_hooks_dir, POLICY.renewal_conf
LIVE_ROOT, RENEWAL_ROOT = f"{LE}/live", f"{LE}/renewal"
CRONTABS = "/var/spool/cron/crontabs"
PROM_CONFIG, RULES = "/etc/prometheus/prometheus.yml", "/etc/prometheus/rules/certificates.yml"
_bundle = tempfile.NamedTemporaryFile(prefix="certaudit-roots-", suffix=".pem", delete=False)  # noqa: SIM115
_bundle.write(pki.ca_pem("letsencrypt-like"))
_bundle.close()
CA_POLICY = replace(POLICY, ca_bundle=_bundle.name)
PROM_POLICY = replace(POLICY, groups=("prometheus",))


def _public_pem() -> str:
    key = serialization.load_pem_private_key(ISSUED.key_pem, None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _file(
    path: str, content: bytes | None = None, *, mode: int = 0o644, uid: int = 0, ctime: float = NOW - 3600
) -> dict[str, Any]:
    item: dict[str, Any] = {"path": path, "link": False, "realpath": path, "kind": "file", "mode": mode}
    item |= {"uid": uid, "gid": uid, "size": len(content or b""), "mtime": ctime, "ctime": ctime}
    if content is not None:
        item["content_b64"] = base64.b64encode(content).decode()
    return item


def _absent(path: str) -> dict[str, Any]:
    return {"path": path, "lstat_error": {"errno": errno.ENOENT, "reason": "No such file or directory"}}


def _listing(path: str, *names: str) -> dict[str, Any]:
    return {"path": path, "names": list(names), "truncated": False, "total": len(names), "limit": 50000}


@dataclass
class Passing:
    """A snapshot one control passes: the probe's raw answer, the endpoint, and what may be mutated."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    listings: dict[str, dict[str, Any]] = field(default_factory=dict)
    units: dict[str, dict[str, str]] = field(default_factory=dict)
    public_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)  # accounts, processes, certbot_logs, prometheus...
    endpoint: Endpoint | None = None
    endpoint_parts: tuple[str, ...] = ("leaf",)  # what of the endpoint's answer the pass rests on
    systemd: bool = True

    def raw(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "time": NOW,
            "systemd": self.systemd,
            # The probe always stats RHEL's sysconfig and certbot's config files, and asks for every
            # installation's certbot units.
            "files": {p: {"path": p, "lstat_error": {"errno": errno.ENOENT, "reason": "gone"}} for p in ALWAYS_STATED}
            | self.files,
            "listings": self.listings,
            "public_keys": self.public_keys,
            "units": NOT_INSTALLED | self.units if self.units else self.units,
            "service_events": None,
            "prometheus": None,
            "certbot_logs": {"dir": "/var/log/letsencrypt", "logs": [], "error": {"errno": errno.ENOENT, "reason": "gone"}},
        }
        return document | self.sections


SYSCONFIG = "/etc/sysconfig/certbot"
ALWAYS_STATED = (SYSCONFIG, "/etc/letsencrypt/cli.ini", "/root/.config/letsencrypt/cli.ini")

ACCOUNTS = {
    "service_user": {"name": "stemedb", "uid": SERVICE, "gid": SERVICE},
    "service_group": {"name": "stemedb", "gid": SERVICE},
}
TIMER = {
    "LoadState": "loaded",
    "UnitFileState": "enabled",
    "ActiveState": "active",
    "NextElapseUSecRealtime": f"@{int(NOW + 3600)}",
}
# What certbot.timer starts, as systemctl show prints it: the timer proves renewal only if it renews.
DEBIAN_SERVICE = {"ExecStart": "{ path=/usr/bin/certbot ; argv[]=/usr/bin/certbot -q renew ; ignore_errors=no }"}
METRICS = f'stemedb_tls_cert_expiry_seconds{{domain="{DOMAIN}"}} {ISSUED.certificate.not_valid_after_utc.timestamp() - NOW:.0f}\n'
SERVED = Endpoint(
    "127.0.0.1",
    18180,
    DOMAIN,
    leaf_der=LEAF_DER,
    chain_der=(LEAF_DER, ROOT_DER),
    metrics=MetricsPage(f"https://{DOMAIN}:18180/metrics", status=200, body=METRICS.encode(), fetched_at=NOW),
)
# CertificateExpiringSoon in a form only promtool can prove (the form of issue 12: `/ 86400 < 7` days).
DAYS_FORM = RUNBOOK_RULES.replace("stemedb_tls_cert_expiry_seconds < (7 * 86400)", "stemedb_tls_cert_expiry_seconds / 86400 < 7")
PROMTOOL_OK = {
    "path": "/usr/bin/promtool",
    "version": "promtool, version 2.42.0",
    "points": [{"days": d, "expect": e} for d, e in ((31, []), (29, ["CertificateExpiringWarning"]))],
    "rc": 0,
    "output": "Unit Testing:  /dev/stdin\n  SUCCESS\n",
}
NO_LOGS = {"dir": "/var/log/letsencrypt", "logs": [], "error": {"errno": errno.ENOENT, "reason": "No such file or directory"}}
RULES_BLOCK = PROMETHEUS_CONFIG[PROMETHEUS_CONFIG.index("rule_files:") : PROMETHEUS_CONFIG.index("scrape_configs:")]


def _service_started(at: float) -> dict[str, Any]:
    """The service's unit, loaded and active, started at `at` (LIVE-02's cases)."""
    return {"stemedb-api.service": {"LoadState": "loaded", "ActiveState": "active", "ExecMainStartTimestamp": f"@{int(at)}"}}


def _cert_only() -> Passing:
    return Passing(files={CERT: _file(CERT, ISSUED.fullchain_pem, uid=SERVICE)})


def _key01() -> Passing:
    return Passing(
        files={KEY: _file(KEY, mode=0o600, uid=SERVICE), f"{ARCHIVE}/privkey1.pem": _file(f"{ARCHIVE}/privkey1.pem", mode=0o600)},
        listings={ARCHIVE: _listing(ARCHIVE, "privkey1.pem")},
        sections={"accounts": ACCOUNTS},
    )


CRON_FILES = {"/etc/crontab": _file("/etc/crontab", b"SHELL=/bin/sh\n")}
CRON_LISTINGS = {"/etc/cron.d": _listing("/etc/cron.d"), CRONTABS: _listing(CRONTABS)}


def _ren01_timer() -> Passing:
    """Scheduled by the timer: the pass rests on the timer's state alone (cron sources not read are noted)."""
    return Passing(units={"certbot.timer": TIMER, "certbot.service": DEBIAN_SERVICE})


def _ren01_cron() -> Passing:
    crontab = b"0 */12 * * * certbot -q renew\n"
    return Passing(
        systemd=False,
        # The pass rests on root's crontab alone: /etc/crontab and /etc/cron.d, not read, are noted.
        files={f"{CRONTABS}/root": _file(f"{CRONTABS}/root", crontab, mode=0o600)},
        listings={CRONTABS: _listing(CRONTABS, "root")},
        sections={"processes": ["cron", "sshd"]},
    )


def _ren02() -> Passing:
    hook = f"{HOOKS}/reload-stemedb.sh"
    # certbot.timer renews with Debian's command line; cron does not run, so no crontab is read.
    return Passing(
        files={hook: _file(hook, RELOAD_HOOK.encode(), mode=0o755), CONF: _absent(CONF)},
        listings={HOOKS: _listing(HOOKS, "reload-stemedb.sh")},
        units={
            "certbot.timer": TIMER,
            "certbot.service": DEBIAN_SERVICE,
            "cron.service": {"ActiveState": "inactive"},
        },
    )


def _crt04() -> Passing:
    lineage = f"{LIVE_ROOT}/{DOMAIN}/cert.pem"
    return Passing(
        files={CERT: _file(CERT, ISSUED.fullchain_pem, uid=SERVICE), lineage: _file(lineage, ISSUED.cert_pem)},
        listings={LIVE_ROOT: _listing(LIVE_ROOT, DOMAIN), RENEWAL_ROOT: _listing(RENEWAL_ROOT, f"{DOMAIN}.conf")},
    )


def _mon02() -> Passing:
    section = {
        "config": PROM_CONFIG,
        "rule_files_block": RULES_BLOCK,
        "rule_patterns": ["rules/*.yml"],
        "rule_files": [RULES],
        "rule_files_truncated": False,
        "promtool": PROMTOOL_OK,
    }
    return Passing(
        files={PROM_CONFIG: _file(PROM_CONFIG), RULES: _file(RULES, DAYS_FORM.encode())},
        sections={"prometheus": section},
    )


Check = Callable[..., None]
CASES: dict[str, tuple[str, Check, Callable[[], Passing], Policy]] = {
    "KEY-01": ("KEY-01", keys.test_private_key_is_private, _key01, POLICY),
    "KEY-02": (
        "KEY-02",
        keys.test_certificate_file_is_owned_by_service,
        lambda: Passing(files={CERT: _file(CERT, uid=SERVICE)}, sections={"accounts": ACCOUNTS}),
        POLICY,
    ),
    "KEY-03": (
        "KEY-03",
        keys.test_private_key_matches_certificate,
        lambda: Passing(
            files={CERT: _file(CERT, ISSUED.fullchain_pem), KEY: _file(KEY, mode=0o600)},
            public_keys={KEY: {"path": KEY, "public_pem": _public_pem()}},
        ),
        POLICY,
    ),
    "CRT-02": ("CRT-02", certificate.test_certificate_is_acceptable, _cert_only, POLICY),
    "CRT-03": (
        "CRT-03",
        certificate.test_served_chain_reaches_trusted_root,
        lambda: Passing(endpoint=SERVED, endpoint_parts=("chain",)),
        CA_POLICY,
    ),
    "CRT-04": ("CRT-04", certificate.test_service_uses_newest_lineage_certificate, _crt04, POLICY),
    "LIVE-01": (
        "LIVE-01",
        live.test_endpoint_serves_certificate_on_disk,
        lambda: Passing(files=_cert_only().files, endpoint=SERVED),
        POLICY,
    ),
    "LIVE-02": (
        "LIVE-02",
        live.test_service_reloaded_after_certificate_changed,
        lambda: Passing(
            files={CERT: _file(CERT, ctime=NOW - 7200)},
            units=_service_started(NOW - 60),
        ),
        POLICY,
    ),
    "LIVE-02 journal": (
        "LIVE-02",
        live.test_service_reloaded_after_certificate_changed,
        lambda: Passing(
            files={CERT: _file(CERT, ctime=NOW - 7200)},
            units=_service_started(NOW - 86400),
            # Started before the certificate changed: the pass rests on the reload its journal shows.
            sections={
                "service_events": {
                    "unit": "stemedb-api.service",
                    "since": NOW - 7200,
                    "events": [{"time": NOW - 7000, "kind": "reload", "message": "Reloaded stemedb-api.service"}],
                    "entries_read": 3,
                    "truncated": False,
                }
            },
        ),
        POLICY,
    ),
    "MON-01": (
        "MON-01",
        monitoring.test_metric_agrees_with_served_certificate,
        lambda: Passing(endpoint=SERVED, endpoint_parts=("leaf", "metrics")),
        POLICY,
    ),
    "MON-02": ("MON-02", monitoring.test_alert_rules_fire, _mon02, PROM_POLICY),
    "REN-01 timer": ("REN-01", renewal.test_renewal_is_scheduled, _ren01_timer, POLICY),
    "REN-01 cron": ("REN-01", renewal.test_renewal_is_scheduled, _ren01_cron, POLICY),
    "REN-02": ("REN-02", renewal.test_deploy_hook_reloads_service, _ren02, POLICY),
    "REN-03": (
        "REN-03",
        renewal.test_renewal_window_is_pinned,
        lambda: Passing(files={CONF: _file(CONF, renewal_conf(DOMAIN, "30 days").encode())}),
        POLICY,
    ),
    "REN-04": ("REN-04", renewal.test_threshold_mode_suits_lifetime, _cert_only, POLICY),
    "REN-05": (
        "REN-05",
        renewal.test_last_renewal_attempt_succeeded,
        lambda: Passing(
            units={
                "certbot.service": {
                    "ExecMainStartTimestamp": f"@{int(NOW - 30)}",
                    "ExecMainExitTimestamp": f"@{int(NOW - 29)}",
                    "Result": "success",
                    "ExecMainStatus": "0",
                }
            },
            sections={"certbot_logs": NO_LOGS},
        ),
        POLICY,
    ),
}
CASES["CRT-01"] = (
    "CRT-01",
    lambda f, p, e: certificate.test_certificate_does_not_expire_soon(f, p, e, False),
    _cert_only,
    POLICY,
)


# --- mutations: each removes or cuts one fact the pass rests on ------------------------------------
Mutation = tuple[str, str, str]  # (where, key, how)


def mutations(snapshot: Passing) -> list[Mutation]:
    found: list[Mutation] = []
    for path, item in snapshot.files.items():
        found += [("files", path, "remove"), ("files", path, "deny")]
        if "content_b64" in item:
            found += [("files", path, "cut"), ("files", path, "unread")]
    for path in snapshot.listings:
        found += [("listings", path, how) for how in ("remove", "deny", "truncate")]
    for name in snapshot.units:
        found += [("units", name, "remove"), ("units", name, "error")]
    for path in snapshot.public_keys:
        found += [("public_keys", path, how) for how in ("remove", "error", "deny")]
    for name in snapshot.sections:
        found += [("sections", name, "remove")]
    if "certbot_logs" in snapshot.sections:
        found.append(("certbot_logs", "dir", "deny"))
    if snapshot.sections.get("processes") is not None:
        found.append(("processes", "/proc", "deny"))
    if snapshot.sections.get("service_events") is not None:
        found.append(("service_events", "journal", "deny"))
    if snapshot.sections.get("prometheus"):
        found += [("prometheus", "promtool", "remove"), ("prometheus", "rule_files", "truncate")]
    if snapshot.endpoint is not None:
        found += [("endpoint", how, how) for how in ("remove", "timeout")]
        if "chain" in snapshot.endpoint_parts:
            found.append(("endpoint", "no-chain", "no-chain"))
        if "metrics" in snapshot.endpoint_parts:
            found += [("endpoint", how, how) for how in ("no-metrics", "metrics-timeout")]
    return found


def _mutate_file(files: dict[str, Any], path: str, how: str) -> None:
    if how == "remove":
        del files[path]
    elif how == "deny":
        files[path] = {"path": path, "lstat_error": {"errno": errno.EACCES, "reason": "Permission denied"}}
    elif "content_b64" in files[path]:
        del files[path]["content_b64"]
        if how == "cut":
            files[path]["read_error"] = {"errno": 0, "reason": "not read: the probe's content budget is spent", "cut": True}
        else:
            files[path]["read_error"] = {"errno": errno.EACCES, "reason": "Permission denied"}


def _mutate_listing(listings: dict[str, Any], path: str, how: str) -> None:
    if how == "remove":
        del listings[path]
    elif how == "deny":
        listings[path] = {"path": path, "error": {"errno": errno.EACCES, "reason": "Permission denied"}}
    elif "names" in listings[path]:  # cut before any name: the rest is unseen
        item = listings[path]
        item.update(names=item["names"][:0], truncated=True, total=len(item["names"]) + 1, limit=0)


def _mutate_endpoint(endpoint: Endpoint, how: str) -> Endpoint | None:
    if how == "remove":
        return None
    if how == "timeout":
        return replace(endpoint, leaf_der=None, chain_der=(), error="timed out after 10 s", determinable=False)
    if how == "no-chain":
        return replace(endpoint, chain_der=(), chain_error="the chain was not read")
    if how == "no-metrics":
        return replace(endpoint, metrics=None)
    if endpoint.metrics is None:
        return endpoint
    return replace(endpoint, metrics=replace(endpoint.metrics, body=None, error="timed out", determinable=False))


def apply(snapshot: Passing, chosen: list[Mutation]) -> tuple[dict[str, Any], Endpoint | None]:
    raw = copy.deepcopy(snapshot.raw())
    endpoint = snapshot.endpoint
    for where, key, how in chosen:
        if where == "files" and key in raw["files"]:
            _mutate_file(raw["files"], key, how)
        elif where == "listings" and key in raw["listings"]:
            _mutate_listing(raw["listings"], key, how)
        elif where == "units" and how == "remove":
            raw["units"].pop(key, None)
        elif where == "units":
            raw["units"]["_error"] = {"errno": 0, "reason": "systemctl show exited 1: Access denied"}
        elif where == "public_keys" and how == "remove":
            raw["public_keys"].pop(key, None)
        elif where == "public_keys" and how == "deny":  # the login may stat the key, not open it
            raw["public_keys"][key] = {"path": key, "error": {"errno": errno.EACCES, "reason": "Permission denied"}}
        elif where == "public_keys":
            raw["public_keys"][key] = {"path": key, "error": {"errno": 0, "reason": "openssl is not installed on the host"}}
        elif where == "processes" and "processes" in raw:  # /proc mounted hidepid
            raw["processes"] = None
            raw["processes_error"] = {"errno": errno.EACCES, "reason": "/proc hides other users' processes (hidepid)"}
        elif where == "service_events" and raw.get("service_events"):  # not root, nor in systemd-journal
            closed = "cannot read the system journal /var/log/journal/<machine-id>/system.journal: Permission denied"
            raw["service_events"] = {**raw["service_events"], "events": [], "entries_read": 0, "error": {"reason": closed}}
        elif where == "sections":
            raw.pop(key, None)
        elif where == "certbot_logs" and "certbot_logs" in raw:
            raw["certbot_logs"] = {
                "dir": "/var/log/letsencrypt",
                "logs": [],
                "error": {"errno": errno.EACCES, "reason": "denied"},
            }
        elif where == "prometheus" and raw.get("prometheus"):
            if how == "remove":
                raw["prometheus"]["promtool"] = None
            else:
                raw["prometheus"]["rule_files_truncated"] = True
        elif where == "endpoint" and endpoint is not None:
            endpoint = _mutate_endpoint(endpoint, how)
    return raw, endpoint


def outcome(control: str, check: Check, raw: dict[str, Any], endpoint: Endpoint | None, policy: Policy) -> str:
    try:
        facts = facts_from_probe("web-1", raw, NOW, endpoint)
    except (KeyError, TypeError, ValueError):
        return "error"  # the plugin ends every control of a host whose answer it cannot type in error
    evidence = Evidence(REGISTRY[control], "web-1")
    try:
        check(facts, policy, evidence)
    except Undeterminable:
        return "error"
    return "fail" if evidence.findings else "pass"


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_snapshot_passes(case: str) -> None:
    control, check, build, policy = CASES[case]
    snapshot = build()
    assert outcome(control, check, snapshot.raw(), snapshot.endpoint, policy) == "pass"
    assert mutations(snapshot), f"{case}: nothing to mutate"


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=60, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_pass_without_the_facts_it_rests_on(case: str, data: st.DataObject) -> None:
    control, check, build, policy = CASES[case]
    snapshot = build()
    chosen = data.draw(st.lists(st.sampled_from(mutations(snapshot)), min_size=1, max_size=3, unique=True), label="mutations")
    raw, endpoint = apply(snapshot, chosen)
    assert outcome(control, check, raw, endpoint, policy) in ("error", "fail"), f"{case} passed after {chosen}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_single_mutation(case: str) -> None:
    """Each mutation alone, exhaustively (hypothesis adds the combinations)."""
    control, check, build, policy = CASES[case]
    snapshot = build()
    passed = [m for m in mutations(snapshot) if outcome(control, check, *apply(snapshot, [m]), policy) == "pass"]
    assert passed == [], f"{case} passes without: {passed}"


DENIALS = ("deny", "unread")  # what a login that is not root meets: EACCES on a stat, a read, a listing, ...


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_denied_fact_is_an_error_not_a_finding(case: str) -> None:
    """Unprivileged audits (issue 18): a fact the login may not read ends the control in `error`,
    never a pass and never a failure (a closed directory is not an empty one)."""
    control, check, build, policy = CASES[case]
    snapshot = build()
    denied = [m for m in mutations(snapshot) if m[2] in DENIALS]
    judged = {m: outcome(control, check, *apply(snapshot, [m]), policy) for m in denied}
    assert {m: o for m, o in judged.items() if o != "error"} == {}, f"{case}: judged without the denied fact"
