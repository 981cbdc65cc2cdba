"""The technical agent: bias, strength, confidence and key levels from the indicators of 1–3 timeframes.

Scoring (``assess_technical``), per timeframe from its latest indicator snapshot, each component in [−1, 1]:

    ema_cross = tanh((EMA fast − EMA slow) / ATR)
    macd      = tanh(MACD histogram / (0.1 · ATR))
    rsi       = (RSI − 50) / 20 between 30 and 70; past them it fades back to 0 at 100 (or 0):
                (100 − RSI) / 30 above 70, −RSI / 30 below 30 — momentum counts, exhaustion does not
    vwap      = tanh((close − VWAP) / ATR)

    direction   = Σ wᵢ·cᵢ / Σ wᵢ            over the components that have a value (weights from settings)
    consistency = |Σ wᵢ·cᵢ| / Σ wᵢ·|cᵢ|     1 when the components agree (or none moved)
    trend       = min(1, ADX / adx_trend_level)   0 while ADX warms up
    score_tf    = direction · (0.5 + 0.5 · trend)    a trendless market halves the score

Across the timeframes that have a reading:

    score      = mean(score_tf)
    agreement  = |Σ score_tf| / Σ |score_tf|   1 when they point the same way (or only one has a reading)
    coverage   = indicators with a value / (5 per expected timeframe)   the four components and ADX
    bias       = long if score ≥ neutral_band, short if score ≤ −neutral_band, else neutral
    strength   = |score|
    confidence = coverage · agreement · mean(consistency) · (0.5 + 0.5 · mean(trend))

Key levels: the swing highs and lows the frame book marked (a candle's high or low that is the extreme of
``swing_width`` candles on each side) within the last ``swing_lookback`` candles of each timeframe, and each
timeframe's Bollinger bands. Levels below the current price are support, above it resistance (a broken swing
high becomes support); nearest first.

Per-frame work is memoised on the frame (frames compare by identity): between its closes, a longer timeframe's
frame is the same object, so at each 5m candle only the 5m frame is read afresh.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from triplegain.agents.base import AgentOutput, Baseline, bias_of
from triplegain.agents.frames import Frame, Swing
from triplegain.agents.refinement import REASONING_MAX_CHARS, RefinementPrompts, configured_refiner, request_refinement
from triplegain.agents.settings import TechnicalSettings, TechnicalWeights
from triplegain.clock import Clock
from triplegain.llm import LLMGateway, LLMRequest
from triplegain.llm.masking import HistoryMask
from triplegain.market import IndicatorSnapshot, Timeframe
from triplegain.model import AgentName, Bias

REFINEMENT_PURPOSE = "technical_refinement"
MACD_ATR_SCALE = 0.1
"""A MACD histogram of a tenth of an ATR is a clear signal (tanh(1) ≈ 0.76)."""
_INDICATORS_PER_TIMEFRAME = 5  # the four components and ADX
_FRAMES_REMEMBERED = 256  # memoised per-frame work: a few per (symbol, timeframe) in play; bounds what it keeps alive
_LEVELS_REMEMBERED = 256  # shared Level models: the nearest swing levels of each (symbol, timeframe) in play


class Components(BaseModel):
    """A timeframe's directional components, each in [−1, 1]; None while its indicators warm up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ema_cross: float | None = Field(ge=-1, le=1, description="tanh((EMA fast − EMA slow) / ATR)")
    macd: float | None = Field(ge=-1, le=1, description="tanh(MACD histogram / (0.1 · ATR))")
    rsi: float | None = Field(ge=-1, le=1, description="RSI momentum, fading past 70 / below 30")
    vwap: float | None = Field(ge=-1, le=1, description="tanh((close − VWAP) / ATR)")


