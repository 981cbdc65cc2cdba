"""The resolver's answer to a conflict, bounded before anything acts on it, and the rules used without an LLM.

An LLM's answer is parsed into ``ResolutionAnswer``: types checked and numbers finite, but ranges left open, so
that ``clamp`` can bring an out-of-range value within ``ResolutionBounds`` and record that it did (``Clamp``)
rather than throw the whole answer away:

    confidence          into [0, 1]
    size_reduction_pct  into [0, max_size_reduction_pct]      percent of the intended size to take off
    stop_distance_pct   into [min_stop_distance_pct, max_stop_distance_pct]   None: keep the risk plan's stop
    leverage            into [1, min(max_leverage, the risk rules' leverage limit)]   None: keep the plan's

Proceed and modify apply the bounded modifications; wait and abort open nothing. ``conservative_resolution`` is the
answer when no resolver answered: abort, so no new exposure. ``RESOLUTION_OFFLINE_RULES`` answers the purpose
``conflict_resolution`` for the offline provider from the request context built by ``resolution_context``: abort
on a choppy-regime conflict, otherwise modify with a size reduction of 100 · the highest conflict severity (capped
by the bounds) at confidence 1 − that severity, or proceed when there is no conflict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from triplegain.agents.refinement import REASONING_MAX_CHARS
from triplegain.coordinator.conflicts import Conflict, ConflictRule
from triplegain.llm import LLMRequest, OfflineRule
from triplegain.model import Bias, ResolutionAction
from triplegain.section import Section

RESOLUTION_PURPOSE = "conflict_resolution"


class ResolutionAnswer(BaseModel):
    """What a resolver must answer: types and finiteness are checked here, ranges by ``clamp``."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    action: ResolutionAction = Field(description="proceed, modify, wait or abort")
    confidence: float = Field(description="how sure the resolver is, 0–1")
    reasoning: str = Field(min_length=1, max_length=REASONING_MAX_CHARS, description="why, in words")
    size_reduction_pct: float = Field(default=0.0, description="percent of the intended size to take off")
    stop_distance_pct: float | None = Field(default=None, description="stop distance from entry, % of price")
    leverage: float | None = Field(default=None, description="leverage to use")


class ResolutionBounds(Section):
    """How far a resolver may change a trade; anything beyond is clamped and the clamping recorded."""

    max_size_reduction_pct: float = Field(
        default=100.0, ge=0, le=100, description="largest size reduction a resolver may ask for, in percent"
    )
    min_stop_distance_pct: float = Field(
        default=0.2, gt=0, description="closest stop a resolver may set, in percent of the entry price"
    )
    max_stop_distance_pct: float = Field(
        default=10.0, gt=0, lt=100, description="farthest stop a resolver may set, in percent of the entry price"
    )
    max_leverage: float = Field(
        default=3.0, ge=1, description="highest leverage a resolver may ask for (the risk rules' limit also applies)"
    )

    @model_validator(mode="after")
    def _ordered_stops(self) -> Self:
        if self.min_stop_distance_pct > self.max_stop_distance_pct:
            raise ValueError(
                f"min_stop_distance_pct ({self.min_stop_distance_pct}) must be ≤ max_stop_distance_pct "
                f"({self.max_stop_distance_pct})"
            )
        return self


class BoundedResolution(BaseModel):
    """A resolution within bounds: the only kind the coordinator acts on."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    action: ResolutionAction = Field(description="proceed, modify, wait or abort")
    confidence: float = Field(ge=0, le=1, description="how sure the resolver is")
    reasoning: str = Field(description="why, in words")
    size_reduction_pct: float = Field(ge=0, le=100, description="percent of the intended size to take off")
    stop_distance_pct: float | None = Field(gt=0, description="stop distance in % of price; None: the plan's")
    leverage: float | None = Field(ge=1, description="leverage; None: the plan's")

    @property
    def opens_exposure(self) -> bool:
        return self.action in (ResolutionAction.PROCEED, ResolutionAction.MODIFY)


class Clamp(BaseModel):
    """A value the resolver asked for that was out of bounds, and the value used instead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str = Field(description="the answer's field")
    asked: float = Field(description="what the resolver asked for")
    applied: float = Field(description="the nearest value within bounds")


