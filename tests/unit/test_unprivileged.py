"""Unprivileged audits (issue 18), on this machine: what the probe records where the login is not
root, and how sudo's refusal of become reads. The fleet test (test_unprivileged_on_fleet.py) runs
the same on real hosts; these pin each class without one. The suite runs as root, which opens
everything, so the denials are made by replacing the system call that meets them."""

from __future__ import annotations

import errno
import importlib
import os
from pathlib import Path
from typing import Any

import pytest

from certaudit.gather.transport import CommandResult, sudo_refusal
from certaudit.inventory import target_for

remote_probe: Any = importlib.import_module("certaudit.gather.remote_probe")  # stdlib-only, untyped: it runs on the host


def _deny(monkeypatch: pytest.MonkeyPatch, denied: str) -> None:
    """os.open of `denied` fails as it does for a login without read permission."""
    real = os.open

    def fake_open(path: Any, flags: int, *args: Any) -> int:
        if str(path) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(remote_probe.os, "open", fake_open)


def test_a_key_the_login_cannot_open_is_unread_not_unusable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """openssl says only "Could not open file", which KEY-03 once took for a key that is not a key."""
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot read\n-----END PRIVATE KEY-----\n")
    _deny(monkeypatch, str(key))
    assert remote_probe.public_key(str(key)) == {
        "path": str(key),
        "error": {"errno": errno.EACCES, "reason": "Permission denied"},
    }


def test_a_closed_system_journal_is_an_error_not_an_empty_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """journalctl shows a login outside systemd-journal its own entries only, and exits 0."""
    machine = "0123456789abcdef0123456789abcdef"
    journal = tmp_path / "journal"
    (journal / machine).mkdir(parents=True)
    (journal / machine / "system.journal").write_bytes(b"LPKSHHRH")
    (tmp_path / "machine-id").write_text(machine + "\n")
    real_open = open
    monkeypatch.setattr(remote_probe, "JOURNAL_DIRS", (str(journal),))
    monkeypatch.setattr(
        remote_probe, "open", lambda p, *a: real_open(tmp_path / "machine-id" if p == "/etc/machine-id" else p, *a), raising=False
    )
    assert remote_probe.system_journal_closed() is None
    _deny(monkeypatch, str(journal / machine / "system.journal"))
    closed = f"cannot read the system journal {journal}/<machine-id>/system.journal: Permission denied"
    assert remote_probe.system_journal_closed() == {"errno": errno.EACCES, "reason": closed}
    events = remote_probe.service_events("stemedb-api.service", 0)
    assert events["error"]["reason"] == closed and events["events"] == [] and events["entries_read"] == 0


def test_processes_the_login_cannot_see_are_not_an_empty_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc with hidepid: the list is partial, never proof that cron is not running."""
    names, error = remote_probe.processes()
    assert error is None and names
    real_listdir = os.listdir
    monkeypatch.setattr(
        remote_probe.os, "listdir", lambda p: [n for n in real_listdir(p) if n != "1"] if p == "/proc" else real_listdir(p)
    )
    monkeypatch.setattr(remote_probe.os, "getpid", lambda: 4242)
    names, error = remote_probe.processes()
    assert names is None
    assert error == {"errno": errno.EACCES, "reason": "/proc hides other users' processes (hidepid): pid 1 is not listed"}


BECOME = target_for("web-1", {"ansible_host": "127.0.0.1", "ansible_user": "auditor", "ansible_become": True})


@pytest.mark.parametrize(
    ("stderr", "says"),
    [
        (b"sudo: a password is required\n", "sudo: a password is required"),
        (
            b"Sorry, user auditor is not allowed to execute '/bin/sh -c id' as root on web-1.\n",
            "Sorry, user auditor is not allowed to execute '/bin/sh -c id' as root on web-1.",
        ),
    ],
)
def test_sudo_refusal_is_one_line(stderr: bytes, says: str) -> None:
    assert sudo_refusal(BECOME, CommandResult(1, b"", stderr)) == (
        "sudo refused to run it as root for auditor (ansible_become runs `sudo -n`, which never asks for a password): " + says
    )


def test_what_is_not_a_sudo_refusal() -> None:
    plain = target_for("web-1", {"ansible_host": "127.0.0.1", "ansible_user": "auditor"})
    assert sudo_refusal(plain, CommandResult(1, b"", b"sudo: a password is required\n")) is None  # no become
    assert sudo_refusal(BECOME, CommandResult(1, b"", b"Traceback (most recent call last):\n")) is None  # the command's own
    assert sudo_refusal(BECOME, CommandResult(0, b"", b"sudo: a password is required\n")) is None
