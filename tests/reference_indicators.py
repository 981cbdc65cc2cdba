"""Batch indicators over whole arrays: what the incremental classes of ``triplegain.market.indicators`` are
tested against.

Each function takes 1-D array-likes and returns float64 arrays of the same length, NaN where the indicator has
no value yet (the warm-ups are tabled in ``triplegain.market.indicators``). They are written the plain way —
vectorised, or one loop over the array where each value depends on the previous one — and share nothing with
the incremental code's ring buffers and compensated sums, so agreement between the two means something. Periods
come from the tests, so they are not checked here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = npt.NDArray[np.float64]


class MacdSeries(NamedTuple):
    line: FloatArray
    signal: FloatArray
    histogram: FloatArray


class BollingerSeries(NamedTuple):
    mid: FloatArray
    upper: FloatArray
    lower: FloatArray
    bandwidth: FloatArray
    """(upper − lower) / mid."""


class AdxSeries(NamedTuple):
    adx: FloatArray
    plus_di: FloatArray
    minus_di: FloatArray


def sma(values: npt.ArrayLike, period: int) -> FloatArray:
    """Simple moving average."""
    x = _series(values)
    out = _empty(len(x))
    if len(x) >= period:
        out[period - 1 :] = sliding_window_view(x, period).mean(axis=1)
    return out


def ema(values: npt.ArrayLike, period: int) -> FloatArray:
    """Exponential moving average, α = 2 / (period + 1), seeded with the SMA of the first ``period`` values."""
    return _ema(_series(values), period)


def rsi(close: npt.ArrayLike, period: int = 14) -> FloatArray:
    """Relative strength index (Wilder): 100 · average gain / (average gain + average loss)."""
    x = _series(close)
    changes = np.diff(x, prepend=np.nan)
    gains = _wilder(np.where(changes > 0, changes, 0.0), period, first=1)
    losses = _wilder(np.where(changes < 0, -changes, 0.0), period, first=1)
    return 100.0 * _ratio(gains, gains + losses, when_zero=0.5)


def macd(close: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9) -> MacdSeries:
    """MACD line (EMA fast − EMA slow), its signal line (EMA of the line) and the histogram (line − signal)."""
    x = _series(close)
    line = _ema(x, fast) - _ema(x, slow)
    signal_line = _empty(len(x))
    if len(x) >= slow:
        signal_line[slow - 1 :] = _ema(line[slow - 1 :], signal)
    return MacdSeries(line, signal_line, line - signal_line)


def true_range(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> FloatArray:
    """max(high − low, |high − previous close|, |low − previous close|); NaN for the first candle."""
    highs, lows, closes = _series(high), _series(low), _series(close)
    previous = np.concatenate(([np.nan], closes[:-1]))
    ranges: FloatArray = np.maximum.reduce([highs - lows, np.abs(highs - previous), np.abs(lows - previous)])
    return ranges


def atr(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14) -> FloatArray:
    """Average true range (Wilder smoothing of ``true_range``)."""
    return _wilder(true_range(high, low, close), period, first=1)


def bollinger(close: npt.ArrayLike, period: int = 20, width: float = 2.0) -> BollingerSeries:
    """Bollinger bands: SMA ± ``width`` population standard deviations, and the bandwidth."""
    x = _series(close)
    mid = sma(x, period)
    deviation = _empty(len(x))
    if len(x) >= period:
        deviation[period - 1 :] = sliding_window_view(x, period).std(axis=1)
    upper, lower = mid + width * deviation, mid - width * deviation
    return BollingerSeries(mid, upper, lower, (upper - lower) / mid)


def adx(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14) -> AdxSeries:
    """Average directional index with +DI and −DI (Wilder)."""
    highs, lows = _series(high), _series(low)
    up = np.diff(highs, prepend=np.nan)
    down = -np.diff(lows, prepend=np.nan)
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    ranges = _wilder(true_range(highs, lows, close), period, first=1)
    plus_di = 100.0 * _ratio(_wilder(plus_dm, period, first=1), ranges, when_zero=0.0)
    minus_di = 100.0 * _ratio(_wilder(minus_dm, period, first=1), ranges, when_zero=0.0)
    dx = 100.0 * _ratio(np.abs(plus_di - minus_di), plus_di + minus_di, when_zero=0.0)
    return AdxSeries(_wilder(dx, period, first=period), plus_di, minus_di)


def realised_volatility(close: npt.ArrayLike, window: int = 20, periods_per_year: float | None = None) -> FloatArray:
    """Sample standard deviation of the last ``window`` log returns; × √periods_per_year if given (annualised)."""
    x = _series(close)
    returns = np.diff(np.log(x))
    out = _empty(len(x))
    if len(returns) >= window:
        out[window:] = sliding_window_view(returns, window).std(axis=1, ddof=1)
    return out * math.sqrt(periods_per_year) if periods_per_year is not None else out


def vwap(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, volume: npt.ArrayLike, window: int = 20
) -> FloatArray:
    """Rolling volume-weighted average of the typical price (high + low + close) / 3 over ``window`` candles."""
    highs, lows, closes, volumes = _series(high), _series(low), _series(close), _series(volume)
    out = _empty(len(closes))
    if len(closes) >= window:
        weighted = sliding_window_view((highs + lows + closes) / 3.0 * volumes, window).sum(axis=1)
        traded = sliding_window_view(volumes, window).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[window - 1 :] = np.where(traded > 0, weighted / traded, np.nan)
    return out


def _series(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"expected a 1-D series of numbers, got an array of shape {array.shape}")
    return array


def _empty(length: int) -> FloatArray:
    return np.full(length, np.nan)


def _ratio(numerator: FloatArray, denominator: FloatArray, *, when_zero: float) -> FloatArray:
    """numerator / denominator; ``when_zero`` where the denominator is 0, NaN where it is NaN (warm-up)."""
    out = np.full(len(denominator), when_zero)
    positive = denominator > 0
    out[positive] = numerator[positive] / denominator[positive]
    out[np.isnan(denominator)] = np.nan
    return out


def _ema(x: FloatArray, period: int) -> FloatArray:
    out = _empty(len(x))
    if len(x) < period:
        return out
    alpha = 2.0 / (period + 1)
    value = float(np.mean(x[:period]))
    out[period - 1] = value
    for index, item in enumerate(x[period:].tolist(), start=period):
        value += alpha * (item - value)
        out[index] = value
    return out


def _wilder(x: FloatArray, period: int, *, first: int) -> FloatArray:
    """Wilder's smoothing of ``x[first:]``: the mean of the first ``period`` values, then α = 1 / period."""
    out = _empty(len(x))
    seed_end = first + period
    if len(x) < seed_end:
        return out
    value = float(np.mean(x[first:seed_end]))
    out[seed_end - 1] = value
    for index, item in enumerate(x[seed_end:].tolist(), start=seed_end):
        value = (value * (period - 1) + item) / period
        out[index] = value
    return out
