"""Inputs that several test modules build the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
