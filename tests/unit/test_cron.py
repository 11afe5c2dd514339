"""certaudit.host.cron: what Debian's cron reads and runs, and whether that renews certificates."""

from __future__ import annotations

import pytest

from certaudit.host.cron import (
    CronEntry,
    CronError,
    cron_command,
    cron_d_file_is_read,
    parse_crontab,
    runs_certbot_renew,
    skipped_under_systemd,
)

DEBIAN_COMMAND = "test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl -e 'sleep int(rand(43200))' && certbot -q renew"
DEBIAN_LINE = "0 */12 * * * root " + DEBIAN_COMMAND
# Debian's /etc/cron.d/certbot as the certbot package ships it.
DEBIAN_CRON_D = f"""\
# /etc/cron.d/certbot: crontab entries for the certbot package
#
# Upstream recommends attempting renewal twice a day
#
# Eventually, this will be an opportunity to validate certificates
# haven't been revoked, etc.  Renewal will only occur if expiration
# is within 30 days.
#
# Important Note!  This cronjob will NOT be executed if you are
# running systemd as your init system.  If you are running systemd,
# the cronjob.timer function takes precedence over this cronjob.  For
# more details, see the systemd.timer manpage, or use systemctl show
# certbot.timer.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin

{DEBIAN_LINE}
"""


def _entry(command: str) -> CronEntry:
    return CronEntry("/etc/cron.d/x", 1, "0 3 * * *", "root", command)


# --- parse_crontab ----------------------------------------------------------------------------


def test_debian_cron_d_certbot() -> None:
    entries = parse_crontab(DEBIAN_CRON_D, "/etc/cron.d/certbot", system=True)
    assert entries == [CronEntry("/etc/cron.d/certbot", 17, "0 */12 * * *", "root", DEBIAN_COMMAND)]
    assert entries[0].command.startswith("test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl")


def test_user_crontab_takes_the_user_from_the_file_name() -> None:
    text = "MAILTO=ops@example.com\n# renew\n17 3 * * 1-5 /usr/bin/certbot renew --quiet\n@daily  certbot renew\n"
    assert parse_crontab(text, "/var/spool/cron/crontabs/deploy", system=False) == [
        CronEntry("/var/spool/cron/crontabs/deploy", 3, "17 3 * * 1-5", "deploy", "/usr/bin/certbot renew --quiet"),
        CronEntry("/var/spool/cron/crontabs/deploy", 4, "@daily", "deploy", "certbot renew"),
    ]


def test_system_keyword_entry_has_a_user_field() -> None:
    assert parse_crontab("@reboot root certbot renew\n", "/etc/crontab", system=True) == [
        CronEntry("/etc/crontab", 1, "@reboot", "root", "certbot renew")
    ]


def test_blank_lines_comments_and_environment_are_skipped() -> None:
    text = '\n   \n\t# 0 * * * * root certbot renew\nSHELL=/bin/bash\nPATH = /usr/bin\n"QUOTED" = x\nX= 1\n'
    assert parse_crontab(text, "/etc/crontab", system=True) == []


def test_command_keeps_inner_whitespace_and_fields_may_be_tab_separated() -> None:
    [entry] = parse_crontab("*/5\t*\t*\t*\t*\troot\tcertbot  renew  -q", "/etc/crontab", system=True)
    assert (entry.schedule, entry.user, entry.command) == ("*/5 * * * *", "root", "certbot  renew  -q")


@pytest.mark.parametrize(
    "schedule",
    [
        "* * * * *",
        "0 0 1 1 0",
        "59 23 31 12 7",
        "0-59/5 */2 1,15 jan-jun mon-fri",
        "0 12 * JAN,Jul Sun",
        "5,10-20/5,30 * * * *",
        "0 0 * * 7",
    ],
)
def test_valid_time_fields_are_kept(schedule: str) -> None:
    [entry] = parse_crontab(f"{schedule} root certbot renew", "/etc/crontab", system=True)
    assert entry.schedule == schedule


