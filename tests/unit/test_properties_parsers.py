"""Property tests of every parser of host content: whatever bytes a host holds, each parser returns
its result or raises its own error type (never another exception), and does not hang.

Each property is a plain function over one generated value, paired with its strategy in `TARGETS`,
so the on-demand fuzz run (`python -m bench.fuzz_parsers`) drives the same properties at scale.
Here each runs 200 cases, the same on every run (derandomized), without the example database
(nothing is written into the tree).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
import yaml
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certaudit.errors import Undeterminable
from certaudit.host.certbot.conf import CertbotConfError, parse_renewal_conf
from certaudit.host.certbot.hooks import reloads_service
from certaudit.host.certbot.interval import parse_interval
from certaudit.host.cron import (
    CronError,
    cron_command,
    cron_d_file_is_read,
    parse_crontab,
    runs_certbot_renew,
    skipped_under_systemd,
)
from certaudit.host.facts import HostFacts, facts_from_probe
from certaudit.host.metrics import MetricsError, parse_metrics
from certaudit.host.promrules import RulesError, alert_rules, config_rule_files, static_threshold
from certaudit.host.schedule import cron_schedule, parse_systemd_time, timer_schedule
from certaudit.host.shell import shell_commands
from certaudit.host.x509 import CertificateError, fingerprint_sha256, load_pem_certificates, summary
from certaudit.jobs.drill import parse_certbot_output, parse_journal
from tests.fleet import pki
from tests.scenarios_hardening import BAD_NAME_PEM

# The probe runs on the audited host's python3 and is kept out of the type check (py3.6 syntax).
remote_probe: Any = importlib.import_module("certaudit.gather.remote_probe")
EXAMPLES = 200
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # no timing assertions: a slow machine is not a failure; a hang still is
    database=None,
    derandomize=True,  # the same cases on every run of the suite: the fuzz run is where chance explores
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Target:
    name: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], None]


def _pick(*choices: str | bytes) -> st.SearchStrategy[Any]:
    return st.sampled_from(choices)


def _joined(pieces: st.SearchStrategy[str], max_size: int = 40, sep: str = "") -> st.SearchStrategy[str]:
    return st.lists(pieces, max_size=max_size).map(sep.join)


# --- renewal conf (ConfigObj) ----------------------------------------------------------------------
CONF_PIECES = _pick(
    "renew_before_expiry", "version", "[renewalparams]", "[[webroot_map]]", "[", "]", "[[", "]]", "=", " = ", "'", '"',
    "'''", '"""', "#", ",", "\n", "\r\n", " ", "\t", "30 days", "key", "renew_hook", "systemctl reload stemedb-api",
    "\ufeff", "a.b", "x" * 70,
)  # fmt: skip
conf_texts = st.one_of(st.text(max_size=400), _joined(st.one_of(CONF_PIECES, st.text(max_size=8)), 60))


def check_renewal_conf(text: str) -> None:
    try:
        conf = parse_renewal_conf(text, "/etc/letsencrypt/renewal/x.conf")
    except CertbotConfError as exc:
        message = str(exc)
    except Undeterminable as exc:  # over a size bound: not parsed at all
        message = str(exc)
        assert message.startswith("/etc/letsencrypt/renewal/x.conf: line ") and "bound" in message, message
        return
    else:
        message = ""
    if message:
        assert message.startswith("/etc/letsencrypt/renewal/x.conf: "), message
        return

    def is_value(v: object) -> bool:  # ConfigObj's string, or its list for a comma-separated value
        return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))

    assert all(isinstance(k, str) and is_value(v) for k, v in conf.top.items())
    assert all(is_value(v) for section in conf.sections.values() for v in section.values())
    assert conf.renew_before_expiry is None or isinstance(conf.renew_before_expiry, str)
    assert conf.renew_hook is None or isinstance(conf.renew_hook, str)


KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
PLAIN_VALUES = st.from_regex(r"[A-Za-z0-9_./:@ -]{0,30}", fullmatch=True).map(str.strip)


