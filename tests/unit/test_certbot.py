"""certaudit.host.certbot and .shell: renewal conf, interval, deploy hooks and reload detection, as certbot does them."""

from __future__ import annotations

import datetime as dt

import pytest

from certaudit.errors import Undeterminable
from certaudit.host.certbot.conf import (
    MAX_CONF_BYTES,
    MAX_LINE_CHARS,
    MAX_SECTION_LINE_CHARS,
    CertbotConfError,
    parse_renewal_conf,
)
from certaudit.host.certbot.hooks import HookFile, certbot_runs_hook, reason_certbot_skips, reloads_service
from certaudit.host.certbot.interval import parse_interval
from certaudit.host.shell import ShellCommand, shell_commands, unwrap_command

# What certbot 2.x writes for `certbot --nginx -d example.com` (storage.write_renewal_config).
DEFAULT_CONF = """\
# renew_before_expiry = 30 days
version = 2.9.0
archive_dir = /etc/letsencrypt/archive/example.com
cert = /etc/letsencrypt/live/example.com/cert.pem
privkey = /etc/letsencrypt/live/example.com/privkey.pem
chain = /etc/letsencrypt/live/example.com/chain.pem
fullchain = /etc/letsencrypt/live/example.com/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 7c4f1a2b3d5e6f708192a3b4c5d6e7f8
authenticator = nginx
installer = nginx
server = https://acme-v02.api.letsencrypt.org/directory
key_type = ecdsa
"""

WEBROOT_CONF = """\
renew_before_expiry = 30 days
version = 1.21.0
cert = /etc/letsencrypt/live/example.com/cert.pem

[renewalparams]
authenticator = webroot
webroot_path = /var/www/html,
server = https://acme-v02.api.letsencrypt.org/directory
renew_hook = systemctl reload stemedb-api
[[webroot_map]]
example.com = /var/www/html
www.example.com = /var/www/html
"""

NOW = dt.datetime(2024, 1, 31, 12, 0, tzinfo=dt.UTC)


# --- renewal conf ---------------------------------------------------------------------------


def test_default_conf_top_level_values() -> None:
    conf = parse_renewal_conf(DEFAULT_CONF, "/etc/letsencrypt/renewal/example.com.conf")
    assert conf.top == {
        "version": "2.9.0",
        "archive_dir": "/etc/letsencrypt/archive/example.com",
        "cert": "/etc/letsencrypt/live/example.com/cert.pem",
        "privkey": "/etc/letsencrypt/live/example.com/privkey.pem",
        "chain": "/etc/letsencrypt/live/example.com/chain.pem",
        "fullchain": "/etc/letsencrypt/live/example.com/fullchain.pem",
    }
    assert conf.version == "2.9.0"
    assert conf.archive_dir == "/etc/letsencrypt/archive/example.com"
    assert conf.cert == "/etc/letsencrypt/live/example.com/cert.pem"
    assert conf.privkey == "/etc/letsencrypt/live/example.com/privkey.pem"
    assert conf.chain == "/etc/letsencrypt/live/example.com/chain.pem"
    assert conf.fullchain == "/etc/letsencrypt/live/example.com/fullchain.pem"


def test_default_conf_commented_renew_before_expiry_does_not_count() -> None:
    assert parse_renewal_conf(DEFAULT_CONF).renew_before_expiry is None


def test_default_conf_renewalparams() -> None:
    conf = parse_renewal_conf(DEFAULT_CONF)
    assert conf.sections == {
        "renewalparams": {
            "account": "7c4f1a2b3d5e6f708192a3b4c5d6e7f8",
            "authenticator": "nginx",
            "installer": "nginx",
            "server": "https://acme-v02.api.letsencrypt.org/directory",
            "key_type": "ecdsa",
        }
    }
    assert conf.authenticator == "nginx"
    assert conf.server == "https://acme-v02.api.letsencrypt.org/directory"
    assert conf.renew_hook is None
    assert conf.autorenew is None


def test_renew_before_expiry_set_at_top_level() -> None:
    conf = parse_renewal_conf("renew_before_expiry = 30 days\n" + DEFAULT_CONF)
    assert conf.renew_before_expiry == "30 days"


def test_renew_before_expiry_inside_renewalparams_is_not_top_level() -> None:
    conf = parse_renewal_conf(DEFAULT_CONF + "renew_before_expiry = 45 days\n")
    assert conf.renew_before_expiry is None
    assert conf.sections["renewalparams"]["renew_before_expiry"] == "45 days"


