"""The resolver chain with the real SDKs against the LLM stub: fallback, total failure, clamping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from uuid import UUID

import pytest

from tests.fakes import InMemoryCallLog
from tests.stubs.llm_server import STUB_KEYS, Answer, Delayed, Failure, Hang, LLMStubServer, RawBody, stub_providers
from triplegain.clock import WallClock
from triplegain.coordinator.conflicts import Conflict, ConflictRule
from triplegain.coordinator.resolution import ResolutionBounds
from triplegain.coordinator.resolver import (
    CONSERVATIVE_RULE,
    ConflictResolver,
    ResolverOutcome,
    ResolverSettings,
    build_resolver_gateways,
)
from triplegain.llm import LLMGateway, LLMSettings
from triplegain.model import Bias, ResolutionAction

DECISION = UUID("00000000-0000-4000-8000-00000000d002")
BOUNDS = ResolutionBounds(max_size_reduction_pct=80, max_leverage=3)
CONFLICTS = [
    Conflict(
        rule=ConflictRule.TECHNICAL_SENTIMENT_OPPOSED,
        severity=0.64,
        summary="technical long (0.64), sentiment short (0.71)",
        details={"technical_confidence": 0.64, "sentiment_confidence": 0.71, "confidence_gap": 0.07},
    )
]
MODIFY = {"action": "modify", "confidence": 0.7, "reasoning": "cut the size", "size_reduction_pct": 40}

Chain = Callable[..., tuple[ConflictResolver, InMemoryCallLog]]


@pytest.fixture
async def chain(llm_stub: LLMStubServer) -> AsyncIterator[Chain]:
    made: list[LLMGateway] = []

    def make(deepseek_timeout: float = 2.0, anthropic_timeout: float = 2.0) -> tuple[ConflictResolver, InMemoryCallLog]:
        providers = stub_providers(llm_stub, deepseek_timeout, anthropic_timeout)
        log = InMemoryCallLog()
        gateways = build_resolver_gateways(
            ResolverSettings(), LLMSettings(providers=providers), call_log=log, clock=WallClock(), environ=STUB_KEYS
        )
        made.extend(gateways)
        return ConflictResolver(gateways), log

    yield make
    for gateway in made:
        await gateway.aclose()


async def resolve(resolver: ConflictResolver, leverage_limit: float = 2.0) -> ResolverOutcome:
    return await resolver.resolve("BTC/USDT", Bias.LONG, CONFLICTS, BOUNDS, leverage_limit, DECISION)


async def test_deepseek_hangs_claude_answers_within_the_two_timeouts(chain: Chain, llm_stub: LLMStubServer) -> None:
    """Claude needs 0.25 s of its own 0.5 s after DeepSeek used its 0.4 s: a shared 0.5 s deadline would fail."""
    warm, _ = chain()
    llm_stub.openai.push(Failure(500))
    llm_stub.anthropic.push(Answer(json.dumps(MODIFY)))
    assert not (await resolve(warm)).conservative, "both SDKs' lazy imports are done before timing matters"

    resolver, log = chain(deepseek_timeout=0.4, anthropic_timeout=0.5)
    llm_stub.openai.push(Hang())
    llm_stub.anthropic.push(Delayed(0.25, Answer(json.dumps(MODIFY))))
    clock = WallClock()

    started = clock.monotonic()
    outcome = await resolve(resolver)
    elapsed = clock.monotonic() - started

    assert elapsed < 0.4 + 0.5 + 0.5, f"took {elapsed:.2f} s"
    assert outcome.resolved_by == "anthropic/claude-test"
    assert (outcome.resolution.action, outcome.resolution.size_reduction_pct) == (ResolutionAction.MODIFY, 40)
    assert outcome.clamps == ()
    assert [(a.provider, a.error_class) for a in outcome.attempts] == [
        ("deepseek", "ProviderTimeout"),
        ("anthropic", None),
    ]
    assert [a.call_id for a in outcome.attempts] == [record.id for record in log.records]
    assert outcome.call_id == log.records[-1].id
    assert {record.served_id for record in log.records} == {DECISION}
    sent = json.dumps(llm_stub.anthropic.requests[-1].body["messages"])
    assert "0.64" in sent, "the prompt carries the conflict's numbers"
    assert "0.07" in sent


async def test_when_both_fail_the_conservative_rule_opens_nothing(chain: Chain, llm_stub: LLMStubServer) -> None:
    resolver, log = chain()
    llm_stub.openai.push(Failure(500))
    llm_stub.anthropic.push(RawBody("this is not json {"))

    outcome = await resolve(resolver)

    assert outcome.resolved_by == CONSERVATIVE_RULE
    assert outcome.call_id is None
    assert outcome.resolution.action is ResolutionAction.ABORT
    assert not outcome.resolution.opens_exposure
    assert [a.provider for a in outcome.attempts] == ["deepseek", "anthropic"]
    assert all(a.error_class is not None for a in outcome.attempts)
    assert [a.call_id for a in outcome.attempts] == [record.id for record in log.records]
    assert "no resolver answered" in outcome.resolution.reasoning


async def test_out_of_range_values_are_clamped_and_the_clamps_recorded(chain: Chain, llm_stub: LLMStubServer) -> None:
    resolver, _ = chain()
    wild = {"action": "proceed", "confidence": 0.9, "reasoning": "go big", "size_reduction_pct": 250, "leverage": 50}
    llm_stub.openai.push(Answer(json.dumps(wild)))

    outcome = await resolve(resolver, leverage_limit=2.0)

    assert outcome.resolved_by == "deepseek/deepseek-chat"
    assert (outcome.resolution.size_reduction_pct, outcome.resolution.leverage) == (80, 2.0)
    assert [(c.field, c.asked, c.applied) for c in outcome.clamps] == [
        ("leverage", 50, 2.0),
        ("size_reduction_pct", 250, 80),
    ]
    assert [(a.provider, a.error_class) for a in outcome.attempts] == [("deepseek", None)]
