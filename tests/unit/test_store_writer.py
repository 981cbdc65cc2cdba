"""The batching writer without a PostgreSQL server: settings, how records become rows, the buffer bound, and a
server that refuses connections (flush and close give up in time and say what is left)."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError

from triplegain.bus import DeadLetter, DeadLetterReason, Message, Topic
from triplegain.clock import FakeClock
from triplegain.llm.models import LLMCallRecord
from triplegain.store import (
    AgentOutputRecord,
    BatchWriter,
    Database,
    DeadLetterRow,
    LLMCallRow,
    PostgresCallLog,
    RowsNotWritten,
    WriteBufferFull,
    WriterClosed,
    WriterSettings,
    agent_outputs_for,
    dead_letter_hook,
    recent_llm_calls,
)
from triplegain.store.records import AGENT_OUTPUTS, DEAD_LETTERS, LLM_CALLS

pytestmark = pytest.mark.timeout(10)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
NOWHERE = Database(pool=None, server="nowhere:5432/test", embedded=False, command_timeout_seconds=1.0)


async def sleep_forever(seconds: float) -> None:
    """The writer's naps end only when it is woken (flush, close), never by time."""
    await asyncio.Event().wait()


def llm_call(**changes: Any) -> LLMCallRecord:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "request_id": uuid.uuid4(),
        "served_id": uuid.uuid4(),
        "provider": "deepseek",
        "model": "deepseek-chat",
        "purpose": "conflict_resolution",
        "answer_model": "Resolution",
        "prompt_digest": "ab" * 32,
        "system_prompt": "settle it",
        "user_prompt": "ta 0.7 vs sentiment 0.65",
        "raw_response": '{"action": "wait"}',
        "parsed": {"action": "wait"},
        "validation_error": None,
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": 0.0012,
        "latency_ms": 900.0,
        "attempt": 1,
        "step": 1,
        "cached": False,
        "error_class": None,
        "error_message": None,
        "started_at": T0,
        "wall_started_at": T0,
    }
    return LLMCallRecord(**(fields | changes))


def agent_output(**changes: Any) -> AgentOutputRecord:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "run_id": 7,
        "agent": "technical",
        "symbol": "BTC/USDT",
        "ts": T0,
        "confidence": 0.7,
        "body": {"bias": "long", "levels": [61000.5]},
        "reasoning": "EMA cross",
        "llm_call_id": None,
    }
    return AgentOutputRecord(**(fields | changes))