def test_server_at_top_level_is_ignored_like_certbot() -> None:
    conf = parse_renewal_conf("server = https://top.example/directory\n[renewalparams]\nauthenticator = nginx\n")
    assert conf.server is None
    assert conf.top["server"] == "https://top.example/directory"


def test_deploy_hook_is_stored_as_renew_hook_in_renewalparams() -> None:
    conf = parse_renewal_conf(WEBROOT_CONF)
    assert conf.renew_hook == "systemctl reload stemedb-api"
    assert conf.renew_before_expiry == "30 days"


def test_webroot_map_subsection_and_list_value() -> None:
    conf = parse_renewal_conf(WEBROOT_CONF)
    assert conf.sections["renewalparams.webroot_map"] == {
        "example.com": "/var/www/html",
        "www.example.com": "/var/www/html",
    }
    # ConfigObj reads a trailing comma as a list of one (the old hand parser kept "/var/www/html,")
    assert conf.sections["renewalparams"]["webroot_path"] == ["/var/www/html"]


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("renew_hook = \"systemctl reload a && echo 'x'\"", "systemctl reload a && echo 'x'"),
        ("renew_hook = 'systemctl reload a # not a comment'", "systemctl reload a # not a comment"),
        ("renew_hook = systemctl reload a # a comment", "systemctl reload a"),
        ("renew_hook = a=b=c", "a=b=c"),
        ("renew_hook =", ""),
        ("   renew_hook   =   spaced out   ", "spaced out"),
        ("renew_hook = '''both ' and \" quotes'''", "both ' and \" quotes"),
        ('"renew_hook" = quoted key', "quoted key"),
    ],
)
def test_values_are_read_as_configobj_reads_them(line: str, value: str) -> None:
    conf = parse_renewal_conf(f"[renewalparams]\n{line}\n")
    assert conf.renew_hook == value


def test_multiline_triple_quoted_value() -> None:
    conf = parse_renewal_conf("[renewalparams]\nrenew_hook = '''first\nsecond''' # done\nx = 1\n")
    assert conf.renew_hook == "first\nsecond"
    assert conf.sections["renewalparams"]["x"] == "1"


def test_bom_and_crlf_are_accepted() -> None:
    conf = parse_renewal_conf("\ufeffrenew_before_expiry = 30 days\r\n[renewalparams]\r\nauthenticator = nginx\r\n")
    assert conf.renew_before_expiry == "30 days"
    assert conf.authenticator == "nginx"


def test_autorenew_false_is_reported_as_written() -> None:
    assert parse_renewal_conf("[renewalparams]\nautorenew = False\n").autorenew == "False"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cert = /x\nthis line is junk\n", "/etc/r.conf: line 2: neither `key = value`, a [section] nor a comment"),
        ("= value\n", "/etc/r.conf: line 1: neither `key = value`, a [section] nor a comment"),
        # ConfigObj finds no section in an unclosed or empty header: it is an invalid line to it
        ("[renewalparams\n", "/etc/r.conf: line 1: neither `key = value`, a [section] nor a comment"),
        ("[[renewalparams]\n", "/etc/r.conf: line 1: malformed section header"),
        ("[]\n", "/etc/r.conf: line 1: neither `key = value`, a [section] nor a comment"),
        ("[[webroot_map]]\n", "/etc/r.conf: line 1: section [webroot_map] is nested too deep"),
        ("cert = a\ncert = b\n", "/etc/r.conf: line 2: duplicate key 'cert'"),
        ("[a]\n[a]\n", "/etc/r.conf: line 2: duplicate section [a]"),
        (
            "key = 'unterminated\n",
            "/etc/r.conf: line 1: unparseable value of 'key' (an unterminated quote, or text after a quoted value)",
        ),
        (
            "key = 'a' b\n",
            "/etc/r.conf: line 1: unparseable value of 'key' (an unterminated quote, or text after a quoted value)",
        ),
        ("key = '''never closed\nmore\n", "/etc/r.conf: line 1: unterminated triple-quoted value of 'key'"),
    ],
)
def test_lines_configobj_rejects_raise_naming_path_and_line(text: str, message: str) -> None:
    with pytest.raises(CertbotConfError) as info:
        parse_renewal_conf(text, "/etc/r.conf")
    assert str(info.value) == message
    assert info.value.path == "/etc/r.conf"