class IndicatorsUsed(BaseModel):
    """The indicator values a timeframe's reading was computed from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    close: float = Field(description="close of the latest candle")
    ema_fast: float | None = Field(description="fast EMA")
    ema_slow: float | None = Field(description="slow EMA")
    macd_histogram: float | None = Field(description="MACD line − signal")
    rsi: float | None = Field(description="RSI, 0–100")
    adx: float | None = Field(description="ADX, 0–100")
    atr: float | None = Field(description="average true range")
    vwap: float | None = Field(description="rolling VWAP")
    bollinger_upper: float | None = Field(description="upper Bollinger band")
    bollinger_lower: float | None = Field(description="lower Bollinger band")


class TimeframeReading(BaseModel):
    """One timeframe's part of the view."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeframe: Timeframe = Field(description="the timeframe read")
    open_time: datetime = Field(description="open time of its latest closed candle")
    score: float = Field(ge=-1, le=1, description="direction · (0.5 + 0.5 · trend)")
    trend: float = Field(ge=0, le=1, description="min(1, ADX / adx_trend_level)")
    consistency: float = Field(ge=0, le=1, description="how far its components agree")
    components: Components = Field(description="the directional components")
    indicators: IndicatorsUsed = Field(description="the values used")


class LevelKind(StrEnum):
    SWING_HIGH = "swing_high"
    SWING_LOW = "swing_low"
    BOLLINGER_UPPER = "bollinger_upper"
    BOLLINGER_LOWER = "bollinger_lower"


class Level(BaseModel):
    """A price where the market has turned before, or a band edge."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: float = Field(gt=0, description="the level")
    kind: LevelKind = Field(description="where it comes from")
    timeframe: Timeframe = Field(description="the timeframe it was found on")


class TechnicalView(BaseModel):
    """The technical agent's body."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bias: Bias = Field(description="long, short or neutral")
    strength: float = Field(ge=0, le=1, description="how strongly it leans: |score| of the baseline")
    timeframe_agreement: float = Field(ge=0, le=1, description="how far the timeframes point the same way")
    price: float = Field(gt=0, description="close of the latest candle of the first timeframe")
    support: tuple[Level, ...] = Field(description="levels below the price, nearest first")
    resistance: tuple[Level, ...] = Field(description="levels above the price, nearest first")
    timeframes: tuple[TimeframeReading, ...] = Field(description="each timeframe's reading, as given")


class TechnicalOutput(AgentOutput[TechnicalView]):
    """What the technical agent publishes."""


