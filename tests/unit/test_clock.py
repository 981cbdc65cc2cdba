from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triplegain.clock import FakeClock, WallClock


def test_fake_clock_stands_still_until_advanced() -> None:
    clock = FakeClock(datetime(2025, 3, 1, tzinfo=UTC))
    assert clock.now() == clock.now() == datetime(2025, 3, 1, tzinfo=UTC)
    assert clock.monotonic() == 0.0
    clock.advance(1.5)
    clock.advance(timedelta(minutes=1))
    assert clock.now() == datetime(2025, 3, 1, 0, 1, 1, 500_000, tzinfo=UTC)
    assert clock.monotonic() == pytest.approx(61.5)


def test_fake_clock_refuses_to_go_back_or_be_naive() -> None:
    with pytest.raises(ValueError, match="cannot go back"):
        FakeClock().advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2025, 1, 1))


def test_wall_clock_is_utc_and_monotonic() -> None:
    clock = WallClock()
    assert clock.now().tzinfo is UTC
    first = clock.monotonic()
    assert clock.monotonic() >= first