@st.composite
def written_confs(draw: st.DrawFn) -> tuple[str, dict[str, str], dict[str, str]]:
    """A conf as certbot writes it: top-level `key = value` lines, then [renewalparams]."""
    top = draw(st.dictionaries(KEYS, PLAIN_VALUES, max_size=8))
    params = draw(st.dictionaries(KEYS, PLAIN_VALUES, max_size=8))
    lines = [f"{k} = {v}" for k, v in top.items()] + ["", "# Options used in the renewal process", "[renewalparams]"]
    lines += [f"{k} = {v}" for k, v in params.items()]
    return "\n".join(lines) + "\n", top, params


def check_written_conf(case: tuple[str, dict[str, str], dict[str, str]]) -> None:
    text, top, params = case
    conf = parse_renewal_conf(text, "x.conf")
    assert conf.top == top and conf.sections == {"renewalparams": params}


# --- renew_before_expiry (parsedatetime's interval syntax) ---------------------------------------------
INTERVAL_PIECES = _pick(
    "30", "1", "0", "-", " ", "days", "day", "d", "weeks", "w", "months", "mth", "years", "y", "hours", "h", "minutes",
    "m", "seconds", "s", "one", "twenty", "a", "an", ".5", "99999999999999999999", "1e9", "ago", ",", "and",
)  # fmt: skip
interval_texts = st.one_of(st.text(max_size=60), _joined(INTERVAL_PIECES, 12, " "), _joined(INTERVAL_PIECES, 12))
moments = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(UTC))


def check_interval(case: tuple[str, dt.datetime]) -> None:
    text, now = case
    interval = parse_interval(text, now)
    assert interval is None or isinstance(interval, dt.timedelta)


def check_bare_number_is_days(days: int) -> None:
    assert parse_interval(str(days), NOW) == dt.timedelta(days=days)


# --- crontabs -----------------------------------------------------------------------------------------
CRON_PIECES = _pick(
    "*", "*/12", "0", "59", "60", "1-5", "5-1", ",", "/", "jan", "mon", "@daily", "@reboot", "@bogus", " ", "\t", "\n",
    "\r\n", "#", "root", "certbot", "renew", "-q", "--dry-run", "certbot -q renew", "&&", "||", ";", "|", "%", "\\%",
    "test -x /usr/bin/certbot -a \\! -d /run/systemd/system", "[ -d /run/systemd/system ]", "sh -c '", "'", '"',
    "SHELL=/bin/sh", "MAILTO=", "sudo", "env", "$(", ")", "`", "<<EOF", "EOF",
)  # fmt: skip
crontab_texts = st.one_of(st.text(max_size=300), _joined(st.one_of(CRON_PIECES, st.text(max_size=5)), 60, " "))


def check_crontab(case: tuple[str, bool]) -> None:
    text, system = case
    entries = parse_crontab(text, "/etc/cron.d/x" if system else "/var/spool/cron/crontabs/root", system=system)
    lines = text.split("\n")
    for entry in entries:
        assert 1 <= entry.line_number <= len(lines)
        assert entry.command.strip() and (entry.user is not None)
        assert isinstance(runs_certbot_renew(entry), bool)
        assert isinstance(skipped_under_systemd(entry), bool)
        assert isinstance(cron_command(entry.command), str)


def check_cron_file_name(name: str) -> None:
    assert isinstance(cron_d_file_is_read(name), bool)
    try:
        parse_crontab("", "/var/spool/cron/crontabs/" + name, system=False)
    except CronError:
        assert name == "" or name.endswith("/")


# Valid values for each of cron's five time fields (minute, hour, day of month, month, day of week).
FIELDS = (
    ("*", "0", "*/12", "5"),
    ("*", "0", "*/12", "3"),
    ("*", "1", "1-5"),
    ("*", "1", "jan", "1-12/2"),
    ("*", "mon", "1-5", "7"),
)


