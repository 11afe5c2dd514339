"""The renewal drill's pure parts: when it runs, its command, and how it reads certbot and the journal.

The outputs below are what certbot 2.1.0 (Debian bookworm) and journald printed on a fleet host.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from certaudit.jobs.drill import parse_certbot_output, parse_journal, reason_not_run, renew_command, unit_name
from certaudit.policy import PolicyError, policy_for

HOOK = "/etc/letsencrypt/renewal-hooks/deploy/reload-stemedb.sh"
CERTBOT_OK = f"""
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
Processing /etc/letsencrypt/renewal/stemedb.example.com.conf
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
Renewing an existing certificate for stemedb.example.com
Hook 'deploy-hook' ran with output:
 Nov 28 00:46:52 drill-ok python3[32]: certificate reloaded: /etc/stemedb/tls/cert.pem, notAfter Fri Nov 28 00:46:50 2031

Congratulations, all renewals succeeded:
  /etc/letsencrypt/live/stemedb.example.com/fullchain.pem (success)
Saving debug log to /var/log/letsencrypt/letsencrypt.log
Plugins selected: Authenticator standalone, Installer None
Running deploy-hook command: {HOOK}
"""
CERTBOT_HOOK_FAILED = f"""
Renewing an existing certificate for stemedb.example.com
Congratulations, all renewals succeeded:
  /etc/letsencrypt/live/stemedb.example.com/fullchain.pem (success)
Saving debug log to /var/log/letsencrypt/letsencrypt.log
Running deploy-hook command: {HOOK}
Hook 'deploy-hook' reported error code 1
Hook 'deploy-hook' ran with error output:
 install: cannot stat '/etc/letsencrypt/live/stemedb.example.com/full-chain.pem': No such file or directory
