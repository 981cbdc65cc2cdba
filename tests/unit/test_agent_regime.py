"""The regime agent: classification rules, TA weighting, per-symbol hysteresis, and known market scenarios."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import candles_from_closes
from triplegain.agents import (
    AgentOutput,
    Frame,
    FrameBook,
    RegimeAgent,
    RegimeContext,
    RegimeMeasures,
    RegimeSettings,
    RegimeState,
    TechnicalView,
    classify,
    next_regime_state,
)
from triplegain.agents.regime import Detection, standing_confidence, weigh_technical
from triplegain.clock import FakeClock
from triplegain.market import Timeframe
from triplegain.model import AgentName, Bias, RegimeName

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SETTINGS = RegimeSettings(timeframe=Timeframe.M5)


def measures(**values: float) -> RegimeMeasures:
    """A quiet, trendless market unless told otherwise."""
    fields = {
        "adx": 15.0,
        "plus_di": 20.0,
        "minus_di": 20.0,
        "ema_slope": 0.0,
        "bandwidth": 0.02,
        "bandwidth_ratio": 1.0,
        "volatility": 0.5,
    }
    fields.update(values)
    return RegimeMeasures(**fields)


def flat_then_up(flat_count: int = 150, up_count: int = 150, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    flat = [100 * (1 + 0.001 * rng.gauss(0, 1)) for _ in range(flat_count)]
    up = [flat[-1] * 1.003**step * (1 + 0.002 * math.sin(step * 1.3)) for step in range(1, up_count + 1)]
    return flat + up


def technical_view(bias: Bias, strength: float = 0.8) -> TechnicalView:
    return TechnicalView(
        bias=bias, strength=strength, timeframe_agreement=1.0, price=100.0, support=(), resistance=(), timeframes=()
    )


def technical_output(symbol: str, bias: Bias, confidence: float = 0.8) -> AgentOutput[TechnicalView]:
    return AgentOutput[TechnicalView](
        agent=AgentName.TECHNICAL,
        symbol=symbol,
        timestamp=T0,
        confidence=confidence,
        body=technical_view(bias),
        reasoning="test",
    )


# ---------------------------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("values", "regime"),
    [
        ({"adx": 35.0, "ema_slope": 0.2, "plus_di": 30.0, "minus_di": 10.0}, RegimeName.TRENDING_BULL),
        ({"adx": 35.0, "ema_slope": -0.2, "plus_di": 10.0, "minus_di": 30.0}, RegimeName.TRENDING_BEAR),
        ({"adx": 35.0, "ema_slope": 0.2, "plus_di": 10.0, "minus_di": 30.0}, RegimeName.CHOPPY),  # DI disagree
        ({"volatility": 1.5, "ema_slope": 0.2}, RegimeName.VOLATILE_BULL),
        ({"volatility": 1.5, "ema_slope": -0.2}, RegimeName.VOLATILE_BEAR),
        ({"volatility": 1.5, "ema_slope": 0.01}, RegimeName.CHOPPY),
        ({"bandwidth_ratio": 0.4}, RegimeName.BREAKOUT_POTENTIAL),
        ({"adx": 12.0}, RegimeName.RANGING),
        ({"adx": 22.0}, RegimeName.CHOPPY),
    ],
)
def test_each_rule(values: dict[str, float], regime: RegimeName) -> None:
    detection = classify(measures(**values), SETTINGS)
    assert detection is not None
    assert detection.regime is regime
    assert detection.reasoning.startswith(regime.value)


def test_no_detection_until_every_measure_has_a_value() -> None:
    assert classify(measures().model_copy(update={"ema_slope": None}), SETTINGS) is None


def test_confidence_grows_with_the_margin_past_a_threshold() -> None:
    weak = classify(measures(adx=26.0, ema_slope=0.06, plus_di=30.0, minus_di=10.0), SETTINGS)
    strong = classify(measures(adx=50.0, ema_slope=0.2, plus_di=30.0, minus_di=10.0), SETTINGS)
    assert weak is not None
    assert strong is not None
    assert weak.confidence < strong.confidence == 1.0


positive = st.floats(min_value=0, max_value=1e3, allow_nan=False)


@given(adx=st.floats(0, 100), slope=st.floats(-5, 5), ratio=positive, volatility=positive, ta=st.floats(0, 1))
def test_detection_confidence_is_always_within_bounds(
    adx: float, slope: float, ratio: float, volatility: float, ta: float
) -> None:
    detection = classify(measures(adx=adx, ema_slope=slope, bandwidth_ratio=ratio, volatility=volatility), SETTINGS)
    assert detection is not None
    for bias in Bias:
        weighed = weigh_technical(detection, technical_view(bias), ta)
        assert 0.0 <= weighed.confidence <= 1.0


def test_technical_agreement_raises_and_disagreement_lowers_confidence() -> None:
    bull = Detection(RegimeName.TRENDING_BULL, 0.6, "trend")
    assert weigh_technical(bull, technical_view(Bias.LONG), 1.0).confidence == pytest.approx(0.7)
    assert weigh_technical(bull, technical_view(Bias.SHORT), 1.0).confidence == pytest.approx(0.3)
    assert weigh_technical(bull, technical_view(Bias.NEUTRAL), 1.0).confidence == pytest.approx(0.45)
    ranging = Detection(RegimeName.RANGING, 0.6, "range")
    assert weigh_technical(ranging, technical_view(Bias.LONG, strength=1.0), 1.0).confidence == pytest.approx(0.45)
    assert weigh_technical(ranging, None, 0.0) is ranging


# -------------------------------------------------------------------------------------------- hysteresis


def run(detections: list[RegimeName], confirmations: int = 3) -> list[RegimeState]:
    states, state = [], None
    for index, regime in enumerate(detections):
        state = next_regime_state(state, Detection(regime, 0.8, ""), T0 + timedelta(minutes=index), confirmations)
        states.append(state)
    return states


def test_the_first_detection_is_the_regime() -> None:
    [state] = run([RegimeName.RANGING])
    assert (state.regime, state.pending, state.since) == (RegimeName.RANGING, None, T0)


def test_a_change_needs_n_consecutive_detections() -> None:
    bull, ranging = RegimeName.TRENDING_BULL, RegimeName.RANGING
    states = run([ranging, bull, bull, bull])
    assert [state.regime for state in states] == [ranging, ranging, ranging, bull]
    assert [(state.pending, state.pending_count) for state in states[1:3]] == [(bull, 1), (bull, 2)]
    assert states[-1].since == T0 + timedelta(minutes=3)


def test_an_interrupted_run_starts_over() -> None:
    bull, ranging, choppy = RegimeName.TRENDING_BULL, RegimeName.RANGING, RegimeName.CHOPPY
    states = run([ranging, bull, bull, choppy, bull, bull])
    assert [state.regime for state in states] == [ranging] * 6
    assert (states[3].pending, states[3].pending_count) == (choppy, 1)
    assert (states[-1].pending, states[-1].pending_count) == (bull, 2)
    assert run([ranging, bull, ranging, bull])[-1].pending_count == 1


def test_the_same_candle_counts_once() -> None:
    state = run([RegimeName.RANGING])[0]
    later = T0 + timedelta(minutes=5)
    once = next_regime_state(state, Detection(RegimeName.TRENDING_BULL, 0.9, ""), later, 3)
    again = next_regime_state(once, Detection(RegimeName.TRENDING_BULL, 0.9, ""), later, 3)
    assert again == once
    assert once.pending_count == 1


def test_with_one_confirmation_every_detection_counts() -> None:
    states = run([RegimeName.RANGING, RegimeName.CHOPPY], confirmations=1)
    assert states[-1].regime is RegimeName.CHOPPY


def test_a_pending_change_lowers_the_standing_confidence() -> None:
    states = run([RegimeName.RANGING, RegimeName.CHOPPY, RegimeName.CHOPPY])
    assert standing_confidence(states[0], 3) == pytest.approx(0.8)
    assert standing_confidence(states[2], 3) == pytest.approx(0.8 / 3)


# --------------------------------------------------------------------------------------------------- agent


def regime_frames(symbol: str, closes: list[float]) -> list[Frame]:
    """The symbol's 5m frame after each candle."""
    book = FrameBook(Timeframe.M5, [Timeframe.M5], window=100)
    frames = []
    for candle in candles_from_closes(closes, symbol):
        book.update(candle)
        frame = book.frame(symbol, Timeframe.M5)
        assert frame is not None
        frames.append(frame)
    return frames