@pytest.mark.parametrize("keyword", ["@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"])
def test_every_cron_keyword_is_kept(keyword: str) -> None:
    [entry] = parse_crontab(f"{keyword} root certbot renew", "/etc/crontab", system=True)
    assert entry.schedule == keyword


@pytest.mark.parametrize(
    "line",
    [
        "60 * * * * root certbot renew",  # minute out of range
        "* 24 * * * root certbot renew",  # hour out of range
        "* * 0 * * root certbot renew",  # day of month starts at 1
        "* * 32 * * root certbot renew",
        "* * * 13 * root certbot renew",
        "* * * * 8 root certbot renew",
        "*/0 * * * * root certbot renew",  # step 0
        "10-5 * * * * root certbot renew",  # reversed range
        "1,,2 * * * * root certbot renew",
        "x * * * * root certbot renew",
        "* * * january * root certbot renew",  # names are three letters
        "* * * * monday root certbot renew",
        "@Daily root certbot renew",  # keywords are case-sensitive
        "@every root certbot renew",
        "0 3 * * root certbot renew",  # four time fields
        "0 3 * * * root",  # no command
        "0 3 * * *",
    ],
)
def test_invalid_lines_are_skipped(line: str) -> None:
    assert parse_crontab(line, "/etc/crontab", system=True) == []


def test_a_sixth_star_is_read_as_the_user_field_as_cron_reads_it() -> None:
    assert parse_crontab("* * * * * * root certbot renew", "/etc/crontab", system=True) == [
        CronEntry("/etc/crontab", 1, "* * * * *", "*", "root certbot renew")
    ]


def test_only_valid_entries_are_returned_with_their_line_numbers() -> None:
    text = "0 3 * * * root certbot renew\n99 3 * * * root certbot renew\n@hourly root true\n"
    entries = parse_crontab(text, "/etc/cron.d/mix", system=True)
    assert [(e.line_number, e.command) for e in entries] == [(1, "certbot renew"), (3, "true")]


def test_crlf_keeps_carriage_return_in_the_command_as_cron_does() -> None:
    [entry] = parse_crontab("0 3 * * * root certbot renew\r\n", "/etc/crontab", system=True)
    assert entry.command == "certbot renew\r"
    assert runs_certbot_renew(entry) is False


@pytest.mark.parametrize(
    "text",
    [
        "\x00\x01\x02\xff\ufffd" * 1000,
        "* " * 100_000,
        "0 3 * * * root " + "x" * 1_000_000,
        "9" * 10_000 + " * * * * root x",
        "=" * 1000,
        "'unterminated = \"",
    ],
)
def test_garbage_never_raises(text: str) -> None:
    entries = parse_crontab(text, "/etc/cron.d/junk", system=True)
    assert all(isinstance(e, CronEntry) for e in entries)


def test_huge_command_line_is_kept_whole() -> None:
    [entry] = parse_crontab("0 3 * * * root " + "x" * 1_000_000, "/etc/crontab", system=True)
    assert len(entry.command) == 1_000_000


def test_user_crontab_path_must_name_the_user() -> None:
    with pytest.raises(CronError) as info:
        parse_crontab("@daily certbot renew", "/var/spool/cron/crontabs/", system=False)
    assert str(info.value) == "/var/spool/cron/crontabs/: a user crontab's path must end in the user's name"


# --- cron_d_file_is_read ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["certbot", "certbot-renew", "le_renew", "A1-b_2"])
def test_clean_cron_d_names_are_read(name: str) -> None:
    assert cron_d_file_is_read(name) is True


@pytest.mark.parametrize(
    "name", ["certbot.dpkg-old", "certbot.dpkg-dist", "foo~", "x.bak", ".hidden", "has space", "", "certbot.conf"]
)
def test_other_cron_d_names_are_ignored(name: str) -> None:
    assert cron_d_file_is_read(name) is False


# --- cron_command and runs_certbot_renew ------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "shell"),
    [
        ("certbot renew", "certbot renew"),
        ("certbot renew %stdin data", "certbot renew "),
        ("date +\\%Y-\\%m && certbot renew", "date +%Y-%m && certbot renew"),
        ("echo 50\\% %rest", "echo 50% "),
    ],
)
def test_cron_command_cuts_at_the_first_unescaped_percent(command: str, shell: str) -> None:
    assert cron_command(command) == shell