class TechnicalRefinement(BaseModel):
    """What an LLM refining the baseline must answer; the bounds are the body's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bias: Bias
    strength: float = Field(ge=0, le=1)
    confidence: float = Field(ge=0, le=1)
    reasoning: str = Field(min_length=1, max_length=REASONING_MAX_CHARS)


# ------------------------------------------------------------------------------------------------- scoring


def rsi_component(rsi: float) -> float:
    """RSI as momentum in [−1, 1], fading back to 0 past overbought (70) and oversold (30)."""
    if rsi > 70:
        return (100.0 - rsi) / 30.0
    if rsi < 30:
        return -rsi / 30.0
    return (rsi - 50.0) / 20.0


def components_of(snapshot: IndicatorSnapshot) -> Components:
    """The four directional components of one snapshot (a component is None until its indicators have values)."""
    atr = snapshot.atr
    close = snapshot.close
    ema_cross = macd = vwap = None
    if atr is not None:
        if snapshot.ema_fast is not None and snapshot.ema_slow is not None:
            ema_cross = _atr_units(snapshot.ema_fast - snapshot.ema_slow, atr)
        if snapshot.macd_histogram is not None:
            macd = _atr_units(snapshot.macd_histogram, MACD_ATR_SCALE * atr)
        if snapshot.vwap is not None:
            vwap = _atr_units(close - snapshot.vwap, atr)
    rsi = rsi_component(snapshot.rsi) if snapshot.rsi is not None else None
    return Components(ema_cross=ema_cross, macd=macd, rsi=rsi, vwap=vwap)


def _atr_units(distance: float, atr: float) -> float:
    """tanh(distance / atr); 0 when the market did not move at all (ATR 0)."""
    return math.tanh(distance / atr) if atr > 0 else 0.0


@dataclass(frozen=True, slots=True)
class _Scored:
    reading: TimeframeReading
    available: int


@functools.lru_cache(maxsize=_FRAMES_REMEMBERED)
def _read_timeframe(frame: Frame, weights: TechnicalWeights, adx_trend_level: float) -> _Scored | None:
    """A timeframe's reading and how many of its indicators had values; None while no component has one.

    Memoised per frame (frames compare by identity): a longer timeframe's frame is re-read at every base candle.
    """
    snapshot = frame.latest
    components = components_of(snapshot)
    total_weight = signed = unsigned = 0.0
    available = 0
    for weight, value in (
        (weights.ema_cross, components.ema_cross),
        (weights.macd, components.macd),
        (weights.rsi, components.rsi),
        (weights.vwap, components.vwap),
    ):
        if value is None:
            continue
        available += 1
        total_weight += weight
        signed += weight * value
        unsigned += weight * abs(value)
    if total_weight <= 0:
        return None
    adx = snapshot.adx
    trend = min(1.0, adx / adx_trend_level) if adx is not None else 0.0
    reading = TimeframeReading(
        timeframe=frame.timeframe,
        open_time=snapshot.open_time,
        score=signed / total_weight * (0.5 + 0.5 * trend),
        trend=trend,
        consistency=min(1.0, abs(signed) / unsigned) if unsigned > 0 else 1.0,
        components=components,
        indicators=IndicatorsUsed(
            close=snapshot.close,
            ema_fast=snapshot.ema_fast,
            ema_slow=snapshot.ema_slow,
            macd_histogram=snapshot.macd_histogram,
            rsi=snapshot.rsi,
            adx=adx,
            atr=snapshot.atr,
            vwap=snapshot.vwap,
            bollinger_upper=snapshot.bollinger_upper,
            bollinger_lower=snapshot.bollinger_lower,
        ),
    )
    return _Scored(reading, available + (adx is not None))


def assess_technical(frames: Sequence[Frame], settings: TechnicalSettings) -> Baseline[TechnicalView]:
    """The deterministic view of one symbol from its frames (first frame: the price reference); see the module."""
    if not frames:
        raise ValueError("the technical agent needs at least one frame")
    weights, adx_trend_level = settings.weights, settings.adx_trend_level
    scored = [result for frame in frames if (result := _read_timeframe(frame, weights, adx_trend_level)) is not None]
    readings = tuple([result.reading for result in scored])
    price = frames[0].latest.close
    support, resistance = key_levels(frames, price, settings)
    expected = _INDICATORS_PER_TIMEFRAME * max(len(frames), len(settings.timeframes))
    if not readings:
        view = TechnicalView(
            bias=Bias.NEUTRAL,
            strength=0.0,
            timeframe_agreement=1.0,
            price=price,
            support=support,
            resistance=resistance,
            timeframes=(),
        )
        return Baseline(view, 0.0, "neutral: no indicator has a value yet (warming up)")
    scores = [reading.score for reading in readings]
    score = sum(scores) / len(scores)
    spread = sum([abs(value) for value in scores])
    agreement = abs(sum(scores)) / spread if spread > 0 else 1.0
    coverage = sum([result.available for result in scored]) / expected
    consistency = sum([reading.consistency for reading in readings]) / len(readings)
    trend = sum([reading.trend for reading in readings]) / len(readings)
    confidence = min(1.0, coverage * agreement * consistency * (0.5 + 0.5 * trend))
    bias = bias_of(score, settings.neutral_band)
    view = TechnicalView(
        bias=bias,
        strength=min(1.0, abs(score)),
        timeframe_agreement=min(1.0, agreement),
        price=price,
        support=support,
        resistance=resistance,
        timeframes=readings,
    )
    return Baseline(view, confidence, _reasoning(bias, score, agreement, coverage, readings))


def _reasoning(
    bias: Bias, score: float, agreement: float, coverage: float, readings: Sequence[TimeframeReading]
) -> str:
    by_timeframe = ", ".join(f"{reading.timeframe.value} {reading.score:+.2f}" for reading in readings)
    return (
        f"{bias.value}: score {score:+.2f} ({by_timeframe}), timeframe agreement {agreement:.2f}, "
        f"indicator coverage {coverage:.0%}."
    )


def key_levels(
    frames: Sequence[Frame], price: float, settings: TechnicalSettings
) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
    """Support (below ``price``) and resistance (above it), nearest first, at most ``max_levels`` each.

    A price found on several timeframes is reported once, with the first (shortest) timeframe it was found on.
    """
    count = settings.max_levels
    below: list[_Candidate] = []
    above: list[_Candidate] = []
    for frame in frames:
        levels = _levels_by_price(frame, settings.swing_lookback)
        split = bisect.bisect_left(levels, price, key=_level_price)
        past_price = bisect.bisect_right(levels, price, lo=split, key=_level_price)
        below.extend(reversed(levels[max(0, split - count) : split]))
        above.extend(levels[past_price : split + count + 1])
    # Sorting is stable (reverse too): of equal prices, the one from the earliest frame comes first.
    below.sort(key=_level_price, reverse=True)
    above.sort(key=_level_price)
    return _nearest(below, count), _nearest(above, count)


_Candidate = tuple[float, LevelKind, Timeframe]
_level_price: Callable[[_Candidate], float] = operator.itemgetter(0)
_swing_time: Callable[[Swing], datetime] = operator.attrgetter("open_time")


def _nearest(ordered: list[_Candidate], count: int) -> tuple[Level, ...]:
    chosen: list[Level] = []
    seen: set[float] = set()
    for candidate in ordered:
        price = candidate[0]
        if price not in seen:
            seen.add(price)
            chosen.append(_level(*candidate))
            if len(chosen) == count:
                break
    return tuple(chosen)


@functools.lru_cache(maxsize=_LEVELS_REMEMBERED)
def _level(price: float, kind: LevelKind, timeframe: Timeframe) -> Level:
    """The (frozen) model of a level, shared: a swing point stays a level for many candles and is built once."""
    return Level(price=price, kind=kind, timeframe=timeframe)


@functools.lru_cache(maxsize=_FRAMES_REMEMBERED)
def _levels_by_price(frame: Frame, lookback: int) -> list[_Candidate]:
    """The frame's swing points within its last ``lookback`` candles and its Bollinger bands, by price.

    Memoised per frame, like ``_read_timeframe``; callers only read the list.
    """
    candles = frame.candles
    oldest = candles[-lookback].open_time if len(candles) >= lookback else candles[0].open_time
    timeframe = frame.timeframe
    swings = frame.swings  # oldest first: those within the lookback are a suffix
    levels = [
        (swing.price, LevelKind.SWING_HIGH if swing.high else LevelKind.SWING_LOW, timeframe)
        for swing in swings[bisect.bisect_left(swings, oldest, key=_swing_time) :]
    ]
    snapshot = frame.latest
    if snapshot.bollinger_upper is not None and snapshot.bollinger_lower is not None:
        levels.append((snapshot.bollinger_upper, LevelKind.BOLLINGER_UPPER, timeframe))
        if snapshot.bollinger_lower > 0:
            levels.append((snapshot.bollinger_lower, LevelKind.BOLLINGER_LOWER, timeframe))
    levels.sort()
    return levels


# --------------------------------------------------------------------------------------------------- agent


@dataclass(frozen=True, slots=True)
class TechnicalContext:
    """One symbol's frames, shortest timeframe first; ``allow_llm`` False skips the refinement (degraded modes)."""

    symbol: str
    frames: tuple[Frame, ...]
    allow_llm: bool = True


