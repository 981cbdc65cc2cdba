"""The batching writer through a real database outage: a TCP proxy in front of PostgreSQL refuses connections
and cuts the open ones, or lets a COMMIT through and loses its answer.

Backoffs are a few milliseconds (the 30 s of the fault are the writer's clock, a ``FakeClock``); a test waits
for the writer's retries through its injected sleep, never by sleeping itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.faults.postgres_proxy import PostgresProxy
from tests.integration.test_store_writer import agent_output, call_row
from triplegain.bus import DeadLetter, DeadLetterReason, Message, Topic
from triplegain.clock import FakeClock
from triplegain.store import (
    BatchWriter,
    Database,
    DeadLetterRow,
    RowsNotWritten,
    WriteBufferFull,
    WriterSettings,
)
from triplegain.store.records import Row

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(30)]

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
WAIT_SECONDS = 10.0  # for a condition that normally holds within milliseconds
class ObservedSleep:
    """The writer's sleep: a real (short) sleep that lets a test wait until the writer has done something."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()

    async def __call__(self, seconds: float) -> None:
        async with self._changed:
            self._changed.notify_all()
        await asyncio.sleep(seconds)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition`` holds when the writer goes to sleep (checked at each of its sleeps)."""
        async with asyncio.timeout(WAIT_SECONDS), self._changed:
            await self._changed.wait_for(condition)


def writer_for(db: Database, clock: FakeClock, sleep: ObservedSleep, **settings: Any) -> BatchWriter:
    defaults: dict[str, Any] = {
        "batch_size": 4,
        "flush_interval_seconds": 0.01,
        "retry_initial_seconds": 0.002,
        "retry_max_seconds": 0.01,
    }
    return BatchWriter(db, WriterSettings(**(defaults | settings)), clock=clock, sleep=sleep)


def dead_letter(number: int) -> DeadLetterRow:
    message = Message(topic=Topic.TA_SIGNALS, source="ta", payload={"n": number}, created_at=T0)
    at = T0 + timedelta(seconds=number)
    return DeadLetterRow(
        DeadLetter(message=message, subscription="coordinator", reason=DeadLetterReason.EXPIRED, at=at)
    )


def mixed_rows(count: int) -> list[Row]:
    """LLM calls, the agent outputs that reference them, and dead letters, interleaved."""
    rows: list[Row] = []
    for number in range(count):
        call = call_row()
        rows += [agent_output(llm_call_id=call.call.id), dead_letter(number), call]
    return rows


async def stored(pool: Any) -> dict[str, list[Any]]:
    """The stored keys of each table the writer feeds; dead letters in the order they were inserted."""
    return {
        "llm_calls": [record["id"] for record in await pool.fetch("SELECT id FROM llm_calls")],
        "agent_outputs": [record["id"] for record in await pool.fetch("SELECT id FROM agent_outputs")],
        "dead_letters": [
            record["message_id"] for record in await pool.fetch("SELECT message_id FROM dead_letters ORDER BY id")
        ],
    }


def keys(rows: list[Row]) -> dict[str, list[Any]]:
    """What ``stored`` reads back for ``rows``, dead letters in submission order."""
    return {
        "llm_calls": [row.values()[0] for row in rows if row.table.name == "llm_calls"],
        "agent_outputs": [row.values()[0] for row in rows if row.table.name == "agent_outputs"],
        "dead_letters": [row.values()[4] for row in rows if row.table.name == "dead_letters"],
    }


def same_rows(found: dict[str, list[Any]], expected: dict[str, list[Any]]) -> bool:
    """Every row stored exactly once; dead letters in submission order."""
    return found["dead_letters"] == expected["dead_letters"] and all(
        sorted(found[table], key=str) == sorted(expected[table], key=str) for table in ("llm_calls", "agent_outputs")
    )


async def test_rows_submitted_during_an_outage_are_all_written_once_and_in_order_after_it(
    proxy: PostgresProxy, proxied_database: Database, migrated_database: Database
) -> None:
    clock, sleep = FakeClock(T0), ObservedSleep()
    before, during = mixed_rows(1), mixed_rows(10)
    async with writer_for(proxied_database, clock, sleep) as writer:
        for row in before:
            writer.submit(row)
        await writer.flush()

        await proxy.refuse()
        for row in during:
            writer.submit(row)
        await sleep.until(lambda: writer.stats().consecutive_failures >= 3)
        clock.advance(30)

        stats = writer.stats()
        assert (stats.disconnected, stats.healthy, stats.overflowed) == (True, False, False)
        assert (stats.written, stats.buffered, stats.failing_for_seconds) == (len(before), len(during), 30.0)
        assert stats.failed_flushes == stats.consecutive_failures >= 3
        assert "connection refused" in (stats.last_error or "")

        await proxy.accept()
        await writer.flush()  # cuts the backoff short

        stats = writer.stats()
        assert (stats.written, stats.already_stored, stats.buffered) == (len(before + during), 0, 0)
        assert (stats.disconnected, stats.healthy, stats.consecutive_failures, stats.failing_for_seconds) == (
            False,
            True,
            0,
            None,
        )
    assert same_rows(await stored(migrated_database.pool), keys(before + during))


async def test_a_batch_whose_commit_answer_was_lost_is_sent_again_and_stored_once(
    proxy: PostgresProxy, proxied_database: Database, migrated_database: Database
) -> None:
    """Each table's insert is idempotent: the retry of a committed batch finds every row stored."""
    rows = mixed_rows(2)
    async with writer_for(proxied_database, FakeClock(T0), ObservedSleep(), batch_size=len(rows)) as writer:
        proxy.lose_next_commit_answer()
        for row in rows:
            writer.submit(row)
        await writer.flush()

        stats = writer.stats()
        assert (stats.failed_flushes, stats.written, stats.already_stored, stats.buffered) == (1, 0, len(rows), 0)
        assert (stats.disconnected, stats.healthy) == (False, True)
    assert same_rows(await stored(migrated_database.pool), keys(rows))