@pytest.mark.parametrize(
    "command",
    [
        "certbot renew",
        "certbot -q renew",
        "/usr/bin/certbot renew --quiet",
        "/snap/bin/certbot renew --deploy-hook 'systemctl reload stemedb-api'",
        "perl -e 'sleep int(rand(43200))' && certbot renew",
        DEBIAN_COMMAND,
        "sleep 100; certbot renew >> /var/log/le.log 2>&1",
        "sudo certbot renew",
        "flock -n /run/lock/certbot certbot renew",
        "/bin/sh -c 'certbot renew'",
        "certbot-auto renew",
        "certbot --quiet --no-random-sleep-on-renew renew --cert-name stemedb.example.com",
        "certbot renew # nightly",
    ],
)
def test_runs_certbot_renew(command: str) -> None:
    assert runs_certbot_renew(_entry(command)) is True


@pytest.mark.parametrize(
    "command",
    [
        "certbot certificates",
        "certbot",  # no verb: certbot runs `run`, which obtains, not renews
        "echo certbot renew",
        'echo "certbot renew"',
        "logger certbot renew done",
        "true # certbot renew",
        "echo x #; certbot renew",
        "certbot renew --dry-run",
        "certbot renew --help",
        "certbot certonly -d x renew",  # the first verb wins
        "certbotx renew",
        "/usr/local/bin/renew-certs",
        "% certbot renew",  # everything after % is stdin
    ],
)
def test_does_not_run_certbot_renew(command: str) -> None:
    assert runs_certbot_renew(_entry(command)) is False


# --- skipped_under_systemd --------------------------------------------------------------------


def test_debian_cron_line_is_skipped_under_systemd() -> None:
    [entry] = parse_crontab(DEBIAN_CRON_D, "/etc/cron.d/certbot", system=True)
    assert runs_certbot_renew(entry) is True
    assert skipped_under_systemd(entry) is True


@pytest.mark.parametrize(
    "command",
    [
        "test ! -d /run/systemd/system && certbot -q renew",
        "[ ! -d /run/systemd/system ] && certbot -q renew",
        "test -x /usr/bin/certbot -a ! -d /run/systemd/system && certbot -q renew",
        "test ! -d /run/systemd/system -a -x /usr/bin/certbot && sleep 5 && certbot -q renew",
        "[ -d /run/systemd/system ] || certbot renew",
        "! test -d /run/systemd/system && certbot renew",
        "test ! -d /var/run/systemd/system && certbot renew",
    ],
)
def test_guarded_entries_are_skipped_under_systemd(command: str) -> None:
    assert skipped_under_systemd(_entry(command)) is True


@pytest.mark.parametrize(
    "command",
    [
        "certbot -q renew",
        "perl -e 'sleep int(rand(43200))' && certbot -q renew",
        "test ! -d /run/systemd/system; certbot renew",  # `;` does not guard
        "test ! -d /run/systemd/system || certbot renew",  # runs exactly when systemd is there
        "test ! -d /run/systemd/system & certbot renew",
        "test -x /usr/bin/certbot -o ! -d /run/systemd/system && certbot renew",  # -o can rescue it
        "test ! -d /run/systemd/system -a -x /usr/bin/certbot -o -e /etc/force && certbot renew",
        "test ! -d /run/systemd/system && true; certbot renew",
        "test -x /usr/bin/certbot && certbot renew",
        "test ! -d /run/systemd/system && true || certbot renew",
        "test ! -d /run/systemd/system && foo || true && certbot renew",
        "[ -d /run/systemd/system ] || true && certbot renew",
        "echo test ! -d /run/systemd/system && certbot renew",
        "test ! -d /run/systemd/system && echo certbot renew",
    ],
)
def test_unguarded_entries_run_under_systemd(command: str) -> None:
    assert skipped_under_systemd(_entry(command)) is False
