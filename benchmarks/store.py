"""Batching writer figures: three ways to insert a batch, the writer end to end, and awaited writes beside it.

    python -m benchmarks.store [--rows N] [--repeats K] [--orders M] [--busy-rows-per-s R] [--batch-size B] [--no-lz4]

The database is a throwaway one: on TRIPLEGAIN_DATABASE_URL's server when that is set (created, migrated and
dropped), else on an embedded server of its own in a temporary data directory (removed afterwards). Prints one
JSON document; each figure is the median of K runs, tables emptied before each run.

- ``insert_rows_per_s.<table>.<strategy>.<batch size>``: N rows inserted in batches of 100 or 1000, one
  transaction per batch, every strategy idempotent (a row whose id is stored is skipped):
  ``copy`` (the writer's ``records.insert_rows``: binary COPY into a temporary table kept per connection, jsonb
  columns as text, then ``INSERT … SELECT … ON CONFLICT DO NOTHING``), ``executemany`` (``INSERT … VALUES …
  ON CONFLICT DO NOTHING`` per row, pipelined by asyncpg) and ``unnest`` (one ``INSERT … SELECT … FROM
  unnest($1::uuid[], …) ON CONFLICT DO NOTHING``), all with the server's default compression (pglz).
  ``insert_ratios`` divide copy's figure by the others'.
- ``writer_rows_per_s.<table>``: N rows through ``BatchWriter`` (default settings, or ``--batch-size`` and
  ``--no-lz4``), first submit() to flush(): every row submitted at once, then written, so nothing overlaps
  the rows' encoding in submit() with the server's work (the slowest way rows can arrive).
- ``orders_insert_ms``: p50/p99 of M single awaited INSERTs into orders, one after another: ``idle``, and
  ``writer_busy`` while a producer submits agent outputs and LLM calls alternately (copies of prepared ones,
  fresh ids) at ``--busy-rows-per-s``, paced by the clock a few rows per turn of the event loop, and the writer
  writes them (``rows_written_per_s``; ``rows_refused`` by a full buffer, 0 unless the writer falls behind);
  ``event_loop_lag_ms`` is how late a 1 ms sleep wakes meanwhile (time the loop spends in Python code);
  ``ratios`` busy/idle.
- ``targets`` (issue 6): each figure with its target and whether it is met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.figures import percentiles, positive, scratch_directory
from triplegain.llm.models import LLMCallRecord
from triplegain.store import (
    DATABASE_URL_ENV,
    AgentOutputRecord,
    BatchWriter,
    Database,
    LLMCallRow,
    WriteBufferFull,
    WriterSettings,
    migrate,
    open_database,
    open_database_at,
)
from triplegain.store.database import url_with_database
from triplegain.store.records import AGENT_OUTPUTS, LLM_CALLS, LZ4_SUPPORTED, Row, Table, insert_rows
from triplegain.store.settings import DatabaseSettings

Strategy = Callable[[Any, Table, list[tuple[Any, ...]]], Awaitable[None]]
BATCH_SIZES = (100, 1000)
PRODUCER_SLICE = 25  # most rows the busy producer submits in one turn of the event loop
BUSY_SECONDS = 6  # rows prepared for the busy writer: a 1 s warm-up and the order inserts must fit
TARGET_ROWS_PER_S = 20_000
TARGET_ORDER_P99_MS = 5.0
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


async def copy(connection: Any, table: Table, rows: list[tuple[Any, ...]]) -> None:
    await insert_rows(connection, table, rows)


async def executemany(connection: Any, table: Table, rows: list[tuple[Any, ...]]) -> None:
    # A jsonb value is JSON text here: typed text, then cast (the pool's jsonb codec would encode it again).
    placeholders = ", ".join(
        f"${number}::text::jsonb" if sql_type == "jsonb" else f"${number}"
        for number, (_, sql_type) in enumerate(table.columns, start=1)
    )
    await connection.executemany(
        f"INSERT INTO {table.name} ({', '.join(table.column_names)}) VALUES ({placeholders}) "
        f"ON CONFLICT ({', '.join(table.key)}) DO NOTHING",
        rows,
    )


async def unnest(connection: Any, table: Table, rows: list[tuple[Any, ...]]) -> None:
    # One statement, each column an array; jsonb columns as text[] (the pool's jsonb codec has no binary form).
    names = ", ".join(table.column_names)
    arrays = ", ".join(
        f"${number}::{'text' if sql_type == 'jsonb' else sql_type}[]"
        for number, (_, sql_type) in enumerate(table.columns, start=1)
    )
    selected = ", ".join(f"{name}::jsonb" if sql_type == "jsonb" else name for name, sql_type in table.columns)
    await connection.execute(
        f"INSERT INTO {table.name} ({names}) SELECT {selected} FROM unnest({arrays}) AS batch ({names}) "
        f"ON CONFLICT ({', '.join(table.key)}) DO NOTHING",
        *[list(column) for column in zip(*rows, strict=True)],
    )


STRATEGIES: dict[str, Strategy] = {"copy": copy, "executemany": executemany, "unnest": unnest}


def agent_output(number: int) -> AgentOutputRecord:
    return AgentOutputRecord(
        id=uuid.uuid4(),
        run_id=None,
        agent="technical",
        symbol="BTC/USDT",
        ts=T0,
        confidence=0.72,
        body={
            "bias": "long",
            "strength": 0.41,
            "timeframes": ["1m", "5m", "1h"],
            "levels": {"support": [61250.5, 60800.0], "resistance": [64500.0]},
            "indicators": {"rsi": 58.2, "ema_fast": 62010.4, "ema_slow": 61870.9, "atr": 410.7, "n": number},
        },
        reasoning="EMA 9 crossed above EMA 21 on rising volume; RSI neutral; price above the 1h VWAP.",
        llm_call_id=None,
    )


def llm_call(number: int) -> LLMCallRow:
    call = LLMCallRecord(
        id=uuid.uuid4(),
        request_id=uuid.uuid4(),
        served_id=None,
        provider="deepseek",
        model="deepseek-chat",
        purpose="sentiment",
        answer_model="SentimentAnswer",
        prompt_digest=f"{number:064x}",
        system_prompt="You rate crypto news for a trading desk. Answer with JSON only. " * 25,
        user_prompt=f"Headline {number}: ETF flows turn positive for the third week running. " * 30,
        raw_response='{"bias": "long", "score": 0.42, "confidence": 0.66, "drivers": ["etf flows"]}',
        parsed={"bias": "long", "score": 0.42, "confidence": 0.66, "drivers": ["etf flows"]},
        validation_error=None,
        input_tokens=812,
        output_tokens=41,
        cost_usd=0.000231,
        latency_ms=1840.5,
        attempt=1,
        step=1,
        cached=False,
        error_class=None,
        error_message=None,
        started_at=T0,
        wall_started_at=T0,
    )
    return LLMCallRow(call=call, run_id=None, decision_id=None)


MAKERS: dict[str, Callable[[int], Row]] = {AGENT_OUTPUTS.name: agent_output, LLM_CALLS.name: llm_call}
TABLES = (AGENT_OUTPUTS, LLM_CALLS)


async def empty_tables(db: Database) -> None:
    await db.pool.execute("TRUNCATE agent_outputs, llm_calls, orders CASCADE")


async def insert_rate(db: Database, table: Table, strategy: Strategy, batch_size: int, count: int) -> float:
    """Rows/s inserting ``count`` fresh rows in transactions of ``batch_size`` on one connection."""
    rows = [MAKERS[table.name](number).values() for number in range(count)]
    async with db.pool.acquire() as connection:
        started = time.perf_counter()
        for start in range(0, count, batch_size):
            async with connection.transaction():
                await strategy(connection, table, rows[start : start + batch_size])
        return count / (time.perf_counter() - started)


async def writer_rate(db: Database, settings: WriterSettings, table: Table, count: int) -> float:
    rows = [MAKERS[table.name](number) for number in range(count)]
    async with BatchWriter(db, settings) as writer:
        started = time.perf_counter()
        for row in rows:
            writer.submit(row)
        await writer.flush()
        return count / (time.perf_counter() - started)


async def order_latencies(db: Database, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await db.pool.execute(
            """
            INSERT INTO orders (client_order_id, account, symbol, side, type, qty, status, created_at, updated_at,
                                reason)
            VALUES ($1, 'paper', 'BTC/USDT', 'buy', 'market', 0.01, 'pending', $2, $2, 'benchmark')
            """,
            uuid.uuid4().hex,
            T0,
        )
        samples.append(time.perf_counter() - started)
    return samples


async def orders_beside_a_busy_writer(
    db: Database, settings: WriterSettings, orders: int, rows_per_s: int
) -> dict[str, Any]:
    # The rows are built beforehand (copies of prepared ones, fresh ids): building records is the agents' cost,
    # not the writer's. Enough for BUSY_SECONDS; the producer stops when they run out (``producer_ran_out``).
    outputs, calls = [agent_output(number) for number in range(1000)], [llm_call(number).call for number in range(1000)]
    rows: list[Row] = [
        LLMCallRow(
            call=calls[number // 2 % 1000].model_copy(update={"id": uuid.uuid4()}), run_id=None, decision_id=None
        )
        if number % 2
        else outputs[number // 2 % 1000].model_copy(update={"id": uuid.uuid4()})
        for number in range(rows_per_s * BUSY_SECONDS)
    ]
    refused = 0

    async with BatchWriter(db, settings) as writer:

        async def produce() -> None:
            nonlocal refused
            started, number = time.perf_counter(), 0
            while number < len(rows):
                due = min(int((time.perf_counter() - started) * rows_per_s), len(rows))
                for row in rows[number : min(due, number + PRODUCER_SLICE)]:
                    try:
                        writer.submit(row)
                    except WriteBufferFull:
                        refused += 1
                    number += 1
                await asyncio.sleep(0 if number < due else 0.001)

        lags: list[float] = []

        async def watch_the_loop() -> None:
            while True:
                started = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - started - 0.001)

        producer = asyncio.create_task(produce())
        await asyncio.sleep(1.0)  # let the writer reach its steady state
        watcher = asyncio.create_task(watch_the_loop())
        written_before, started = writer.stats().written, time.perf_counter()
        samples = await order_latencies(db, orders)
        rate = (writer.stats().written - written_before) / (time.perf_counter() - started)
        ran_out = producer.done()
        for task in (producer, watcher):
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    return percentiles_ms(samples) | {
        "rows_written_per_s": round(rate),
        "rows_refused": refused,
        "producer_ran_out": ran_out,
        "event_loop_lag_ms": percentiles_ms(lags),
    }


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    return percentiles(seconds, (0.5, 0.99), scale=1e3, digits=3)


async def median_rate(db: Database, repeats: int, run: Callable[[], Awaitable[float]]) -> int:
    rates = []
    for _ in range(repeats):
        await empty_tables(db)
        rates.append(await run())
    return round(statistics.median(rates))


async def measure(db: Database, arguments: argparse.Namespace) -> dict[str, Any]:
    rows, repeats = arguments.rows, arguments.repeats
    settings = WriterSettings(batch_size=arguments.batch_size, lz4_compression=not arguments.no_lz4)
    inserts: dict[str, Any] = {
        table.name: {
            name: {
                str(size): await median_rate(db, repeats, partial(insert_rate, db, table, strategy, size, rows))
                for size in BATCH_SIZES
            }
            for name, strategy in STRATEGIES.items()
        }
        for table in TABLES
    }
    writer = {
        table.name: await median_rate(db, repeats, partial(writer_rate, db, settings, table, rows)) for table in TABLES
    }

    await empty_tables(db)
    idle = percentiles_ms(await order_latencies(db, arguments.orders))
    busy = await orders_beside_a_busy_writer(db, settings, arguments.orders, arguments.busy_rows_per_s)
    return {
        "benchmark": "triplegain.store",
        "python": platform.python_version(),
        "postgres": await db.pool.fetchval("SHOW server_version"),
        "embedded": db.embedded,
        "rows": rows,
        "repeats": repeats,
        "writer_settings": {"batch_size": settings.batch_size, "lz4_compression": settings.lz4_compression},
        "lz4_on_server": await db.pool.fetchval(LZ4_SUPPORTED),
        "insert_rows_per_s": inserts,
        "insert_ratios": {
            table: {
                f"copy/{other}": {size: round(rates["copy"][size] / rates[other][size], 2) for size in rates[other]}
                for other in STRATEGIES
                if other != "copy"
            }
            for table, rates in inserts.items()
        },
        "writer_rows_per_s": writer,
        "orders_insert_ms": {
            "orders": arguments.orders,
            "idle": idle,
            "writer_busy": busy,
            "ratios": {f"busy/idle {key}": round(busy[key] / idle[key], 2) for key in idle},
        },
        # Batched inserts (COPY, 1000-row transactions), and the same end to end through the writer.
        "targets": {
            f"insert_rows_per_s.{table}.copy.1000": target(TARGET_ROWS_PER_S, rates["copy"]["1000"], at_least=True)
            for table, rates in inserts.items()
        }
        | {
            f"writer_rows_per_s.{table}": target(TARGET_ROWS_PER_S, rate, at_least=True)
            for table, rate in writer.items()
        }
        | {"orders_insert_ms.writer_busy.p99": target(TARGET_ORDER_P99_MS, busy["p99"], at_least=False)},
    }


def target(goal: float, measured: float, *, at_least: bool) -> dict[str, Any]:
    """A figure against its goal: at least ``goal`` (a rate), else at most ``goal`` (a latency)."""
    met = measured >= goal if at_least else measured <= goal
    return {"target": f"{'>=' if at_least else '<='} {goal:g}", "measured": measured, "met": met}


@asynccontextmanager
async def throwaway_database(config: DatabaseSettings, scratch: Path) -> AsyncIterator[Database]:
    """A migrated database that is gone afterwards; an embedded server keeps its data in ``scratch``."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not url:
        os.environ["TRIPLEGAIN_HOME"] = str(scratch)
        async with open_database(config) as db:
            await migrate(db)
            yield db
        return
    name = f"triplegain_bench_{uuid.uuid4().hex[:12]}"
    async with open_database(config) as server:
        await server.pool.execute(f'CREATE DATABASE "{name}"')
        try:
            async with open_database_at(url_with_database(url, name), config) as db:
                await migrate(db)
                yield db
        finally:
            await server.pool.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(arguments: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    async with throwaway_database(DatabaseSettings(), scratch) as db:
        return await measure(db, arguments)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=positive, default=20_000, help="rows per insert and writer run")
    parser.add_argument("--repeats", type=positive, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--orders", type=positive, default=1_000, help="awaited order inserts per latency run")
    parser.add_argument(
        "--busy-rows-per-s", type=positive, default=20_000, help="rows/s the producer submits to the busy writer"
    )
    parser.add_argument(
        "--batch-size", type=positive, default=WriterSettings().batch_size, help="the writer's batch_size"
    )
    parser.add_argument("--no-lz4", action="store_true", help="the writer with lz4_compression off (pglz)")
    arguments = parser.parse_args(argv)
    with scratch_directory() as scratch:
        print(json.dumps(asyncio.run(run(arguments, scratch)), indent=2))


if __name__ == "__main__":
    main()
