"""``until_stopped``: a feed's candles until it ends or a stop; a full-speed replay's feed awaited directly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from triplegain.clock import FakeClock
from triplegain.daemon.run import StopRequest, until_stopped
from triplegain.market.feeds.synthetic import SyntheticFeed
from triplegain.market.settings import SyntheticSettings

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def feed(count: int) -> SyntheticFeed:
    return SyntheticFeed(SyntheticSettings(symbols={"BTC/USDT": 100.0}, count=count, start=T0), clock=FakeClock(T0))


@pytest.mark.parametrize("never_waits", [True, False])
async def test_every_candle_until_the_feed_ends(never_waits: bool) -> None:
    taken = [candle async for candle in until_stopped(feed(5), StopRequest(), never_waits=never_waits)]
    assert [candle.open_time for candle in taken] == [candle.open_time async for candle in feed(5)]


@pytest.mark.parametrize("never_waits", [True, False])
async def test_a_stop_ends_the_candles_after_the_one_taken_in(never_waits: bool) -> None:
    stop = StopRequest()
    taken = []
    async for candle in until_stopped(feed(5), stop, never_waits=never_waits):
        taken.append(candle)
        if len(taken) == 2:
            stop.requested.set()
    assert len(taken) == 2


async def test_a_feed_that_never_waits_is_read_in_the_callers_task() -> None:
    tasks_before = len(asyncio.all_tasks())
    async for _ in until_stopped(feed(3), StopRequest(), never_waits=True):
        assert len(asyncio.all_tasks()) == tasks_before, "no task raced against the stop"