@st.composite
def renewing_lines(draw: st.DrawFn) -> str:
    """A system crontab line cron runs, whose command runs `certbot renew` after an innocuous prefix."""
    fields = [draw(st.sampled_from(choices)) for choices in FIELDS]
    prefix = draw(st.sampled_from(["", "sleep 5 && ", "cd / ; ", "sudo ", "env LANG=C ", "/usr/bin/"]))
    options = draw(st.sampled_from(["", " -q", " --no-random-sleep-on-renew", " -q --deploy-hook x"]))
    return " ".join(fields) + f" root {prefix}certbot renew{options}"


def check_renewing_line(line: str) -> None:
    (entry,) = parse_crontab(line + "\n", "/etc/cron.d/certbot-renew", system=True)
    assert runs_certbot_renew(entry), line


# --- PEM bundles (certificate files) ---------------------------------------------------------------------
_ISSUED = pki.issue("stemedb.example.com", days_left=60)
_OTHER = pki.issue("other.example.com", days_left=10, ca_name="custom")
_LEAF_DER = _ISSUED.certificate.public_bytes(serialization.Encoding.DER)
PEM_PIECES = _pick(
    BAD_NAME_PEM, _ISSUED.cert_pem, _ISSUED.chain_pem, _OTHER.cert_pem, _ISSUED.key_pem, _LEAF_DER,
    b"-----BEGIN CERTIFICATE-----\n", b"-----END CERTIFICATE-----\n", b"-----BEGIN X509 CRL-----\n",
    b"-----END X509 CRL-----\n", b"-----BEGIN EC PRIVATE KEY-----\n", b"MIIB\n", b"\n", b"\r\n", b"\x00", b"\xff\xfe",
    b"Bag Attributes\n", b"0\x82", b"0\x81\x05", b"-----BEGIN ", b"-----",
)  # fmt: skip


@st.composite
def pem_files(draw: st.DrawFn) -> bytes:
    data = b"".join(draw(st.lists(st.one_of(PEM_PIECES, st.binary(max_size=40)), max_size=8)))
    for _ in range(draw(st.integers(0, 3))):  # truncate, flip a byte, or cut out a range
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["truncate", "flip", "cut"]))
        if how == "truncate":
            data = data[:at]
        elif how == "flip":
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        else:
            data = data[:at] + data[at + draw(st.integers(1, 64)) :]
    return data


pem_data = st.one_of(st.binary(max_size=600), pem_files())


def check_pem_bundle(data: bytes) -> None:
    try:
        chain = load_pem_certificates(data, "/etc/stemedb/tls/cert.pem")
    except CertificateError as exc:
        message = str(exc)
        assert message.startswith("/etc/stemedb/tls/cert.pem: "), message
        # Never the file's bytes in a message: they could be a private key.
        assert b"MIIB" not in message.encode() and _ISSUED.key_pem[40:80].decode() not in message
        return
    assert chain and all(isinstance(c, cx509.Certificate) for c in chain)
    for certificate in chain:
        assert len(fingerprint_sha256(certificate)) == 64
        assert set(summary(certificate)) >= {"subject", "not_after", "sha256"}


# --- unit state (systemctl show) ------------------------------------------------------------------------
TIME_PIECES = _pick(
    "@", "@1700000000", "@1e400", "@-1e20", "@nan", "@inf", "@1700000000.5", "n/a", "0", "", " ",
    "Sat 2026-11-28 21:52:40 UTC", "2026-11-28", "25:61:61", "Sat", "UTC", "9999-12-31 23:59:59", "0000-00-00 00:00:00",
)  # fmt: skip
time_texts = st.one_of(st.text(max_size=40), _joined(TIME_PIECES, 4), _joined(TIME_PIECES, 4, " "))


def check_systemd_time(text: str) -> None:
    moment = parse_systemd_time(text)
    assert moment is None or (isinstance(moment, dt.datetime) and moment.tzinfo is not None)


