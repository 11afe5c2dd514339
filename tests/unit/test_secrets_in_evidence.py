"""Secrets in the evidence: redaction of untrusted text, the caps, and the minimal snapshot.

Text from ssh, openssl or the audited host is redacted by pattern and bounded wherever a record,
message, note or observation is made; evidence.json keeps of each file a digest, its size, and its
certificates when it holds nothing else. The end-to-end test runs the real audit on this machine
(a local connection) in a pytester directory and searches every file it wrote, and its output.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from certaudit.controls import Control
from certaudit.evidence.snapshot import certificates_only, minimal_snapshot
from certaudit.record import MAX_ENTRIES, Evidence, Record
from certaudit.redact import (
    CUT_MARK,
    KEY_MATERIAL,
    MESSAGE_CAP,
    TEXT_CAP,
    VALUE_CAP,
    cut,
    redact_every_pattern,
    redact_secrets,
    untrusted,
)
from tests.secret_forms import leaks
from tests.unit.test_report_html import CONFTEST, make_audit_project, with_details, write_certificate

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "certaudit/evidence/schema/evidence-v1.schema.json").read_text())
DB_PASSWORD = "db_password=Sup3r-S3cret-Db-Pa55word-4711"
SHADOW_LINE = "root:$6$certaudit$Qm9ndXNTaGFkb3dIYXNoRm9yQ2VydGF1ZGl0VGVzdHM.:19000:0:99999:7:::"
TOKEN_LINE = "NOTIFY_TOKEN=tok_live_5151515151515151cafebabe"
CONTROL = Control("SEC-01", "t", "s", "r", "c", "f", gate=False, not_applicable=None, function="test_x")


# --- keys and how ssh quotes them -------------------------------------------------------------------
def openssh_key() -> tuple[bytes, bytes]:
    """An OpenSSH-format private key file and its secret scalar."""
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    return pem, key.private_bytes_raw()


def rsa_key() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    d = key.private_numbers().d
    return pem, d.to_bytes((d.bit_length() + 7) // 8, "big")


def ssh_quoting(path: str, pem: bytes) -> str:
    """What `ssh -F <key file>` prints: each line of the file, lowercased, as a bad config option."""
    lines = pem.decode().splitlines()
    out = [f"{path}: line 1: Bad configuration option: {lines[0].split()[0].lower()}"]
    out += [f'{path} line {n}: no argument after keyword "{line.lower()}"' for n, line in enumerate(lines[1:-1], 2)]
    out += [f"{path}: line {len(lines)}: Bad configuration option: -----end", f"{path}: terminating, 7 bad configuration options"]
    return "\n".join(out)


def assert_no_leak(text: str, secret: bytes, pem: bytes) -> None:
    found = leaks(text.encode(), secret, pem)
    assert found == [], f"{found} in {text[:500]!r}"


# --- redaction ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [openssh_key, rsa_key], ids=["openssh", "rsa"])
def test_a_private_key_block_is_redacted_whole(make: Any) -> None:
    pem, secret = make()
    text = f"before\n{pem.decode()}after"
    redacted = redact_secrets(text)
    assert redacted == f"before\n{KEY_MATERIAL}\nafter"
    assert_no_leak(redacted, secret, pem)


@pytest.mark.parametrize("make", [openssh_key, rsa_key], ids=["openssh", "rsa"])
def test_ssh_quoting_a_key_file_is_redacted_however_it_is_cut(make: Any) -> None:
    pem, secret = make()
    said = ssh_quoting("/home/op/.ssh/id", pem)
    assert leaks(said.encode(), secret, pem), "the test's ssh text must hold the key to begin with"
    redacted = redact_secrets(said)
    assert redacted.startswith(f"/home/op/.ssh/id: line 1: Bad configuration option: {KEY_MATERIAL}")
    assert redacted.endswith("/home/op/.ssh/id: terminating, 7 bad configuration options")
    assert_no_leak(redacted, secret, pem)
    # As the transport keeps it (whitespace joined, the first 400 characters), and any other cut.
    joined = " ".join(said.split())
    for piece in (joined[:400], joined[:1000], said[:400], said[:-300]):
        assert_no_leak(redact_secrets(piece), secret, pem)


def test_long_base64_goes_and_digests_and_fingerprints_stay() -> None:
    key_line = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
    sha = hashlib.sha256(b"x").hexdigest()
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(b"k").digest()).decode().rstrip("=")
    text = f"key {key_line} sha256 {sha} fp {fingerprint} serial {'ab' * 20}"
    assert redact_secrets(text) == f"key {KEY_MATERIAL} sha256 {sha} fp {fingerprint} serial {'ab' * 20}"


def test_certaudits_own_words_survive() -> None:
    texts = [
        "/srv/x/cert.pem: DER, not PEM: the file is binary ASN.1, expected -----BEGIN CERTIFICATE-----\n  rule: CRT-01",
        "0 */12 * * * root test -x /usr/bin/certbot -a \\! -d /run/systemd/system && certbot -q renew",
        "holds a private key (EC PRIVATE KEY block at line 1): its bytes stay on the host",
        "host web-1 (127.77.0.10): cannot connect: Permission denied (publickey,password).",
        "renew_before_expiry = 30 days; account = 0123456789abcdef0123456789abcdef",
        "CRT-01 on db-secrets-1: the service's certificate; REN-01 on api_token_host: renewal is not scheduled",
        "host secrets-ssh (127.0.0.1): cannot connect: /home/op/secret-token.key: line 1: Bad configuration option",
    ]
    for text in texts:
        assert redact_secrets(text) == text


def test_assigned_secrets_lose_their_value() -> None:
    assert redact_secrets(f"{DB_PASSWORD} next") == "db_password=<redacted> next"
    assert redact_secrets("api_token: 'a b c', secret = \"x y\"") == "api_token: <redacted>, secret = <redacted>"
    assert (
        redact_secrets("x\n  private_key: abc\nexport GH_TOKEN=ghp_1")
        == "x\n  private_key: <redacted>\nexport GH_TOKEN=<redacted>"
    )
    assert redact_secrets(TOKEN_LINE) == "NOTIFY_TOKEN=<redacted>"


def test_a_certificate_in_a_message_is_omitted() -> None:
    pem = _certificate().public_bytes(serialization.Encoding.PEM).decode()
    assert redact_secrets(f"got {pem}end") == "got <PEM block omitted>\nend"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ09+/=-_ :\n\"'BEGINENDbeginPRIVATEKEYpassword"), max_size=300))
def test_redaction_and_cut_are_idempotent_and_bounded(text: str) -> None:
    once = untrusted(text, 120)
    assert len(once) <= 120
    assert untrusted(once, 120) == once
    assert redact_secrets(redact_secrets(text)) == redact_secrets(text)


# --- caps -------------------------------------------------------------------------------------------------
def test_cut_says_it_was_cut_with_the_length_and_digest_of_the_whole() -> None:
    whole = "30 days " * 112_500  # 900 KB
    shown = cut(whole, TEXT_CAP)
    assert len(shown) == TEXT_CAP and shown.startswith("30 days 30 days")
    digest = hashlib.sha256(whole.encode()).hexdigest()
    assert shown.endswith(f"{CUT_MARK} {len(whole)} characters in all, SHA-256 {digest} of the whole]")
    assert cut(shown, TEXT_CAP) == shown


def test_a_900kb_value_adds_a_few_kb_to_a_record() -> None:
    big = "30 days " * 112_500
    evidence = Evidence(CONTROL, "web-1")
    evidence.observe(renew_before_expiry=big, many=[big] * 3)
    evidence.require(False, f"certbot cannot parse renew_before_expiry = {big!r}: it would renew only at expiry")
    evidence.note(big)
    record = Record(
        control="SEC-01", title="t", host="web-1", outcome="fail", message=evidence.failure_message(),
        observed=evidence.observed, expected=evidence.expected, findings=evidence.findings, notes=evidence.notes,
    )  # fmt: skip
    assert len(evidence.observed["renew_before_expiry"]) <= VALUE_CAP
    assert len(json.dumps(evidence.observed["many"])) <= VALUE_CAP + 2
    assert evidence.observed["renew_before_expiry"].endswith(
        f"{len(big)} characters in all, SHA-256 {hashlib.sha256(big.encode()).hexdigest()} of the whole]"
    )
    assert all(len(f) <= TEXT_CAP for f in evidence.findings + evidence.notes)
    assert len(record.message) <= MESSAGE_CAP
    assert len(record.to_json()) < 3 * VALUE_CAP + 3 * TEXT_CAP + MESSAGE_CAP
    assert Record.from_json(record.to_json()) == record  # bounded once, unchanged after


def test_findings_past_the_limit_are_counted_not_listed() -> None:
    evidence = Evidence(CONTROL, "web-1")
    for n in range(MAX_ENTRIES + 250):
        evidence.require(False, f"hook {n} is unsafe")
    assert len(evidence.findings) == MAX_ENTRIES + 1
    assert evidence.findings[-1] == f"{CUT_MARK} 250 more findings not listed]"


def test_a_record_redacts_whatever_made_it() -> None:
    pem, secret = openssh_key()
    said = ssh_quoting("/tmp/k", pem)
    record = Record(
        control="SEC-01", title="t", host="h", outcome="error", message=f"host h: cannot connect: {said}",
        observed={"stderr": said, "nested": {"k": [said]}}, findings=[said], notes=[said],
    )  # fmt: skip
    assert_no_leak(record.to_json(), secret, pem)
    assert record.message.startswith("host h: cannot connect: /tmp/k: line 1: Bad configuration option: <redacted")


# --- the minimal snapshot -------------------------------------------------------------------------------
def _certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stemedb.example.com")])
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
    return builder.sign(key, hashes.SHA256())


def _file(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "link": False, "realpath": path, "kind": "file", "mode": 0o600, "uid": 0, "gid": 0,
            "size": len(data), "mtime": 1.0, "ctime": 1.0, "content_b64": base64.b64encode(data).decode()}  # fmt: skip


def test_certificates_only_when_the_file_is_nothing_else() -> None:
    one, two = (_certificate().public_bytes(serialization.Encoding.PEM) for _ in range(2))
    assert certificates_only(one + b"\n" + two) == [one.decode(), two.decode()]
    assert certificates_only(one + DB_PASSWORD.encode()) is None
    assert certificates_only(b"note\n" + one) is None
    assert certificates_only(b"-----BEGIN CERTIFICATE-----\naHVudGVyMg==\n-----END CERTIFICATE-----\n") is None
    assert certificates_only(b"") is None


def test_minimal_snapshot_keeps_digests_certificates_and_facts_only() -> None:
    cert = _certificate().public_bytes(serialization.Encoding.PEM)
    pem, secret = openssh_key()
    crontab = f"{TOKEN_LINE}\n0 3 * * * certbot -q renew\n".encode()
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    raw = {
        "probe_version": 1, "hostname": "h", "time": 1.0, "systemd": True, "euid": 0,
        "files": {
            "/var/spool/cron/crontabs/root": _file("/var/spool/cron/crontabs/root", crontab),
            "/tls/cert.pem": _file("/tls/cert.pem", cert),
            "/tls/linked.pem": _file("/tls/linked.pem", DB_PASSWORD.encode()),
            "/le/renewal/d.conf": _file("/le/renewal/d.conf", SHADOW_LINE.encode()),
            "/tls/key.pem": {"path": "/tls/key.pem", "kind": "file", "mode": 0o600},
        },
        "listings": {"/etc/cron.d": {"path": "/etc/cron.d", "names": ["certbot"], "truncated": False}},
        "public_keys": {"/tls/key.pem": {"path": "/tls/key.pem", "public_pem": public_pem},
                        "/tls/other.pem": {"path": "/tls/other.pem", "public_pem": pem.decode()}},
        "units": {}, "accounts": {"users": {"0": "root"}, "groups": {}},
        "certbot_logs": {"dir": "/var/log/letsencrypt", "logs": [{"path": "l", "lines": [{"time": 1.0, "text": pem.decode()}]}]},
    }  # fmt: skip
    snapshot = minimal_snapshot(raw)
    dumped = json.dumps(snapshot)
    assert "content_b64" not in dumped
    for secret_text in (TOKEN_LINE, DB_PASSWORD, SHADOW_LINE, "Sup3r", "$6$certaudit"):
        assert secret_text not in dumped
    assert_no_leak(dumped, secret, pem)
    files = snapshot["files"]
    assert files["/var/spool/cron/crontabs/root"]["content_sha256"] == hashlib.sha256(crontab).hexdigest()
    assert files["/var/spool/cron/crontabs/root"]["content_size"] == len(crontab)
    assert "certificates_pem" not in files["/var/spool/cron/crontabs/root"]
    assert files["/tls/cert.pem"]["certificates_pem"] == [cert.decode()]
    assert files["/tls/linked.pem"]["content_size"] == len(DB_PASSWORD) and "certificates_pem" not in files["/tls/linked.pem"]
    assert files["/tls/key.pem"] == {"path": "/tls/key.pem", "kind": "file", "mode": 0o600}
    assert snapshot["public_keys"]["/tls/key.pem"]["public_pem"] == public_pem
    assert "public_pem" not in snapshot["public_keys"]["/tls/other.pem"]
    assert snapshot["listings"] == raw["listings"] and snapshot["accounts"] == raw["accounts"]
    assert snapshot["certbot_logs"]["logs"][0]["lines"][0]["text"] == KEY_MATERIAL + "\n"
    assert minimal_snapshot(snapshot) == snapshot  # what a merge of parts would copy stays the same
    jsonschema.validate(snapshot, {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"], "$ref": "#/$defs/snapshot"})


# --- end to end: a real audit of this machine ------------------------------------------------------
LEAKY_CHECK = textwrap.dedent(
    '''\
    import os

    from certaudit.controls import control
    from certaudit.errors import Undeterminable
    from certaudit.record import Evidence

    SAID = open(os.environ["CERTAUDIT_TEST_SSH_SAID"]).read()


    @control("SEC-01", title="ssh quotes a key in an error", source="tests")
    def test_error(evidence: Evidence) -> None:
        """Rationale: r.

        Check: c.

        Fix: f.
        """
        raise Undeterminable("host x: cannot connect: " + SAID)


    @control("SEC-02", title="a finding and an observation quote it", source="tests")
    def test_finding(evidence: Evidence) -> None:
        """Rationale: r.

        Check: c.

        Fix: f.
        """
        evidence.observe(stderr=SAID)
        evidence.note(SAID)
        evidence.require(False, "ssh said: " + SAID)


    @control("SEC-03", title="a bare assert quotes it", source="tests")
    def test_assert(evidence: Evidence) -> None:
        """Rationale: r.

        Check: c.

        Fix: f.
        """
        assert SAID == "", SAID
    '''
)


def _leaky_project(root: Path) -> tuple[bytes, bytes]:
    """A local audit project whose host's files and checks hold secrets; returns the key quoted."""
    make_audit_project(root, {"test_leaky.py": LEAKY_CHECK})
    private = root / "private"
    private.mkdir(mode=0o700)
    (private / "db.conf").write_text(DB_PASSWORD + "\n")
    (private / "shadow").write_text(SHADOW_LINE + "\n")
    for path in private.iterdir():
        path.chmod(0o600)
    write_certificate(root / "tls", 60)
    (root / "tls" / "cert.pem").unlink()
    (root / "tls" / "cert.pem").symlink_to(private / "db.conf")
    le = root / "le"
    (le / "renewal").mkdir(parents=True)
    (le / "renewal" / "stemedb.example.com.conf").symlink_to(private / "shadow")
    hook = le / "renewal-hooks" / "deploy" / "reload-stemedb.sh"
    hook.parent.mkdir(parents=True)
    hook.write_text(f"#!/bin/sh\nexport {TOKEN_LINE}\nsystemctl reload stemedb-api\n")
    hook.chmod(0o755)
    big = le / "big"
    (big / "renewal").mkdir(parents=True)
    (big / "renewal" / "stemedb.example.com.conf").write_text(f"renew_before_expiry = {'thirty days ' * 75_000}\n")
    (root / "inv.yml").write_text(
        "all:\n  hosts:\n"
        f"    leaky:\n      ansible_connection: local\n      certaudit_tls_dir: {json.dumps(str(root / 'tls'))}\n"
        f"      certaudit_letsencrypt_dir: {json.dumps(str(le))}\n"
        f"    big:\n      ansible_connection: local\n      certaudit_letsencrypt_dir: {json.dumps(str(big))}\n"
    )
    (root / "conftest.py").write_text(CONFTEST)
    pem, secret = openssh_key()
    (root / "said.txt").write_text(ssh_quoting(str(root / "k"), pem))
    return pem, secret