def clamp(
    answer: ResolutionAnswer, bounds: ResolutionBounds, leverage_limit: float
) -> tuple[BoundedResolution, list[Clamp]]:
    """``answer`` brought within ``bounds`` (leverage also within ``leverage_limit``), and each value it changed."""
    if not (math.isfinite(leverage_limit) and leverage_limit >= 1):
        raise ValueError(f"leverage_limit must be a finite number ≥ 1, got {leverage_limit}")
    clamps: list[Clamp] = []

    def within(name: str, asked: float, low: float, high: float) -> float:
        applied = min(high, max(low, asked))
        if applied != asked:
            clamps.append(Clamp(field=name, asked=asked, applied=applied))
        return applied

    stop = answer.stop_distance_pct
    if stop is not None:
        stop = within("stop_distance_pct", stop, bounds.min_stop_distance_pct, bounds.max_stop_distance_pct)
    leverage = answer.leverage
    if leverage is not None:
        leverage = within("leverage", leverage, 1.0, min(bounds.max_leverage, leverage_limit))
    bounded = BoundedResolution(
        action=answer.action,
        confidence=within("confidence", answer.confidence, 0.0, 1.0),
        reasoning=answer.reasoning,
        size_reduction_pct=within("size_reduction_pct", answer.size_reduction_pct, 0.0, bounds.max_size_reduction_pct),
        stop_distance_pct=stop,
        leverage=leverage,
    )
    return bounded, clamps


def conservative_resolution(reason: str) -> BoundedResolution:
    """The answer when no resolver gave one: abort, opening nothing."""
    return BoundedResolution(
        action=ResolutionAction.ABORT,
        confidence=0.0,
        reasoning=f"conservative rule, no trade: {reason}",
        size_reduction_pct=0.0,
        stop_distance_pct=None,
        leverage=None,
    )


# ------------------------------------------------------------------------------------------- offline answer


def resolution_context(
    symbol: str, direction: Bias, conflicts: Sequence[Conflict], bounds: ResolutionBounds
) -> dict[str, JsonValue]:
    """The structured context of a ``conflict_resolution`` request (what the offline rule reads)."""
    return {
        "symbol": symbol,
        "direction": direction.value,
        "conflicts": [conflict.model_dump(mode="json") for conflict in conflicts],
        "bounds": bounds.model_dump(mode="json"),
    }


def resolve_offline(request: LLMRequest) -> Mapping[str, JsonValue]:
    """Deterministic answer from ``resolution_context``: abort in a choppy regime, else cut by the worst severity."""
    conflicts, bounds = resolution_context_of(request)
    symbol = request.context.get("symbol")
    if any(conflict.rule is ConflictRule.CHOPPY_REGIME for conflict in conflicts):
        return {"action": "abort", "confidence": 1.0, "reasoning": f"offline rule: {symbol} is in a choppy regime"}
    if not conflicts:
        return {"action": "proceed", "confidence": 1.0, "reasoning": f"offline rule: no conflict on {symbol}"}
    worst = max(conflict.severity for conflict in conflicts)
    reduction = min(100.0 * worst, bounds.max_size_reduction_pct)
    rules = ", ".join(conflict.rule.value for conflict in conflicts)
    return {
        "action": "modify",
        "confidence": 1.0 - worst,
        "reasoning": f"offline rule: {symbol} has conflicts ({rules}), worst severity {worst:.2f}; "
        f"size reduced by {reduction:.1f}%",
        "size_reduction_pct": reduction,
    }


def resolution_context_of(request: LLMRequest) -> tuple[list[Conflict], ResolutionBounds]:
    """The conflicts and bounds in a request's context; a context without them is a wiring mistake."""
    conflicts = request.context.get("conflicts")
    bounds = request.context.get("bounds")
    if not isinstance(conflicts, list) or not isinstance(bounds, dict):
        raise ValueError(f"{request.purpose}: the request's context has no conflicts and bounds")
    return [Conflict.model_validate(conflict) for conflict in conflicts], ResolutionBounds.model_validate(bounds)


RESOLUTION_OFFLINE_RULES: Mapping[str, OfflineRule] = {RESOLUTION_PURPOSE: resolve_offline}
"""Purpose → rule, for ``build_gateway(..., offline_rules=...)``."""
