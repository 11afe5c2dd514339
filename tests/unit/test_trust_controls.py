"""A pass is proof: each rule of issue 12's "Passes without proof", judged on hand-made snapshots.

A listing the probe cut, a file it did not read, a unit it was not told about: each is `error`
(Undeterminable, naming the path and what was missing), never a pass and never a finding.
"""

from __future__ import annotations

import base64
import errno
import importlib
import ipaddress
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

import checks.test_certificate as certificate
import checks.test_keys as keys
import checks.test_live as live
import checks.test_monitoring as monitoring
import checks.test_renewal as renewal
from certaudit.errors import Undeterminable
from certaudit.host.facts import Endpoint, HostFacts, facts_from_probe
from certaudit.policy import Policy
from certaudit.record import Evidence
from tests.fleet.scenario import RELOAD_HOOK
from tests.unit.test_catalog_controls import CERT, ISSUED, KEY, NOW, PROMETHEUS, file_item, judge, prometheus, snapshot

remote_probe: Any = importlib.import_module("certaudit.gather.remote_probe")  # stdlib-only, untyped: it runs on the host
ARCHIVE = "/etc/letsencrypt/archive/stemedb.example.com"
HOOKS = "/etc/letsencrypt/renewal-hooks/deploy"
HOOK = f"{HOOKS}/reload-stemedb.sh"
CONF = "/etc/letsencrypt/renewal/stemedb.example.com.conf"
CRONTABS = "/var/spool/cron/crontabs"
DENIED = {"errno": errno.EACCES, "reason": "Permission denied"}
ACCOUNTS = {"service_user": {"uid": 0, "gid": 0}, "service_group": {"gid": 0}, "users": {}, "groups": {}}


def snapshot_of(files: dict[str, dict[str, Any]], **sections: Any) -> HostFacts:
    """A snapshot whose file facts are given raw, as the probe writes them."""
    base = snapshot({}, **sections).raw
    always = ("/etc/sysconfig/certbot", "/etc/letsencrypt/cli.ini", "/root/.config/letsencrypt/cli.ini")  # the probe stats these
    sysconfig = {path: file_item(path, None, error=errno.ENOENT) for path in always}
    return facts_from_probe("web-1", {**base, "files": {**sysconfig, **files}}, NOW, None)


def listing(path: str, names: list[str], *, cut_at: int | None = None) -> dict[str, Any]:
    """A listing as the probe writes it; `cut_at` keeps only that many names, as the probe's limit does."""
    if cut_at is None:
        return {"path": path, "names": names, "truncated": False, "total": len(names), "limit": 50000}
    return {"path": path, "names": names[:cut_at], "truncated": True, "total": len(names), "limit": cut_at}


def stat_only(path: str, mode: int, uid: int = 0) -> dict[str, Any]:
    return {**file_item(path, None), "mode": mode, "uid": uid, "gid": uid}


# --- KEY-01: every archived key, or error ---------------------------------------------------------------
def archive_names(generations: int) -> list[str]:
    return sorted(f"{part}{i}.pem" for i in range(1, generations + 1) for part in ("cert", "chain", "fullchain", "privkey"))


def key01_facts(generations: int, key_mode: int, *, cut_at: int | None = None) -> HostFacts:
    names = archive_names(generations)
    kept = names if cut_at is None else names[:cut_at]
    files = {KEY: stat_only(KEY, 0o600)}
    for name in kept:
        files[f"{ARCHIVE}/{name}"] = stat_only(f"{ARCHIVE}/{name}", key_mode if name.startswith("privkey") else 0o644)
    return snapshot_of(files, listings={ARCHIVE: listing(ARCHIVE, names, cut_at=cut_at)}, accounts=ACCOUNTS)


def test_key01_names_every_open_archived_key_of_70_generations() -> None:
    evidence = judge("KEY-01", keys.test_private_key_is_private, key01_facts(70, 0o644))
    open_keys = sorted(f"{ARCHIVE}/privkey{i}.pem" for i in range(1, 71))
    assert evidence.findings == [f"{k} is mode 0644: group or others can read an archived key" for k in open_keys]
    assert evidence.observed["archived_key_count"] == 70 and evidence.observed["open_archived_keys"] == open_keys


def test_key01_past_100_open_keys_counts_the_rest() -> None:
    evidence = judge("KEY-01", keys.test_private_key_is_private, key01_facts(150, 0o640))
    assert len(evidence.findings) == 100 and evidence.findings[-1] == (
        "and 51 more archived keys group or others can read (open_archived_key_count)"
    )
    assert len(evidence.observed["open_archived_keys"]) == 100 and evidence.observed["open_archived_key_count"] == 150


def test_key01_a_cut_archive_listing_is_an_error_never_a_pass() -> None:
    with pytest.raises(
        Undeterminable, match=rf"{ARCHIVE} holds 280 names, over the probe's listing limit of 200: .*fullchain63\.pem"
    ):
        judge("KEY-01", keys.test_private_key_is_private, key01_facts(70, 0o644, cut_at=200))


def test_key01_an_unprobed_listed_key_is_an_error() -> None:
    facts = key01_facts(1, 0o600)
    del facts.files[f"{ARCHIVE}/privkey1.pem"]
    with pytest.raises(Undeterminable, match=rf"{ARCHIVE}/privkey1\.pem was not probed"):
        judge("KEY-01", keys.test_private_key_is_private, facts)