def test_no_secret_in_any_output_of_a_real_audit(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pem, secret = _leaky_project(pytester.path)
    monkeypatch.setenv("CERTAUDIT_TEST_SSH_SAID", str(pytester.path / "said.txt"))
    result = pytester.runpytest_subprocess(
        "checks", "--inventory", "inv.yml", "--report-dir", "out", "-p", "no:cacheprovider", "-rA", timeout=300
    )
    output = "\n".join(result.outlines + result.errlines)
    (run_dir,) = [p for p in (pytester.path / "out").iterdir() if p.is_dir()]
    files = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert {"evidence.json", "report.html", "junit.xml"} <= set(files), output[-3000:]
    files["report.html"] = with_details(files["report.html"])  # its gzip'd details too
    evidence = json.loads(files["evidence.json"])
    results = {(r["control"], r["host"]): r for r in evidence["results"]}

    for where, blob in [*files.items(), ("output", output.encode())]:
        for plain in (DB_PASSWORD, SHADOW_LINE, TOKEN_LINE, "Sup3r-S3cret", "Qm9ndXNTaGFkb3dIYXNo", "cafebabe"):
            assert plain.encode() not in blob, f"{plain!r} in {where}"
        assert leaks(blob, secret, pem) == [], where
        assert b"OPENSSH PRIVATE KEY" not in blob.upper(), where

    # The controls judged as before, and what they used is kept.
    crt = results[("CRT-01", "leaky")]
    assert crt["outcome"] == "fail" and "/private/db.conf: no PEM certificate found" in crt["message"]
    ren3 = results[("REN-03", "leaky")]
    assert ren3["outcome"] == "fail"
    assert "certbot cannot read its renewal conf" in ren3["message"] and "line 1: neither" in ren3["message"]
    ren2 = results[("REN-02", "leaky")]
    assert [h["reload_line"] for h in ren2["observed"]["hooks"]] == ["systemctl reload stemedb-api"]
    for control in ("SEC-01", "SEC-02", "SEC-03"):
        assert results[(control, "leaky")]["outcome"] == ("error" if control == "SEC-01" else "fail")
        assert KEY_MATERIAL in results[(control, "leaky")]["message"]
    assert results[("SEC-02", "leaky")]["observed"]["stderr"].count(KEY_MATERIAL) == 1

    # Each file read is a digest and a size in the snapshot; its content only when it is certificates.
    snapshot = evidence["snapshots"]["leaky"]
    tls = str(pytester.path / "tls")
    linked = snapshot["files"][f"{tls}/cert.pem"]
    assert linked["content_sha256"] == hashlib.sha256((DB_PASSWORD + "\n").encode()).hexdigest()
    assert linked["content_size"] == len(DB_PASSWORD) + 1 and "certificates_pem" not in linked
    conf = snapshot["files"][str(pytester.path / "le/renewal/stemedb.example.com.conf")]
    assert conf["content_sha256"] == hashlib.sha256((SHADOW_LINE + "\n").encode()).hexdigest()
    assert all("content_b64" not in f for s in evidence["snapshots"].values() for f in s["files"].values())
    jsonschema.validate(evidence, SCHEMA)

    # The 900 KB renewal conf value adds no megabytes: the conf is over the size certaudit parses, so
    # REN-03 could not judge it (error, naming the bound), and nothing of it reaches the outputs.
    big = results[("REN-03", "big")]
    assert big["outcome"] == "error", big
    assert "over certaudit's 32768-byte bound for a renewal conf: not parsed" in big["message"], big["message"]
    assert len(json.dumps(big)) < 4 * VALUE_CAP + MESSAGE_CAP
    assert len(files["evidence.json"]) < 2_000_000 and len(files["junit.xml"]) < 1_000_000, {k: len(v) for k, v in files.items()}


# --- the shortcut: text no pattern can touch is returned after one look -----------------------------
_PIECES = st.sampled_from(
    ["-----BEGIN ", "-----END ", "PRIVATE KEY-----", "CERTIFICATE-----", "password=", "PassPhrase: ", "api_key = ",
     "Private_Key=", "TOKEN=", "secret", "ſecret=x", "\u212aey", "SHA256:", "A" * 39, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9u",
     "0123456789abcdef" * 3, "/", "+", "=", "\n", " ", "-", "--", ":", "é", "İ", "ı"]
)  # fmt: skip


@given(st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=12).map("".join))
@settings(max_examples=600, deadline=None)
def test_the_shortcut_changes_nothing(text: str) -> None:
    """redact_secrets skips the patterns only for text none of them would change (redact.py's shortcut)."""
    assert redact_secrets(text) == redact_every_pattern(text)


