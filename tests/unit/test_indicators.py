"""Indicators against small examples computed by hand (the batch references of ``tests.reference_indicators`` and
the incremental classes), warm-up, and the per-market ``IndicatorSet``."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from tests.reference_indicators import adx, atr, bollinger, ema, macd, realised_volatility, rsi, sma, true_range, vwap
from triplegain.market.candle import Candle, Timeframe, candle_from_values, ms_from_utc
from triplegain.market.indicators import (
    Adx,
    Atr,
    Bollinger,
    Ema,
    IndicatorSet,
    Macd,
    RealisedVolatility,
    Rsi,
    Sma,
    Vwap,
    periods_per_year,
)
from triplegain.market.settings import IndicatorSettings

NAN = math.nan


def assert_series(actual: np.ndarray, expected: list[float], rel: float = 1e-9) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual.tolist(), expected, strict=True):
        if math.isnan(want):
            assert math.isnan(got), (actual, expected)
        else:
            assert got == pytest.approx(want, rel=rel), (actual, expected)


def test_sma_and_ema() -> None:
    assert_series(sma([1, 2, 3, 4, 5], 3), [NAN, NAN, 2, 3, 4])
    # EMA(3): α = 0.5, seeded with mean(2, 4, 6) = 4; then 4 + 0.5·(8 − 4) = 6; 6 + 0.5·(12 − 6) = 9.
    assert_series(ema([2, 4, 6, 8, 12], 3), [NAN, NAN, 4, 6, 9])
    assert_series(sma([1.0, 2.0], 3), [NAN, NAN])


def test_rsi_with_wilder_smoothing() -> None:
    # Changes +1, +1, −1, +1. Seed (period 2): gain 1, loss 0 → 100. Then gain (1 + 0)/2 = 0.5,
    # loss (0 + 1)/2 = 0.5 → 50. Then gain (0.5 + 1)/2 = 0.75, loss 0.25 → 75.
    assert_series(rsi([1, 2, 3, 2, 3], 2), [NAN, NAN, 100, 50, 75])
    assert_series(rsi([5, 5, 5], 2), [NAN, NAN, 50])  # no move at all: neutral


def test_macd_line_signal_and_histogram() -> None:
    line, signal, histogram = macd([1, 2, 4, 8, 16, 32], fast=2, slow=3, signal=2)
    # EMA(2): 1.5, 3.1667, 6.3889, 12.7963, 25.5988 from index 1; EMA(3): 2.3333, 5.1667, 10.5833, 21.2917 from 2.
    assert_series(line, [NAN, NAN, 0.83333, 1.22222, 2.21296, 4.30710], rel=1e-4)
    assert_series(signal, [NAN, NAN, NAN, 1.02778, 1.81790, 3.47737], rel=1e-4)
    assert_series(histogram, [NAN, NAN, NAN, 0.19444, 0.39506, 0.82973], rel=1e-3)


def test_true_range_and_atr() -> None:
    # A gap up: the previous close (10) is below today's low (12), so the range reaches back to it.
    assert_series(true_range([10, 11, 13], [8, 9, 12], [9, 10, 12.5]), [NAN, 2, 3])
    high, low, close = [10, 11, 12, 15, 14], [8, 9, 10, 11, 12], [9, 10, 11, 14, 13]
    # True ranges 2, 2, 4, 2; ATR(2) seeded with mean(2, 2) = 2, then (2 + 4)/2 = 3, (3 + 2)/2 = 2.5.
    assert_series(atr(high, low, close, 2), [NAN, NAN, 2, 3, 2.5])


def test_bollinger_bands() -> None:
    mid, upper, lower, bandwidth = bollinger([1, 2, 3], period=3, width=2.0)
    deviation = math.sqrt(2 / 3)  # population standard deviation of 1, 2, 3
    assert_series(mid, [NAN, NAN, 2])
    assert_series(upper, [NAN, NAN, 2 + 2 * deviation])
    assert_series(lower, [NAN, NAN, 2 - 2 * deviation])
    assert_series(bandwidth, [NAN, NAN, 4 * deviation / 2])


def test_adx_with_directional_indicators() -> None:
    high, low, close = [10, 12, 13, 12, 14], [8, 9, 11, 10, 11], [9, 11, 12, 11, 13]
    # +DM 2, 1, 0, 2; −DM 0, 0, 1, 0; TR 3, 2, 2, 3 (period 2, Wilder).
    # Index 2: ATR 2.5, +DM 1.5, −DM 0 → +DI 60, −DI 0, DX 100.
    # Index 3: ATR 2.25, +DM 0.75, −DM 0.5 → +DI 33.33, −DI 22.22, DX 20; ADX = mean(100, 20) = 60.
    # Index 4: ATR 2.625, +DM 1.375, −DM 0.25 → +DI 52.38, −DI 9.524, DX 69.23; ADX (60 + 69.23)/2.
    result = adx(high, low, close, 2)
    assert_series(result.plus_di, [NAN, NAN, 60, 100 / 3, 100 * 1.375 / 2.625])
    assert_series(result.minus_di, [NAN, NAN, 0, 200 / 9, 100 * 0.25 / 2.625])
    assert_series(result.adx, [NAN, NAN, NAN, 60, (60 + 100 * 1.125 / 1.625) / 2])


def test_adx_of_a_flat_market_is_zero() -> None:
    result = adx([5.0] * 6, [5.0] * 6, [5.0] * 6, 2)
    assert_series(result.plus_di, [NAN, NAN, 0, 0, 0, 0])
    assert_series(result.adx, [NAN, NAN, NAN, 0, 0, 0])


def test_realised_volatility_is_the_sample_deviation_of_log_returns() -> None:
    closes = [1, math.exp(0.1), math.exp(0.3), math.exp(0.2)]  # log returns 0.1, 0.2, −0.1
    expected = [NAN, NAN, float(np.std([0.1, 0.2], ddof=1)), float(np.std([0.2, -0.1], ddof=1))]
    assert_series(realised_volatility(closes, window=2), expected)
    assert_series(realised_volatility(closes, window=2, periods_per_year=4), [value * 2 for value in expected])
    assert periods_per_year(Timeframe.M5) == 365 * 288
    assert periods_per_year(Timeframe.D1) == 365


def test_vwap_over_a_rolling_window() -> None:
    # Typical prices 10, 20, 30, 40 with volumes 1, 3, 0, 0.
    high, low, close, volume = [12, 22, 30, 40], [9, 18, 30, 40], [9, 20, 30, 40], [1, 3, 0, 0]
    # (10·1 + 20·3)/4 = 17.5; (20·3 + 30·0)/3 = 20; then a window without trades has no VWAP.
    assert_series(vwap(high, low, close, volume, window=2), [NAN, 17.5, 20, NAN])


def test_incremental_indicators_report_none_during_warm_up() -> None:
    average = Sma(3)
    assert [average.update(value) for value in [1.0, 2.0, 3.0, 4.0]] == [None, None, 2.0, 3.0]
    smoothed = Ema(3)
    assert [smoothed.update(value) for value in [2.0, 4.0, 6.0, 8.0]] == [None, None, 4.0, 6.0]
    strength = Rsi(2)
    assert [strength.update(value) for value in [1.0, 2.0, 3.0, 2.0]] == [None, None, 100.0, 50.0]
    ranges = Atr(2)
    assert [ranges.update(*point) for point in [(10, 8, 9), (11, 9, 10), (12, 10, 11)]] == [None, None, 2.0]
    convergence = Macd(2, 3, 2)
    values = [convergence.update(value) for value in [1.0, 2.0, 4.0, 8.0]]
    assert values[:2] == [None, None]
    assert values[2] is not None
    assert values[2].signal is None
    assert values[2].histogram is None
    assert values[3] is not None
    assert values[3].signal == pytest.approx(1.02778, rel=1e-4)
    bands = Bollinger(3)
    assert [bands.update(value) is None for value in [1.0, 2.0, 3.0]] == [True, True, False]
    direction = Adx(2)
    points = [(10, 8, 9), (12, 9, 11), (13, 11, 12), (12, 10, 11)]
    outputs = [direction.update(*point) for point in points]
    assert outputs[:2] == [None, None]
    assert outputs[2] is not None
    assert outputs[2].adx is None
    assert outputs[2].plus_di == pytest.approx(60)
    assert outputs[3] is not None
    assert outputs[3].adx == pytest.approx(60)
    volatility = RealisedVolatility(2)
    assert [volatility.update(value) is None for value in [1.0, 1.1, 1.2]] == [True, True, False]
    weighted = Vwap(2)
    assert weighted.update(12, 9, 9, 1) is None
    assert weighted.update(22, 18, 20, 3) == pytest.approx(17.5)
    assert weighted.update(30, 30, 30, 0) == pytest.approx(20)
    assert weighted.update(40, 40, 40, 0) is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Sma(0), "period must be at least 1, got 0"),
        (lambda: RealisedVolatility(1), "window must be at least 2, got 1"),
        (lambda: Macd(fast=3, slow=3), r"fast period \(3\) must be less than the slow period \(3\)"),
        (lambda: sma(np.ones((2, 2)), 1), r"1-D series of numbers, got an array of shape \(2, 2\)"),
    ],
)
def test_bad_arguments_are_clear_errors(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def market(count: int, symbol: str = "BTC/USD") -> list[Candle]:
    """A deterministic zig-zag market with some structure to it."""
    start_ms = ms_from_utc(datetime(2024, 1, 1, tzinfo=UTC))
    candles = []
    for index in range(count):
        open_ = 100 + 10 * math.sin(index / 7) + index * 0.1
        close = open_ + math.cos(index / 3)
        result = candle_from_values(
            symbol,
            Timeframe.M5,
            start_ms + index * Timeframe.M5.milliseconds,
            open_,
            max(open_, close) + 0.5,
            min(open_, close) - 0.4,
            close,
            10 + index % 5,
        )
        assert isinstance(result, Candle)
        candles.append(result)
    return candles


def test_an_indicator_set_matches_the_batch_functions() -> None:
    candles = market(80)
    indicators = IndicatorSet("BTC/USD", Timeframe.M5)
    snapshots = [indicators.update(candle) for candle in candles]
    assert not snapshots[10].warmed_up
    assert snapshots[10].sma is None
    assert snapshots[10].ema_fast is not None
    last = snapshots[-1]
    assert last.warmed_up
    assert last.candles == 80
    assert last.close == candles[-1].close
    assert last.open_time == candles[-1].open_time
    assert indicators.snapshot is last

    periods = IndicatorSettings()
    high = [candle.high for candle in candles]
    low = [candle.low for candle in candles]
    close = [candle.close for candle in candles]
    volume = [candle.volume for candle in candles]
    line, signal, histogram = macd(close)
    bands = bollinger(close)
    directional = adx(high, low, close)
    expected = {
        "sma": sma(close, periods.sma_period),
        "ema_fast": ema(close, periods.ema_fast_period),
        "ema_slow": ema(close, periods.ema_slow_period),
        "rsi": rsi(close),
        "macd": line,
        "macd_signal": signal,
        "macd_histogram": histogram,
        "atr": atr(high, low, close),
        "bollinger_mid": bands.mid,
        "bollinger_upper": bands.upper,
        "bollinger_lower": bands.lower,
        "bollinger_bandwidth": bands.bandwidth,
        "adx": directional.adx,
        "plus_di": directional.plus_di,
        "minus_di": directional.minus_di,
        "volatility": realised_volatility(close, 20, periods_per_year(Timeframe.M5)),
        "vwap": vwap(high, low, close, volume),
    }
    for name, series in expected.items():
        assert getattr(last, name) == pytest.approx(float(series[-1]), rel=1e-9), name


def test_an_sma_of_the_bollinger_period_is_the_bollinger_mid_and_another_period_its_own() -> None:
    candles = market(60)
    close = [candle.close for candle in candles]
    default, seven = (
        IndicatorSet("BTC/USD", Timeframe.M5),
        IndicatorSet("BTC/USD", Timeframe.M5, IndicatorSettings(sma_period=7)),
    )
    shared = [default.update(candle) for candle in candles][-1]
    assert shared.sma is not None
    assert shared.sma == shared.bollinger_mid
    last = [seven.update(candle) for candle in candles][-1]
    assert last.sma == pytest.approx(float(sma(close, 7)[-1]), rel=1e-9)
    assert last.bollinger_mid == shared.bollinger_mid


def test_an_indicator_set_refuses_another_market_or_an_old_candle() -> None:
    candles = market(3)
    indicators = IndicatorSet("BTC/USD", Timeframe.M5)
    indicators.update(candles[1])
    with pytest.raises(ValueError, match="indicator set of BTC/USD 5m got a ETH/USD 5m candle"):
        indicators.update(market(1, symbol="ETH/USD")[0])
    with pytest.raises(ValueError, match="is not after"):
        indicators.update(candles[0])
