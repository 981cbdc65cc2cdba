"""Property: on any valid price series, every incremental indicator equals its batch function, warm-up included."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference_indicators import adx, atr, bollinger, ema, macd, realised_volatility, rsi, sma, vwap
from triplegain.market.indicators import Adx, Atr, Bollinger, Ema, Macd, RealisedVolatility, Rsi, Sma, Vwap

RELATIVE = 1e-9
T = TypeVar("T")


@dataclass(frozen=True)
class Series:
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]

    @property
    def scale(self) -> float:
        return max(self.high)


@st.composite
def series(draw: st.DrawFn) -> Series:
    """Candles of a random walk: log returns up to ±20 %, wicks up to 5 %, volume often zero (else ≥ 0.001)."""
    price = draw(st.floats(min_value=1e-4, max_value=1e5))
    moves = draw(st.lists(st.floats(min_value=-0.2, max_value=0.2), min_size=1, max_size=70))
    flat = draw(st.booleans())  # long runs of the same price are where rounding would show
    high, low, close, volume = [], [], [], []
    for move in moves:
        opened, price = price, price if flat and move > 0 else price * math.exp(move)
        wick_up, wick_down = draw(st.floats(0, 0.05)), draw(st.floats(0, 0.05))
        high.append(max(opened, price) * (1 + wick_up))
        low.append(min(opened, price) * (1 - wick_down))
        close.append(price)
        volume.append(draw(st.sampled_from([0.0, 1.0])) * draw(st.floats(1e-3, 1e4)))
    return Series(high, low, close, volume)


periods = st.integers(min_value=1, max_value=12)


def assert_same(incremental: Sequence[float | None], batch: Sequence[float], absolute: float) -> None:
    assert len(incremental) == len(batch)
    for index, (got, want) in enumerate(zip(incremental, batch, strict=True)):
        if math.isnan(want):
            assert got is None, f"index {index}: incremental {got}, batch NaN"
        else:
            assert got is not None, f"index {index}: incremental None, batch {want}"
            assert math.isclose(got, want, rel_tol=RELATIVE, abs_tol=absolute), f"index {index}: {got} != {want}"


def run(update: Callable[[int], T], length: int) -> list[T]:
    """The incremental indicator's output after each candle."""
    return [update(index) for index in range(length)]


def part(values: Sequence[Any], name: str) -> list[float | None]:
    """One field of a tuple-valued indicator's outputs (None where the whole output is None)."""
    return [getattr(value, name) if value is not None else None for value in values]


@settings(max_examples=60, deadline=None)
@given(data=series(), period=periods)
def test_moving_averages_and_rsi(data: Series, period: int) -> None:
    size, tight = len(data.close), 1e-9 * data.scale
    average, smoothed, strength = Sma(period), Ema(period), Rsi(period)
    assert_same(run(lambda i: average.update(data.close[i]), size), sma(data.close, period).tolist(), tight)
    assert_same(run(lambda i: smoothed.update(data.close[i]), size), ema(data.close, period).tolist(), tight)
    assert_same(run(lambda i: strength.update(data.close[i]), size), rsi(data.close, period).tolist(), 1e-9)


@settings(max_examples=60, deadline=None)
@given(data=series(), fast=periods, extra=periods, signal=periods)
def test_macd(data: Series, fast: int, extra: int, signal: int) -> None:
    indicator = Macd(fast, fast + extra, signal)
    values = run(lambda i: indicator.update(data.close[i]), len(data.close))
    expected = macd(data.close, fast, fast + extra, signal)
    tight = 1e-9 * data.scale
    assert_same(part(values, "line"), expected.line.tolist(), tight)
    assert_same(part(values, "signal"), expected.signal.tolist(), tight)
    assert_same(part(values, "histogram"), expected.histogram.tolist(), tight)


@settings(max_examples=60, deadline=None)
@given(data=series(), period=periods)
def test_atr_and_adx(data: Series, period: int) -> None:
    size = len(data.close)
    ranges, direction = Atr(period), Adx(period)

    def candle(index: int) -> tuple[float, float, float]:
        return data.high[index], data.low[index], data.close[index]

    expected_atr = atr(data.high, data.low, data.close, period).tolist()
    assert_same(run(lambda i: ranges.update(*candle(i)), size), expected_atr, 1e-9 * data.scale)
    values = run(lambda i: direction.update(*candle(i)), size)
    expected = adx(data.high, data.low, data.close, period)
    assert_same(part(values, "plus_di"), expected.plus_di.tolist(), 1e-7)
    assert_same(part(values, "minus_di"), expected.minus_di.tolist(), 1e-7)
    assert_same(part(values, "adx"), expected.adx.tolist(), 1e-7)


@settings(max_examples=60, deadline=None)
@given(data=series(), period=periods, width=st.floats(0.5, 3.0))
def test_bollinger(data: Series, period: int, width: float) -> None:
    bands = Bollinger(period, width)
    values = run(lambda i: bands.update(data.close[i]), len(data.close))
    expected = bollinger(data.close, period, width)
    # A standard deviation is the square root of a difference of sums: its error is ~1e-8 of the price scale.
    loose = 1e-7 * data.scale
    assert_same(part(values, "mid"), expected.mid.tolist(), 1e-9 * data.scale)
    assert_same(part(values, "upper"), expected.upper.tolist(), loose)
    assert_same(part(values, "lower"), expected.lower.tolist(), loose)
    assert_same(part(values, "bandwidth"), expected.bandwidth.tolist(), 1e-7)


@settings(max_examples=60, deadline=None)
@given(data=series(), window=st.integers(min_value=2, max_value=12), annualise=st.booleans())
def test_realised_volatility(data: Series, window: int, annualise: bool) -> None:
    per_year = 105_120.0 if annualise else None
    volatility = RealisedVolatility(window, per_year)
    values = run(lambda i: volatility.update(data.close[i]), len(data.close))
    expected = realised_volatility(data.close, window, per_year).tolist()
    assert_same(values, expected, 1e-7 * (math.sqrt(per_year) if per_year else 1.0))


@settings(max_examples=60, deadline=None)
@given(data=series(), window=periods)
def test_vwap(data: Series, window: int) -> None:
    weighted = Vwap(window)
    values = run(lambda i: weighted.update(data.high[i], data.low[i], data.close[i], data.volume[i]), len(data.close))
    expected = vwap(data.high, data.low, data.close, data.volume, window).tolist()
    assert_same(values, expected, 1e-9 * data.scale)
