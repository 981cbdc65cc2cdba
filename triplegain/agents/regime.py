"""The regime agent: which state the market is in, from one timeframe's indicators and the symbol's TA view.

Measures (``regime_measures``), from the latest snapshots of the regime timeframe:

    ema_slope       = (EMA slow now − EMA slow ``slope_lookback`` candles ago) / (slope_lookback · ATR)
                      the slow EMA's drift in ATRs per candle
    bandwidth_ratio = Bollinger bandwidth / its median over the last ``squeeze_lookback`` candles
    volatility      = realised volatility of log returns, annualised; and ADX with ±DI as they are

Detection (``detect_regime``), the first rule that holds, with ``margin(x, t) = min(1, x / t − 1)`` (how far past
its threshold a measure is, 0–1):

    volatility ≥ volatile_annualised and |slope| ≥ slope_trending   volatile_bull / volatile_bear (slope's sign)
        confidence 0.5 + 0.25 · (margin(volatility) + margin(|slope|))
    volatility ≥ volatile_annualised                                choppy, 0.5 + 0.5 · margin(volatility)
    ADX ≥ adx_trending, |slope| ≥ slope_trending, ±DI agree with it trending_bull / trending_bear
        confidence 0.5 + 0.25 · (margin(ADX) + margin(|slope|))
    bandwidth_ratio ≤ squeeze_ratio (and ADX < adx_trending)       breakout_potential, 0.5 + 0.5 · (1 − ratio / squeeze)
    ADX < adx_ranging                                               ranging, 0.5 + 0.5 · (1 − ADX / adx_ranging)
    otherwise                                                       choppy, 0.4

The symbol's TA view then adjusts the confidence by its own confidence c: a directional regime gains
(1 − conf) · 0.25 · c when TA leans the same way and loses conf · 0.5 · c when it leans the other way (0.25 · c
when TA is neutral); ranging and breakout_potential lose conf · 0.25 · c · strength when TA leans either way.

Hysteresis (``next_regime_state``): a symbol's first detection is its regime; a different regime replaces it only
after ``confirmations`` consecutive detections of it, each on a newer candle than the last one counted (analysing
the same candle again adds nothing). While a change is pending, the standing regime's confidence is scaled by
(1 − pending_count / confirmations). State is kept per symbol and never shared.
"""

from __future__ import annotations

import json
import operator
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from triplegain.agents.base import AgentOutput
from triplegain.agents.frames import Frame
from triplegain.agents.refinement import (
    REASONING_MAX_CHARS,
    RefinementPrompts,
    Refiner,
    configured_refiner,
    request_refinement,
)
from triplegain.agents.settings import RegimeSettings
from triplegain.agents.technical import TechnicalView
from triplegain.clock import Clock
from triplegain.llm import LLMGateway, LLMRequest
from triplegain.llm.masking import HistoryMask
from triplegain.market import IndicatorSnapshot, Timeframe
from triplegain.model import AgentName, Bias, RegimeName

REFINEMENT_PURPOSE = "regime_refinement"
_MIN_BANDWIDTH_HISTORY = 5
_bandwidth_of: Callable[[IndicatorSnapshot], float | None] = operator.attrgetter("bollinger_bandwidth")


REGIME_DIRECTION: dict[RegimeName, Bias] = {
    RegimeName.TRENDING_BULL: Bias.LONG,
    RegimeName.VOLATILE_BULL: Bias.LONG,
    RegimeName.TRENDING_BEAR: Bias.SHORT,
    RegimeName.VOLATILE_BEAR: Bias.SHORT,
}
"""The way a directional regime leans; the others have none."""


class RegimeMeasures(BaseModel):
    """What the detection looked at; a measure is None until its indicators have values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    adx: float | None = Field(description="ADX, 0–100")
    plus_di: float | None = Field(description="+DI")
    minus_di: float | None = Field(description="−DI")
    ema_slope: float | None = Field(description="slow EMA drift in ATRs per candle")
    bandwidth: float | None = Field(description="Bollinger bandwidth, (upper − lower) / mid")
    bandwidth_ratio: float | None = Field(description="bandwidth / its recent median")
    volatility: float | None = Field(description="annualised realised volatility")


class RegimeState(BaseModel):
    """One symbol's standing regime and the change that may be under way."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    regime: RegimeName = Field(description="the standing regime")
    confidence: float = Field(ge=0, le=1, description="confidence of its latest detection")
    since: datetime = Field(description="open time of the candle that confirmed it")
    pending: RegimeName | None = Field(default=None, description="a different regime detected since")
    pending_count: int = Field(default=0, ge=0, description="consecutive detections of the pending regime")
    last_candle: datetime = Field(description="open time of the last candle counted")


