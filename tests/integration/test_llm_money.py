"""LLM money and time, through the real SDKs against the stub: latency on the wall clock, the budget's day, one
spend ledger per provider for the whole process, seeded from ``llm_calls`` at start, and a resolution's attempts
stored and listed in the order they were made."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.fakes import InMemoryCallLog
from tests.faults.test_llm_faults import PROCEED, RETRY, answer, publish, settings_with, system_on
from tests.stubs.llm_server import STUB_KEYS, Answer, Delayed, Failure, LLMStubServer, stub_providers
from tests.unit.test_consensus import T0, regime_view, view
from triplegain.agents.settings import RegimeSettings
from triplegain.clock import FakeClock, WallClock
from triplegain.config import Settings
from triplegain.coordinator.resolution import ResolutionAnswer
from triplegain.llm import BudgetExceeded, LLMRequest, LLMSettings, Prices, build_gateway
from triplegain.model import AgentName, Bias, RegimeName
from triplegain.review.call_queries import list_llm_calls, llm_call_pages
from triplegain.review.decision_queries import decision_record
from triplegain.review.filters import LLMCallFilter
from triplegain.store import Database

pytestmark = pytest.mark.timeout(60)

REQUEST = LLMRequest(purpose="conflict_resolution", system_prompt="Settle it. JSON only.", user_prompt="long vs chop")
TWO_USD_A_CALL = Prices(input_usd_per_million=1000.0, output_usd_per_million=2000.0)
"""At the stub's 1000 input and 500 output tokens, a call costs 2 USD."""


def deepseek_settings(stub: LLMStubServer, **changes: Any) -> LLMSettings:
    providers = stub_providers(stub, 5.0, 5.0)
    deepseek = providers.deepseek.model_copy(update=changes)
    return LLMSettings(providers=providers.model_copy(update={"deepseek": deepseek}))


def costly() -> Answer:
    return Answer(json.dumps(PROCEED), input_tokens=1000, output_tokens=500)


async def test_latency_is_timed_on_the_wall_clock_while_the_simulated_clock_stands_still(
    llm_stub: LLMStubServer,
) -> None:
    gateway = build_gateway(
        "deepseek", deepseek_settings(llm_stub), call_log=InMemoryCallLog(), clock=FakeClock(T0), environ=STUB_KEYS
    )
    llm_stub.openai.push(Delayed(0.3, answer(PROCEED)))
    try:
        outcome = await gateway.complete(REQUEST, ResolutionAnswer)
    finally:
        await gateway.aclose()
    [record] = outcome.records
    assert record.latency_ms >= 300, "a replay's simulated clock must not make every call take 0 ms"
    assert record.started_at == T0, "the simulated clock still dates the attempt"
    assert abs(record.wall_started_at - WallClock().now()) < timedelta(minutes=1)


async def test_the_budget_counts_the_wall_clock_s_day_whatever_day_the_candles_are(llm_stub: LLMStubServer) -> None:
    """A replay running over several candle days pays one daily budget, not one per candle day."""
    simulated = FakeClock(T0)
    settings = deepseek_settings(llm_stub, daily_budget_usd=3.0, prices=TWO_USD_A_CALL)
    gateway = build_gateway("deepseek", settings, call_log=InMemoryCallLog(), clock=simulated, environ=STUB_KEYS)
    llm_stub.openai.push(costly(), costly(), costly())
    try:
        for _ in range(2):
            assert (await gateway.complete(REQUEST, ResolutionAnswer)).answer is not None
            simulated.advance(timedelta(days=1))
        skipped = await gateway.complete(REQUEST, ResolutionAnswer)
    finally:
        await gateway.aclose()
    assert isinstance(skipped.error, BudgetExceeded)
    assert f"on {WallClock().now().date().isoformat()} UTC" in str(skipped.error)
    assert len(llm_stub.openai.requests) == 2


def chain_settings(stub: LLMStubServer, **deepseek: Any) -> Settings:
    """The default chain (DeepSeek, then Claude, two attempts each) on the stub; the regime agent asks DeepSeek."""
    providers = stub_providers(stub, 5.0, 5.0)
    providers = providers.model_copy(
        update={
            "deepseek": providers.deepseek.model_copy(update={"retry": RETRY, **deepseek}),
            "anthropic": providers.anthropic.model_copy(update={"retry": RETRY}),
        }
    )
    return settings_with(providers, regime=RegimeSettings(llm_provider="deepseek"))