def test_key01_accounts_not_resolved_is_an_error_not_a_missing_user() -> None:
    facts = key01_facts(1, 0o600)
    del facts.raw["accounts"]
    with pytest.raises(Undeterminable, match="the probe resolved no accounts"):
        judge("KEY-01", keys.test_private_key_is_private, facts)


# --- REN-02: 10,000 files beside the hook ---------------------------------------------------------------
def hooks_facts(
    data_files: int, *, cut_at: int | None = None, hook: dict[str, Any] | None = None, **files_given: dict[str, Any]
) -> HostFacts:
    names = [f"00-note-{i:05d}.txt" for i in range(data_files)] + ["reload-stemedb.sh"]
    files = {f"{HOOKS}/{n}": stat_only(f"{HOOKS}/{n}", 0o644) for n in names[:cut_at]}
    files[HOOK] = hook or {**file_item(HOOK, RELOAD_HOOK.encode()), "mode": 0o755}
    files[CONF] = {"path": CONF, "lstat_error": {"errno": errno.ENOENT, "reason": "No such file or directory"}}
    return snapshot_of(
        {**files, **{item["path"]: item for item in files_given.values()}},
        listings={HOOKS: listing(HOOKS, names, cut_at=cut_at)},
        # certbot.timer renews (Debian's certbot.service); cron does not run, so no crontab needs reading.
        units={**TIMER_ON, "cron.service": {"ActiveState": "inactive"}},
    )


def test_ren02_finds_the_reload_hook_beside_10000_data_files() -> None:
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, hooks_facts(10_000))
    assert evidence.findings == []
    assert evidence.observed["reloading_hooks"] == [HOOK]
    assert evidence.observed["skipped_by_certbot"] == 10_000
    assert len(evidence.observed["hooks"]) == 21  # the hook certbot runs and the first 20 skipped; the rest counted


def test_ren02_a_cut_hooks_listing_is_an_error() -> None:
    with pytest.raises(Undeterminable, match=rf"{HOOKS} holds 10001 names, over the probe's listing limit of 200"):
        judge("REN-02", renewal.test_deploy_hook_reloads_service, hooks_facts(10_000, cut_at=200))


def test_ren02_a_hook_certbot_runs_but_not_read_is_an_error() -> None:
    big = {
        **file_item(HOOK, None),
        "mode": 0o755,
        "read_error": {"errno": 0, "reason": "file is 10485760 bytes, over the 65536-byte read limit"},
    }
    with pytest.raises(Undeterminable, match=rf"cannot read {HOOK}: file is 10485760 bytes"):
        judge("REN-02", renewal.test_deploy_hook_reloads_service, hooks_facts(0, hook=big))


# --- REN-02: certbot's own config files -------------------------------------------------------------
ROOT_CLI_INI = "/root/.config/letsencrypt/cli.ini"
ETC_CLI_INI = "/etc/letsencrypt/cli.ini"


def test_ren02_root_s_cli_ini_it_cannot_read_is_an_error_never_a_pass() -> None:
    """root's cli.ini could turn renewal-hooks/ off: the reload hook beside it proves nothing then."""
    denied = {"path": ROOT_CLI_INI, "lstat_error": DENIED}
    with pytest.raises(Undeterminable, match=rf"cannot lstat {ROOT_CLI_INI}: Permission denied: certbot reads its options"):
        judge("REN-02", renewal.test_deploy_hook_reloads_service, hooks_facts(0, ini=denied))
    unread = {**file_item(ROOT_CLI_INI, None), "read_error": DENIED}
    with pytest.raises(Undeterminable, match=rf"cannot read {ROOT_CLI_INI}: Permission denied"):
        judge("REN-02", renewal.test_deploy_hook_reloads_service, hooks_facts(0, ini=unread))


def test_ren02_a_cli_ini_certbot_cannot_parse_is_a_finding() -> None:
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, hooks_facts(0, ini=file_item(ETC_CLI_INI, b"=== x\n")))
    assert evidence.findings[0].startswith(f"certbot cannot start: its config file {ETC_CLI_INI} does not parse")


def test_ren02_no_directory_hooks_leaves_the_reload_hook_unrun() -> None:
    ini = file_item(ROOT_CLI_INI, b"no-directory-hooks = True\n")
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, hooks_facts(0, ini=ini))
    assert evidence.findings == [
        f"no deploy hook reloads stemedb-api: {HOOK}: no-directory-hooks in {ROOT_CLI_INI}: certbot runs nothing in "
        "renewal-hooks/"
    ]
    assert evidence.observed["hooks"][0]["certbot_runs_it"] is False


def test_ren02_the_hook_set_last_in_certbot_s_order_is_the_one_judged() -> None:
    """The conf's renew_hook < cli.ini's deploy-hook < the hook RHEL's certbot-renew.service passes."""
    conf = file_item(CONF, b"[renewalparams]\nrenew_hook = systemctl reload stemedb-api\n")
    ini = file_item(ETC_CLI_INI, b"deploy-hook = systemctl reload nginx\n")
    evidence = judge(
        "REN-02", renewal.test_deploy_hook_reloads_service, hooks_facts(0, hook=stat_only(HOOK, 0o644), conf=conf, ini=ini)
    )
    assert [c["source"] for c in evidence.observed["command_hooks"]] == [f"deploy-hook in {ETC_CLI_INI}"]
    assert any(n.startswith(f"renew_hook in {CONF} is not run: deploy-hook in {ETC_CLI_INI} replaces it") for n in evidence.notes)
    assert evidence.findings[-1].startswith(
        f"no deploy hook reloads stemedb-api: deploy-hook in {ETC_CLI_INI} `systemctl reload nginx` reloads no stemedb-api; "
    )