async def test_an_uptrend_after_a_range_becomes_trending_bull_after_n_detections() -> None:
    agent = RegimeAgent(SETTINGS, clock=FakeClock())
    outputs = [
        await agent.analyze(RegimeContext("BTC/USDT", frame)) for frame in regime_frames("BTC/USDT", flat_then_up())
    ]
    regimes = [output.body.regime for output in outputs]
    detected = [output.body.detected for output in outputs]
    first_bull = detected.index(RegimeName.TRENDING_BULL, 150)
    run_end = first_bull + SETTINGS.confirmations - 1
    assert all(regime is RegimeName.RANGING for regime in regimes[140:run_end])
    assert detected[first_bull : run_end + 1] == [RegimeName.TRENDING_BULL] * SETTINGS.confirmations
    assert regimes[run_end] is RegimeName.TRENDING_BULL
    assert regimes[-1] is RegimeName.TRENDING_BULL
    assert outputs[-1].body.since == outputs[run_end].body.since


async def test_a_flat_market_settles_on_ranging() -> None:
    agent = RegimeAgent(SETTINGS, clock=FakeClock())
    frames = regime_frames("BTC/USDT", flat_then_up(flat_count=300, up_count=0))
    outputs = [await agent.analyze(RegimeContext("BTC/USDT", frame)) for frame in frames]
    detections = Counter(output.body.detected for output in outputs[60:])
    assert detections[RegimeName.RANGING] / sum(detections.values()) > 0.75
    assert outputs[-1].body.regime is RegimeName.RANGING