def test_error_without_path_names_only_the_cause() -> None:
    with pytest.raises(CertbotConfError) as info:
        parse_renewal_conf("junk\n")
    assert str(info.value) == "line 1: neither `key = value`, a [section] nor a comment"


def test_error_does_not_quote_the_line() -> None:
    with pytest.raises(CertbotConfError) as info:
        parse_renewal_conf("eab_hmac_key secret-material\n", "/r.conf")
    assert "secret-material" not in str(info.value)


def test_lines_are_split_as_configobj_reads_a_file() -> None:
    """certbot hands ConfigObj a path, which reads `readlines()` of the bytes: only \\n ends a line."""
    conf = parse_renewal_conf("a = 1\rb = 2\nc = 3\x0cd\n")
    assert conf.top == {"a": "1\rb = 2", "c": "3\x0cd"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "renew_before_expiry = 30 days, 2 weeks\n",
            "renew_before_expiry is a list of 2 values (a comma), where certbot reads one",
        ),
        ("cert = /a,\n", "cert is a list of 1 values (a comma), where certbot reads one"),
        ("[renew_before_expiry]\n", "renew_before_expiry is a section, where certbot reads one value"),
        (
            "[renewalparams]\nrenew_hook = systemctl reload a, echo b\n",
            "[renewalparams] renew_hook is a list of 2 values (a comma), where certbot reads one",
        ),
        ("[renewalparams]\n[[autorenew]]\n", "[renewalparams] autorenew is a section, where certbot reads one value"),
    ],
)
def test_a_list_or_section_where_certbot_reads_one_string_is_refused(text: str, message: str) -> None:
    with pytest.raises(CertbotConfError) as info:
        parse_renewal_conf(text, "/etc/r.conf")
    assert str(info.value) == "/etc/r.conf: " + message


@pytest.mark.parametrize(
    ("text", "top"),
    [
        # found by the differential run against the old hand parser, which rejected or split these
        ("[= x\n", {"[": "x"}),  # a key may be `[`: the line is no section to ConfigObj
        ("a = 1\x1eb = 2\n", {"a": "1\x1eb = 2"}),  # str.splitlines() broke lines at \x1e, \x85, \u2028...
    ],
)
def test_lines_configobj_reads_that_the_old_parser_did_not(text: str, top: dict[str, str]) -> None:
    assert parse_renewal_conf(text).top == top


def test_a_value_starting_with_a_comma_is_rejected() -> None:
    with pytest.raises(CertbotConfError, match=r"^/r\.conf: line 1: unparseable value of 'key'"):
        parse_renewal_conf("key = ,x\n", "/r.conf")


def test_a_quoted_comma_is_one_value() -> None:
    assert parse_renewal_conf('renew_before_expiry = "30 days, 2 weeks"\n').renew_before_expiry == "30 days, 2 weeks"


def test_bytes_that_are_not_utf8_are_what_certbots_configobj_cannot_decode() -> None:
    with pytest.raises(CertbotConfError) as info:
        parse_renewal_conf(b"cert = \xff\n", "/etc/r.conf")
    assert str(info.value) == "/etc/r.conf: not UTF-8 (byte 7 of a line): certbot's ConfigObj cannot decode it"
    assert parse_renewal_conf(b"\xef\xbb\xbfcert = /\xc3\xa9\n").cert == "/\u00e9"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("#" * (MAX_CONF_BYTES + 1), f"/r.conf: {MAX_CONF_BYTES + 1} bytes, over certaudit's {MAX_CONF_BYTES}-byte bound"),
        ("a = 1\n" + "[" * 20_000 + "\n", f"/r.conf: line 2 is over certaudit's {MAX_SECTION_LINE_CHARS}-character bound"),
        ("k = " + " " * MAX_LINE_CHARS + "v\n", f"/r.conf: line 1 is over certaudit's {MAX_LINE_CHARS}-character bound"),
    ],
)
def test_a_conf_over_the_bounds_is_not_parsed_and_not_a_finding(text: str, message: str) -> None:
    """ConfigObj takes minutes over a 64 KiB run of `[` (its section pattern is cubic in it): such a
    conf is not read at all, which is an error, not "certbot cannot read it"."""
    with pytest.raises(Undeterminable) as info:
        parse_renewal_conf(text, "/r.conf")
    assert str(info.value).startswith(message)