# EPEL's certbot-renew.service, as systemctl show prints its ExecStart (the variables unexpanded).
RHEL_EXEC_START = "/usr/bin/certbot renew --noninteractive --no-random-sleep-on-renew " + " ".join(
    f"${name}" for name in ("PRE_HOOK", "POST_HOOK", "RENEW_HOOK", "DEPLOY_HOOK", "CERTBOT_ARGS")
)
RHEL_SERVICE = {
    "certbot-renew.service": {"ExecStart": f"{{ path=/usr/bin/certbot ; argv[]={RHEL_EXEC_START} ; ignore_errors=no }}"}
}


def test_ren02_rhel_s_command_line_hook_replaces_cli_ini_s() -> None:
    """certbot-renew.service passes /etc/sysconfig/certbot's DEPLOY_HOOK on its command line: it wins."""
    sysconfig = file_item("/etc/sysconfig/certbot", b"DEPLOY_HOOK=\"--deploy-hook 'systemctl reload httpd'\"\n")
    ini = file_item(ETC_CLI_INI, b"deploy-hook = systemctl reload stemedb-api\n")
    names = ["reload-stemedb.sh"]
    files = {
        HOOK: stat_only(HOOK, 0o644),
        CONF: {"path": CONF, "lstat_error": {"errno": errno.ENOENT, "reason": "No such file or directory"}},
        ROOT_CLI_INI: file_item(ROOT_CLI_INI, None, error=errno.ENOENT),
        ETC_CLI_INI: ini,
        "/etc/sysconfig/certbot": sysconfig,
    }
    rhel = {"certbot-renew.timer": {"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"}, **RHEL_SERVICE}
    base = snapshot({}, units=rhel, listings={HOOKS: listing(HOOKS, names)}).raw
    facts = facts_from_probe("web-1", {**base, "files": files}, NOW, None)
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, facts)
    assert [c["source"] for c in evidence.observed["command_hooks"]] == ["DEPLOY_HOOK in /etc/sysconfig/certbot:1"]
    replaced = f"deploy-hook in {ETC_CLI_INI} is not run: DEPLOY_HOOK in /etc/sysconfig/certbot:1 replaces it"
    assert any(note.startswith(replaced) for note in evidence.notes), evidence.notes
    assert "`systemctl reload httpd` reloads no stemedb-api" in evidence.findings[-1]


# --- CRT-02: a SAN with no DNS name -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entries", "shown"),
    [
        ([x509.IPAddress(ipaddress.ip_address("10.0.0.11"))], "IPAddress:10.0.0.11"),
        ([x509.RFC822Name("ops@stemedb.example.com")], "RFC822Name:ops@stemedb.example.com"),
    ],
)
def test_crt02_a_san_without_any_dns_name_fails(entries: list[x509.GeneralName], shown: str) -> None:
    ca = trustme.CA()
    key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    leaf = x509.load_pem_x509_certificate(ca.issue_cert("stemedb.example.com").cert_chain_pems[0].bytes())
    builder = x509.CertificateBuilder(
        issuer_name=leaf.issuer,
        subject_name=leaf.subject,
        public_key=leaf.public_key(),
        serial_number=leaf.serial_number,
        not_valid_before=leaf.not_valid_before_utc,
        not_valid_after=leaf.not_valid_after_utc,
    ).add_extension(x509.SubjectAlternativeName(entries), critical=False)
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]
    evidence = judge("CRT-02", certificate.test_certificate_is_acceptable, snapshot({CERT: pem}))
    assert evidence.findings == [f"its subjectAltName holds no DNS name ({shown}): clients cannot match stemedb.example.com"]
    assert evidence.observed["covering_name"] is None


# --- MON-02: read but unproven ------------------------------------------------------------------------
DAYS_FORM = "stemedb_tls_cert_expiry_seconds / 3600 < 7"


def test_mon02_unproven_threshold_without_promtool_is_an_error() -> None:
    rules = prometheus().files["/etc/prometheus/rules/certificates.yml"].text()
    hours = rules.replace("stemedb_tls_cert_expiry_seconds < (7 * 86400)", DAYS_FORM)
    with pytest.raises(
        Undeterminable,
        match=r"the threshold of CertificateExpiringSoon \(stemedb_tls_cert_expiry_seconds / 3600 < 7\) is not a plain .* "
        r"promtool is not installed on the host to prove when it fires",
    ):
        judge("MON-02", monitoring.test_alert_rules_fire, prometheus(hours), PROMETHEUS)


def test_mon02_unproven_but_provably_wrong_elsewhere_fails() -> None:
    rules = prometheus().files["/etc/prometheus/rules/certificates.yml"].text()
    both = rules.replace("stemedb_tls_cert_expiry_seconds < (7 * 86400)", DAYS_FORM).replace("(30 * 86400)", "(14 * 86400)")
    evidence = judge("MON-02", monitoring.test_alert_rules_fire, prometheus(both), PROMETHEUS)
    assert evidence.findings == [
        "alert CertificateExpiringWarning fires under 1209600 s (14 days), not under 30 days (2592000 s)"
    ]