async def test_before_warm_up_the_regime_is_reported_at_zero_confidence() -> None:
    agent = RegimeAgent(SETTINGS, clock=FakeClock())
    output = await agent.analyze(RegimeContext("BTC/USDT", regime_frames("BTC/USDT", [100.0, 101.0])[-1]))
    assert (output.body.detected, output.confidence, output.body.regime) == (None, 0.0, RegimeName.CHOPPY)
    assert agent.state_of("BTC/USDT") is None


async def test_two_interleaved_symbols_keep_their_own_hysteresis() -> None:
    agent = RegimeAgent(SETTINGS, clock=FakeClock())
    btc_frames = regime_frames("BTC/USDT", flat_then_up())
    xrp_frames = regime_frames("XRP/USDT", flat_then_up(flat_count=300, up_count=0, seed=5))
    alone = RegimeAgent(SETTINGS, clock=FakeClock())
    btc_alone = [await alone.analyze(RegimeContext("BTC/USDT", frame)) for frame in btc_frames]
    btc, xrp = [], []
    for btc_frame, xrp_frame in zip(btc_frames, xrp_frames, strict=True):
        btc.append(await agent.analyze(RegimeContext("BTC/USDT", btc_frame)))
        xrp.append(await agent.analyze(RegimeContext("XRP/USDT", xrp_frame)))
    assert [output.body for output in btc] == [output.body for output in btc_alone]
    assert btc[-1].body.regime is RegimeName.TRENDING_BULL
    assert xrp[-1].body.regime is RegimeName.RANGING
    assert {output.symbol for output in xrp} == {"XRP/USDT"}
    btc_state, xrp_state = agent.state_of("BTC/USDT"), agent.state_of("XRP/USDT")
    assert btc_state is not None
    assert xrp_state is not None
    assert btc_state.regime is not xrp_state.regime


async def test_a_restored_state_carries_on_after_a_restart() -> None:
    frames = regime_frames("BTC/USDT", flat_then_up())
    before = RegimeAgent(SETTINGS, clock=FakeClock())
    for frame in frames[:200]:
        await before.analyze(RegimeContext("BTC/USDT", frame))
    state = before.state_of("BTC/USDT")
    assert state is not None
    after = RegimeAgent(SETTINGS, clock=FakeClock())
    after.restore("BTC/USDT", state)
    for frame in frames[200:]:
        assert (await after.analyze(RegimeContext("BTC/USDT", frame))).body == (
            await before.analyze(RegimeContext("BTC/USDT", frame))
        ).body


async def test_the_technical_view_must_be_of_the_same_symbol() -> None:
    agent = RegimeAgent(SETTINGS, clock=FakeClock())
    frame = regime_frames("XRP/USDT", [1.0, 1.1])[-1]
    with pytest.raises(ValueError, match="regime analysis of XRP/USDT was given a technical view of BTC/USDT"):
        await agent.analyze(RegimeContext("XRP/USDT", frame, technical=technical_output("BTC/USDT", Bias.LONG)))


async def test_the_frame_must_be_of_the_regime_timeframe() -> None:
    agent = RegimeAgent(RegimeSettings(timeframe=Timeframe.M15), clock=FakeClock())
    frame = regime_frames("BTC/USDT", [1.0, 1.1])[-1]
    with pytest.raises(ValueError, match="classifies 15m candles, was given a 5m frame"):
        await agent.analyze(RegimeContext("BTC/USDT", frame))


async def test_the_technical_view_is_recorded_and_weighed() -> None:
    frames = regime_frames("BTC/USDT", flat_then_up())
    plain = RegimeAgent(SETTINGS, clock=FakeClock(), new_id=uuid4)
    weighed = RegimeAgent(SETTINGS, clock=FakeClock())
    without = await plain.analyze(RegimeContext("BTC/USDT", frames[-1]))
    opposed = await weighed.analyze(
        RegimeContext("BTC/USDT", frames[-1], technical=technical_output("BTC/USDT", Bias.SHORT))
    )
    assert opposed.body.technical_bias is Bias.SHORT
    assert without.body.technical_bias is None
    assert opposed.body.detected_confidence < without.body.detected_confidence