@pytest.fixture
async def unreachable() -> AsyncIterator[Database]:
    """A database whose server refuses connections (a pool that connects only when used)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{port}/test", min_size=0, max_size=1)
    yield Database(pool=pool, server=f"127.0.0.1:{port}/test", embedded=False, command_timeout_seconds=1.0)
    await pool.close()


def test_writer_settings_are_consistent() -> None:
    assert WriterSettings().batch_size <= WriterSettings().max_buffered_rows
    with pytest.raises(ValidationError, match=r"batch_size \(10\) must not exceed max_buffered_rows \(5\)"):
        WriterSettings(batch_size=10, max_buffered_rows=5)
    with pytest.raises(ValidationError, match=r"retry_max_seconds \(1\) must be at least retry_initial_seconds \(2\)"):
        WriterSettings(retry_initial_seconds=2, retry_max_seconds=1)
    with pytest.raises(ValidationError, match="extra"):
        WriterSettings(batch_sise=10)  # type: ignore[call-arg]


def test_an_llm_call_row_follows_the_table() -> None:
    call = llm_call(cost_usd=0.1)
    values = dict(
        zip(LLM_CALLS.column_names, LLMCallRow(call, run_id=7, decision_id=call.served_id).values(), strict=True)
    )

    assert (values["id"], values["decision_id"], values["run_id"], values["symbol"]) == (
        call.id,
        call.served_id,
        7,
        None,
    )
    assert json.loads(values["parsed"]) == {"action": "wait"}  # JSON text for jsonb (its spacing is not kept)
    assert values["cost_usd"] == Decimal("0.1")  # not the float's binary expansion
    assert values["started_at"] == T0


def test_an_agent_output_row_follows_the_table() -> None:
    output = agent_output(body={"note": "prix élevé"})
    values = dict(zip(AGENT_OUTPUTS.column_names, output.values(), strict=True))

    assert (values["id"], values["agent"], values["confidence"]) == (output.id, "technical", 0.7)
    assert values["body"] == '{"note":"prix élevé"}'  # as is: not escaped to ASCII
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        agent_output(confidence=1.5)


def test_a_dead_letter_row_carries_the_whole_message() -> None:
    message = Message(topic=Topic.MARKET_DATA, source="feed", payload={"close": Decimal("1.5")}, created_at=T0)
    letter = DeadLetter(message=message, subscription="ta", reason=DeadLetterReason.EXPIRED, at=T0)
    values = dict(zip(DEAD_LETTERS.column_names, DeadLetterRow(letter).values(), strict=True))

    assert (values["topic"], values["reason"], values["message_id"], values["error"]) == (
        "market_data",
        "expired",
        message.id,
        None,
    )
    assert json.loads(values["message"])["payload"] == {"close": "1.5"}


def test_a_retried_batch_skips_stored_rows() -> None:
    assert LLM_CALLS.move_statement.endswith("ON CONFLICT (id) DO NOTHING")
    assert DEAD_LETTERS.move_statement.endswith(
        "WHERE NOT EXISTS (SELECT FROM dead_letters AS stored WHERE stored.message_id = batch.message_id "
        "AND stored.subscription = batch.subscription AND stored.reason = batch.reason AND stored.ts = batch.ts)"
    )


def test_json_that_the_database_cannot_hold_fails_in_the_caller() -> None:
    writer = BatchWriter(NOWHERE)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        writer.submit(agent_output(body={"score": math.nan}))
    assert writer.stats().submitted == 0


def test_a_full_buffer_refuses_rows_and_keeps_the_ones_it_has() -> None:
    writer = BatchWriter(NOWHERE, WriterSettings(batch_size=2, max_buffered_rows=3), clock=FakeClock(T0))
    rows = [agent_output() for _ in range(3)]
    for row in rows:
        writer.submit(row)

    assert not writer.overflowed.is_set()
    with pytest.raises(WriteBufferFull, match=r"nowhere:5432/test is full: 3 rows held, the bound is 3 rows") as full:
        writer.submit(agent_output())
    assert writer.unwritten() == rows
    stats = writer.stats()
    assert (stats.submitted, stats.buffered, stats.written, stats.oldest_buffered_age_seconds) == (3, 3, 0, 0.0)
    assert (writer.overflowed.is_set(), writer.overflow_error, stats.overflowed) == (True, full.value, True)


async def test_flush_needs_a_started_writer() -> None:
    with pytest.raises(RuntimeError, match="start the BatchWriter first"):
        await BatchWriter(NOWHERE).flush()


async def test_the_call_log_keeps_the_decision_only_for_calls_that_served_one() -> None:
    writer = BatchWriter(NOWHERE)
    resolution, sentiment = llm_call(), llm_call()
    await PostgresCallLog(writer, serves="decision", run_id=3).record(resolution)
    await PostgresCallLog(writer, serves="agent_output").record(sentiment)

    assert writer.unwritten() == [
        LLMCallRow(resolution, run_id=3, decision_id=resolution.served_id),
        LLMCallRow(sentiment, run_id=None, decision_id=None),
    ]


def test_the_dead_letter_hook_hands_the_letter_over_without_waiting() -> None:
    writer = BatchWriter(NOWHERE)
    message = Message(topic=Topic.TA_SIGNALS, source="ta", payload={}, created_at=T0)
    letter = DeadLetter(message=message, subscription="s", reason=DeadLetterReason.CLOSED, at=T0)

    dead_letter_hook(writer)(letter)

    assert writer.unwritten() == [DeadLetterRow(letter)]


async def test_readers_check_their_arguments() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        await recent_llm_calls(None, 0)
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        await agent_outputs_for(None, "BTC/USDT", datetime(2024, 1, 1))


async def test_an_unreachable_server_keeps_the_rows_and_flush_and_close_say_so(unreachable: Database) -> None:
    settings = WriterSettings(flush_timeout_seconds=0.05, close_timeout_seconds=0.05)
    writer = BatchWriter(unreachable, settings, clock=FakeClock(T0), sleep=sleep_forever)
    rows = [agent_output() for _ in range(3)]
    writer.start()
    for row in rows:
        writer.submit(row)

    with pytest.raises(RowsNotWritten, match=r"3 rows not written to .* within 0.05 s.*connection refused") as failed:
        await writer.flush()
    assert failed.value.rows == 3
    stats = writer.stats()
    assert (stats.failed_flushes, stats.healthy, stats.buffered, stats.last_error) == (
        1,
        False,
        3,
        "connection refused",
    )

    with pytest.raises(RowsNotWritten, match=r"close: 3 rows could not be written .* unwritten\(\)"):
        await writer.aclose()
    assert writer.unwritten() == rows
    assert writer.stats().failed_flushes == 2  # close tried once more at once
    with pytest.raises(WriterClosed):
        writer.submit(agent_output())
