"""Which certbot a host runs, read from package metadata; hooks given as commands (RHEL's sysconfig,
a renew_hook naming a script, a deploy_hook certbot never reads)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from certaudit.errors import Undeterminable
from certaudit.host.certbot.command_hooks import (
    CLI_INI_FILES,
    CliIni,
    CommandHook,
    CommandLineHooks,
    Word,
    certbot_option,
    command_line_hooks,
    read_cli_ini,
    script_of,
    sysconfig_variables,
)
from certaudit.host.certbot.exec_start import exec_argv
from certaudit.host.certbot.install import installation_of
from certaudit.host.facts import HostFacts, facts_from_probe
from tests.unit.test_catalog_controls import NOW, file_item, snapshot

DEB_SITE = "/usr/lib/python3/dist-packages"
VENV_SITE = "/opt/certbot/lib/python3.11/site-packages"


def link(path: str, real: str) -> dict[str, Any]:
    return {**file_item(path, None), "link": True, "link_target": real, "realpath": real}


def absent(path: str) -> dict[str, Any]:
    return file_item(path, None, error=errno.ENOENT)


def host(files: dict[str, dict[str, Any]], sites: dict[str, Any]) -> HostFacts:
    raw = snapshot({}).raw
    every = {p: absent(p) for p in ("/usr/local/bin/certbot", "/usr/bin/certbot", "/bin/certbot", "/snap/bin/certbot")}
    raw = {**raw, "files": {**every, **files}, "certbot_install": {"sites": sites, "patterns": []}}
    return facts_from_probe("web-1", raw, NOW, None)


def meta(path: str, version: str) -> dict[str, Any]:
    return file_item(
        path, f"Metadata-Version: 2.1\nName: certbot\nVersion: {version}\n\nlong description\nVersion: 9.9\n".encode()
    )


def test_debian_package() -> None:
    pkg_info = f"{DEB_SITE}/certbot-2.1.0.egg-info/PKG-INFO"
    facts = host(
        {
            "/usr/bin/certbot": file_item("/usr/bin/certbot", None),
            pkg_info: meta(pkg_info, "2.1.0"),
            "/var/lib/dpkg/info/certbot.list": file_item("/var/lib/dpkg/info/certbot.list", None),
        },
        {DEB_SITE: {"names": ["certbot-2.1.0.egg-info"]}},
    )
    installed = installation_of(facts, "certbot")
    assert installed.as_evidence() == {
        "version": "2.1.0",
        "installed_as": "debian package",
        "version_from": pkg_info,
        "executable": "/usr/bin/certbot",
    }


def test_pip_venv_wins_over_the_leftover_debian_package() -> None:
    venv_meta = f"{VENV_SITE}/certbot-4.1.1.dist-info/METADATA"
    facts = host(
        {
            "/usr/bin/certbot": link("/usr/bin/certbot", "/opt/certbot/bin/certbot"),
            "/opt/certbot/pyvenv.cfg": file_item("/opt/certbot/pyvenv.cfg", None),
            venv_meta: meta(venv_meta, "4.1.1"),
        },
        {DEB_SITE: {"names": ["certbot-2.1.0.egg-info"]}, VENV_SITE: {"names": ["certbot-4.1.1.dist-info"]}},
    )
    installed = installation_of(facts, "certbot")
    assert (installed.how, installed.version, installed.executable) == (
        "pip in /opt/certbot",
        (4, 1, 1),
        "/usr/bin/certbot -> /opt/certbot/bin/certbot",
    )


def test_snap_by_its_launcher_and_metadata() -> None:
    snap_yaml = "/snap/certbot/current/meta/snap.yaml"
    facts = host(
        {
            "/usr/bin/snap": file_item("/usr/bin/snap", None),
            snap_yaml: file_item(snap_yaml, b"name: certbot\nversion: '4.2.0'\n"),
        },
        {},
    )
    installed = installation_of(facts, "/usr/bin/snap", ("run", '--timer="00:00~24:00/2"', "certbot.renew"))
    assert (installed.how, installed.version, installed.version_from) == ("snap", (4, 2, 0), snap_yaml)


def test_two_installations_where_certbot_imports_from_are_undeterminable() -> None:
    facts = host(
        {"/usr/bin/certbot": file_item("/usr/bin/certbot", None)},
        {DEB_SITE: {"names": ["certbot-1.12.0.egg-info", "certbot-2.1.0.egg-info"]}},
    )
    with pytest.raises(Undeterminable, match=r"several certbot installations where /usr/bin/certbot imports from"):
        installation_of(facts, "certbot")


def test_a_site_directory_not_listed_is_undeterminable() -> None:
    facts = host(
        {"/usr/bin/certbot": file_item("/usr/bin/certbot", None)},
        {DEB_SITE: {"error": {"errno": errno.EACCES, "reason": "Permission denied"}}},
    )
    with pytest.raises(Undeterminable, match=r"cannot list /usr/lib/python3/dist-packages: Permission denied"):
        installation_of(facts, "certbot")


def test_no_certbot_on_the_path_is_undeterminable() -> None:
    with pytest.raises(Undeterminable, match=r"no certbot in /usr/local/bin:/usr/bin:/bin:/snap/bin"):
        installation_of(host({}, {}), "certbot")


def test_exec_start_as_systemctl_shows_it() -> None:
    shown = "{ path=/usr/bin/certbot ; argv[]=/usr/bin/certbot -q renew --no-random-sleep-on-renew ; ignore_errors=no }"
    assert exec_argv(shown) == ["/usr/bin/certbot", "-q", "renew", "--no-random-sleep-on-renew"]
    assert exec_argv("") == []


def test_sysconfig_variables_as_systemd_splits_them() -> None:
    text = (
        'PRE_HOOK=""\n'
        "# DEPLOY_HOOK=\"--deploy-hook 'systemctl restart httpd'\"\n"
        "DEPLOY_HOOK=\"--deploy-hook '/usr/local/libexec/reload.sh'\"\n"
        "RENEW_HOOK=--renew-hook='systemctl reload stemedb-api'\n"
        "CERTBOT_ARGS=\"--no-dir --deploy-hook 'systemctl reload x'\"\n"
        "OTHER=--no-directory-hooks\n"
        "PRE_HOOK=--pre-hook true\n"
    )
    variables, problems = sysconfig_variables(text)
    assert variables == {
        "PRE_HOOK": ("PRE_HOOK in /etc/sysconfig/certbot:7", ["--pre-hook", "true"]),  # the later value wins
        "DEPLOY_HOOK": ("DEPLOY_HOOK in /etc/sysconfig/certbot:3", ["--deploy-hook", "/usr/local/libexec/reload.sh"]),
        "RENEW_HOOK": ("RENEW_HOOK in /etc/sysconfig/certbot:4", ["--renew-hook=systemctl reload stemedb-api"]),
        "CERTBOT_ARGS": ("CERTBOT_ARGS in /etc/sysconfig/certbot:5", ["--no-dir", "--deploy-hook", "systemctl reload x"]),
    }
    assert problems == []
    assert sysconfig_variables('DEPLOY_HOOK="--deploy-hook \'unterminated"\n') == (
        {},
        ["DEPLOY_HOOK in /etc/sysconfig/certbot:1: an unterminated quote"],
    )


@pytest.mark.parametrize(
    ("word", "option"),
    [
        ("--no-directory-hooks", ("--no-directory-hooks", None)),
        ("--no-di", ("--no-directory-hooks", None)),  # argparse takes an unambiguous prefix, as certbot showed
        ("--no-d", None),  # ambiguous with --no-delete-after-revoke: certbot refuses it
        ("--no-directory-hooks=1", ("--no-directory-hooks", "1")),
        ("--dep", ("--deploy-hook", None)),
        ("--deploy=systemctl reload x", ("--deploy-hook", "systemctl reload x")),
        ("--de", None),  # --debug, --delete-after-revoke
        ("--renew-h", ("--renew-hook", None)),
        ("--renew", None),  # --renew-by-default, --renew-with-new-domains
        ("--deploy-hooks", None),
        ("-q", None),
        ("renew", None),
    ],
)
def test_certbot_option_as_its_argparse_reads_it(word: str, option: tuple[str, str | None] | None) -> None:
    assert certbot_option(word) == option


def words(*texts: str) -> list[Word]:
    return [Word(text, "/etc/crontab:1", "the command line of /etc/crontab:1") for text in texts]


CRON_HOOK = "the command line of /etc/crontab:1"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (words("-q", "renew"), CommandLineHooks()),
        (words("renew", "--no-dir"), CommandLineHooks(no_directory_hooks="--no-directory-hooks on /etc/crontab:1")),
        (words("renew", "--no-directory-hooks=1"), CommandLineHooks()),  # certbot refuses the value; REN-01's run fails
        (words("renew", "--deploy-hook", "a", "--deploy-hook", "b"), CommandLineHooks(hook=CommandHook(CRON_HOOK, "b"))),
        (words("renew", "--renew-hook=a", "--dep", "a"), CommandLineHooks(hook=CommandHook(CRON_HOOK, "a"))),
        (
            words("renew", "--renew-hook", "a", "--deploy-hook", "b"),
            CommandLineHooks(
                hook=CommandHook(CRON_HOOK, "b"),
                problems=("certbot cannot start: --deploy-hook on /etc/crontab:1 conflicts with the --renew-hook before it",),
            ),
        ),
        (
            words("renew", "--deploy-hook", "a", "--renew-h", "b"),
            CommandLineHooks(
                hook=CommandHook(CRON_HOOK, "b"),
                problems=("certbot cannot start: --renew-h on /etc/crontab:1 conflicts with the --deploy-hook before it",),
            ),
        ),
        (
            words("renew", "--deploy-hook"),
            CommandLineHooks(problems=("certbot cannot start: --deploy-hook on /etc/crontab:1 has no command",)),
        ),
        (words("renew", "--", "--no-directory-hooks"), CommandLineHooks()),  # after --, a positional argument
        (
            words("renew", "-c", "/etc/le.ini", "--config=/etc/b.ini", "--config", "/etc/c.ini", "--config-dir", "/etc/le"),
            CommandLineHooks(config_files=tuple(f"/etc/{n} (/etc/crontab:1)" for n in ("le.ini", "b.ini", "c.ini"))),
        ),
    ],
)
def test_a_command_line_s_hooks_as_certbot_reads_them(line: list[Word], expected: CommandLineHooks) -> None:
    assert command_line_hooks(line) == expected


@pytest.mark.parametrize(
    ("command", "script"),
    [("/usr/local/sbin/reload-stemedb", "/usr/local/sbin/reload-stemedb"), ("systemctl reload x", None), ("'unterminated", None)],
)
def test_a_hook_names_a_script_only_when_it_is_one_path(command: str, script: str | None) -> None:
    assert script_of(command) == script


ETC_INI, ROOT_INI = "/etc/letsencrypt/cli.ini", "/root/.config/letsencrypt/cli.ini"
UNPARSED = "Unexpected line 0 in stream: === not an option"  # ConfigArgParse's words


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # ConfigArgParse's syntax: =, : or a blank; quotes; comments; sections ignored.
        ([(ETC_INI, "# cli.ini\n[defaults]\nrsa-key-size = 4096\ndeploy-hook = systemctl reload stemedb-api\n")],
         CliIni(CommandHook(f"deploy-hook in {ETC_INI}", "systemctl reload stemedb-api"))),
        ([(ETC_INI, "deploy-hook: '/usr/local/sbin/reload x'  # ours\n")],
         CliIni(CommandHook(f"deploy-hook in {ETC_INI}", "/usr/local/sbin/reload x"))),
        ([(ETC_INI, "renew-hook systemctl restart stemedb-api\n")],
         CliIni(CommandHook(f"renew-hook in {ETC_INI}", "systemctl restart stemedb-api"))),
        # The later file's arguments come last: its hook is the one certbot runs.
        ([(ETC_INI, "deploy-hook = systemctl reload nginx\n"), (ROOT_INI, "renew-hook = systemctl reload stemedb-api\n")],
         CliIni(CommandHook(f"renew-hook in {ROOT_INI}", "systemctl reload stemedb-api"))),
        # A flag: true turns renewal-hooks/ off, a later file's false turns it on again.
        ([(ETC_INI, "no-directory-hooks = true\n")], CliIni(no_directory_hooks=f"no-directory-hooks in {ETC_INI}")),
        ([(ETC_INI, "no-directory-hooks\n")], CliIni(no_directory_hooks=f"no-directory-hooks in {ETC_INI}")),
        ([(ETC_INI, "no-directory-hooks = yes\n"), (ROOT_INI, "no-directory-hooks = false\n")], CliIni()),
        ([(ETC_INI, "email = ops@example.com\nagree-tos = true\n")], CliIni()),
        # What makes certbot refuse to start: it then renews nothing.
        ([(ETC_INI, "=== not an option\n")],
         CliIni(problems=(f"certbot cannot start: its config file {ETC_INI} does not parse ({UNPARSED})",))),
        ([(ETC_INI, "no-directory-hooks = maybe\n")],
         CliIni(problems=(f"certbot cannot start: no-directory-hooks = 'maybe' in {ETC_INI} is not true or false",))),
        ([(ETC_INI, "deploy-hook = [a, b]\n")], CliIni(problems=(f"certbot cannot start: deploy-hook in {ETC_INI} is a list",))),
        ([], CliIni()),
    ],
)  # fmt: skip
def test_cli_ini_is_read_as_certbot_reads_it(files: list[tuple[str, str]], expected: CliIni) -> None:
    assert read_cli_ini(files) == expected


def test_the_probe_reads_the_config_files_and_hook_scripts_ren02_judges() -> None:
    """The probe runs on the host without certaudit: its list of certbot's config files is its own copy,
    held equal here; and a hook cli.ini names by path is read, in each syntax ConfigArgParse takes."""
    import importlib
    import re

    remote_probe: Any = importlib.import_module("certaudit.gather.remote_probe")
    assert remote_probe.CERTBOT_CLI_INI == CLI_INI_FILES
    text = "deploy-hook = /usr/local/sbin/a\nrenew-hook: '/usr/local/sbin/b'\n  deploy-hook /usr/local/sbin/c  # x\n"
    assert re.findall(remote_probe.CLI_INI_HOOK, text) == ["/usr/local/sbin/a", "/usr/local/sbin/b", "/usr/local/sbin/c"]
    # ConfigArgParse keeps a key's last value at its first place: --deploy-hook c, then --renew-hook b,
    # which certbot runs (both set renew_hook; the last wins). Its script is among those read.
    hook = read_cli_ini([(CLI_INI_FILES[0], text)]).hook
    assert hook == CommandHook(f"renew-hook in {CLI_INI_FILES[0]}", "/usr/local/sbin/b")
