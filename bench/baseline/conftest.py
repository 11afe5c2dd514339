"""Counts the commands the baseline sends, as certaudit counts its own (CERTAUDIT_ROUND_TRIPS=PATH).

The suite itself is plain testinfra: run it with testinfra's own options, for example

    pytest bench/baseline --hosts='ansible://all' --ansible-inventory=INVENTORY -n 4

Every command testinfra sends goes through its backend's one method below; wrapping that method
counts commands actually sent, including the ones testinfra sends for itself (`uname`, `command -v`);
LIVE-01's TLS handshakes are counted too, as certaudit counts its own.
"""

from __future__ import annotations

import functools
import os
import socket
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
    # The suite's only direct connection is LIVE-01's TLS handshake (ssh runs in its own process).
    _create_connection = socket.create_connection

    def _counted_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        count_round_trip(address[0], "tls")
        return _create_connection(address, *args, **kwargs)

    socket.create_connection = _counted_connection  # type: ignore[assignment]