def test_mon02_rule_files_cut_is_an_error() -> None:
    facts = prometheus()
    facts.raw["prometheus"]["rule_files_truncated"] = True
    with pytest.raises(Undeterminable, match="match more than the 1 rule files the probe reads"):
        judge("MON-02", monitoring.test_alert_rules_fire, facts, PROMETHEUS)


# --- REN-01: crontabs not listed ------------------------------------------------------------------------
TIMER_OFF = {
    "certbot.timer": {"LoadState": "loaded", "UnitFileState": "disabled", "ActiveState": "inactive"},
    "cron.service": {"ActiveState": "active"},
}
TIMER_ON = {
    "certbot.timer": {
        "LoadState": "loaded",
        "UnitFileState": "enabled",
        "ActiveState": "active",
        "NextElapseUSecRealtime": f"@{int(NOW + 3600)}",
    },
    "certbot.service": {"ExecStart": "{ path=/usr/bin/certbot ; argv[]=/usr/bin/certbot -q renew ; ignore_errors=no }"},
    "cron.service": {"ActiveState": "active"},
}
CRON_LISTINGS = {"/etc/cron.d": listing("/etc/cron.d", []), CRONTABS: {"path": CRONTABS, "error": DENIED}}


def test_ren01_unlistable_crontabs_is_an_error_naming_the_path() -> None:
    facts = snapshot({"/etc/crontab": b"SHELL=/bin/sh\n"}, units=TIMER_OFF, listings=CRON_LISTINGS)
    with pytest.raises(
        Undeterminable,
        match=r"^host web-1: cannot list /var/spool/cron/crontabs: Permission denied: whether renewal is scheduled is unknown$",
    ):
        judge("REN-01", renewal.test_renewal_is_scheduled, facts)


def test_ren01_one_effective_schedule_read_whole_passes_and_notes_what_was_not_read() -> None:
    # The active timer, read whole, proves renewal is scheduled: crontabs the login may not list
    # cannot undo that, and the evidence says they were not read.
    facts = snapshot({"/etc/crontab": b"SHELL=/bin/sh\n"}, units=TIMER_ON, listings=CRON_LISTINGS)
    evidence = judge("REN-01", renewal.test_renewal_is_scheduled, facts)
    assert evidence.findings == [] and evidence.observed["timer"]["ActiveState"] == "active"
    assert any("not read, not needed for this verdict" in n and "/var/spool/cron/crontabs" in n for n in evidence.notes)
    # Without the timer, the same unlistable directory leaves the verdict unknown: an error, not a finding.
    facts = snapshot({"/etc/crontab": b"SHELL=/bin/sh\n"}, units=TIMER_OFF, listings=CRON_LISTINGS)
    with pytest.raises(Undeterminable, match=r"cannot list /var/spool/cron/crontabs: Permission denied"):
        judge("REN-01", renewal.test_renewal_is_scheduled, facts)
    entry = b"0 */12 * * * root certbot -q renew\n"
    listings = {"/etc/cron.d": listing("/etc/cron.d", []), CRONTABS: listing(CRONTABS, [])}
    facts = snapshot({"/etc/crontab": entry}, units=TIMER_OFF, listings=listings)
    evidence = judge("REN-01", renewal.test_renewal_is_scheduled, facts)
    assert evidence.findings == [] and evidence.observed["cron"]["entries"] == ["/etc/crontab:1: 0 */12 * * * certbot -q renew"]


def test_ren01_an_unreadable_crontab_is_an_error() -> None:
    listings = {"/etc/cron.d": listing("/etc/cron.d", []), CRONTABS: listing(CRONTABS, ["ops"])}
    facts = snapshot({"/etc/crontab": b"", f"{CRONTABS}/ops": None}, units=TIMER_OFF, listings=listings)
    with pytest.raises(Undeterminable, match=f"cannot read {CRONTABS}/ops: content was not gathered"):
        judge("REN-01", renewal.test_renewal_is_scheduled, facts)


def test_ren01_without_a_process_list_is_an_error() -> None:
    listings = {"/etc/cron.d": listing("/etc/cron.d", []), CRONTABS: listing(CRONTABS, [])}
    facts = snapshot({"/etc/crontab": b"0 */12 * * * root certbot -q renew\n"}, systemd=False, listings=listings)
    with pytest.raises(Undeterminable, match="could not list /proc"):
        judge("REN-01", renewal.test_renewal_is_scheduled, facts)


def test_ren01_nothing_scheduled_and_everything_read_still_fails() -> None:
    listings = {"/etc/cron.d": listing("/etc/cron.d", []), CRONTABS: listing(CRONTABS, [])}
    facts = snapshot({"/etc/crontab": b""}, units=TIMER_OFF, listings=listings)
    (finding,) = judge("REN-01", renewal.test_renewal_is_scheduled, facts).findings
    assert finding.startswith("renewal is not scheduled: certbot.timer is disabled and inactive")


