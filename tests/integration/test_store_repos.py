"""The store's sinks and readers on a real server: the LLM call log (through the real gateway too), agent outputs,
and the bus's dead-letter hook."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

import pytest
from pydantic import BaseModel, JsonValue

from tests.integration.test_store_writer import T0, agent_output, insert_decision, llm_call
from triplegain.bus import Message, MessageBus, Topic
from triplegain.clock import FakeClock
from triplegain.llm import LLMRequest, LLMSettings, build_gateway
from triplegain.store import (
    BatchWriter,
    Database,
    PostgresAgentOutputLog,
    PostgresCallLog,
    agent_outputs_for,
    dead_letter_hook,
    recent_llm_calls,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(20)]


async def insert_daemon_run(pool: Any) -> int:
    run_id: int = await pool.fetchval(
        """
        INSERT INTO daemon_runs (account, started_at, config_hash, version, host, pid)
        VALUES ('paper', $1, 'cafe', '0.1.0', 'test', 4242) RETURNING id
        """,
        T0,
    )
    return run_id


async def test_the_call_log_stores_the_decision_a_call_served_and_reads_calls_back_newest_first(
    migrated_database: Database,
) -> None:
    pool = migrated_database.pool
    run_id, decision_id = await insert_daemon_run(pool), uuid.uuid4()
    await insert_decision(pool, decision_id)
    resolution = llm_call(
        served_id=decision_id, provider="anthropic", purpose="conflict_resolution", started_at=T0 + timedelta(minutes=2)
    )
    sentiment = llm_call(served_id=uuid.uuid4(), started_at=T0 + timedelta(minutes=1), cost_usd=0.1)
    timed_out = llm_call(
        parsed=None, raw_response=None, error_class="ProviderTimeout", error_message="no answer", attempt=2
    )

    async with BatchWriter(migrated_database) as writer:
        await PostgresCallLog(writer, serves="decision", run_id=run_id).record(resolution)
        agents_log = PostgresCallLog(writer, serves="agent_output", run_id=run_id)
        await agents_log.record(sentiment)
        await agents_log.record(timed_out)

    recent = await recent_llm_calls(pool, 10)
    assert [row.call for row in recent] == [resolution, sentiment.model_copy(update={"served_id": None}), timed_out]
    assert [(row.decision_id, row.run_id) for row in recent] == [(decision_id, run_id), (None, run_id), (None, run_id)]
    assert [row.call.id for row in await recent_llm_calls(pool, 10, provider="anthropic")] == [resolution.id]
    assert [row.call.id for row in await recent_llm_calls(pool, 2)] == [resolution.id, sentiment.id]


class Resolution(BaseModel):
    action: Literal["proceed", "wait"]


def wait(request: LLMRequest) -> Mapping[str, JsonValue]:
    return {"action": "wait"}


async def test_the_gateway_records_its_calls_in_postgres(migrated_database: Database) -> None:
    decision_id = uuid.uuid4()
    await insert_decision(migrated_database.pool, decision_id)
    async with BatchWriter(migrated_database) as writer:
        gateway = build_gateway(
            "offline",
            LLMSettings(),
            call_log=PostgresCallLog(writer, serves="decision"),
            clock=FakeClock(T0),
            offline_rules={"conflict_resolution": wait},
            environ={},
        )
        request = LLMRequest(purpose="conflict_resolution", system_prompt="s", user_prompt="u", served_id=decision_id)
        outcome = await gateway.complete(request, Resolution)

    [stored] = await recent_llm_calls(migrated_database.pool, 10)
    assert outcome.answer == Resolution(action="wait")
    assert (stored.call, stored.decision_id) == (outcome.records[0], decision_id)


async def test_agent_outputs_of_a_symbol_since_a_time_oldest_first(migrated_database: Database) -> None:
    call = llm_call()
    btc = [
        agent_output(ts=T0, agent="sentiment", llm_call_id=call.id, confidence=None),
        agent_output(ts=T0 + timedelta(minutes=5), agent="regime", body={"regime": "choppy"}, reasoning=None),
    ]
    others = [
        agent_output(ts=T0 - timedelta(minutes=1)),
        agent_output(ts=T0, symbol="ETH/USDT"),
        agent_output(ts=T0, agent="portfolio", symbol=None),
    ]

    async with BatchWriter(migrated_database) as writer:
        await PostgresCallLog(writer, serves="agent_output").record(call)
        log = PostgresAgentOutputLog(writer)
        for output in [btc[1], *others, btc[0]]:
            await log.record(output)

    assert await agent_outputs_for(migrated_database.pool, "BTC/USDT", T0) == btc


async def fail(message: Message) -> None:
    raise ValueError("boom")


async def test_a_dead_letter_from_the_bus_lands_in_its_table(migrated_database: Database) -> None:
    async with BatchWriter(migrated_database) as writer:
        async with MessageBus(clock=FakeClock(T0), on_dead_letter=dead_letter_hook(writer)) as bus:
            await bus.subscribe(Topic.TA_SIGNALS, fail, name="coordinator.ta")
            message = bus.message(Topic.TA_SIGNALS, {"bias": "long", "levels": [1, 2]}, source="ta", symbol="BTC")
            await bus.publish(message)
            await bus.drain()
        await writer.flush()

    row = await migrated_database.pool.fetchrow("SELECT * FROM dead_letters")
    assert (row["ts"], row["topic"], row["subscription"], row["reason"]) == (
        T0,
        "ta_signals",
        "coordinator.ta",
        "handler_error",
    )
    assert (row["message_id"], row["error"]) == (message.id, "ValueError: boom")
    assert "raise ValueError" in row["traceback"]
    assert row["message"]["payload"] == {"bias": "long", "levels": [1, 2]}
    assert row["message"]["symbol"] == "BTC"
