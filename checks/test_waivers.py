"""Waivers in force: an expired or malformed waiver is itself a finding (see certaudit/waivers.py)."""

from __future__ import annotations

import pytest

from certaudit.waivers import Waiver


def test_waiver_is_in_force(waiver: Waiver | str | None) -> None:
    """Each entry of the waivers file is well formed and unexpired; the file itself is readable."""
    if waiver is None:
        return  # no waivers file, or an empty one: nothing is waived
    if isinstance(waiver, str):
        pytest.fail(f"waivers file {waiver}", pytrace=False)
    if waiver.status != "valid":
        pytest.fail(f"{waiver.label}: {waiver.problem}", pytrace=False)