@pytest.mark.parametrize(
    "text",
    ["ſecret=hunter2", "\u212aey material: " + "Z" * 40, "x" * 39 + "/" + "A" * 40, "a---BEGIN x", "Token: abc", "PASSWORD=x"],
)
def test_the_shortcut_lets_every_secret_through(text: str) -> None:
    """Secrets the shortcut's cheap looks could miss (case folding outside ASCII, a run of base64 behind
    other letters, dashes before BEGIN): each still redacted."""
    assert redact_secrets(text) == redact_every_pattern(text) != text


_HOSTILE = st.one_of(_PIECES, st.text(max_size=40)).map(lambda s: s * 3)
_VALUES = st.recursive(_HOSTILE, lambda v: st.lists(v, max_size=3), max_leaves=6)


@given(
    observed=st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.recursive(_HOSTILE, lambda v: st.lists(v, max_size=3), max_leaves=6)
    ),
    findings=st.lists(_HOSTILE, max_size=4),
    notes=st.lists(_HOSTILE, max_size=3),
    message=_HOSTILE,
)
@settings(max_examples=300, deadline=None)
def test_a_record_of_evidence_is_bounded_once(
    observed: dict[str, Any], findings: list[str], notes: list[str], message: str
) -> None:
    """The plugin makes a control's record with Record.of_bounded (its values bounded as they were
    recorded): the record is the one Record() would make, which bounds them all again."""
    evidence = Evidence(CONTROL, "web-1")
    evidence.observe(**observed)
    evidence.expect(**{f"x{k}": v for k, v in observed.items()})
    for finding in findings:
        evidence.require(False, finding)
    for note in notes:
        evidence.note(note)
    fields: dict[str, Any] = {
        "control": "SEC-01", "title": "t", "host": "web-1", "outcome": "fail", "message": untrusted(message, MESSAGE_CAP),
        "observed": evidence.observed, "expected": evidence.expected, "findings": evidence.findings, "notes": evidence.notes,
        "fix": "f", "gate": False, "nodeid": "n", "started": "s", "duration_s": 0.0, "waiver": None,
    }  # fmt: skip
    assert Record.of_bounded(**fields).to_json() == Record(**copy.deepcopy(fields)).to_json()


def test_a_record_of_bounded_values_takes_every_field() -> None:
    with pytest.raises(TypeError, match="every field once"):
        Record.of_bounded(control="SEC-01", title="t", host="h", outcome="pass")