class RegimeView(BaseModel):
    """The regime agent's body."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    regime: RegimeName = Field(description="the standing regime (after hysteresis)")
    since: datetime = Field(description="open time of the candle that confirmed it")
    detected: RegimeName | None = Field(description="this analysis's detection; None while indicators warm up")
    detected_confidence: float = Field(ge=0, le=1, description="confidence of that detection")
    pending: RegimeName | None = Field(description="a regime that may replace the standing one")
    pending_count: int = Field(ge=0, description="its consecutive detections so far")
    confirmations: int = Field(ge=1, description="detections a change needs")
    timeframe: Timeframe = Field(description="the timeframe classified")
    measures: RegimeMeasures = Field(description="the measures used")
    technical_bias: Bias | None = Field(description="the TA bias taken into account, if any")
    state: RegimeState | None = Field(
        default=None, description="the hysteresis after this analysis, from which a restarted daemon carries on"
    )


class RegimeOutput(AgentOutput[RegimeView]):
    """What the regime agent publishes."""


class RegimeRefinement(BaseModel):
    """What an LLM refining the detection must answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    regime: RegimeName
    confidence: float = Field(ge=0, le=1)
    reasoning: str = Field(min_length=1, max_length=REASONING_MAX_CHARS)


@dataclass(frozen=True, slots=True)
class Detection:
    """One analysis's classification, before hysteresis."""

    regime: RegimeName
    confidence: float
    reasoning: str


# ------------------------------------------------------------------------------------------------- scoring


def regime_measures(frame: Frame, settings: RegimeSettings) -> RegimeMeasures:
    """The measures of ``frame``'s latest candle (see the module docstring)."""
    snapshot = frame.latest
    snapshots = frame.snapshots
    slope = None
    lookback = settings.slope_lookback
    if len(snapshots) > lookback and snapshot.atr:
        now, before = snapshot.ema_slow, snapshots[-1 - lookback].ema_slow
        if now is not None and before is not None:
            slope = (now - before) / (lookback * snapshot.atr)
    ratio = None
    bandwidth = snapshot.bollinger_bandwidth
    if bandwidth is not None:
        recent = map(_bandwidth_of, snapshots[-settings.squeeze_lookback :])
        history = [value for value in recent if value is not None]
        median = statistics.median(history) if len(history) >= _MIN_BANDWIDTH_HISTORY else 0.0
        ratio = bandwidth / median if median > 0 else None
    return RegimeMeasures(
        adx=snapshot.adx,
        plus_di=snapshot.plus_di,
        minus_di=snapshot.minus_di,
        ema_slope=slope,
        bandwidth=bandwidth,
        bandwidth_ratio=ratio,
        volatility=snapshot.volatility,
    )


def _margin(value: float, threshold: float) -> float:
    return max(0.0, min(1.0, value / threshold - 1.0))


def classify(measures: RegimeMeasures, settings: RegimeSettings) -> Detection | None:
    """The first rule of the module docstring that holds; None until every measure has a value."""
    adx, plus_di, minus_di = measures.adx, measures.plus_di, measures.minus_di
    slope, ratio, volatility = measures.ema_slope, measures.bandwidth_ratio, measures.volatility
    if adx is None or plus_di is None or minus_di is None or slope is None or ratio is None or volatility is None:
        return None
    steep = abs(slope) >= settings.slope_trending
    rising = slope > 0
    facts = (
        f"ADX {adx:.1f}, EMA slope {slope:+.3f} ATR/candle, bandwidth {ratio:.2f}× median, volatility {volatility:.0%}"
    )
    if volatility >= settings.volatile_annualised:
        vol_margin = _margin(volatility, settings.volatile_annualised)
        if steep:
            regime = RegimeName.VOLATILE_BULL if rising else RegimeName.VOLATILE_BEAR
            confidence = 0.5 + 0.25 * (vol_margin + _margin(abs(slope), settings.slope_trending))
            return Detection(regime, confidence, f"{regime.value}: high volatility with direction ({facts})")
        return Detection(RegimeName.CHOPPY, 0.5 + 0.5 * vol_margin, f"choppy: high volatility, no direction ({facts})")
    if adx >= settings.adx_trending and steep and (plus_di > minus_di) == rising:
        regime = RegimeName.TRENDING_BULL if rising else RegimeName.TRENDING_BEAR
        confidence = 0.5 + 0.25 * (_margin(adx, settings.adx_trending) + _margin(abs(slope), settings.slope_trending))
        return Detection(regime, confidence, f"{regime.value}: strong trend with direction ({facts})")
    if ratio <= settings.squeeze_ratio and adx < settings.adx_trending:
        confidence = 0.5 + 0.5 * (1.0 - ratio / settings.squeeze_ratio)
        return Detection(RegimeName.BREAKOUT_POTENTIAL, confidence, f"breakout_potential: bands squeezed ({facts})")
    if adx < settings.adx_ranging:
        confidence = 0.5 + 0.5 * (1.0 - adx / settings.adx_ranging)
        return Detection(RegimeName.RANGING, confidence, f"ranging: no trend ({facts})")
    return Detection(RegimeName.CHOPPY, 0.4, f"choppy: neither trend nor range ({facts})")