def test_the_worst_conf_within_the_bounds_is_parsed() -> None:
    worst = ("[" * (MAX_SECTION_LINE_CHARS - 1) + "\n") * (MAX_CONF_BYTES // MAX_SECTION_LINE_CHARS)
    with pytest.raises(CertbotConfError, match="line 1: neither"):
        parse_renewal_conf(worst)


# --- renew_before_expiry ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30", dt.timedelta(days=30)),
        (" 30 ", dt.timedelta(days=30)),
        ("30 days", dt.timedelta(days=30)),
        ("30 day", dt.timedelta(days=30)),
        ("30d", dt.timedelta(days=30)),
        ("30 dy", dt.timedelta(days=30)),
        ("30 DAYS", dt.timedelta(days=30)),
        ("4 weeks", dt.timedelta(days=28)),
        ("4 wk", dt.timedelta(days=28)),
        ("4w", dt.timedelta(days=28)),
        ("720 hours", dt.timedelta(hours=720)),
        ("720 hr", dt.timedelta(hours=720)),
        ("720h", dt.timedelta(hours=720)),
        ("90 minutes", dt.timedelta(minutes=90)),
        ("90 mins", dt.timedelta(minutes=90)),
        ("90 min", dt.timedelta(minutes=90)),
        ("90 m", dt.timedelta(minutes=90)),
        ("90 M", dt.timedelta(minutes=90)),
        ("3600 seconds", dt.timedelta(seconds=3600)),
        ("3600 secs", dt.timedelta(seconds=3600)),
        ("3600 s", dt.timedelta(seconds=3600)),
        ("1 week 2 days", dt.timedelta(days=9)),
        ("1 week, 2 days", dt.timedelta(days=9)),
        ("1 week and 2 days", dt.timedelta(days=9)),
        ("3 days 12 hours", dt.timedelta(days=3, hours=12)),
        ("1.5 days", dt.timedelta(days=1, hours=12)),
        ("a week", dt.timedelta(days=7)),
        ("one day", dt.timedelta(days=1)),
        ("30 days garbage", dt.timedelta(days=30)),
        ("0", dt.timedelta(0)),
        ("0 days", dt.timedelta(0)),
        ("-5 days", dt.timedelta(days=-5)),
        ("1 week -2 days", dt.timedelta(days=5)),
    ],
)
def test_interval_fixed_units(text: str, expected: dt.timedelta) -> None:
    assert parse_interval(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        # calendar months from Jan 31: Feb has 29 days in 2024, so the day is clamped
        ("1 month", NOW, dt.timedelta(days=29)),
        ("1 mth", NOW, dt.timedelta(days=29)),
        ("1 Month", NOW, dt.timedelta(days=29)),
        ("2 months", NOW, dt.timedelta(days=60)),
        ("1 month", dt.datetime(2024, 3, 15, tzinfo=dt.UTC), dt.timedelta(days=31)),
        ("1 year", NOW, dt.timedelta(days=366)),
        ("1 yr", NOW, dt.timedelta(days=366)),
        ("1y", NOW, dt.timedelta(days=366)),
        ("1 year", dt.datetime(2024, 2, 29, tzinfo=dt.UTC), dt.timedelta(days=365)),
        # left to right: Jan 31 2023 + 1 month = Feb 28, + 1 year = Feb 28 2024
        ("1 month 1 year", dt.datetime(2023, 1, 31, tzinfo=dt.UTC), dt.timedelta(days=393)),
        # Jan 31 2023 + 1 year = Jan 31 2024, + 1 month = Feb 29 2024
        ("1 year 1 month", dt.datetime(2023, 1, 31, tzinfo=dt.UTC), dt.timedelta(days=394)),
        # a fraction of a month is that share of the target month's days
        ("0.5 months", dt.datetime(2024, 4, 1, tzinfo=dt.UTC), dt.timedelta(days=15)),
    ],
)
def test_interval_calendar_units(text: str, now: dt.datetime, expected: dt.timedelta) -> None:
    assert parse_interval(text, now) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "30 foo",
        "1 mo",
        "2 hrs",
        "2 wks",
        "3 yrs",
        "30, days",
        "30days2hours",
        "twelve days",
        "9999 years",
    ],
)
def test_interval_parsedatetime_cannot_read_is_none(text: str) -> None:
    assert parse_interval(text, NOW) is None


def test_interval_negative_number_word_counts_as_zero_like_parsedatetime() -> None:
    assert parse_interval("-one day", NOW) == dt.timedelta(0)


