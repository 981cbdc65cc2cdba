"""Inputs that several test modules build the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from triplegain.agents.frames import Frame, FrameBook
from triplegain.market import Candle, Timeframe

START = datetime(2024, 1, 1, tzinfo=UTC)


def candles_from_closes(closes: list[float], symbol: str = "BTC/USDT", start: datetime = START) -> list[Candle]:
    """5m candles from ``start``, each opening at the previous close, with wicks of 0.1%."""
    candles, previous = [], closes[0]
    for index, close in enumerate(closes):
        candles.append(
            Candle(
                symbol=symbol,
                timeframe=Timeframe.M5,
                open_time=start + timedelta(minutes=5 * index),
                open=previous,
                high=max(previous, close) * 1.001,
                low=min(previous, close) * 0.999,
                close=close,
                volume=100.0,
            )
        )
        previous = close
    return candles


def nth_candle(
    start: datetime,
    index: int,
    open_: float,
    high: float,
    low: float,
    close: float,
    *,
    volume: float = 1_000.0,
    symbol: str = "BTC/USDT",
) -> Candle:
    """The 5m candle ``index`` after ``start`` (candle 0 opens at ``start`` and closes 5 minutes later)."""
    return Candle(
        symbol=symbol,
        timeframe=Timeframe.M5,
        open_time=start + timedelta(minutes=5 * index),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )


def rising_closes(count: int = 120, start: float = 100.0) -> list[float]:
    """A steady uptrend: +0.3% three candles in four, −0.1% on the fourth."""
    closes, previous = [], start
    for index in range(count):
        previous *= 1.003 if index % 4 else 0.999
        closes.append(previous)
    return closes


def rising_frames(count: int = 120) -> list[Frame]:
    """BTC/USDT's 5m frame after each candle of ``rising_closes``."""
    book = FrameBook(Timeframe.M5, [Timeframe.M5], window=100)
    frames = []
    for candle in candles_from_closes([100.0, *rising_closes(count)])[1:]:
        book.update(candle)
        frame = book.frame("BTC/USDT", Timeframe.M5)
        assert frame is not None
        frames.append(frame)
    return frames