class TechnicalAgent:
    """Publishes on ta_signals; a thin shell around ``assess_technical`` and the optional refinement."""

    def __init__(
        self,
        settings: TechnicalSettings,
        *,
        clock: Clock,
        gateway: LLMGateway | None = None,
        prompts: RefinementPrompts | None = None,
        mask: HistoryMask | None = None,
        new_id: Callable[[], UUID] = uuid4,
    ) -> None:
        """``gateway``: the provider ``settings.llm_provider`` names (needed when it is set, refused when it is
        not); ``prompts`` default to the shipped templates; ``mask``: what the prompt may show (default: all)."""
        self._settings = settings
        self._clock = clock
        self._refiner = configured_refiner(
            "technical", REFINEMENT_PURPOSE, settings.llm_provider, gateway, prompts, mask
        )
        self._new_id = new_id
        self._valid_for = timedelta(seconds=settings.valid_seconds)

    @property
    def name(self) -> AgentName:
        return AgentName.TECHNICAL

    @property
    def valid_for(self) -> timedelta:
        return self._valid_for

    async def analyze(self, context: TechnicalContext) -> TechnicalOutput:
        foreign = sorted({frame.symbol for frame in context.frames} - {context.symbol})
        if foreign:
            raise ValueError(f"technical analysis of {context.symbol} was given frames of {', '.join(foreign)}")
        baseline = assess_technical(context.frames, self._settings)
        output_id = self._new_id()
        refiner = self._refiner
        if refiner is None or not context.allow_llm:
            return self._output(output_id, context.symbol, baseline.body, baseline.confidence, baseline.reasoning)
        request = LLMRequest(
            purpose=REFINEMENT_PURPOSE,
            system_prompt=refiner.prompts.system_prompt(),
            user_prompt=refiner.prompts.user.render(
                symbol=refiner.mask.symbol(context.symbol),
                baseline=json.dumps(
                    _refinement_facts(baseline, context.symbol, refiner.mask, self._clock.now()), sort_keys=True
                ),
            ),
            context={"symbol": context.symbol, "baseline": _refinement_baseline(baseline)},
            served_id=output_id,
        )
        refinement = await request_refinement(refiner, request, TechnicalRefinement)
        answer = refinement.answer
        if answer is None:
            reasoning = refinement.explain(baseline.reasoning, None)
            return self._output(output_id, context.symbol, baseline.body, baseline.confidence, reasoning)
        body = baseline.body.model_copy(update={"bias": answer.bias, "strength": answer.strength})
        reasoning = refinement.explain(baseline.reasoning, answer.reasoning)
        return self._output(output_id, context.symbol, body, answer.confidence, reasoning, refinement.call_id)

    def _output(
        self,
        output_id: UUID,
        symbol: str,
        body: TechnicalView,
        confidence: float,
        reasoning: str,
        llm_call_id: UUID | None = None,
    ) -> TechnicalOutput:
        return TechnicalOutput(
            id=output_id,
            agent=AgentName.TECHNICAL,
            symbol=symbol,
            timestamp=self._clock.now(),
            confidence=confidence,
            body=body,
            reasoning=reasoning,
            llm_call_id=llm_call_id,
        )