UNIT_NAMES = ["certbot.timer", "certbot.service", "cron.service", "stemedb-api.service"]
SHOW_PIECES = _pick(
    "Id=certbot.timer", "LoadState=loaded", "LoadState=masked", "ActiveState=active", "UnitFileState=enabled",
    "NextElapseUSecRealtime=", "NextElapseUSecRealtime=@1700000000", "NextElapseUSecRealtime=@1e400",
    "NextElapseUSecRealtime=Sat 2026-11-28 21:52:40 UTC", "LastTriggerUSec=n/a", "=", "==", "\n", "\n\n", "\n\n\n",
    "SubState=waiting", "Result=success", "ActiveState=", "no equals sign",
)  # fmt: skip
show_outputs = st.one_of(st.binary(max_size=300), _joined(st.one_of(SHOW_PIECES, st.text(max_size=6)), 40, "\n").map(str.encode))


def _fake_run_command(stdout: bytes) -> Callable[..., tuple[int, bytes, bytes]]:
    def run_command(argv: list[str], timeout: float, env: Any = None, on_stdout: Any = None) -> tuple[int, bytes, bytes]:
        return 0, stdout, b""

    return run_command


def _facts_with_units(units: dict[str, Any]) -> HostFacts:
    document = {"time": NOW.timestamp(), "systemd": True, "files": {}, "listings": {}, "units": units, "processes": []}
    return facts_from_probe("host", document, NOW.timestamp(), None)


def check_unit_state(stdout: bytes) -> None:
    """Whatever `systemctl show` prints, the probe turns it into text properties, and the schedule
    judgement reads them without raising."""
    with mock.patch.object(remote_probe, "run_command", _fake_run_command(stdout)):
        units = remote_probe.units(UNIT_NAMES)
    assert set(units) <= set(UNIT_NAMES)
    assert all(isinstance(k, str) and isinstance(v, str) for props in units.values() for k, v in props.items())
    facts = _facts_with_units(units)
    assert isinstance(timer_schedule(facts).effective, bool)
    assert isinstance(cron_schedule(facts).effective, bool)


# --- deploy hooks (shell) ----------------------------------------------------------------------------------
SHELL_PIECES = _pick(
    "systemctl", "reload", "restart", "stemedb-api", "stemedb-api.service", "--user", "-H", "host", "sudo", "-u", "env",
    "sh", "-c", "'", '"', "\\", "\n", ";", "&&", "||", "|", "&", "(", ")", "{", "}", "#", "$", "$(", "`", "${X}", "X=",
    "<<EOF", "<<-'EOF'", "EOF", "\t", "echo", "service", "kill", "-HUP", "flock", "timeout", "5", "nice", "exec",
)  # fmt: skip
scripts = st.one_of(st.text(max_size=300), _joined(st.one_of(SHELL_PIECES, st.text(max_size=4)), 60, " "))


def check_hook(script: str) -> None:
    line = reloads_service(script, "stemedb-api")
    assert line is None or isinstance(line, str)
    for command in shell_commands(script):
        assert all(isinstance(w, str) for w in command.words) and command.first_line <= command.last_line


WORDS = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True).filter(lambda w: w not in ("systemctl", "service"))


@st.composite
def reloading_scripts(draw: st.DrawFn) -> str:
    """Plain commands (no quotes, no here-documents), then a line that reloads the service."""
    commands = draw(st.lists(st.lists(WORDS, min_size=1, max_size=4).map(" ".join), max_size=5))
    joiner = draw(st.sampled_from(["\n", " ; ", " && ", "\n# a comment\n"]))
    reload_line = draw(st.sampled_from(["systemctl reload stemedb-api", "/bin/systemctl try-restart stemedb-api.service"]))
    return joiner.join([*commands, reload_line]) + "\n"


def check_reloading_script(script: str) -> None:
    line = reloads_service(script, "stemedb-api")
    assert line is not None and "stemedb-api" in line, script


