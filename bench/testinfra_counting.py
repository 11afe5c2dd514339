"""Counts the commands testinfra's own backends send, as certaudit counts its own (CERTAUDIT_ROUND_TRIPS=PATH).

Every command testinfra sends goes through its backend's one method wrapped here; wrapping it
counts commands actually sent, including the ones testinfra sends for itself (`uname`, `command -v`).
Used by the conftests of bench/baseline (the plain testinfra suite) and bench/custom.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from testinfra.backend import local, paramiko, ssh

from certaudit.gather.transport import count_round_trip


def _counted(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        count_round_trip(self.hostname, "command")
        return method(self, *args, **kwargs)

    return run


def count_testinfra_commands() -> None:
    ssh.SshBackend.run_ssh = _counted(ssh.SshBackend.run_ssh)
    paramiko.ParamikoBackend._exec_command = _counted(paramiko.ParamikoBackend._exec_command)
    local.LocalBackend.run = _counted(local.LocalBackend.run)
