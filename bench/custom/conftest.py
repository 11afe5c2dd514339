"""Counts the commands testinfra's own backends send (the run with testinfra's `host`), as bench/baseline does.

Only the backends: these checks open no TLS connection, and certaudit's own login (its socket)
is counted by certaudit itself, as a login.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from testinfra.backend import local, paramiko, ssh

from certaudit.gather.transport import ROUND_TRIPS_ENV, count_round_trip


def _counted(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        count_round_trip(self.hostname, "command")
        return method(self, *args, **kwargs)

    return run


if os.environ.get(ROUND_TRIPS_ENV):
    ssh.SshBackend.run_ssh = _counted(ssh.SshBackend.run_ssh)
    paramiko.ParamikoBackend._exec_command = _counted(paramiko.ParamikoBackend._exec_command)
    local.LocalBackend.run = _counted(local.LocalBackend.run)
