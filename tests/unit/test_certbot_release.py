"""The renewal point each certbot release computes when renew_before_expiry is not set."""

from __future__ import annotations

import datetime as dt

import pytest

from certaudit.host.certbot.release import default_renewal_point, parse_version, writes_commented_default

T0 = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "version"),
    [("certbot 1.12.0", (1, 12, 0)), ("2.1.0", (2, 1, 0)), ("certbot 4.0.0-1", (4, 0, 0)), ("4.1", (4, 1, 0))],
)
def test_versions_are_read_from_certbot_output(text: str, version: tuple[int, int, int]) -> None:
    assert parse_version(text) == version


@pytest.mark.parametrize("text", ["", "certbot", "v", "٤.١.٠", "1"])
def test_anything_else_is_no_version(text: str) -> None:
    assert parse_version(text) is None


@pytest.mark.parametrize(
    ("version", "lifetime_days", "days_before_expiry", "ari"),
    [
        ((1, 12, 0), 90, 30, False),
        ((2, 1, 0), 90, 30, False),
        ((2, 1, 0), 45, 30, False),  # the old default: 15 days after issuance, every run after that
        ((4, 0, 0), 90, 30, False),
        ((4, 0, 0), 64, 64 / 3, False),
        ((4, 0, 0), 45, 15, False),
        ((4, 0, 0), 6, 3, False),  # under 10 days: half
        ((4, 1, 0), 45, 15, True),
    ],
)
def test_default_renewal_point_by_release_and_lifetime(
    version: tuple[int, int, int], lifetime_days: int, days_before_expiry: float, ari: bool
) -> None:
    point = default_renewal_point(version, T0, T0 + dt.timedelta(days=lifetime_days))
    assert point.days_before_expiry == pytest.approx(days_before_expiry)
    assert point.ari_may_move is ari
    assert point.at == T0 + dt.timedelta(days=lifetime_days) - point.before_expiry
    assert ".".join(map(str, version)) in point.rule


@pytest.mark.parametrize(("version", "writes"), [((1, 12, 0), True), ((2, 1, 0), True), ((4, 0, 0), True), ((4, 1, 0), False)])
def test_only_releases_before_4_1_write_the_commented_default(version: tuple[int, int, int], writes: bool) -> None:
    assert writes_commented_default(version) is writes


def test_exactly_ten_days_is_judged_by_a_third() -> None:
    point = default_renewal_point((4, 0, 0), T0, T0 + dt.timedelta(days=10))
    assert point.days_before_expiry == pytest.approx(10 / 3)
    assert "a third of the lifetime" in point.rule
