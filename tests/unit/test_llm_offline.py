"""The offline provider through the whole gateway: deterministic answers from the request's context, no network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from uuid import UUID

import pytest
from pydantic import BaseModel, Field, JsonValue

from tests.fakes import InMemoryCallLog
from triplegain.clock import FakeClock, WallClock
from triplegain.llm import (
    BudgetExceeded,
    LLMGateway,
    LLMOutputError,
    LLMRequest,
    LLMSettings,
    ProviderRejectedRequest,
    SpendLedger,
    build_gateway,
    first_success,
)


class Resolution(BaseModel):
    action: Literal["proceed", "modify", "wait", "abort"]
    confidence: float = Field(ge=0, le=1)
    reasoning: str


def cautious(request: LLMRequest) -> Mapping[str, JsonValue]:
    """Wait when the views are close, else follow the stronger one at its confidence."""
    ta = request.context["ta_confidence"]
    sentiment = request.context["sentiment_confidence"]
    assert isinstance(ta, float)
    assert isinstance(sentiment, float)
    if abs(ta - sentiment) < 0.1:
        return {"action": "wait", "confidence": 0.5, "reasoning": "views too close to call"}
    return {"action": "proceed", "confidence": max(ta, sentiment), "reasoning": "the stronger view wins"}


def reckless(request: LLMRequest) -> Mapping[str, JsonValue]:
    return {"action": "proceed", "confidence": 7, "reasoning": "yolo"}


SERVED = UUID("00000000-0000-0000-0000-00000000abcd")


def conflict(ta: float, sentiment: float, purpose: str = "conflict_resolution") -> LLMRequest:
    return LLMRequest(
        purpose=purpose,
        system_prompt="settle it",
        user_prompt=f"ta {ta} vs sentiment {sentiment}",
        context={"ta_confidence": ta, "sentiment_confidence": sentiment},
        served_id=SERVED,
    )


def offline_gateway(log: InMemoryCallLog, *, replaying: bool = False) -> LLMGateway:
    return build_gateway(
        "offline",
        LLMSettings(),
        call_log=log,
        clock=FakeClock(),
        replaying=replaying,
        offline_rules={"conflict_resolution": cautious, "reckless": reckless},
        environ={},
    )


async def test_answers_are_computed_from_the_context_and_recorded() -> None:
    log = InMemoryCallLog()
    gateway = offline_gateway(log)

    close = await gateway.complete(conflict(0.7, 0.65), Resolution)
    apart = await gateway.complete(conflict(0.8, 0.4), Resolution)

    assert close.answer == Resolution(action="wait", confidence=0.5, reasoning="views too close to call")
    assert apart.answer == Resolution(action="proceed", confidence=0.8, reasoning="the stronger view wins")
    first = log.records[0]
    assert (first.provider, first.model, first.served_id) == ("offline", "offline-rules", SERVED)
    assert (first.input_tokens, first.output_tokens, first.cost_usd, first.error_class) == (0, 0, 0.0, None)
    assert first.parsed == {"action": "wait", "confidence": 0.5, "reasoning": "views too close to call"}


async def test_the_same_request_gets_the_same_answer() -> None:
    log = InMemoryCallLog()
    gateway = offline_gateway(log)
    answers = [await gateway.complete(conflict(0.9, 0.2), Resolution) for _ in range(3)]
    assert answers[0].answer is not None
    assert all(outcome.answer == answers[0].answer for outcome in answers)
    assert len({record.raw_response for record in log.records}) == 1


async def test_a_purpose_without_a_rule_is_rejected_once() -> None:
    log = InMemoryCallLog()
    outcome = await offline_gateway(log).complete(conflict(0.5, 0.5, purpose="sentiment"), Resolution)
    assert isinstance(outcome.error, ProviderRejectedRequest)
    assert str(outcome.error) == (
        "offline: no offline rule for purpose 'sentiment' (rules exist for: conflict_resolution, reckless)"
    )
    assert len(log.records) == 1


async def test_offline_answers_are_validated_like_any_other() -> None:
    outcome = await offline_gateway(InMemoryCallLog()).complete(conflict(0.5, 0.5, purpose="reckless"), Resolution)
    assert isinstance(outcome.error, LLMOutputError)
    assert "confidence: input should be less than or equal to 1 (got 7)" in outcome.error.reason


async def test_offline_is_the_last_resort_of_a_chain() -> None:
    log = InMemoryCallLog()
    gateway = offline_gateway(log)
    result = await first_success([gateway], conflict(0.6, 0.9), Resolution)
    assert result.provider == "offline"
    assert result.answer is not None
    assert result.answer.confidence == 0.9


@pytest.mark.parametrize(("replaying", "cached"), [(False, False), (True, True)])
async def test_the_cache_follows_the_replay_setting(replaying: bool, cached: bool) -> None:
    log = InMemoryCallLog()
    gateway = offline_gateway(log, replaying=replaying)
    assert (gateway.cache is not None) is cached
    await gateway.complete(conflict(0.6, 0.9), Resolution)
    await gateway.complete(conflict(0.6, 0.9), Resolution)
    assert [record.cached for record in log.records] == [False, cached]


async def test_a_restart_carries_over_what_was_spent_today() -> None:
    clock = FakeClock()
    budget = LLMSettings().providers.offline.daily_budget_usd
    gateway = build_gateway(
        "offline",
        LLMSettings(),
        call_log=InMemoryCallLog(),
        clock=clock,
        offline_rules={"conflict_resolution": cautious},
        ledger=SpendLedger(WallClock().now().date(), {"offline": budget}),
    )
    outcome = await gateway.complete(conflict(0.6, 0.9), Resolution)
    assert isinstance(outcome.error, BudgetExceeded)
