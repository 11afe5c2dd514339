"""Counts the commands testinfra's own backends send (the run with testinfra's `host`), as bench/baseline does."""

from bench.baseline import conftest as _counting  # noqa: F401  # importing it wraps testinfra's backends