def test_interval_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_interval("30 days", dt.datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # parsedatetime's date words, which the old hand parser ignored: certbot counts them
        ("30 days ago", dt.timedelta(days=-30)),
        ("in 30 days", dt.timedelta(days=30)),
        ("tomorrow", dt.timedelta(hours=21)),  # tomorrow at 09:00, from 12:00
        ("2024-03-01", dt.timedelta(days=30)),  # a date, at now's time of day
        # found by the differential run against the old hand parser, which called these unparseable:
        ("1.5", dt.timedelta(days=340)),  # not all digits, so no " days": the next January 5
        ("5/1", dt.timedelta(days=91)),  # May 1
        ("0 a", dt.timedelta(hours=-12)),  # 0 am: midnight today
    ],
)
def test_interval_date_words_count_as_parsedatetime_counts_them(text: str, expected: dt.timedelta) -> None:
    assert parse_interval(text, NOW) == expected


def test_interval_parsedatetime_raises_on_is_none() -> None:
    """parsedatetime raises TypeError past datetime's range of months; certbot's renewal of the
    lineage then fails every time (found by the property test)."""
    assert parse_interval("240000000000000020MONTH", dt.datetime(2000, 1, 1, tzinfo=dt.UTC)) is None


def test_interval_is_whole_seconds_like_parsedatetime() -> None:
    """parsedatetime works on a struct_time: the interval does not lose now's microseconds."""
    assert parse_interval("30 days", NOW.replace(microsecond=999_999)) == dt.timedelta(days=30)


# --- deploy hooks -----------------------------------------------------------------------------


def _hook(name: str = "reload.sh", *, is_file: bool = True, mode: int | None = 0o755) -> HookFile:
    return HookFile(
        path=f"/etc/letsencrypt/renewal-hooks/deploy/{name}",
        name=name,
        is_file=is_file,
        mode=mode,
        uid=0,
        content="#!/bin/sh\nsystemctl reload stemedb-api\n",
    )


@pytest.mark.parametrize("mode", [0o755, 0o700, 0o744, 0o654, 0o645, 0o100, 0o010, 0o001, 0o100755])
def test_certbot_runs_an_executable_regular_file(mode: int) -> None:
    hook = _hook(mode=mode)
    assert reason_certbot_skips(hook) is None
    assert certbot_runs_hook(hook) is True


def test_certbot_skips_a_file_without_execute_bits() -> None:
    hook = _hook(mode=0o644)
    assert reason_certbot_skips(hook) == "not executable (mode 0644): certbot skips it"
    assert certbot_runs_hook(hook) is False


def test_certbot_skips_a_full_st_mode_without_execute_bits() -> None:
    assert reason_certbot_skips(_hook(mode=0o100600)) == "not executable (mode 0600): certbot skips it"


def test_certbot_skips_a_backup_name() -> None:
    hook = _hook("reload.sh~")
    assert reason_certbot_skips(hook) == "name ends with '~': certbot skips it"
    assert certbot_runs_hook(hook) is False


def test_certbot_skips_what_is_not_a_regular_file() -> None:
    hook = _hook("subdir", is_file=False, mode=0o755)
    assert reason_certbot_skips(hook) == "not a regular file"
    assert certbot_runs_hook(hook) is False


def test_not_a_regular_file_is_reported_before_mode_and_name() -> None:
    assert reason_certbot_skips(_hook("x~", is_file=False, mode=0o644)) == "not a regular file"


def test_unexecutable_is_reported_before_tilde() -> None:
    assert reason_certbot_skips(_hook("x~", mode=0o644)) == "not executable (mode 0644): certbot skips it"


def test_unknown_mode_is_not_assumed_runnable() -> None:
    hook = _hook(mode=None)
    assert reason_certbot_skips(hook) == "mode unknown: cannot tell whether certbot runs it"
    assert certbot_runs_hook(hook) is False


# --- reloads_service --------------------------------------------------------------------------

SERVICE = "stemedb-api"


