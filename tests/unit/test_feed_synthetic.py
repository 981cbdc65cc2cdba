from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from triplegain.clock import FakeClock
from triplegain.market.candle import Candle, Timeframe
from triplegain.market.feeds import Feed
from triplegain.market.feeds.synthetic import SyntheticFeed
from triplegain.market.settings import SyntheticSettings


async def generate(**settings: object) -> tuple[list[Candle], SyntheticFeed]:
    feed = SyntheticFeed(SyntheticSettings.model_validate(settings), clock=FakeClock())
    return [candle async for candle in feed], feed


async def test_the_same_seed_gives_the_same_candles_and_another_seed_others() -> None:
    first, _ = await generate(seed=11, count=300)
    again, _ = await generate(seed=11, count=300)
    other, _ = await generate(seed=12, count=300)
    assert first == again
    assert [candle.close for candle in first] != [candle.close for candle in other]


async def test_adding_a_symbol_leaves_the_other_paths_alone() -> None:
    alone, _ = await generate(symbols={"BTC/USD": 40_000.0}, count=100)
    together, _ = await generate(symbols={"BTC/USD": 40_000.0, "SOL/USD": 90.0}, count=100)
    assert alone == [candle for candle in together if candle.symbol == "BTC/USD"]


async def test_symbols_share_a_time_grid_in_order_and_start_at_their_prices() -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    candles, feed = await generate(
        symbols={"BTC/USD": 40_000.0, "ETH/USD": 2_500.0}, timeframe="15m", start=start.isoformat(), count=4
    )
    assert isinstance(feed, Feed)
    assert [(candle.symbol, candle.open_time) for candle in candles] == [
        (symbol, start + step * timedelta(minutes=15)) for step in range(4) for symbol in ("BTC/USD", "ETH/USD")
    ]
    assert (candles[0].open, candles[1].open) == (40_000.0, 2_500.0)
    assert all(candle.timeframe is Timeframe.M15 for candle in candles)
    stats = feed.stats()
    assert stats.emitted == 8
    assert stats.rejected == 0
    assert stats.gaps == 0


async def test_an_end_time_stops_the_candles() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    candles, _ = await generate(
        symbols={"BTC/USD": 40_000.0}, timeframe="1h", start=start.isoformat(), count=None, end="2024-01-02T00:00Z"
    )
    assert len(candles) == 24
    assert candles[-1].open_time == datetime(2024, 1, 1, 23, tzinfo=UTC)


async def test_candles_look_like_a_market() -> None:
    candles, _ = await generate(symbols={"BTC/USD": 40_000.0}, timeframe="5m", count=6_000, seed=3)
    closes = np.array([candle.close for candle in candles])
    opens = np.array([candle.open for candle in candles])
    assert np.all(opens[1:] == closes[:-1])  # each candle opens where the last one closed
    returns = np.diff(np.log(closes))
    # Regime switching: volatility over a day's candles varies a lot across the sample.
    daily = returns[: len(returns) // 288 * 288].reshape(-1, 288).std(axis=1)
    assert daily.max() > 2 * daily.min()
    # Volume rises with the size of the candle's move.
    moves = np.abs(np.log(closes / opens))
    volumes = np.array([candle.volume for candle in candles])
    assert np.corrcoef(moves, volumes)[0, 1] > 0.3
    # Wicks: high and low extend past the body on most candles.
    highs = np.array([candle.high for candle in candles])
    assert np.mean(highs > np.maximum(opens, closes)) > 0.9
    # No price runs away: annualised volatility is in a crypto-like range.
    annualised = returns.std() * math.sqrt(365 * 288)
    assert 0.2 < annualised < 2.0


def test_settings_refuse_bad_prices_and_an_end_before_the_start() -> None:
    with pytest.raises(ValidationError, match=r"start prices must be > 0: \{'BTC/USD': 0.0\}"):
        SyntheticSettings(symbols={"BTC/USD": 0.0})
    with pytest.raises(ValidationError, match="must be after start"):
        SyntheticSettings.model_validate({"start": "2024-01-02T00:00Z", "end": "2024-01-01T00:00Z"})
    with pytest.raises(ValidationError, match="timezone"):
        SyntheticSettings.model_validate({"start": "2024-01-02T00:00"})


async def test_aclose_ends_the_candles() -> None:
    feed = SyntheticFeed(SyntheticSettings(count=None), clock=FakeClock())
    await anext(feed)
    await feed.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(feed)