# --- the other controls: a fact not read is not absent -------------------------------------------------
def test_crt04_an_unreadable_lineage_certificate_is_an_error_not_no_lineage() -> None:
    live_cert = "/etc/letsencrypt/live/stemedb.example.com/cert.pem"
    listings = {
        "/etc/letsencrypt/live": listing("/etc/letsencrypt/live", ["stemedb.example.com"]),
        "/etc/letsencrypt/renewal": listing("/etc/letsencrypt/renewal", ["stemedb.example.com.conf"]),
    }
    files = {CERT: file_item(CERT, ISSUED.fullchain_pem), live_cert: {**file_item(live_cert, None), "read_error": DENIED}}
    with pytest.raises(Undeterminable, match=f"cannot read {live_cert}: Permission denied"):
        judge("CRT-04", certificate.test_service_uses_newest_lineage_certificate, snapshot_of(files, listings=listings))


def _crt01(facts: HostFacts, policy: Policy, evidence: Evidence) -> None:
    certificate.test_certificate_does_not_expire_soon(facts, policy, evidence, False)


@pytest.mark.parametrize(
    ("control", "check"),
    [
        ("CRT-01", _crt01),
        ("CRT-02", certificate.test_certificate_is_acceptable),
        ("LIVE-01", live.test_endpoint_serves_certificate_on_disk),
        ("REN-04", renewal.test_threshold_mode_suits_lifetime),
    ],
)
def test_a_certificate_cut_by_the_content_budget_is_an_error_not_a_finding(control: str, check: Any) -> None:
    cut = {**file_item(CERT, None), "read_error": {"errno": 0, "reason": "not read: the probe's budget is spent", "cut": True}}
    facts = snapshot_of({CERT: cut})
    if control == "LIVE-01":
        der = ISSUED.certificate.public_bytes(serialization.Encoding.DER)
        facts = replace(facts, endpoint=Endpoint("10.0.0.1", 18180, "stemedb.example.com", leaf_der=der, chain_der=(der,)))
    with pytest.raises(Undeterminable, match=r"cannot read /etc/stemedb/tls/cert\.pem: not read: the probe's budget is spent"):
        judge(control, check, facts)


def test_ren05_unreadable_logs_are_an_error_even_beside_the_units_record() -> None:
    units = {"certbot.service": {"ExecMainStartTimestamp": f"@{int(NOW - 30)}", "Result": "success", "ExecMainStatus": "0"}}
    logs = {"dir": "/var/log/letsencrypt", "logs": [], "error": DENIED}
    with pytest.raises(Undeterminable, match="cannot read certbot's logs in /var/log/letsencrypt: Permission denied"):
        judge("REN-05", renewal.test_last_renewal_attempt_succeeded, snapshot(units=units, certbot_logs=logs))


def test_live02_a_unit_systemctl_did_not_answer_for_is_an_error() -> None:
    with pytest.raises(Undeterminable, match=r"systemctl show gave no state for stemedb-api\.service"):
        judge("LIVE-02", live.test_service_reloaded_after_certificate_changed, snapshot(units={}))


# --- the probe: whole listings, hooks read only when certbot runs them, one content budget --------------
def test_probe_lists_past_the_old_limit_and_marks_a_cut(tmp_path: Path) -> None:
    for i in range(300):
        (tmp_path / f"f{i:03d}").write_text("")
    whole = remote_probe.listing(str(tmp_path))
    assert len(whole["names"]) == 300 and whole["truncated"] is False and remote_probe.LISTING_LIMIT >= 50_000
    cut = remote_probe.listing(str(tmp_path), limit=200)
    assert (len(cut["names"]), cut["truncated"], cut["total"], cut["limit"]) == (200, True, 300, 200)


def test_probe_reads_only_the_hooks_certbot_runs(tmp_path: Path) -> None:
    hooks = tmp_path / "renewal-hooks" / "deploy"
    hooks.mkdir(parents=True)
    for i in range(500):
        (hooks / f"00-note-{i:03d}.txt").write_text("not a hook\n")
    (hooks / "reload-stemedb.sh").write_text(RELOAD_HOOK)
    os.chmod(hooks / "reload-stemedb.sh", 0o755)
    (hooks / "backup~").write_text(RELOAD_HOOK)
    os.chmod(hooks / "backup~", 0o755)
    found = remote_probe.Gathered()
    params = {"letsencrypt_dir": str(tmp_path), "domain": "stemedb.example.com", "deploy_hook": str(tmp_path / "none.sh")}
    remote_probe.gather_hooks(params, found)
    read = sorted(os.path.basename(p) for p, f in found.files.items() if "content_b64" in f)
    assert read == ["reload-stemedb.sh"]
    assert len([p for p in found.files if p.startswith(str(hooks))]) == 502  # every name stat'ed


def test_probe_content_budget_cuts_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(b"x" * 100)
    budget = remote_probe.Budget(150)
    assert base64.b64decode(remote_probe.describe(str(path), 1024, budget)["content_b64"]) == b"x" * 100
    fact = remote_probe.describe(str(path), 1024, budget)
    assert "content_b64" not in fact and fact["read_error"]["cut"] is True
    assert json.dumps(fact)  # still a JSON fact


def test_ren03_judges_the_conf_s_bytes_as_certbot_reads_them() -> None:
    # certbot's ConfigObj decodes the file as UTF-8 and skips a lineage whose conf is not: REN-03
    # must see the bytes, not text with the bad byte already replaced (which would read as a window).
    conf = b"renew_before_expiry = 30 days\n# caf\xe9\n"
    evidence = judge("REN-03", renewal.test_renewal_window_is_pinned, snapshot({CERT: ISSUED.fullchain_pem, CONF: conf}))
    assert len(evidence.findings) == 1 and "not UTF-8" in evidence.findings[0], evidence.findings