"""


def test_certbot_output_of_a_working_hook() -> None:
    report = parse_certbot_output(CERTBOT_OK)
    assert report.hooks_run == (HOOK,)
    assert report.hook_errors == ()


def test_certbot_output_of_a_failing_hook_names_its_error() -> None:
    report = parse_certbot_output(CERTBOT_HOOK_FAILED)
    assert report.hooks_run == (HOOK,)
    assert report.hook_errors == (
        "deploy-hook reported error code 1: install: cannot stat "
        "'/etc/letsencrypt/live/stemedb.example.com/full-chain.pem': No such file or directory",
    )


def test_certbot_output_without_hooks_and_stderr_without_code() -> None:
    assert parse_certbot_output("Renewing an existing certificate for x\n") == parse_certbot_output("")
    report = parse_certbot_output("Running deploy-hook command: /h\nHook 'deploy-hook' ran with error output:\n  warning\n")
    assert report.hooks_run == ("/h",)
    assert report.hook_errors == ("deploy-hook wrote to stderr: warning",)


def _entry(**fields: object) -> str:
    return json.dumps({"__REALTIME_TIMESTAMP": "1795826812888925", **fields})


def test_journal_shows_the_reload_job_and_the_service_lines() -> None:
    text = "\n".join(
        [
            _entry(
                MESSAGE="Reloading stemedb-api.service - StemeDB API...", UNIT="stemedb-api.service", _SYSTEMD_UNIT="init.scope"
            ),
            _entry(
                MESSAGE="Reloaded stemedb-api.service - StemeDB API.",
                UNIT="stemedb-api.service",
                JOB_TYPE="reload",
                JOB_RESULT="done",
                _SYSTEMD_UNIT="init.scope",
            ),
            _entry(MESSAGE="certificate reloaded: /etc/stemedb/tls/cert.pem", _SYSTEMD_UNIT="stemedb-api.service"),
            "not json",
            _entry(MESSAGE=[104, 105], _SYSTEMD_UNIT="stemedb-api.service"),  # a byte-array message
        ]
    )
    report = parse_journal(text, "stemedb-api.service")
    assert report.reloaded is True
    assert report.jobs == ("2026-11-28T00:46:52Z reload done: Reloaded stemedb-api.service - StemeDB API.",)
    assert report.service_lines == (
        "2026-11-28T00:46:52Z certificate reloaded: /etc/stemedb/tls/cert.pem",
        "2026-11-28T00:46:52Z hi",
    )


@pytest.mark.parametrize(
    ("job_type", "job_result", "reloaded"),
    [
        ("reload", "done", True),
        ("restart", "done", True),
        ("start", "done", True),
        ("reload", "failed", False),
        ("stop", "done", False),
    ],
)
def test_only_a_finished_reload_or_restart_counts(job_type: str, job_result: str, reloaded: bool) -> None:
    text = _entry(MESSAGE="m", UNIT="stemedb-api.service", JOB_TYPE=job_type, JOB_RESULT=job_result)
    assert parse_journal(text, "stemedb-api.service").reloaded is reloaded
    # Another unit's job is not this service's reload.
    assert parse_journal(text, "nginx.service").reloaded is False


def test_the_drill_runs_only_when_asked_and_allowed() -> None:
    allowed = policy_for("h", {"certaudit_drill_ok": True})
    assert reason_not_run(False, allowed) == "the renewal drill renews certificates for real: it runs only with --renewal-drill"
    assert reason_not_run(True, policy_for("h", {})) == (
        "certaudit_drill_ok is not true for this host: the inventory does not allow a real renewal here"
    )
    custom = policy_for("h", {"certaudit_drill_ok": "yes", "certaudit_renewal": "custom-ca"})
    assert reason_not_run(True, custom) == "certaudit_renewal is custom-ca: the drill renews through certbot"
    assert reason_not_run(True, allowed) is None


def test_the_command_quotes_every_inventory_value() -> None:
    policy = policy_for("h", {"certaudit_drill_ok": True, "certaudit_acme_ca_bundle": "/etc/ca bundle/$(touch x);.pem"})
    argv = renew_command(policy, 120)
    assert argv == [
        "env",
        "REQUESTS_CA_BUNDLE=/etc/ca bundle/$(touch x);.pem",
        "timeout",
        "--kill-after=10",
        "120",
        "certbot",
        "renew",
        "--cert-name",
        "stemedb.example.com",
        "--force-renewal",
        "--no-random-sleep-on-renew",
        "-v",
    ]
    assert shlex.split(shlex.join(argv)) == argv  # the shell gets each value back as one word, never as syntax
    assert renew_command(policy_for("h", {}), 0.2)[:3] == ["timeout", "--kill-after=10", "1"]


def test_unit_names() -> None:
    assert unit_name("stemedb-api") == "stemedb-api.service"
    assert unit_name("stemedb-api.socket") == "stemedb-api.socket"


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("certaudit_drill_ok", "maybe", "expected true or false"),
        ("certaudit_drill_ok", 1, "expected true or false"),
        ("certaudit_acme_ca_bundle", "relative/ca.pem", "expected an absolute path"),
        ("certaudit_acme_ca_bundle", "/ca\n.pem", "expected an absolute path"),
    ],
)
def test_unusable_drill_variables_stop_the_run(variable: str, value: object, why: str) -> None:
    with pytest.raises(PolicyError, match=f"host h: {variable} = .* cannot be used: {why}"):
        policy_for("h", {variable: value})


def test_drill_variables_as_an_ini_inventory_gives_them() -> None:
    policy = policy_for("h", {"certaudit_drill_ok": "True", "certaudit_acme_ca_bundle": "/usr/local/share/ca.pem"})
    assert (policy.drill_ok, policy.acme_ca_bundle) == (True, "/usr/local/share/ca.pem")
    assert policy_for("h", {"certaudit_drill_ok": "no"}).drill_ok is False


# --- the drill's connection: certaudit's transport ---------------------------------------------------------
def _drill_target(server: Any, known_hosts: Path) -> Any:
    from certaudit.inventory import target_for

    return target_for("web-1", {
        "ansible_host": "127.0.0.9", "ansible_port": server.port, "ansible_user": "root", "ansible_connection": "paramiko",
        "ansible_ssh_private_key_file": str(server.client_key), "certaudit_drill_ok": True,
        "ansible_ssh_common_args": f"-F /dev/null -o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null",
    })  # fmt: skip


def test_the_drill_refuses_an_unknown_host_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It connected through testinfra's paramiko backend, which accepts any key: a host on the path could
    answer the drill. Now it connects as the probe does, and is refused the same way."""
    from certaudit.errors import Undeterminable
    from certaudit.jobs.drill import DrillSettings, run_drill
    from tests.unit.sshserver import ssh_server

    monkeypatch.setenv("HOME", str(tmp_path))
    with ssh_server(tmp_path) as server:
        with pytest.raises(Undeterminable) as caught:
            run_drill(_drill_target(server, tmp_path / "known_hosts"), DrillSettings(True, connect_timeout=5, host_budget=30))
        assert str(caught.value).startswith(
            f"host web-1 (127.0.0.9): the drill cannot connect: host key verification failed: 127.0.0.9 port {server.port} "
            f"offered an ssh-ed25519 key {server.host_key.fingerprint}, which no known_hosts file lists; refused"
        )
        assert server.commands == []  # certbot never ran


def test_the_drill_runs_its_commands_through_the_transport_within_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from certaudit.jobs.drill import AFTER_CERTBOT_S, DrillSettings, run_drill
    from tests.unit.sshserver import ssh_server

    monkeypatch.setenv("HOME", str(tmp_path))
    with ssh_server(tmp_path, answer=b"not a certificate") as server:
        (tmp_path / "known_hosts").write_text(server.known_hosts_line())
        result = run_drill(_drill_target(server, tmp_path / "known_hosts"), DrillSettings(True, 5, host_budget=100))
        commands = list(server.commands)
    # certbot gets what the budget leaves for it once the steps after it are provided for.
    assert 1 <= result.certbot_timeout_s <= 100 - AFTER_CERTBOT_S
    assert result.command == shlex.join(
        ["timeout", "--kill-after=10", f"{result.certbot_timeout_s:g}", "certbot", "renew", "--cert-name",
         "stemedb.example.com", "--force-renewal", "--no-random-sleep-on-renew", "-v"]
    )  # fmt: skip
    assert [shlex.split(c)[0] for c in commands] == ["openssl", "openssl", "journalctl", "timeout", "openssl", "openssl"]