@pytest.mark.parametrize(
    ("script", "line"),
    [
        ("systemctl reload stemedb-api", "systemctl reload stemedb-api"),
        ("systemctl restart stemedb-api.service", "systemctl restart stemedb-api.service"),
        ("systemctl reload-or-restart stemedb-api", "systemctl reload-or-restart stemedb-api"),
        ("systemctl try-restart stemedb-api", "systemctl try-restart stemedb-api"),
        ("systemctl try-reload-or-restart stemedb-api", "systemctl try-reload-or-restart stemedb-api"),
        ("systemctl condrestart stemedb-api", "systemctl condrestart stemedb-api"),
        ("systemctl force-reload stemedb-api", "systemctl force-reload stemedb-api"),
        ("systemctl --no-block -q reload stemedb-api", "systemctl --no-block -q reload stemedb-api"),
        ("systemctl reload --no-block stemedb-api", "systemctl reload --no-block stemedb-api"),
        ("systemctl --job-mode replace reload stemedb-api", "systemctl --job-mode replace reload stemedb-api"),
        ("systemctl reload nginx stemedb-api", "systemctl reload nginx stemedb-api"),
        ("/bin/systemctl reload stemedb-api", "/bin/systemctl reload stemedb-api"),
        ("/usr/bin/systemctl reload stemedb-api", "/usr/bin/systemctl reload stemedb-api"),
        ("sudo systemctl reload stemedb-api", "sudo systemctl reload stemedb-api"),
        ("sudo -n -u root systemctl reload stemedb-api", "sudo -n -u root systemctl reload stemedb-api"),
        ("service stemedb-api reload", "service stemedb-api reload"),
        ("service stemedb-api restart", "service stemedb-api restart"),
        ("service stemedb-api force-reload", "service stemedb-api force-reload"),
        ("/usr/sbin/service stemedb-api reload", "/usr/sbin/service stemedb-api reload"),
        ("nginx -t && systemctl reload stemedb-api", "nginx -t && systemctl reload stemedb-api"),
        ("true; systemctl reload stemedb-api", "true; systemctl reload stemedb-api"),
        ("false || systemctl reload stemedb-api", "false || systemctl reload stemedb-api"),
        ("systemctl reload stemedb-api || true", "systemctl reload stemedb-api || true"),
        ("systemctl reload stemedb-api >/dev/null 2>&1", "systemctl reload stemedb-api >/dev/null 2>&1"),
        ("systemctl reload stemedb-api # reload it", "systemctl reload stemedb-api # reload it"),
        ('systemctl reload "stemedb-api"', 'systemctl reload "stemedb-api"'),
        ("sh -c 'systemctl reload stemedb-api'", "sh -c 'systemctl reload stemedb-api'"),
        ("env LANG=C systemctl reload stemedb-api", "env LANG=C systemctl reload stemedb-api"),
        ("LANG=C systemctl reload stemedb-api", "LANG=C systemctl reload stemedb-api"),
    ],
)
def test_reload_commands_are_found(script: str, line: str) -> None:
    assert reloads_service(script, SERVICE) == line


def test_service_name_given_with_suffix_matches_unit_without() -> None:
    assert reloads_service("systemctl reload stemedb-api", "stemedb-api.service") == "systemctl reload stemedb-api"


def test_first_reloading_line_of_a_script_is_returned() -> None:
    script = (
        "#!/bin/sh\n"
        "# systemctl reload stemedb-api   (commented out)\n"
        "set -e\n"
        'echo "reloading $RENEWED_LINEAGE"\n'
        "systemctl reload stemedb-api\n"
        "systemctl restart stemedb-api\n"
    )
    assert reloads_service(script, SERVICE) == "systemctl reload stemedb-api"


def test_reload_inside_if_block() -> None:
    script = "if systemctl is-active --quiet stemedb-api; then\n    systemctl reload stemedb-api\nfi\n"
    assert reloads_service(script, SERVICE) == "systemctl reload stemedb-api"


def test_continuation_lines_are_joined() -> None:
    assert reloads_service("systemctl \\\n  reload \\\n  stemedb-api\n", SERVICE) == "systemctl reload stemedb-api"


def test_variable_set_earlier_in_the_script_is_expanded() -> None:
    script = 'SERVICE=stemedb-api\nsystemctl reload "$SERVICE"\n'
    assert reloads_service(script, SERVICE) == 'systemctl reload "$SERVICE"'


def test_variable_in_braces_is_expanded() -> None:
    assert reloads_service("UNIT=stemedb-api\nsystemctl reload ${UNIT}.service\n", SERVICE) == (
        "systemctl reload ${UNIT}.service"
    )