# --- REN-02: what the command lines that renew say of the hooks ------------------------------------------
def ren02_runs(
    units: dict[str, dict[str, str]], crontab: str = "SHELL=/bin/sh\n", *, hook: str = RELOAD_HOOK, sysconfig: str | None = None
) -> HostFacts:
    """A host whose hook is in renewal-hooks/deploy (the runbook's, reloading), renewed by the given
    timer or /etc/crontab; `sysconfig`, /etc/sysconfig/certbot's text."""
    files = {
        HOOK: {**file_item(HOOK, hook.encode()), "mode": 0o755},
        CONF: file_item(CONF, None, error=errno.ENOENT),
        "/etc/crontab": file_item("/etc/crontab", crontab.encode()),
        **{p: file_item(p, None, error=errno.ENOENT) for p in ("/etc/sysconfig/certbot", ETC_CLI_INI, ROOT_CLI_INI)},
    }
    if sysconfig is not None:
        files["/etc/sysconfig/certbot"] = file_item("/etc/sysconfig/certbot", sysconfig.encode())
    listings = {
        HOOKS: listing(HOOKS, ["reload-stemedb.sh"]),
        "/etc/cron.d": listing("/etc/cron.d", []),
        CRONTABS: listing(CRONTABS, []),
    }
    base = snapshot({}, units=units, listings=listings).raw
    return facts_from_probe("web-1", {**base, "files": files}, NOW, None)


def exec_start(argv: str) -> dict[str, dict[str, str]]:
    return {"certbot.service": {"ExecStart": f"{{ path=/usr/bin/certbot ; argv[]={argv} ; ignore_errors=no }}"}}


@pytest.mark.parametrize(
    ("units", "crontab", "where"),
    [
        ({**TIMER_ON, **exec_start("/usr/bin/certbot -q renew --no-directory-hooks")}, "", "certbot.service's ExecStart"),
        (TIMER_OFF, "0 */12 * * * root test -x /usr/bin/certbot && certbot -q renew --no-directory-hooks\n", "/etc/crontab:1"),
    ],
)
def test_ren02_a_renewing_command_line_with_no_directory_hooks_leaves_the_reload_hook_unrun(
    units: dict[str, dict[str, str]], crontab: str, where: str
) -> None:
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, ren02_runs(units, crontab))
    assert evidence.findings == [
        f"no deploy hook reloads stemedb-api: {HOOK}: --no-directory-hooks on {where}: certbot runs nothing in renewal-hooks/"
    ]
    assert evidence.observed["directory_hooks_off"] == f"--no-directory-hooks on {where}"


def test_ren02_a_cron_line_s_deploy_hook_replaces_the_conf_s_and_is_judged() -> None:
    line = "0 */12 * * * root certbot -q renew --no-directory-hooks --deploy-hook 'systemctl reload stemedb-api'\n"
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, ren02_runs(TIMER_OFF, line))
    assert evidence.findings == []
    assert evidence.observed["reloading_hooks"] == ["the command line of /etc/crontab:1"]
    assert evidence.observed["command_hooks"][0]["command"] == "systemctl reload stemedb-api"


def test_ren02_a_deploy_hook_on_a_service_s_exec_start_is_undeterminable() -> None:
    units = {**TIMER_ON, **exec_start("/usr/bin/certbot -q renew --deploy-hook systemctl reload stemedb-api")}
    with pytest.raises(Undeterminable, match=r"certbot\.service's ExecStart passes a deploy hook on its command line"):
        judge("REN-02", renewal.test_deploy_hook_reloads_service, ren02_runs(units))


def test_ren02_the_timer_s_plain_exec_start_changes_nothing() -> None:
    units = {**TIMER_ON, **exec_start("/usr/bin/certbot -q renew --no-random-sleep-on-renew")}
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, ren02_runs(units))
    assert evidence.findings == [] and evidence.observed["reloading_hooks"] == [HOOK]
    assert evidence.observed["directory_hooks_off"] is None


# --- REN-02: each command line that renews must reload -----------------------------------------------------
NO_RELOAD = RELOAD_HOOK.replace("systemctl reload stemedb-api", "logger renewed")
RHEL_TIMER_ON = {"certbot-renew.timer": TIMER_ON["certbot.timer"], **RHEL_SERVICE, "cron.service": {"ActiveState": "active"}}
RELOADING_CRON = "0 */12 * * * root certbot -q renew --deploy-hook 'systemctl reload stemedb-api'\n"


def test_ren02_a_timer_that_runs_no_reloading_hook_fails_beside_a_cron_entry_that_does() -> None:
    """The cron entry's hook reloads; the timer's renewals run the hook file, which does not."""
    units = {**TIMER_ON, **exec_start("/usr/bin/certbot -q renew")}
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, ren02_runs(units, RELOADING_CRON, hook=NO_RELOAD))
    assert evidence.findings == [
        "certbot.service's ExecStart: no deploy hook reloads stemedb-api: "
        f"{HOOK}: reloads no stemedb-api (no systemctl reload/restart of it)"
    ]
    assert [(run["where"], run["hook"], run["reloads"]) for run in evidence.observed["runs"]] == [
        ("certbot.service's ExecStart", None, False),
        ("/etc/crontab:1", "the command line of /etc/crontab:1", True),
    ]