@pytest.mark.postgres
async def test_the_agents_and_the_resolver_spend_one_budget_per_provider(
    llm_stub: LLMStubServer, migrated_database: Database
) -> None:
    settings = chain_settings(llm_stub, daily_budget_usd=3.0, prices=TWO_USD_A_CALL)
    llm_stub.openai.push(costly(), costly())
    async with system_on(settings, migrated_database) as system:
        deepseeks = [gateway for gateway in system.gateways if gateway.name == "deepseek"]
        assert len(deepseeks) == 2, "the regime agent's and the resolver's"
        agents, resolver = deepseeks
        assert (await agents.complete(REQUEST, ResolutionAnswer)).answer is not None
        assert (await resolver.complete(REQUEST, ResolutionAnswer)).answer is not None
        assert isinstance((await agents.complete(REQUEST, ResolutionAnswer)).error, BudgetExceeded)
        assert isinstance((await resolver.complete(REQUEST, ResolutionAnswer)).error, BudgetExceeded)
        assert resolver.spend.spent_usd == pytest.approx(4.0)
    assert len(llm_stub.openai.requests) == 2, "4 USD against a 3 USD budget, not 8 against two"


async def insert_call(db: Database, *, provider: str, cost: float, started_at: datetime, wall: datetime) -> None:
    await db.pool.execute(
        """
        INSERT INTO llm_calls (request_id, provider, model, purpose, answer_model, prompt_digest, system_prompt,
            user_prompt, parsed, cost_usd, latency_ms, attempt, step, started_at, wall_started_at)
        VALUES ($1, $2, 'm', 'conflict_resolution', 'A', 'd', 's', 'u', '{}', $3, 1, 1, 1, $4, $5)
        """,
        uuid.uuid4(),
        provider,
        cost,
        started_at,
        wall,
    )


@pytest.mark.postgres
async def test_a_restarted_daemon_starts_from_what_each_provider_cost_today(
    llm_stub: LLMStubServer, migrated_database: Database
) -> None:
    db = migrated_database
    now = WallClock().now()
    await insert_call(db, provider="deepseek", cost=1.25, started_at=T0, wall=now - timedelta(seconds=5))
    await insert_call(db, provider="deepseek", cost=0.5, started_at=T0, wall=now - timedelta(seconds=4))
    await insert_call(db, provider="anthropic", cost=0.75, started_at=T0, wall=now - timedelta(seconds=3))
    await insert_call(db, provider="deepseek", cost=9.0, started_at=now, wall=now - timedelta(days=1))
    settings = chain_settings(llm_stub, daily_budget_usd=3.0, prices=TWO_USD_A_CALL)
    llm_stub.openai.push(costly(), costly())
    async with system_on(settings, db) as system:
        spent = {gateway.name: gateway.spend.spent_usd for gateway in system.gateways}
        assert spent == pytest.approx({"deepseek": 1.75, "anthropic": 0.75})
        deepseek = system.gateways[0]
        assert (await deepseek.complete(REQUEST, ResolutionAnswer)).answer is not None
        assert isinstance((await deepseek.complete(REQUEST, ResolutionAnswer)).error, BudgetExceeded)


@pytest.mark.postgres
async def test_a_resolution_s_attempts_are_numbered_and_listed_in_the_order_they_were_made(
    llm_stub: LLMStubServer, migrated_database: Database
) -> None:
    """In a replay every attempt of a decision starts at the same candle time: the step orders them."""
    db = migrated_database
    settings = chain_settings(llm_stub)
    llm_stub.openai.push(Failure(500), Failure(500))
    llm_stub.anthropic.push(Failure(500), answer(PROCEED))
    async with system_on(settings, db) as system:
        await publish(
            system,
            view(AgentName.TECHNICAL, Bias.LONG, 0.95),
            regime_view(RegimeName.CHOPPY, 0.5),
            view(AgentName.SENTIMENT, Bias.LONG, 0.95),
        )
        stored = await system.coordinator.decide("BTC/USDT", T0)
        assert stored is not None
    record = await decision_record(db, stored.write.decision.id)
    assert record is not None
    assert [(call.step, call.provider, call.attempt) for call in record.llm_calls] == [
        (1, "deepseek", 1),
        (2, "deepseek", 2),
        (3, "anthropic", 1),
        (4, "anthropic", 2),
    ]
    assert {call.started_at for call in record.llm_calls} == {T0}
    listed = await list_llm_calls(db, LLMCallFilter(decision_id=record.decision.id))
    assert [call.step for call in listed] == [4, 3, 2, 1], "llm-calls list: newest first"
    exported = [row async for page in llm_call_pages(db, LLMCallFilter(limit=None), page_size=3) for row in page]
    assert [row["step"] for row in exported] == [1, 2, 3, 4], "llm-calls export: oldest first"
