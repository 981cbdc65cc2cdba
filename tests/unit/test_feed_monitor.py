from __future__ import annotations

from structlog.testing import capture_logs

from triplegain.market.candle import Candle, Timeframe, candle_from_values
from triplegain.market.feeds.monitor import FeedMonitor

T0 = 1_570_752_000_000  # 2019-10-11 00:00 UTC
MINUTE = 60_000


def candle(step: int, symbol: str = "XRP/ETH", timeframe: Timeframe = Timeframe.M1) -> Candle:
    result = candle_from_values(symbol, timeframe, T0 + step * MINUTE, 1.0, 1.1, 0.9, 1.0, 5.0)
    assert isinstance(result, Candle)
    return result


def test_each_symbol_and_timeframe_is_checked_on_its_own() -> None:
    monitor = FeedMonitor(feed="test")
    assert monitor.admit(candle(0))
    assert monitor.admit(candle(0, symbol="XRP/USDT"))
    assert monitor.admit(candle(0, timeframe=Timeframe.M5))
    assert monitor.admit(candle(1))
    assert not monitor.admit(candle(1))
    assert not monitor.admit(candle(0))
    stats = monitor.snapshot()
    assert stats.rejected_by_reason == {"duplicate": 1, "out_of_order": 1}
    assert "older than the last candle passed on (2019-10-11T00:01:00+00:00)" in stats.recent_rejections[1]
    assert stats.gaps == 0
    assert stats.longest_gap is None
    assert stats.emitted == 0


def test_a_gap_is_counted_and_logged_with_its_first_and_last_missing_candle() -> None:
    monitor = FeedMonitor(feed="replay", keep=1)
    with capture_logs() as logs:
        for step in (0, 3, 4, 6):
            assert monitor.admit(candle(step))
            monitor.count_emitted(candle(step))
    stats = monitor.snapshot()
    assert (stats.emitted, stats.gaps, stats.missing_candles) == (4, 2, 3)
    assert stats.longest_gap is not None
    assert stats.longest_gap.missing == 2
    assert [gap.missing for gap in stats.recent_gaps] == [1]  # keep=1: only the most recent
    assert logs[0] == {
        "event": "candle gap",
        "log_level": "info",
        "feed": "replay",
        "symbol": "XRP/ETH",
        "timeframe": "1m",
        "first_missing": "2019-10-11T00:01:00+00:00",
        "last_missing": "2019-10-11T00:02:00+00:00",
        "missing": 2,
    }
