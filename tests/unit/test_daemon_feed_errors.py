"""The daemon hands each candle the feed rejected to the degradation monitor, once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from triplegain.clock import FakeClock
from triplegain.coordinator.degradation import DegradationSettings
from triplegain.coordinator.health import HealthMonitor
from triplegain.daemon.run import FeedErrors
from triplegain.market.feeds.replay import CandleFile, ReplayFeed

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ROWS = [
    "timestamp,open,high,low,close,volume",
    "1704067200000,100,101,99,100.5,10",
    "1704067500000,100,98,99,100.5,10",  # high below low: rejected
    "1704067800000,100,101,99,100.5,-1",  # negative volume: rejected
    "1704068100000,100,101,99,100.5,10",
]


async def test_each_rejected_candle_is_one_market_data_error(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-5m.csv"
    path.write_text("\n".join(ROWS) + "\n")
    clock = FakeClock(T0)
    feed = ReplayFeed([CandleFile.from_name(path)], clock=clock)
    monitor = HealthMonitor(DegradationSettings(), clock=clock)
    errors = FeedErrors(feed, monitor)
    reported = []
    async for candle in feed:
        clock.advance(candle.close_time - clock.now())
        reported.append(errors.report(candle.close_time))
    assert sum(reported) == 2
    assert errors.report(clock.now()) == 0  # nothing new: nothing reported twice
    assert monitor.observations(clock.now()).market_data_errors == 2