def weigh_technical(detection: Detection, technical: TechnicalView | None, technical_confidence: float) -> Detection:
    """The detection with its confidence adjusted by the symbol's TA view (see the module docstring)."""
    if technical is None:
        return detection
    confidence = detection.confidence
    lean = REGIME_DIRECTION.get(detection.regime)
    if lean is not None:
        if technical.bias is lean:
            confidence += (1.0 - confidence) * 0.25 * technical_confidence
        elif technical.bias is Bias.NEUTRAL:
            confidence *= 1.0 - 0.25 * technical_confidence
        else:
            confidence *= 1.0 - 0.5 * technical_confidence
    elif detection.regime is not RegimeName.CHOPPY and technical.bias is not Bias.NEUTRAL:
        confidence *= 1.0 - 0.25 * technical_confidence * technical.strength
    reasoning = f"{detection.reasoning}; TA {technical.bias.value} at confidence {technical_confidence:.2f}"
    return Detection(detection.regime, min(1.0, max(0.0, confidence)), reasoning)


def next_regime_state(
    state: RegimeState | None, detection: Detection, candle_time: datetime, confirmations: int
) -> RegimeState:
    """The symbol's state after one detection on the candle opened at ``candle_time`` (see the module)."""
    if state is None:
        return RegimeState(
            regime=detection.regime, confidence=detection.confidence, since=candle_time, last_candle=candle_time
        )
    if candle_time <= state.last_candle:
        return state
    if detection.regime is state.regime:
        return state.model_copy(
            update={"confidence": detection.confidence, "pending": None, "pending_count": 0, "last_candle": candle_time}
        )
    count = state.pending_count + 1 if detection.regime is state.pending else 1
    if count >= confirmations:
        return RegimeState(
            regime=detection.regime, confidence=detection.confidence, since=candle_time, last_candle=candle_time
        )
    return state.model_copy(update={"pending": detection.regime, "pending_count": count, "last_candle": candle_time})


def standing_confidence(state: RegimeState, confirmations: int) -> float:
    """The standing regime's confidence, lowered while a change gathers detections."""
    return state.confidence * (1.0 - state.pending_count / confirmations)


# --------------------------------------------------------------------------------------------------- agent


@dataclass(frozen=True, slots=True)
class RegimeContext:
    """One symbol's frame of the regime timeframe and, when fresh, its latest TA output."""

    symbol: str
    frame: Frame
    technical: AgentOutput[TechnicalView] | None = None
    allow_llm: bool = True


