"""The real exchange candles in ../shared/data (see its README) replayed through the replay feed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from triplegain.clock import FakeClock
from triplegain.market.feeds.replay import ReplayFeed
from triplegain.market.settings import ReplaySettings

DATA = Path(__file__).parents[2].parent / "shared" / "data"
FILES = {"BTC_USDT-5m.csv": 10_999, "XRP_USDT-5m.csv": 1_999, "ETH_BTC-5m.csv": 5_760, "XRP_ETH-1m.csv": 2_469}

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"the shared candle files are not at {DATA}")


async def test_the_real_files_replay_in_time_order_with_no_rejected_candle() -> None:
    settings = ReplaySettings.model_validate({"files": [str(DATA / name) for name in FILES]})
    feed = ReplayFeed.from_settings(settings, clock=FakeClock())
    previous = None
    async for candle in feed:
        assert previous is None or candle.open_time >= previous
        previous = candle.open_time
    stats = feed.stats()
    assert stats.rejected == 0, stats.recent_rejections
    assert stats.emitted_by_symbol == {"BTC/USDT": 10_999, "XRP/USDT": 1_999, "ETH/BTC": 5_760, "XRP/ETH": 2_469}
    # Only XRP/ETH has holes: 676 places where minutes with no trades left no candle, 1,091 minutes in all.
    assert (stats.gaps, stats.missing_candles) == (676, 1_091)
    assert stats.longest_gap is not None
    assert stats.longest_gap.symbol == "XRP/ETH"
    assert stats.longest_gap.missing == 8
    assert stats.longest_gap.first_missing == datetime(2019, 10, 11, 19, 21, tzinfo=UTC)
    assert stats.longest_gap.last_missing == datetime(2019, 10, 11, 19, 28, tzinfo=UTC)
