"""Counts the commands testinfra's own backends send (the run with testinfra's `host`), as bench/baseline does.

Only the backends: these checks open no TLS connection, and certaudit's own login (its socket)
is counted by certaudit itself, as a login.
"""

from __future__ import annotations

import os

from bench.testinfra_counting import count_testinfra_commands
from certaudit.gather.transport import ROUND_TRIPS_ENV

if os.environ.get(ROUND_TRIPS_ENV):
    count_testinfra_commands()
