"""The batching writer on a real server: batches by size and by time, FK-safe flushes, outages, refused rows,
rows waiting for their parent, idempotent retries, close.

Time is a ``FakeClock`` and the writer's sleeps are ``GatedSleep``s: a test waits until the writer sleeps for a
given time (so it knows what the writer did before) and decides when that time has passed. ``commits`` tells a
test when a transaction of the writer has committed (a trigger sends NOTIFY).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

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
    WriteBufferFull,
    WriterClosed,
    WriterSettings,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(20)]

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL = 10.0


class GatedSleep:
    """An injected sleep that lasts until the test calls ``wake()``; ``sleeping(s)`` waits for a sleep of s."""

    def __init__(self) -> None:
        self._gates: list[tuple[float, asyncio.Future[None]]] = []
        self._changed = asyncio.Condition()

    async def __call__(self, seconds: float) -> None:
        gate = asyncio.get_running_loop().create_future()
        self._gates.append((seconds, gate))
        async with self._changed:
            self._changed.notify_all()
        await gate

    async def sleeping(self, seconds: float) -> None:
        """Return once a sleep of ``seconds`` is in progress."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: any(length == seconds and not gate.done() for length, gate in self._gates)
            )

    def wake(self) -> None:
        """End every sleep in progress, as if its time had passed."""
        for _, gate in self._gates:
            if not gate.done():
                gate.set_result(None)
        self._gates.clear()


def llm_call(**changes: Any) -> LLMCallRecord:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "request_id": uuid.uuid4(),
        "served_id": None,
        "provider": "deepseek",
        "model": "deepseek-chat",
        "purpose": "sentiment",
        "answer_model": "SentimentAnswer",
        "prompt_digest": "ab" * 32,
        "system_prompt": "You judge headlines.",
        "user_prompt": "BTC ETF approved",
        "raw_response": '{"bias": "long"}',
        "parsed": {"bias": "long", "score": 0.6},
        "validation_error": None,
        "input_tokens": 120,
        "output_tokens": 12,
        "cost_usd": 0.0012,
        "latency_ms": 850.5,
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
        "run_id": None,
        "agent": "technical",
        "symbol": "BTC/USDT",
        "ts": T0,
        "confidence": 0.7,
        "body": {"bias": "long", "strength": 0.4, "levels": [61000, 64500]},
        "reasoning": "EMA cross with rising volume",
        "llm_call_id": None,
    }
    return AgentOutputRecord(**(fields | changes))


def call_row(**changes: Any) -> LLMCallRow:
    return LLMCallRow(call=llm_call(**changes), run_id=None, decision_id=None)


async def count(pool: Any, table: str) -> int:
    number: int = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return number


async def stored_ids(pool: Any, table: str) -> set[uuid.UUID]:
    return {record["id"] for record in await pool.fetch(f"SELECT id FROM {table}")}


async def insert_decision(pool: Any, decision_id: uuid.UUID) -> None:
    await pool.execute(
        """
        INSERT INTO decisions (id, account, symbol, ts, action, confidence, consensus_inputs, consensus_terms,
                               consensus_result, degradation_level, coordinator_state, reason)
        VALUES ($1, 'paper', 'BTC/USDT', $2, 'hold', 0.5, '[]', '{}', '{}', 'NORMAL', 'RUNNING', 'conflict')
        """,
        decision_id,
        T0,
    )


@asynccontextmanager
async def outage(postgres_url: str, database_url: str) -> AsyncIterator[None]:
    """In the block, the database refuses connections and its open connections are cut."""
    database = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        # With a timeout, pg_terminate_backend returns once the backend has exited.
        await admin.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1", database)
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()


