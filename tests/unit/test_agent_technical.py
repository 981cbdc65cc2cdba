"""The technical agent: component formulas, known market scenarios, key levels, bounds, and the agent shell."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import candles_from_closes
from triplegain.agents import (
    Frame,
    FrameBook,
    LevelKind,
    TechnicalAgent,
    TechnicalContext,
    TechnicalSettings,
    assess_technical,
)
from triplegain.agents.frames import Swing
from triplegain.agents.technical import components_of, key_levels, rsi_component
from triplegain.clock import FakeClock
from triplegain.market import Candle, IndicatorSnapshot, Timeframe
from triplegain.model import AgentName, Bias

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TWO_FRAMES = TechnicalSettings(timeframes=[Timeframe.M5, Timeframe.M15])
ONE_FRAME = TechnicalSettings(timeframes=[Timeframe.M5])


def uptrend(count: int = 300) -> list[float]:
    """+0.3% a candle with a small wiggle."""
    return [100 * 1.003**index * (1 + 0.002 * math.sin(index * 1.3)) for index in range(count)]


def downtrend(count: int = 300) -> list[float]:
    return [100 * 0.997**index * (1 + 0.002 * math.sin(index * 1.3)) for index in range(count)]


def flat(count: int = 300, seed: int = 3) -> list[float]:
    """Noise of 0.1% around 100, no drift."""
    rng = random.Random(seed)
    return [100 * (1 + 0.001 * rng.gauss(0, 1)) for _ in range(count)]


def frames_after(closes: list[float], technical: TechnicalSettings = TWO_FRAMES) -> tuple[Frame, ...]:
    book = FrameBook(Timeframe.M5, technical.timeframes, window=100)
    for candle in candles_from_closes(closes):
        book.update(candle)
    return book.frames("BTC/USDT", technical.timeframes)


def snapshot(**values: Any) -> IndicatorSnapshot:
    """A hand-made snapshot: close 100 and every indicator None unless given."""
    fields: dict[str, Any] = dict.fromkeys(IndicatorSnapshot._fields)
    fields.update(symbol="BTC/USDT", timeframe=Timeframe.M5, open_time=T0, close=100.0, candles=200)
    fields.update(values)
    return IndicatorSnapshot(**fields)


def single_frame(snap: IndicatorSnapshot, swings: tuple[Swing, ...] = ()) -> Frame:
    candle = Candle(
        symbol=snap.symbol,
        timeframe=snap.timeframe,
        open_time=snap.open_time,
        open=snap.close,
        high=snap.close,
        low=snap.close,
        close=snap.close,
        volume=1.0,
    )
    return Frame(snap.symbol, snap.timeframe, (candle,), (snap,), swings)


# ---------------------------------------------------------------------------------------------- components


@pytest.mark.parametrize(
    ("rsi", "component"),
    [(50, 0.0), (60, 0.5), (70, 1.0), (85, 0.5), (100, 0.0), (40, -0.5), (30, -1.0), (15, -0.5), (0, 0.0)],
)
def test_rsi_counts_momentum_and_fades_past_the_extremes(rsi: float, component: float) -> None:
    assert rsi_component(rsi) == pytest.approx(component)


def test_components_are_in_atr_units() -> None:
    components = components_of(
        snapshot(ema_fast=101.0, ema_slow=100.0, atr=2.0, macd_histogram=0.2, rsi=60.0, vwap=102.0)
    )
    assert components.ema_cross == pytest.approx(math.tanh(0.5))
    assert components.macd == pytest.approx(math.tanh(1.0))
    assert components.rsi == pytest.approx(0.5)
    assert components.vwap == pytest.approx(math.tanh(-1.0))


def test_a_component_waits_for_its_indicators() -> None:
    components = components_of(snapshot(ema_fast=101.0, ema_slow=100.0, rsi=55.0))  # no ATR yet
    assert (components.ema_cross, components.macd, components.vwap) == (None, None, None)
    assert components.rsi == pytest.approx(0.25)


def test_a_market_that_never_moved_has_neutral_components() -> None:
    components = components_of(snapshot(ema_fast=100.0, ema_slow=100.0, atr=0.0, macd_histogram=0.0, vwap=100.0))
    assert (components.ema_cross, components.macd, components.vwap) == (0.0, 0.0, 0.0)


# ----------------------------------------------------------------------------------------------- scenarios


def test_a_clean_uptrend_is_long_with_high_confidence() -> None:
    baseline = assess_technical(frames_after(uptrend()), TWO_FRAMES)
    assert baseline.body.bias is Bias.LONG
    assert baseline.body.strength > 0.5
    assert baseline.body.timeframe_agreement == 1.0
    assert baseline.confidence > 0.8
    assert [reading.timeframe for reading in baseline.body.timeframes] == [Timeframe.M5, Timeframe.M15]
    assert all(reading.score > 0 for reading in baseline.body.timeframes)
    assert baseline.reasoning.startswith("long: score +")


def test_a_clean_downtrend_is_short() -> None:
    baseline = assess_technical(frames_after(downtrend()), TWO_FRAMES)
    assert baseline.body.bias is Bias.SHORT
    assert all(reading.score < 0 for reading in baseline.body.timeframes)


def test_a_flat_market_is_mostly_neutral() -> None:
    book = FrameBook(Timeframe.M5, TWO_FRAMES.timeframes, window=100)
    biases = []
    for index, candle in enumerate(candles_from_closes(flat())):
        book.update(candle)
        if index >= 60:  # past the warm-up of every indicator
            biases.append(assess_technical(book.frames("BTC/USDT", TWO_FRAMES.timeframes), TWO_FRAMES).body.bias)
    assert biases.count(Bias.NEUTRAL) / len(biases) > 0.8


def test_timeframes_that_disagree_lower_the_agreement_and_the_confidence() -> None:
    rising = snapshot(ema_fast=101.0, ema_slow=100.0, atr=1.0, macd_histogram=0.1, rsi=60.0, vwap=99.0, adx=30.0)
    falling = snapshot(
        timeframe=Timeframe.M15, ema_fast=99.0, ema_slow=100.0, atr=1.0, macd_histogram=-0.1, rsi=40.0, vwap=101.0
    )
    both = assess_technical([single_frame(rising), single_frame(falling)], TWO_FRAMES)
    alone = assess_technical([single_frame(rising)], ONE_FRAME)
    assert both.body.timeframe_agreement < 0.5
    assert both.confidence < alone.confidence
    assert alone.body.bias is Bias.LONG


def test_during_warm_up_the_view_is_neutral_at_zero_confidence() -> None:
    baseline = assess_technical(frames_after(uptrend(5), ONE_FRAME), ONE_FRAME)
    assert baseline.body.bias is Bias.NEUTRAL
    assert baseline.confidence == 0.0
    assert baseline.body.timeframes == ()


def test_missing_indicators_lower_the_coverage() -> None:
    full = snapshot(ema_fast=101.0, ema_slow=100.0, atr=1.0, macd_histogram=0.1, rsi=60.0, vwap=99.0, adx=30.0)
    partial = snapshot(ema_fast=101.0, ema_slow=100.0, atr=1.0, macd_histogram=0.1, rsi=60.0, vwap=99.0)
    assert (
        assess_technical([single_frame(partial)], ONE_FRAME).confidence
        < assess_technical([single_frame(full)], ONE_FRAME).confidence
    )


# -------------------------------------------------------------------------------------------------- levels


def test_levels_split_at_the_price_nearest_first() -> None:
    swings = (
        Swing(T0, 95.0, high=False),
        Swing(T0, 104.0, high=True),
        Swing(T0, 98.0, high=False),
        Swing(T0, 101.0, high=True),
        Swing(T0, 99.0, high=True),  # a swing high the price broke: support now
    )
    frame = single_frame(snapshot(bollinger_upper=103.0, bollinger_lower=97.0), swings)
    support, resistance = key_levels([frame], 100.0, TechnicalSettings(timeframes=[Timeframe.M5], max_levels=3))
    assert [(level.price, level.kind) for level in support] == [
        (99.0, LevelKind.SWING_HIGH),
        (98.0, LevelKind.SWING_LOW),
        (97.0, LevelKind.BOLLINGER_LOWER),
    ]
    assert [(level.price, level.kind) for level in resistance] == [
        (101.0, LevelKind.SWING_HIGH),
        (103.0, LevelKind.BOLLINGER_UPPER),
        (104.0, LevelKind.SWING_HIGH),
    ]


def test_a_level_at_the_price_is_neither_support_nor_resistance() -> None:
    prices = (99.0, 100.0, 101.0, 102.0, 103.0)
    frame = single_frame(snapshot(), tuple(Swing(T0, price, high=True) for price in prices))
    support, resistance = key_levels([frame], 100.0, TechnicalSettings(timeframes=[Timeframe.M5], max_levels=3))
    assert [level.price for level in support] == [99.0]
    assert [level.price for level in resistance] == [101.0, 102.0, 103.0]


def test_swings_outside_the_lookback_are_not_levels() -> None:
    closes = uptrend(120)
    frame = frames_after(closes, ONE_FRAME)[0]
    recent = TechnicalSettings(timeframes=[Timeframe.M5], swing_lookback=10, max_levels=50)
    support, resistance = key_levels([frame], frame.latest.close, recent)
    oldest = frame.candles[-10].open_time
    swing_prices = {swing.price for swing in frame.swings if swing.open_time >= oldest}
    reported = {level.price for level in (*support, *resistance) if level.kind in {"swing_high", "swing_low"}}
    assert reported == swing_prices


def test_a_level_found_on_two_timeframes_is_reported_once() -> None:
    swing = (Swing(T0, 98.0, high=False),)
    five, fifteen = single_frame(snapshot(), swing), single_frame(snapshot(timeframe=Timeframe.M15), swing)
    support, _ = key_levels([five, fifteen], 100.0, TWO_FRAMES)
    assert [(level.price, level.timeframe) for level in support] == [(98.0, Timeframe.M5)]


# ------------------------------------------------------------------------------------------------- bounds


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
maybe = st.one_of(st.none(), finite)


@settings(max_examples=200, deadline=None)
@given(
    ema_fast=maybe,
    ema_slow=maybe,
    histogram=maybe,
    rsi=st.one_of(st.none(), st.floats(0, 100)),
    adx=st.one_of(st.none(), st.floats(0, 100)),
    atr=st.one_of(st.none(), st.floats(0, 1e4)),
    vwap=st.one_of(st.none(), st.floats(1e-3, 1e6)),
)
def test_confidence_and_strength_stay_within_bounds(
    ema_fast: float | None,
    ema_slow: float | None,
    histogram: float | None,
    rsi: float | None,
    adx: float | None,
    atr: float | None,
    vwap: float | None,
) -> None:
    snap = snapshot(
        ema_fast=ema_fast, ema_slow=ema_slow, macd_histogram=histogram, rsi=rsi, adx=adx, atr=atr, vwap=vwap
    )
    baseline = assess_technical([single_frame(snap)], ONE_FRAME)
    assert 0.0 <= baseline.confidence <= 1.0
    assert 0.0 <= baseline.body.strength <= 1.0
    assert all(-1.0 <= reading.score <= 1.0 for reading in baseline.body.timeframes)


# -------------------------------------------------------------------------------------------------- agent


async def test_the_agent_stamps_its_output_with_the_clock_and_the_symbol() -> None:
    clock = FakeClock(T0 + timedelta(days=1))
    agent = TechnicalAgent(TWO_FRAMES, clock=clock)
    output = await agent.analyze(TechnicalContext("BTC/USDT", frames_after(uptrend())))
    assert (output.agent, output.symbol, output.timestamp, output.llm_call_id) == (
        AgentName.TECHNICAL,
        "BTC/USDT",
        clock.now(),
        None,
    )
    assert output.body.bias is Bias.LONG
    assert agent.valid_for == timedelta(seconds=TWO_FRAMES.valid_seconds)


async def test_the_agent_refuses_frames_of_another_symbol() -> None:
    agent = TechnicalAgent(TWO_FRAMES, clock=FakeClock())
    with pytest.raises(ValueError, match="technical analysis of XRP/USDT was given frames of BTC/USDT"):
        await agent.analyze(TechnicalContext("XRP/USDT", frames_after(uptrend())))