def test_ren02_passes_when_every_command_line_that_renews_reloads() -> None:
    units = {**TIMER_ON, **exec_start("/usr/bin/certbot -q renew")}
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, ren02_runs(units, RELOADING_CRON))
    assert evidence.findings == []
    assert [run["reloads"] for run in evidence.observed["runs"]] == [True, True]
    assert evidence.observed["reloading_hooks"] == [HOOK, "the command line of /etc/crontab:1"]


@pytest.mark.parametrize(
    ("line", "finding"),
    [
        # argparse takes an unambiguous prefix: certbot reads --no-dir as --no-directory-hooks.
        (
            "certbot -q renew --no-dir",
            f"no deploy hook reloads stemedb-api: {HOOK}: --no-directory-hooks on /etc/crontab:1: certbot runs nothing in "
            "renewal-hooks/",
        ),
        # Of a line's hooks, the last runs.
        (
            "certbot -q renew --no-directory-hooks --deploy-hook 'systemctl reload stemedb-api' --deploy-hook true",
            "no deploy hook reloads stemedb-api: the command line of /etc/crontab:1 `true` reloads no stemedb-api; "
            f"{HOOK}: --no-directory-hooks on /etc/crontab:1: certbot runs nothing in renewal-hooks/",
        ),
        # A --renew-hook and a --deploy-hook that differ: certbot refuses the line.
        (
            "certbot -q renew --renew-hook 'systemctl reload stemedb-api' --dep true",
            "certbot cannot start: --dep on /etc/crontab:1 conflicts with the --renew-hook before it",
        ),
    ],
)
def test_ren02_reads_a_cron_line_as_certbot_s_parser_does(line: str, finding: str) -> None:
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, ren02_runs(TIMER_OFF, f"0 */12 * * * root {line}\n"))
    assert finding in evidence.findings, evidence.findings


@pytest.mark.parametrize(
    ("sysconfig", "finding"),
    [
        (
            'CERTBOT_ARGS="--no-directory-hooks"\n',
            f"no deploy hook reloads stemedb-api: {HOOK}: --no-directory-hooks on CERTBOT_ARGS in /etc/sysconfig/certbot:1: "
            "certbot runs nothing in renewal-hooks/",
        ),
        (
            "DEPLOY_HOOK=\"--deploy-hook 'systemctl reload stemedb-api'\"\nCERTBOT_ARGS='--deploy-hook true'\n",
            f"no deploy hook reloads stemedb-api: {HOOK}: reloads no stemedb-api (no systemctl reload/restart of it); "
            "CERTBOT_ARGS in /etc/sysconfig/certbot:2 `true` reloads no stemedb-api",
        ),
    ],
)
def test_ren02_reads_every_variable_certbot_renew_service_puts_on_its_command_line(sysconfig: str, finding: str) -> None:
    facts = ren02_runs(RHEL_TIMER_ON, "", hook=NO_RELOAD, sysconfig=sysconfig)
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, facts)
    assert evidence.findings == [finding]


def test_ren02_a_variable_the_service_does_not_use_changes_nothing() -> None:
    exec_start_without_args = RHEL_EXEC_START.replace(" $CERTBOT_ARGS", "")
    units = {**RHEL_TIMER_ON, "certbot-renew.service": {"ExecStart": f"{{ argv[]={exec_start_without_args} ; }}"}}
    facts = ren02_runs(units, "", sysconfig='CERTBOT_ARGS="--no-directory-hooks"\n')
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, facts)
    assert evidence.findings == [] and evidence.observed["directory_hooks_off"] is None


def test_ren02_an_exec_start_variable_the_audit_does_not_read_is_undeterminable() -> None:
    units = {**TIMER_ON, **exec_start("/usr/bin/certbot -q renew $EXTRA")}
    with pytest.raises(Undeterminable, match=r"certbot\.service's ExecStart passes '\$EXTRA', which systemd expands"):
        judge("REN-02", renewal.test_deploy_hook_reloads_service, ren02_runs(units))


def test_ren02_with_nothing_scheduled_judges_the_installed_timer_s_service() -> None:
    """The timer is off (REN-01's finding); its service is what renews once it is on."""
    units = {
        **RHEL_TIMER_ON,
        "certbot-renew.timer": {"LoadState": "loaded", "UnitFileState": "disabled", "ActiveState": "inactive"},
    }
    facts = ren02_runs(units, "", sysconfig="CERTBOT_ARGS=--no-di\n")
    evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, facts)
    assert [run["where"] for run in evidence.observed["runs"]] == ["certbot-renew.service's ExecStart"]
    assert evidence.observed["directory_hooks_off"] == "--no-directory-hooks on CERTBOT_ARGS in /etc/sysconfig/certbot:1"


