"""The resolver's answer: validation, clamping into bounds (recorded), the conservative rule and the offline rule."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from triplegain.coordinator.conflicts import Conflict, ConflictRule
from triplegain.coordinator.resolution import (
    RESOLUTION_OFFLINE_RULES,
    RESOLUTION_PURPOSE,
    BoundedResolution,
    Clamp,
    ResolutionAnswer,
    ResolutionBounds,
    clamp,
    conservative_resolution,
    resolution_context,
)
from triplegain.llm import LLMOutputError, LLMRequest, parse_answer
from triplegain.model import Bias, ResolutionAction

BOUNDS = ResolutionBounds(max_size_reduction_pct=80, min_stop_distance_pct=0.5, max_stop_distance_pct=5, max_leverage=3)


def answer(**values: object) -> ResolutionAnswer:
    fields: dict[str, object] = {"action": "modify", "confidence": 0.7, "reasoning": "because"}
    fields.update(values)
    return ResolutionAnswer.model_validate(fields)


def test_an_answer_within_bounds_is_kept_as_is() -> None:
    asked = answer(size_reduction_pct=50, stop_distance_pct=2.0, leverage=2.0)
    bounded, clamps = clamp(asked, BOUNDS, leverage_limit=5)
    assert clamps == []
    assert bounded == BoundedResolution(
        action=ResolutionAction.MODIFY,
        confidence=0.7,
        reasoning="because",
        size_reduction_pct=50,
        stop_distance_pct=2.0,
        leverage=2.0,
    )


def test_out_of_range_values_are_clamped_and_each_clamp_recorded() -> None:
    asked = answer(confidence=1.4, size_reduction_pct=120, stop_distance_pct=0.1, leverage=10)
    bounded, clamps = clamp(asked, BOUNDS, leverage_limit=2)
    assert (bounded.confidence, bounded.size_reduction_pct, bounded.stop_distance_pct, bounded.leverage) == (
        1.0,
        80,
        0.5,
        2,
    )
    assert sorted(clamps, key=lambda c: c.field) == [
        Clamp(field="confidence", asked=1.4, applied=1.0),
        Clamp(field="leverage", asked=10, applied=2),
        Clamp(field="size_reduction_pct", asked=120, applied=80),
        Clamp(field="stop_distance_pct", asked=0.1, applied=0.5),
    ]


def test_negative_values_come_up_to_the_lower_bound() -> None:
    bounded, clamps = clamp(answer(confidence=-1, size_reduction_pct=-5, leverage=0.5), BOUNDS, leverage_limit=3)
    assert (bounded.confidence, bounded.size_reduction_pct, bounded.leverage) == (0, 0, 1)
    assert len(clamps) == 3


def test_the_answer_is_typed_and_finite_but_not_ranged() -> None:
    assert answer(confidence=7).confidence == 7
    for bad in ({"confidence": math.inf}, {"leverage": math.nan}, {"action": "buy"}, {"reasoning": ""}, {"x": 1}):
        with pytest.raises(ValidationError):
            answer(**bad)
    with pytest.raises(LLMOutputError):
        parse_answer('{"action": "proceed", "confidence": "0.5", "reasoning": "r"}', ResolutionAnswer)


def test_bounds_and_limit_are_checked() -> None:
    with pytest.raises(ValidationError, match="min_stop_distance_pct"):
        ResolutionBounds(min_stop_distance_pct=6, max_stop_distance_pct=5)
    with pytest.raises(ValidationError):
        ResolutionBounds(max_size_reduction_pct=101)
    with pytest.raises(ValueError, match="leverage_limit"):
        clamp(answer(), BOUNDS, leverage_limit=0.5)


def test_the_conservative_resolution_opens_nothing() -> None:
    resolution = conservative_resolution("deepseek and claude both failed")
    assert resolution.action is ResolutionAction.ABORT
    assert not resolution.opens_exposure
    assert "deepseek and claude both failed" in resolution.reasoning


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
bounds_st = st.builds(
    ResolutionBounds,
    max_size_reduction_pct=st.floats(0, 100),
    min_stop_distance_pct=st.floats(0.01, 1),
    max_stop_distance_pct=st.floats(1, 50),
    max_leverage=st.floats(1, 20),
)


@given(
    action=st.sampled_from(list(ResolutionAction)),
    confidence=finite,
    reduction=finite,
    stop=st.none() | finite,
    leverage=st.none() | finite,
    bounds=bounds_st,
    limit=st.floats(1, 50),
)
def test_clamp_never_returns_out_of_bounds_values_and_records_every_change(
    action: ResolutionAction,
    confidence: float,
    reduction: float,
    stop: float | None,
    leverage: float | None,
    bounds: ResolutionBounds,
    limit: float,
) -> None:
    asked = answer(
        action=action.value,
        confidence=confidence,
        size_reduction_pct=reduction,
        stop_distance_pct=stop,
        leverage=leverage,
    )
    bounded, clamps = clamp(asked, bounds, limit)
    assert bounded.action is action
    assert 0 <= bounded.confidence <= 1
    assert 0 <= bounded.size_reduction_pct <= bounds.max_size_reduction_pct
    if bounded.stop_distance_pct is not None:
        assert bounds.min_stop_distance_pct <= bounded.stop_distance_pct <= bounds.max_stop_distance_pct
    if bounded.leverage is not None:
        assert 1 <= bounded.leverage <= min(bounds.max_leverage, limit)
    changed = {
        name: (getattr(asked, name), getattr(bounded, name))
        for name in ("confidence", "size_reduction_pct", "stop_distance_pct", "leverage")
        if getattr(asked, name) != getattr(bounded, name)
    }
    assert {c.field: (c.asked, c.applied) for c in clamps} == changed
    assert len(clamps) == len(changed)


# ------------------------------------------------------------------------------------------------ offline


def conflict(rule: ConflictRule, severity: float) -> Conflict:
    return Conflict(rule=rule, severity=severity, summary="s", details={})


def offline_answer(conflicts: list[Conflict], bounds: ResolutionBounds = BOUNDS) -> ResolutionAnswer:
    context = resolution_context("BTC/USDT", Bias.LONG, conflicts, bounds)
    request = LLMRequest(purpose=RESOLUTION_PURPOSE, system_prompt="s", user_prompt="u", context=context)
    rule = RESOLUTION_OFFLINE_RULES[RESOLUTION_PURPOSE]
    return parse_answer(json.dumps(rule(request)), ResolutionAnswer)


def test_offline_aborts_in_a_choppy_regime() -> None:
    assert offline_answer([conflict(ConflictRule.RISK_CUT, 0.6), conflict(ConflictRule.CHOPPY_REGIME, 0.3)]).action == (
        ResolutionAction.ABORT
    )


def test_offline_cuts_the_size_by_the_worst_severity() -> None:
    result = offline_answer([conflict(ConflictRule.RISK_CUT, 0.6), conflict(ConflictRule.AGENTS_ABSENT, 1 / 3)])
    assert result.action is ResolutionAction.MODIFY
    assert result.size_reduction_pct == 60
    assert result.confidence == pytest.approx(0.4)
    assert offline_answer([]).action is ResolutionAction.PROCEED


def test_offline_needs_its_context() -> None:
    request = LLMRequest(purpose=RESOLUTION_PURPOSE, system_prompt="s", user_prompt="u")
    with pytest.raises(ValueError, match="no conflicts and bounds"):
        RESOLUTION_OFFLINE_RULES[RESOLUTION_PURPOSE](request)


@given(
    severities=st.lists(
        st.tuples(st.sampled_from(list(ConflictRule)), st.floats(0, 1)),
        max_size=4,
    ),
    bounds=bounds_st,
)
def test_the_offline_answer_validates_and_clamps_to_itself(
    severities: list[tuple[ConflictRule, float]], bounds: ResolutionBounds
) -> None:
    result = offline_answer([conflict(rule, severity) for rule, severity in severities], bounds)
    bounded, clamps = clamp(result, bounds, leverage_limit=1)
    assert clamps == []
    assert bounded.model_dump() == result.model_dump()
