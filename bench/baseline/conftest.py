"""Counts the commands the baseline sends, as certaudit counts its own (CERTAUDIT_ROUND_TRIPS=PATH).

The suite itself is plain testinfra: run it with testinfra's own options, for example

    pytest bench/baseline --hosts='ansible://all' --ansible-inventory=INVENTORY -n 4

Every command testinfra sends goes through its backend's one method below; wrapping that method
counts commands actually sent, including the ones testinfra sends for itself (`uname`, `command -v`);
LIVE-01's TLS handshakes are counted too, as certaudit counts its own.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from bench.testinfra_counting import count_testinfra_commands
from certaudit.gather.transport import ROUND_TRIPS_ENV, count_round_trip

if os.environ.get(ROUND_TRIPS_ENV):
    count_testinfra_commands()
    # The suite's only direct connection is LIVE-01's TLS handshake (ssh runs in its own process).
    _create_connection = socket.create_connection

    def _counted_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        count_round_trip(address[0], "tls")
        return _create_connection(address, *args, **kwargs)

    socket.create_connection = _counted_connection  # type: ignore[assignment]