@pytest.mark.parametrize(("hook", "outcome"), [(RELOAD_HOOK, "error"), (NO_RELOAD, "fail")])
def test_ren02_a_crontab_not_read_leaves_a_pass_unproven_but_not_a_finding(hook: str, outcome: str) -> None:
    """The timer's renewals reload; a crontab the audit could not read may hold a line that renews without reloading."""
    facts = ren02_runs({**TIMER_ON, **exec_start("/usr/bin/certbot -q renew")}, hook=hook)
    unread = {"path": CRONTABS, "names": ["root"], "truncated": True, "total": 2, "limit": 1}
    facts = facts_from_probe("web-1", {**facts.raw, "listings": {**facts.raw["listings"], CRONTABS: unread}}, NOW, None)
    if outcome == "error":
        with pytest.raises(Undeterminable, match=rf"{CRONTABS}.*a command line that renews from there could run hooks"):
            judge("REN-02", renewal.test_deploy_hook_reloads_service, facts)
    else:
        evidence = judge("REN-02", renewal.test_deploy_hook_reloads_service, facts)
        assert evidence.findings == [
            f"no deploy hook reloads stemedb-api: {HOOK}: reloads no stemedb-api (no systemctl reload/restart of it)"
        ]


def test_ren02_a_config_file_given_on_a_renewing_line_is_undeterminable() -> None:
    """certbot reads options from `-c FILE` too; the audit does not read that file."""
    line = "0 */12 * * * root certbot -q renew -c /etc/letsencrypt/custom.ini\n"
    with pytest.raises(Undeterminable, match=r"/etc/crontab:1 gives certbot the config file /etc/letsencrypt/custom\.ini"):
        judge("REN-02", renewal.test_deploy_hook_reloads_service, ren02_runs(TIMER_OFF, line))


# --- REN-01: what the timer starts must renew ------------------------------------------------------------
@pytest.mark.parametrize(
    "line",
    [
        "/usr/bin/certbot -q renew --dry-run",  # a rehearsal left in a drop-in: it saves nothing
        "/usr/bin/certbot -q renew --dr",  # argparse takes the prefix
        "/usr/bin/certbot certificates",
        "/usr/bin/certbot -q renew --help",
    ],
)
def test_ren01_a_timer_whose_service_renews_nothing_schedules_nothing(line: str) -> None:
    units = {**TIMER_ON, **exec_start(line)}
    evidence = judge("REN-01", renewal.test_renewal_is_scheduled, ren02_runs(units))
    assert evidence.findings == [
        f"renewal is not scheduled: certbot.timer is active, but certbot.service's ExecStart `{line}` renews nothing; "
        "no cron entry that cron runs here runs certbot renew"
    ]


def test_ren01_rhel_s_certbot_args_can_make_the_timer_a_dry_run() -> None:
    facts = ren02_runs(RHEL_TIMER_ON, "", sysconfig='CERTBOT_ARGS="--dry-run"\n')
    evidence = judge("REN-01", renewal.test_renewal_is_scheduled, facts)
    assert evidence.findings[0].startswith("renewal is not scheduled: certbot-renew.timer is active, but certbot-renew.service's")
    assert "--no-random-sleep-on-renew --dry-run` renews nothing" in evidence.findings[0]


def test_ren01_a_timer_that_starts_a_wrapper_is_undeterminable() -> None:
    units = {**TIMER_ON, **exec_start("/usr/local/sbin/renew-all --quiet")}
    with pytest.raises(Undeterminable, match=r"runs /usr/local/sbin/renew-all, not certbot: whether it renews is unknown"):
        judge("REN-01", renewal.test_renewal_is_scheduled, ren02_runs(units))


def test_ren01_the_snap_s_timer_runs_its_renew_app() -> None:
    snap_timer = {**TIMER_ON["certbot.timer"]}
    units = {
        "snap.certbot.renew.timer": snap_timer,
        "snap.certbot.renew.service": {
            "ExecStart": '{ path=/usr/bin/snap ; argv[]=/usr/bin/snap run --timer="00:00~24:00/2" certbot.renew ; }'
        },
        "cron.service": {"ActiveState": "active"},
    }
    evidence = judge("REN-01", renewal.test_renewal_is_scheduled, ren02_runs(units))
    assert evidence.findings == [] and evidence.observed["timer"]["unit"] == "snap.certbot.renew.timer"


def test_ren01_a_cron_line_s_abbreviated_dry_run_renews_nothing() -> None:
    facts = ren02_runs(TIMER_OFF, "0 */12 * * * root certbot -q renew --dr\n")
    evidence = judge("REN-01", renewal.test_renewal_is_scheduled, facts)
    assert evidence.findings and evidence.findings[0].startswith("renewal is not scheduled:")


def test_ren01_another_timer_proves_renewal_beside_one_whose_service_is_not_read() -> None:
    units = {
        **TIMER_ON,
        **exec_start("/usr/local/sbin/renew-all"),
        "snap.certbot.renew.timer": {**TIMER_ON["certbot.timer"]},
        "snap.certbot.renew.service": {"ExecStart": "{ path=/usr/bin/snap ; argv[]=/usr/bin/snap run certbot.renew ; }"},
    }
    evidence = judge("REN-01", renewal.test_renewal_is_scheduled, ren02_runs(units))
    assert evidence.findings == [] and evidence.observed["timer"]["unit"] == "snap.certbot.renew.timer"


def test_ren01_a_hook_command_on_the_timer_s_line_leaves_its_words_unknown() -> None:
    """`--pre-hook "logger -h x"` shows as words: the `-h` may be the hook's, not certbot's."""
    units = {**TIMER_ON, **exec_start("/usr/bin/certbot -q renew --pre-hook logger -h x")}
    with pytest.raises(Undeterminable, match=r"passes a hook command, which systemctl show prints without its quoting"):
        judge("REN-01", renewal.test_renewal_is_scheduled, ren02_runs(units))