class RegimeAgent:
    """Publishes on regime_updates; keeps each symbol's hysteresis state apart from every other's."""

    def __init__(
        self,
        settings: RegimeSettings,
        *,
        clock: Clock,
        gateway: LLMGateway | None = None,
        prompts: RefinementPrompts | None = None,
        mask: HistoryMask | None = None,
        new_id: Callable[[], UUID] = uuid4,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._refiner = configured_refiner("regime", REFINEMENT_PURPOSE, settings.llm_provider, gateway, prompts, mask)
        self._new_id = new_id
        self._valid_for = timedelta(seconds=settings.valid_seconds)
        self._states: dict[str, RegimeState] = {}

    @property
    def name(self) -> AgentName:
        return AgentName.REGIME

    @property
    def valid_for(self) -> timedelta:
        return self._valid_for

    def state_of(self, symbol: str) -> RegimeState | None:
        """The symbol's hysteresis state; None before its first detection."""
        return self._states.get(symbol)

    def restore(self, symbol: str, state: RegimeState) -> None:
        """Carry a symbol's state over a restart: what ``state_of`` returned before it."""
        self._states[symbol] = state

    async def analyze(self, context: RegimeContext) -> RegimeOutput:
        symbol, frame, technical = context.symbol, context.frame, context.technical
        self._check(context)
        measures = regime_measures(frame, self._settings)
        detection = classify(measures, self._settings)
        if detection is not None and technical is not None:
            detection = weigh_technical(detection, technical.body, technical.confidence)
        output_id = self._new_id()
        llm_call_id = None
        refinement_note = ""
        refiner = self._refiner
        if detection is not None and refiner is not None and context.allow_llm:
            request = self._refinement_request(refiner, output_id, symbol, detection, measures, technical)
            refinement = await request_refinement(refiner, request, RegimeRefinement)
            answer = refinement.answer
            if answer is not None:
                revised = (
                    f"baseline {detection.regime.value} at {detection.confidence:.2f} ({detection.reasoning}), "
                    f"revised by the LLM refinement to {answer.regime.value} at {answer.confidence:.2f}"
                )
                detection = Detection(answer.regime, answer.confidence, revised)
                llm_call_id = refinement.call_id
            refinement_note = refinement.explain("", answer.reasoning if answer is not None else None)
        state = self._states.get(symbol)
        if detection is not None:
            state = self._states[symbol] = next_regime_state(
                state, detection, frame.latest.open_time, self._settings.confirmations
            )
        return self._output(output_id, context, measures, detection, state, refinement_note, llm_call_id)

    def _check(self, context: RegimeContext) -> None:
        if context.frame.symbol != context.symbol:
            raise ValueError(f"regime analysis of {context.symbol} was given a frame of {context.frame.symbol}")
        if context.frame.timeframe != self._settings.timeframe:
            raise ValueError(
                f"regime analysis classifies {self._settings.timeframe.value} candles, "
                f"was given a {context.frame.timeframe.value} frame"
            )
        technical = context.technical
        if technical is not None and (technical.symbol != context.symbol or technical.agent is not AgentName.TECHNICAL):
            raise ValueError(
                f"regime analysis of {context.symbol} was given a {technical.agent.value} view of {technical.symbol}"
            )

    def _refinement_request(
        self,
        refiner: Refiner,
        output_id: UUID,
        symbol: str,
        detection: Detection,
        measures: RegimeMeasures,
        technical: AgentOutput[TechnicalView] | None,
    ) -> LLMRequest:
        baseline: dict[str, JsonValue] = {"regime": detection.regime.value, "confidence": detection.confidence}
        facts = {
            **baseline,
            "reasoning": detection.reasoning,
            "measures": measures.model_dump(mode="json"),
            "technical": None
            if technical is None
            else {
                "bias": technical.body.bias.value,
                "strength": technical.body.strength,
                "confidence": technical.confidence,
            },
        }
        prompts = refiner.prompts
        return LLMRequest(
            purpose=REFINEMENT_PURPOSE,
            system_prompt=prompts.system_prompt(),
            user_prompt=prompts.user.render(
                symbol=refiner.mask.symbol(symbol),
                timeframe=self._settings.timeframe.value,
                regimes=", ".join(regime.value for regime in RegimeName),
                baseline=json.dumps(facts, sort_keys=True),
            ),
            context={"symbol": symbol, "baseline": baseline},
            served_id=output_id,
        )

    def _output(
        self,
        output_id: UUID,
        context: RegimeContext,
        measures: RegimeMeasures,
        detection: Detection | None,
        state: RegimeState | None,
        refinement_note: str,
        llm_call_id: UUID | None,
    ) -> RegimeOutput:
        confirmations = self._settings.confirmations
        latest = context.frame.latest
        if state is None:
            regime, since, confidence = RegimeName.CHOPPY, latest.open_time, 0.0
            reasoning = "no regime yet: indicators are warming up (reported as choppy at confidence 0)"
        else:
            regime, since, confidence = state.regime, state.since, standing_confidence(state, confirmations)
            reasoning = f"{regime.value} since {since.isoformat()}"
            if state.pending is not None:
                reasoning += f"; {state.pending.value} detected {state.pending_count}/{confirmations} times"
            reasoning += "." if detection is None else f". Detection: {detection.reasoning}."
        technical = context.technical
        body = RegimeView(
            regime=regime,
            since=since,
            detected=detection.regime if detection is not None else None,
            detected_confidence=detection.confidence if detection is not None else 0.0,
            pending=state.pending if state is not None else None,
            pending_count=state.pending_count if state is not None else 0,
            confirmations=confirmations,
            timeframe=context.frame.timeframe,
            measures=measures,
            technical_bias=technical.body.bias if technical is not None else None,
            state=state,
        )
        return RegimeOutput(
            id=output_id,
            agent=AgentName.REGIME,
            symbol=context.symbol,
            timestamp=self._clock.now(),
            confidence=confidence,
            body=body,
            reasoning=reasoning + refinement_note,
            llm_call_id=llm_call_id,
        )