async def test_past_the_bound_the_writer_refuses_rows_signals_overflow_and_keeps_what_it_holds(
    proxy: PostgresProxy, proxied_database: Database, migrated_database: Database
) -> None:
    clock, sleep = FakeClock(T0), ObservedSleep()
    held = [*mixed_rows(1), agent_output(), dead_letter(1)]
    writer = writer_for(proxied_database, clock, sleep, batch_size=5, max_buffered_rows=5, close_timeout_seconds=0.2)
    async with writer:
        await proxy.refuse()
        for row in held:
            writer.submit(row)
        await sleep.until(lambda: writer.stats().consecutive_failures >= 1)
        assert not writer.overflowed.is_set()

        refused = agent_output()
        with pytest.raises(WriteBufferFull, match=r"5 rows held, the bound is 5 rows \(max_buffered_rows\)") as raised:
            writer.submit(refused)

        await asyncio.wait_for(writer.overflowed.wait(), WAIT_SECONDS)
        assert writer.overflow_error is raised.value
        assert (raised.value.bound, raised.value.held) == (5, 5)
        assert (writer.stats().overflowed, writer.stats().submitted, writer.stats().buffered) == (True, 5, 5)
        with pytest.raises(RowsNotWritten, match="close: 5 rows could not be written") as not_written:
            await writer.aclose()  # the daemon stops while the database is still gone
    assert not_written.value.rows == 5
    assert writer.unwritten() == held

    await proxy.accept()
    async with writer_for(proxied_database, clock, sleep) as successor:  # what the restarted daemon does
        for row in writer.unwritten():
            successor.submit(row)
    assert same_rows(await stored(migrated_database.pool), keys(held))
    assert refused.id not in (await stored(migrated_database.pool))["agent_outputs"]
