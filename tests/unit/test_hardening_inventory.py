"""Hostile inventory values, in every variable certaudit reads: each either works, travelling to the
host and to ssh as data (never as shell syntax), or stops the run with the one-line usage message
that names host, variable and value (a value that looks secret redacted).

The fleet test (tests/integration/test_hardening_on_fleet.py) runs the accepted ones for real and
checks the canary file never appears; here every (variable, payload) pair is judged in-process.
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certaudit.errors import InventoryError
from certaudit.gather.probe import probe_argv, probe_command
from certaudit.inventory import Target, target_for
from certaudit.policy import FIELDS, PREFIX
from certaudit.redact import REDACTED

REPO = Path(__file__).resolve().parents[2]
CANARY = "/tmp/certaudit-pwned"
KEY_BODY = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"
PAYLOADS: dict[str, Any] = {
    "command substitution": f"$(touch {CANARY})",
    "backticks": f"`touch {CANARY}`",
    "semicolon": f"; touch {CANARY}",
    "single quotes": f"x' ; touch {CANARY} ; '",
    "double quotes": f'x" && touch {CANARY} #',
    "pipe and redirect": f"| touch {CANARY} > /dev/null < /dev/null &",
    "newline": f"a\ntouch {CANARY}",
    "carriage return and NUL": f"a\r\x00touch {CANARY}",
    "spaces and tab": "with  spaces\tand tab",
    "unicode": "ünïcødé ☃ 日本語 \u202e",
    "absurd length": "A" * 100_000,
    "ssh option": f"-oProxyCommand=touch {CANARY}",
    "jinja": f"{{{{ lookup('pipe', 'touch {CANARY}') }}}}",
    "format strings": "%s %d %(x)s {0} %%",
    "empty": "",
    "private key": f"-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----\n",
    "a list": [f"$(touch {CANARY})"],
    "a mapping": {"__ansible_unsafe": f"$(touch {CANARY})"},
    "absolute path with payload": f"/srv/x $(touch {CANARY}) `touch {CANARY}`; '\" ünï",
}
ANSIBLE_VARIABLES = (
    "ansible_host", "ansible_user", "ansible_port", "ansible_connection", "ansible_ssh_private_key_file",
    "ansible_private_key_file", "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_become",
    "ansible_become_user", "ansible_password", "ansible_ssh_pass",
)  # fmt: skip
VARIABLES = (*sorted(PREFIX + f for f in FIELDS), *ANSIBLE_VARIABLES, "some_other_variable", "db_password")
SECRET_LOOKING = {
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_password",
    "ansible_ssh_pass",
    "db_password",
}
CASES = [(variable, name) for variable in VARIABLES for name in PAYLOADS]


def judge(variable: str, value: Any) -> Target | str:
    """The target certaudit would audit, or its usage message."""
    variables = {"ansible_host": "127.0.0.1", variable: value}
    if variable == "ansible_become_user":
        variables["ansible_become"] = True
    try:
        return target_for("web-1", variables)
    except InventoryError as exc:
        return str(exc)


def assert_usage_message(message: str, variable: str, value: Any) -> None:
    assert message.startswith(f"host web-1: {variable} = "), message
    assert " cannot be used: " in message, message
    assert "\n" not in message and "\r" not in message and "\x00" not in message, "one line, control characters escaped"
    assert len(message) < 600, "a value is shown shortened"
    if variable in SECRET_LOOKING or "PRIVATE KEY" in str(value):
        assert REDACTED in message, message
        assert KEY_BODY not in message


def assert_travels_as_data(target: Target) -> None:
    """An accepted value never becomes shell syntax: the remote command is quoted word by word, its
    parameters travel as base64 JSON, and ssh gets its options as separate arguments."""
    argv = probe_argv(target)
    assert shlex.split(probe_command(target)) == argv
    params = json.loads(base64.b64decode(argv[-1]))
    policy = target.policy
    assert (params["tls_dir"], params["letsencrypt_dir"], params["deploy_hook"]) == (
        policy.tls_dir,
        policy.letsencrypt_dir,
        policy.deploy_hook,
    )
    extra = target.connect_kwargs.get("ssh_extra_args")
    if extra is not None:
        words = shlex.split(extra)
        given = " ".join(str(target.variables.get(k) or "") for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args"))
        assert words[: len(shlex.split(given))] == shlex.split(given)


@pytest.mark.parametrize(("variable", "payload"), CASES, ids=[f"{v}-{p}" for v, p in CASES])
def test_hostile_value_works_or_is_refused_by_name(variable: str, payload: str) -> None:
    value = PAYLOADS[payload]
    outcome = judge(variable, value)
    if isinstance(outcome, str):
        assert_usage_message(outcome, variable, value)
    else:
        assert_travels_as_data(outcome)


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("ansible_host", f"-oProxyCommand=touch {CANARY}", "expected a host name"),
        ("ansible_user", f"root; touch {CANARY}", "expected a user name"),
        ("ansible_port", "22 -oProxyCommand=x", "expected a TCP port from 1 to 65535"),
        ("ansible_connection", "ssh; touch x", "certaudit connects with"),
        ("ansible_ssh_common_args", f"-o X=y 127.0.0.1 touch${{IFS}}{CANARY};", "ssh would read '127.0.0.1' as the host"),
        ("ansible_ssh_common_args", "-o StrictHostKeyChecking=no -- 127.0.0.1", "'--' would end ssh's options"),
        ("ansible_ssh_extra_args", "-o", "ssh option -o lacks its argument"),
        ("certaudit_tls_dir", f"/etc/stemedb\n$(touch {CANARY})", "an absolute path without control characters"),
        ("certaudit_tls_dir", "relative/$(touch x)", "an absolute path"),
        ("certaudit_tls_dir", "/" + "a" * 2000, "path longer than 1024 characters"),
        ("certaudit_domain", "a." * 200 + "com", "a DNS name is at most 253 characters"),
        ("certaudit_domain", f"x.com;touch {CANARY}", "a DNS name"),
        ("certaudit_service", "stemedb-api; reboot", "a systemd unit name"),
        ("certaudit_service_user", "$(id)", "a user or group name"),
        ("certaudit_endpoint_port", "443; touch x", "expected a TCP port"),
        ("certaudit_warn_days", "30 days; rm -rf /", "expected a whole number of days"),
    ],
)
def test_refusals_say_why(variable: str, value: str, why: str) -> None:
    message = judge(variable, value)
    assert isinstance(message, str), f"{variable} = {value!r} was accepted"
    assert why in message, message
    assert_usage_message(message, variable, value)


def test_secret_looking_values_are_redacted() -> None:
    message = judge("ansible_ssh_private_key_file", f"/keys/id\n{KEY_BODY}")
    assert message == f"host web-1: ansible_ssh_private_key_file = {REDACTED} cannot be used: expected a path"
    message = judge("certaudit_tls_dir", f"-----BEGIN PRIVATE KEY-----\n{KEY_BODY}")
    assert isinstance(message, str) and REDACTED in message and KEY_BODY not in message


@settings(max_examples=200, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(variable=st.sampled_from(VARIABLES), value=st.one_of(st.text(max_size=300), st.integers(), st.booleans(), st.none()))
def test_any_value_works_or_is_refused_by_name(variable: str, value: Any) -> None:
    outcome = judge(variable, value)
    if isinstance(outcome, str):
        assert_usage_message(outcome, variable, value)
    else:
        assert_travels_as_data(outcome)


def test_the_run_stops_on_a_bad_value_with_one_line_and_no_traceback() -> None:
    """The README's example: exit status 4 (usage error), the message, no host touched, no traceback
    (pytest 9 turns an exit during collection into collection errors: certaudit stops right after)."""
    argv = [sys.executable, "-m", "pytest", "checks", "--inventory", "tests/data/bad-port.yml", "-p", "no:cacheprovider", "-q"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, output[-2000:]
    message = "certaudit: host api-1: certaudit_endpoint_port = 70000 cannot be used: expected a TCP port from 1 to 65535"
    assert message in output
    assert "Traceback" not in output and "INTERNALERROR" not in output and "error during collection" not in output