# --- the probe's own answer (a host controls the python3 that prints it) --------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
SECTIONS = ("time", "systemd", "files", "listings", "units", "accounts", "public_keys", "processes")


@st.composite
def probe_documents(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(json_values)
    return {name: draw(json_values) for name in SECTIONS if draw(st.booleans())}


def check_probe_document(document: Any) -> None:
    """facts_from_probe types the answer or raises KeyError/TypeError/ValueError (which the prober
    reports as a malformed answer): nothing else."""
    try:
        facts_from_probe("host", document, NOW.timestamp(), None)
    except (KeyError, TypeError, ValueError):
        return


# --- the service's /metrics page (Prometheus text format) -------------------------------------------------
METRIC_PIECES = _pick(
    "stemedb_tls_cert_expiry_seconds", "up", "a:b_c", "{", "}", 'domain="stemedb.example.com"', 'a="\\n\\"\\\\"', ",",
    "=", '"', " ", "\t", "1", "-1.5e3", "NaN", "+Inf", "-inf", "0x10", "1_000", "1700000000000", "# HELP x y", "# TYPE x gauge",
    "#", "\n", "\r\n", "\\", "ünï",
)  # fmt: skip
metric_pages = st.one_of(st.text(max_size=300), _joined(st.one_of(METRIC_PIECES, st.text(max_size=4)), 50))
LABEL_VALUES = st.from_regex(r"[A-Za-z0-9 ._:/-]{0,20}", fullmatch=True)


def check_metrics_page(text: str) -> None:
    try:
        samples = parse_metrics(text)
    except MetricsError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert message.startswith(("line ", "over ")), message
        return
    lines = text.split("\n")
    assert all(1 <= s.line <= len(lines) and isinstance(s.value, float) for s in samples)


@st.composite
def metric_samples(draw: st.DrawFn) -> tuple[str, list[tuple[str, str, float]]]:
    """A page as an exporter writes it: HELP and TYPE lines, then one sample per series."""
    series = draw(st.lists(st.tuples(st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True), LABEL_VALUES,
                                     st.floats(allow_nan=False, allow_infinity=False, width=32)), max_size=8))  # fmt: skip
    lines = ["# HELP demo a page", "# TYPE demo gauge"]
    lines += [f'{name}{{domain="{label}"}} {value!r}' for name, label, value in series]
    return "\n".join(lines) + "\n", series


def check_metric_samples(case: tuple[str, list[tuple[str, str, float]]]) -> None:
    text, series = case
    parsed = [(s.name, s.label("domain"), s.value) for s in parse_metrics(text)]
    assert parsed == [(name, label, float(value)) for name, label, value in series]


# --- Prometheus config and alert rule files --------------------------------------------------------------
RULE_PIECES = _pick(
    "groups:", "rule_files:", "- ", "  ", "rules:", "alert: CertificateExpiringSoon", "expr: x < 7 * 86400", "for: 1h",
    "name: g", "\n", ": ", "[", "]", "{", "}", "- '*.yml'", "&a", "*a", "!!python/object:os.system", "---", "...", "'", '"',
)  # fmt: skip
rule_texts = st.one_of(
    st.text(max_size=300),
    _joined(st.one_of(RULE_PIECES, st.text(max_size=4)), 40),
    json_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.fixed_dictionaries({"groups": json_values}).map(yaml.safe_dump),
    st.fixed_dictionaries({"groups": st.lists(st.fixed_dictionaries({"rules": json_values}), max_size=3)}).map(yaml.safe_dump),
)


def check_rule_file(text: str) -> None:
    for parse in (alert_rules, config_rule_files):
        message = ""
        try:
            parse(text, "/etc/prometheus/rules/x.yml")
        except RulesError as exc:
            message = str(exc)
        assert not message or message.startswith("/etc/prometheus/rules/x.yml"), message