@pytest.fixture
async def commits(migrated_database_url: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Wait for the next commit of a transaction that inserted into agent_outputs or llm_calls."""
    listener = await asyncpg.connect(migrated_database_url)
    committed: asyncio.Queue[str] = asyncio.Queue()
    await listener.execute(
        """
        CREATE FUNCTION notify_insert() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM pg_notify('inserted', TG_TABLE_NAME); RETURN NULL; END $$;
        CREATE TRIGGER notify_insert AFTER INSERT ON agent_outputs EXECUTE FUNCTION notify_insert();
        CREATE TRIGGER notify_insert AFTER INSERT ON llm_calls EXECUTE FUNCTION notify_insert();
        """
    )
    await listener.add_listener("inserted", lambda *args: committed.put_nowait(args[-1]))

    async def next_commit() -> None:
        await committed.get()

    yield next_commit
    await listener.close()


def writer_for(db: Database, sleep: GatedSleep, clock: FakeClock | None = None, **settings: Any) -> BatchWriter:
    config = WriterSettings(**({"flush_interval_seconds": INTERVAL} | settings))
    return BatchWriter(db, config, clock=clock or FakeClock(T0), sleep=sleep)


async def test_a_full_batch_is_written_at_once_and_the_rest_after_the_interval(
    migrated_database: Database, commits: Callable[[], Awaitable[None]]
) -> None:
    pool, sleep = migrated_database.pool, GatedSleep()
    async with writer_for(migrated_database, sleep, batch_size=3) as writer:
        for _ in range(4):
            writer.submit(agent_output())

        await commits()
        await sleep.sleeping(INTERVAL)  # the fourth row waits for its interval
        assert await count(pool, "agent_outputs") == 3
        assert (writer.stats().written, writer.stats().buffered) == (3, 1)

        sleep.wake()
        await commits()
        await writer.flush()  # the commit is seen: let the writer finish its bookkeeping before reading stats

        assert await count(pool, "agent_outputs") == 4
        assert (writer.stats().flushes, writer.stats().buffered) == (2, 0)


async def test_a_partial_batch_waits_for_the_interval(
    migrated_database: Database, commits: Callable[[], Awaitable[None]]
) -> None:
    pool, sleep = migrated_database.pool, GatedSleep()
    async with writer_for(migrated_database, sleep) as writer:
        writer.submit(agent_output())
        await sleep.sleeping(INTERVAL)
        assert await count(pool, "agent_outputs") == 0

        sleep.wake()
        await commits()

        assert await count(pool, "agent_outputs") == 1


async def test_an_agent_output_and_its_llm_call_in_one_flush_in_either_order(migrated_database: Database) -> None:
    call = call_row()
    output = agent_output(llm_call_id=call.call.id)
    async with writer_for(migrated_database, GatedSleep()) as writer:
        writer.submit(output)
        writer.submit(call)
        await writer.flush()

        stats = writer.stats()
        assert (stats.written, stats.flushes, stats.rejected, stats.buffered) == (2, 1, 0, 0)
    assert await stored_ids(migrated_database.pool, "agent_outputs") == {output.id}


async def test_rows_survive_an_outage_and_are_written_when_the_database_is_back(
    migrated_database: Database, migrated_database_url: str, postgres_url: str
) -> None:
    clock, sleep = FakeClock(T0), GatedSleep()
    before, during = [agent_output() for _ in range(3)], [agent_output() for _ in range(2)]
    settings = {"batch_size": 3, "max_buffered_rows": 5, "retry_initial_seconds": 0.5, "retry_max_seconds": 2.0}
    async with writer_for(migrated_database, sleep, clock, **settings) as writer:
        async with outage(postgres_url, migrated_database_url):
            for row in before:
                writer.submit(row)
            for backoff in (0.5, 1.0, 2.0):
                await sleep.sleeping(backoff)
                sleep.wake()
            await sleep.sleeping(2.0)
            clock.advance(30)
            for row in during:
                writer.submit(row)
            with pytest.raises(WriteBufferFull, match=r"5 rows \(max_buffered_rows\)"):
                writer.submit(agent_output())

            stats = writer.stats()
            assert (stats.failed_flushes, stats.consecutive_failures, stats.healthy) == (4, 4, False)
            assert (stats.disconnected, stats.failing_for_seconds, stats.overflowed) == (True, 30.0, True)
            assert (stats.buffered, stats.written, stats.oldest_buffered_age_seconds) == (5, 0, 30.0)
            assert "not currently accepting connections" in (stats.last_error or "")

        await writer.flush()  # cuts the backoff short

        stats = writer.stats()
        assert (stats.written, stats.buffered, stats.consecutive_failures, stats.healthy) == (5, 0, 0, True)
        assert (stats.disconnected, stats.failing_for_seconds) == (False, None)
        assert stats.failed_flushes == 4
    assert await stored_ids(migrated_database.pool, "agent_outputs") == {row.id for row in before + during}


async def test_rows_the_database_refuses_are_set_aside_and_the_others_written(migrated_database: Database) -> None:
    good_calls = [call_row() for _ in range(5)]
    no_answer_and_no_error = call_row(parsed=None)  # violates llm_calls' CHECK (parsed or error_class)
    nul_in_text = agent_output(reasoning="cut\x00off")  # PostgreSQL text cannot hold NUL
    nul_in_json = agent_output(body={"headline": "cut\x00off"})  # nor can jsonb
    output = agent_output(llm_call_id=good_calls[3].call.id)
    rows = [*good_calls[:2], no_answer_and_no_error, output, nul_in_text, *good_calls[2:], nul_in_json]
    async with writer_for(migrated_database, GatedSleep(), batch_size=len(rows)) as writer:
        for row in rows:
            writer.submit(row)
        await writer.flush()

        rejected = writer.rejected()
        assert [entry.row for entry in rejected] == [no_answer_and_no_error, nul_in_text, nul_in_json]
        assert [entry.sqlstate for entry in rejected] == ["23514", "22021", "22P05"]
        assert "llm_calls_check" in rejected[0].error
        stats = writer.stats()
        assert (stats.written, stats.rejected, stats.buffered, stats.healthy) == (6, 3, 0, True)
    pool = migrated_database.pool
    assert await stored_ids(pool, "llm_calls") == {row.call.id for row in good_calls}
    assert await stored_ids(pool, "agent_outputs") == {output.id}


async def test_a_call_waits_for_its_decision_written_later(
    migrated_database: Database, commits: Callable[[], Awaitable[None]]
) -> None:
    pool, sleep, decision_id = migrated_database.pool, GatedSleep(), uuid.uuid4()
    async with writer_for(migrated_database, sleep, batch_size=1) as writer:
        await PostgresCallLog(writer, serves="decision").record(llm_call(served_id=decision_id))
        await sleep.sleeping(INTERVAL)  # refused for the missing decision: it waits an interval
        assert (writer.stats().waiting_for_parent, writer.stats().rejected) == (1, 0)

        await insert_decision(pool, decision_id)  # the coordinator stores its decision
        sleep.wake()
        await commits()
        await writer.flush()  # the commit is seen: let the writer finish its bookkeeping before reading stats

        assert (writer.stats().written, writer.stats().waiting_for_parent) == (1, 0)
    assert await pool.fetchval("SELECT decision_id FROM llm_calls") == decision_id


async def test_a_call_whose_decision_never_comes_is_rejected_after_the_wait(migrated_database: Database) -> None:
    clock, sleep = FakeClock(T0), GatedSleep()
    async with writer_for(migrated_database, sleep, clock, batch_size=1, missing_parent_wait_seconds=30) as writer:
        await PostgresCallLog(writer, serves="decision").record(llm_call(served_id=uuid.uuid4()))
        await sleep.sleeping(INTERVAL)

        clock.advance(31)
        await writer.flush()  # tries the waiting row at once

        [rejected] = writer.rejected()
        assert (rejected.sqlstate, rejected.at) == ("23503", clock.now())
        assert (writer.stats().rejected, writer.stats().buffered) == (1, 0)


async def test_a_batch_sent_again_stores_each_row_once(migrated_database: Database) -> None:
    call = call_row()
    message = Message(topic=Topic.TA_SIGNALS, source="ta", payload={"bias": "long"}, created_at=T0)
    letter = DeadLetter(message=message, subscription="coordinator", reason=DeadLetterReason.EXPIRED, at=T0)
    rows = [call, agent_output(llm_call_id=call.call.id), agent_output(), DeadLetterRow(letter)]
    async with writer_for(migrated_database, GatedSleep()) as writer:
        for _attempt in range(2):  # as when a commit reached the server but its answer did not
            for row in rows:
                writer.submit(row)
            await writer.flush()

        stats = writer.stats()
        assert (stats.submitted, stats.written, stats.already_stored) == (8, 4, 4)
    assert await count(migrated_database.pool, "llm_calls") == 1
    assert await count(migrated_database.pool, "agent_outputs") == 2
    assert await count(migrated_database.pool, "dead_letters") == 1


async def test_close_writes_what_is_buffered_and_then_refuses_rows(migrated_database: Database) -> None:
    rows = [agent_output() for _ in range(3)]
    writer = writer_for(migrated_database, GatedSleep())
    async with writer:
        for row in rows:
            writer.submit(row)

    assert await stored_ids(migrated_database.pool, "agent_outputs") == {row.id for row in rows}
    with pytest.raises(WriterClosed):
        writer.submit(agent_output())