@pytest.mark.parametrize(
    "script",
    [
        "",
        "# systemctl reload stemedb-api",
        "   # systemctl reload stemedb-api",
        'echo "systemctl reload stemedb-api"',
        "echo systemctl reload stemedb-api",
        "logger 'systemctl restart stemedb-api'",
        "systemctl reload nginx",
        "systemctl reload stemedb-api-old",
        "systemctl reload old-stemedb-api",
        "systemctl reload stemedb-api.socket",
        "systemctl status stemedb-api",
        "systemctl start stemedb-api",
        "systemctl reload",
        "systemctl kill -s HUP stemedb-api",
        "kill -HUP $(cat /run/stemedb-api.pid)",
        "systemctl --user reload stemedb-api",
        "systemctl -H admin@other reload stemedb-api",
        "systemctl --machine=box reload stemedb-api",
        "service nginx reload",
        "service stemedb-api status",
        "systemctl reload $UNSET_VARIABLE",
        "cat <<EOF\nsystemctl reload stemedb-api\nEOF\n",
        "cat <<-'END'\n\tsystemctl reload stemedb-api\n\tEND\n",
        "true # systemctl reload stemedb-api",
        "systemctl reload nginx # stemedb-api is reloaded elsewhere",
        "echo 'a\nsystemctl reload stemedb-api\n'",
        "systemctl reload stemedb-api\r\n",  # a CRLF script: sh passes "stemedb-api\r" to systemctl
    ],
)
def test_nothing_reloads(script: str) -> None:
    assert reloads_service(script, SERVICE) is None


def test_heredoc_body_is_skipped_but_following_lines_are_read() -> None:
    script = "cat > /tmp/x <<EOF\nsystemctl reload nginx\nEOF\nservice stemedb-api reload\n"
    assert reloads_service(script, SERVICE) == "service stemedb-api reload"


# --- shell reading ----------------------------------------------------------------------------


def test_debian_cron_line_splits_into_three_commands() -> None:
    line = "test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl -e 'sleep int(rand(43200))' && certbot -q renew"
    assert shell_commands(line) == [
        ShellCommand(("test", "-x", "/usr/bin/certbot", "-a", "!", "-d", "/run/systemd/system"), "", 1, 1),
        ShellCommand(("perl", "-e", "sleep int(rand(43200))"), "&&", 1, 1),
        ShellCommand(("certbot", "-q", "renew"), "&&", 1, 1),
    ]


def test_connectors_and_lines() -> None:
    script = "a; b | c\nd &&\n  e || f & g\n"
    assert [(c.words, c.connector, c.first_line) for c in shell_commands(script)] == [
        (("a",), "", 1),
        (("b",), ";", 1),
        (("c",), "|", 1),
        (("d",), "\n", 2),
        (("e",), "&&", 3),
        (("f",), "||", 3),
        (("g",), "&", 3),
    ]


def test_command_substitution_is_one_word() -> None:
    assert shell_commands('kill -HUP "$(cat /run/x.pid; echo)"') == [
        ShellCommand(("kill", "-HUP", "$(cat /run/x.pid; echo)"), "", 1, 1)
    ]


@pytest.mark.parametrize(
    "garbage",
    ["'unterminated", '"unterminated', "$(unterminated", "`unterminated", "${x", "\\", "<<", "a >", "\x00\xff\x01"],
)
def test_shell_reading_never_raises(garbage: str) -> None:
    assert isinstance(shell_commands(garbage), list)
    assert reloads_service(garbage, SERVICE) is None


@pytest.mark.parametrize(
    ("words", "argv", "inner"),
    [
        (("sudo", "-u", "root", "certbot", "renew"), ["certbot", "renew"], None),
        (("env", "-i", "A=1", "certbot", "renew"), ["certbot", "renew"], None),
        (("nice", "-n", "10", "certbot", "renew"), ["certbot", "renew"], None),
        (("timeout", "-s", "KILL", "1h", "certbot", "renew"), ["certbot", "renew"], None),
        (("flock", "-n", "/run/lock/c", "certbot", "renew"), ["certbot", "renew"], None),
        (("flock", "/run/lock/c", "-c", "certbot renew"), [], "certbot renew"),
        (("/bin/bash", "-c", "certbot renew"), [], "certbot renew"),
        (("exec", "certbot", "renew"), ["certbot", "renew"], None),
        (("!", "test", "-d", "/x"), ["test", "-d", "/x"], None),
        (("A=1", "B=2"), [], None),
    ],
)
def test_unwrap_command(words: tuple[str, ...], argv: list[str], inner: str | None) -> None:
    assert unwrap_command(words) == (argv, inner)