THRESHOLD_PIECES = _pick(
    "stemedb_tls_cert_expiry_seconds", "{", "}", "<", "<=", " ", "7", "*", "86400", "/", "0", "(", ")", "**", "9" * 40, "-",
    "1e308", "and", "x",
)  # fmt: skip


def check_threshold(expr: str) -> None:
    threshold = static_threshold(expr)
    assert threshold is None or isinstance(threshold, float)


# --- what the renewal drill reads back: certbot's console and the unit's journal ---------------------------
CERTBOT_PIECES = _pick(
    "Running deploy-hook command: /etc/letsencrypt/renewal-hooks/deploy/reload-stemedb.sh",
    "Hook 'deploy-hook' for x reported error code 1", "Hook 'deploy-hook' for x ran with error output:", " stderr line",
    "\n", " ", "Congratulations", "error", "'",
)  # fmt: skip
JOURNAL_ENTRIES = st.dictionaries(
    st.sampled_from(["__REALTIME_TIMESTAMP", "MESSAGE", "UNIT", "_SYSTEMD_UNIT", "JOB_TYPE", "JOB_RESULT"]),
    st.one_of(
        json_values,
        st.sampled_from(["stemedb-api.service", "reload", "done", "99999999999999999999999", "-1", "1700000000000000"]),
        st.lists(st.integers(-5, 300), max_size=8),
    ),
)
journal_texts = st.one_of(st.text(max_size=200), st.lists(JOURNAL_ENTRIES.map(json.dumps), max_size=6).map("\n".join))


def check_drill_output(case: tuple[str, str]) -> None:
    certbot_text, journal_text = case
    report = parse_certbot_output(certbot_text)
    assert all(isinstance(h, str) for h in (*report.hooks_run, *report.hook_errors))
    journal = parse_journal(journal_text, "stemedb-api.service")
    assert isinstance(journal.reloaded, bool)


TARGETS: list[Target] = [
    Target("renewal conf", conf_texts, check_renewal_conf),
    Target("renewal conf as certbot writes it", written_confs(), check_written_conf),
    Target("renew_before_expiry interval", st.tuples(interval_texts, moments), check_interval),
    Target("renew_before_expiry bare number", st.integers(0, 36500), check_bare_number_is_days),
    Target("crontab", st.tuples(crontab_texts, st.booleans()), check_crontab),
    Target("crontab file name", st.text(max_size=20), check_cron_file_name),
    Target("crontab certbot renew line", renewing_lines(), check_renewing_line),
    Target("PEM bundle", pem_data, check_pem_bundle),
    Target("systemd timestamp", time_texts, check_systemd_time),
    Target("systemctl show output", show_outputs, check_unit_state),
    Target("deploy hook", scripts, check_hook),
    Target("deploy hook that reloads", reloading_scripts(), check_reloading_script),
    Target("probe answer", probe_documents(), check_probe_document),
    Target("metrics page", metric_pages, check_metrics_page),
    Target("metrics page as an exporter writes it", metric_samples(), check_metric_samples),
    Target("Prometheus config and rule file", rule_texts, check_rule_file),
    Target("alert threshold expression", st.one_of(st.text(max_size=80), _joined(THRESHOLD_PIECES, 12)), check_threshold),
    Target(
        "renewal drill output",
        st.tuples(st.one_of(st.text(max_size=200), _joined(CERTBOT_PIECES, 12, "\n")), journal_texts),
        check_drill_output,
    ),
]


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_parser_property(target: Target) -> None:
    SETTINGS(given(target.strategy)(target.check))()


def test_a_name_cryptography_warns_about_is_shown_not_raised() -> None:
    """A 24-letter country: cryptography warns on reading the name; under the suite's (and the
    audit's) filterwarnings=error that was an exception out of summary()."""
    (certificate,) = load_pem_certificates(BAD_NAME_PEM, "/etc/stemedb/tls/cert.pem")
    assert summary(certificate)["subject"] == "unparsable (Attribute's length must be >= 2 and <= 2, but it was 24)"