def _refinement_baseline(baseline: Baseline[TechnicalView]) -> dict[str, JsonValue]:
    view = baseline.body
    return {"bias": view.bias.value, "strength": view.strength, "confidence": baseline.confidence}


_PRICE_INDICATORS = (
    "close",
    "ema_fast",
    "ema_slow",
    "macd_histogram",
    "atr",
    "vwap",
    "bollinger_upper",
    "bollinger_lower",
)
"""The indicator values that are prices or price distances: indexed when the prompt is masked."""


def _refinement_facts(
    baseline: Baseline[TechnicalView], symbol: str, mask: HistoryMask, now: datetime
) -> dict[str, object]:
    """What the prompt shows: the baseline and its indicators, prices and times through ``mask``."""
    view = baseline.body
    return {
        **_refinement_baseline(baseline),
        "price": mask.price(symbol, view.price),
        "timeframe_agreement": view.timeframe_agreement,
        "support": [mask.price(symbol, level.price) for level in view.support],
        "resistance": [mask.price(symbol, level.price) for level in view.resistance],
        "timeframes": [_reading(reading, symbol, mask, now) for reading in view.timeframes],
        "reasoning": baseline.reasoning,
    }


def _reading(reading: TimeframeReading, symbol: str, mask: HistoryMask, now: datetime) -> dict[str, object]:
    shown: dict[str, Any] = reading.model_dump(mode="json")
    shown["open_time"] = mask.moment(reading.open_time, now)
    indicators = shown["indicators"]
    for name in _PRICE_INDICATORS:
        indicators[name] = mask.price(symbol, indicators[name])
    return shown
