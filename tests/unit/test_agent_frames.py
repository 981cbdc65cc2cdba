"""FrameBook: longer timeframes aggregated from base candles, per-symbol frames, swing points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triplegain.agents import AgentsSettings, CandleAggregator, FrameBook, TechnicalSettings
from triplegain.market import Candle, Timeframe

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def candle(
    index: int, close: float, *, symbol: str = "BTC/USDT", high: float | None = None, low: float | None = None
) -> Candle:
    """The 5m candle ``index`` candles after T0: open 1 below the close, wicks of 0.5 (unless given)."""
    open_ = close - 1
    return Candle(
        symbol=symbol,
        timeframe=Timeframe.M5,
        open_time=T0 + timedelta(minutes=5 * index),
        open=open_,
        high=high if high is not None else max(open_, close) + 0.5,
        low=low if low is not None else min(open_, close) - 0.5,
        close=close,
        volume=10.0,
    )


def test_three_5m_candles_make_one_15m_candle() -> None:
    aggregator = CandleAggregator("BTC/USDT", Timeframe.M15)
    assert aggregator.add(candle(0, 100, high=104, low=98)) == []
    assert aggregator.add(candle(1, 101, high=103, low=97)) == []
    [built] = aggregator.add(candle(2, 102, high=102.5, low=99))
    assert built == Candle(
        symbol="BTC/USDT",
        timeframe=Timeframe.M15,
        open_time=T0,
        open=99,
        high=104,
        low=97,
        close=102,
        volume=30,
    )


def test_a_bucket_cut_short_by_a_gap_is_emitted_when_the_next_one_starts() -> None:
    aggregator = CandleAggregator("BTC/USDT", Timeframe.M15)
    aggregator.add(candle(0, 100))
    built = aggregator.add(candle(4, 105))  # candles 1–3 missing: the 00:00 bucket ends, 00:15 begins
    assert [(item.open_time, item.close, item.volume) for item in built] == [(T0, 100, 10)]
    [next_bucket] = aggregator.add(candle(5, 106))
    assert (next_bucket.open_time, next_bucket.open, next_bucket.close) == (T0 + timedelta(minutes=15), 104, 106)


def test_update_reports_the_timeframes_that_closed() -> None:
    book = FrameBook(Timeframe.M5, [Timeframe.H1, Timeframe.M5, Timeframe.M15], window=50)
    closed = [book.update(candle(index, 100 + index)) for index in range(12)]
    assert closed[0] == (Timeframe.M5,)
    assert closed[2] == (Timeframe.M5, Timeframe.M15)
    assert closed[11] == (Timeframe.M5, Timeframe.M15, Timeframe.H1)
    hour = book.frame("BTC/USDT", Timeframe.H1)
    assert hour is not None
    assert [item.close for item in hour.candles] == [111]
    assert hour.latest.close == 111


def test_frames_are_kept_per_symbol() -> None:
    book = FrameBook(Timeframe.M5, [Timeframe.M5], window=10)
    for index in range(3):
        book.update(candle(index, 100 + index))
        book.update(candle(index, 5 + index, symbol="XRP/USDT"))
    btc, xrp = book.frame("BTC/USDT", Timeframe.M5), book.frame("XRP/USDT", Timeframe.M5)
    assert btc is not None
    assert xrp is not None
    assert {item.symbol for item in btc.candles} == {"BTC/USDT"}
    assert [item.close for item in xrp.candles] == [5, 6, 7]
    assert book.frame("ETH/USDT", Timeframe.M5) is None


def test_the_same_frame_is_handed_out_until_its_next_candle() -> None:
    book = FrameBook(Timeframe.M5, [Timeframe.M5, Timeframe.M15], window=10)
    for index in range(3):
        book.update(candle(index, 100 + index))
    quarter = book.frame("BTC/USDT", Timeframe.M15)
    book.update(candle(3, 103))
    assert book.frame("BTC/USDT", Timeframe.M15) is quarter
    book.update(candle(4, 104))
    book.update(candle(5, 105))
    assert book.frame("BTC/USDT", Timeframe.M15) is not quarter


def test_window_bounds_the_history() -> None:
    book = FrameBook(Timeframe.M5, [Timeframe.M5], window=4)
    for index in range(10):
        book.update(candle(index, 100 + index))
    frame = book.frame("BTC/USDT", Timeframe.M5)
    assert frame is not None
    assert [item.close for item in frame.candles] == [106, 107, 108, 109]
    assert [item.close for item in frame.snapshots] == [106, 107, 108, 109]
    assert frame.latest.candles == 10


def test_swings_are_marked_once_confirmed_by_the_candles_after_them() -> None:
    book = FrameBook(Timeframe.M5, [Timeframe.M5], window=20, swing_width=2)
    closes = [100, 102, 105, 103, 101, 99, 102]  # a peak at index 2, a trough at index 5
    for index, close in enumerate(closes[:4]):
        book.update(candle(index, close))
    frame = book.frame("BTC/USDT", Timeframe.M5)
    assert frame is not None
    assert frame.swings == ()  # the peak needs two candles after it
    book.update(candle(4, closes[4]))
    frame = book.frame("BTC/USDT", Timeframe.M5)
    assert frame is not None
    assert [(swing.open_time, swing.price, swing.high) for swing in frame.swings] == [
        (T0 + timedelta(minutes=10), 105.5, True)
    ]
    for index in (5, 6, 7):
        book.update(candle(index, [99, 102, 104][index - 5]))
    frame = book.frame("BTC/USDT", Timeframe.M5)
    assert frame is not None
    assert [(swing.price, swing.high) for swing in frame.swings] == [(105.5, True), (97.5, False)]


def test_a_window_shorter_than_a_swing_neighbourhood_marks_no_swings() -> None:
    book = FrameBook(Timeframe.M5, [Timeframe.M5], window=4, swing_width=2)
    for index, close in enumerate([100, 102, 105, 103, 101, 99, 102, 104]):
        book.update(candle(index, close))
    frame = book.frame("BTC/USDT", Timeframe.M5)
    assert frame is not None
    assert frame.swings == ()


def test_swings_older_than_the_window_are_forgotten() -> None:
    book = FrameBook(Timeframe.M5, [Timeframe.M5], window=6, swing_width=1)
    for index, close in enumerate([100, 105, 100, 101, 102, 103, 104, 105, 106]):
        book.update(candle(index, close))
    frame = book.frame("BTC/USDT", Timeframe.M5)
    assert frame is not None
    assert all(swing.open_time >= frame.candles[0].open_time for swing in frame.swings)
    assert 105.5 not in [swing.price for swing in frame.swings]


def test_timeframes_that_cannot_be_built_are_refused() -> None:
    with pytest.raises(ValueError, match=r"timeframes 1m cannot be built from 5m candles"):
        FrameBook(Timeframe.M5, [Timeframe.M1, Timeframe.M5], window=10)


def test_a_candle_of_another_timeframe_is_refused() -> None:
    book = FrameBook(Timeframe.M5, [Timeframe.M5], window=10)
    hourly = candle(0, 100).model_copy(update={"timeframe": Timeframe.H1})
    with pytest.raises(ValueError, match="fed with 5m candles got a 1h BTC/USDT candle"):
        book.update(hourly)


def test_an_untracked_timeframe_is_a_key_error() -> None:
    book = FrameBook(Timeframe.M5, [Timeframe.M5], window=10)
    with pytest.raises(KeyError, match="timeframe 4h is not tracked"):
        book.frame("BTC/USDT", Timeframe.H4)


def test_for_agents_tracks_every_timeframe_the_agents_read() -> None:
    settings = AgentsSettings(technical=TechnicalSettings(timeframes=[Timeframe.M5, Timeframe.H1]))
    book = FrameBook.for_agents(Timeframe.M5, settings)
    assert book.timeframes == (Timeframe.M5, Timeframe.M15, Timeframe.H1)
    assert book.window == 100
    assert book.swing_width == settings.technical.swing_width
