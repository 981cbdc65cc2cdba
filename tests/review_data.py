"""The filled review database: a short synthetic replay through the whole system, plus rows the daemon adds.

A short synthetic replay through ``trading_system`` with the offline provider everywhere, a low risk-cut
threshold and borrowing allowed (a short lean sells), so that buys, sells, conflicts, resolver calls and orders
happen. The replay belongs to daemon run A; the rows from ``SPLIT`` on are moved to run B, as if the daemon had
restarted. What the paper broker and the daemon would add is inserted directly: fills for most orders, portfolio
snapshots, level changes, and one DeepSeek call (a timeout, then an answer with a cost) for a conflicted
decision. The session fixture ``review_template`` (tests/conftest.py) fills it once; each module takes its own
copy (``review_database_url``, ``CREATE DATABASE … TEMPLATE``), much faster than replaying again.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_DATABASE_CONFIG, create_database, drop_database, unique_name, url_with_database
from tests.offline_replay import btc_partly_held, offline_replay_settings
from triplegain.clock import FakeClock
from triplegain.market import SyntheticFeed, SyntheticSettings, Timeframe
from triplegain.store import open_database_at
from triplegain.system import trading_system

START = datetime(2024, 1, 1, tzinfo=UTC)
SPLIT = START + timedelta(hours=8)
SYMBOLS = {"BTC/USDT": 40_000.0, "XRP/USDT": 0.6}
CANDLES = 160
ACCOUNT = "paper"
MARKUP_PROMPT = "Resolve [bold]this[/bold] conflict; data: [1, 2]"

BORROWING = """
execution: {allow_borrowing: true}
"""


@dataclass(frozen=True)
class ReviewData:
    """Ids the tests look for in the filled database."""

    run_a: int
    run_b: int
    deepseek_decision: uuid.UUID
    deepseek_symbol: str
    deepseek_action: str
    deepseek_error_call: uuid.UUID
    filled_decision: uuid.UUID


@dataclass(frozen=True)
class ReviewTemplate:
    """The filled database (a template to copy) and the ids in it."""

    name: str
    data: ReviewData


async def create_review_template(postgres_url: str, migrated_template: str) -> ReviewTemplate:
    """Fill a new database from the migrated template (see the module docstring)."""
    name = unique_name("triplegain_review")
    await create_database(postgres_url, name, template=migrated_template)
    return ReviewTemplate(name, await _fill(url_with_database(postgres_url, name)))


def review_database_url(request: pytest.FixtureRequest, postgres_url: str, template: ReviewTemplate) -> str:
    """A fresh copy of the filled review database, dropped when ``request``'s scope ends."""
    name = unique_name("test_review")
    asyncio.run(create_database(postgres_url, name, template=template.name))
    request.addfinalizer(lambda: asyncio.run(drop_database(postgres_url, name)))
    return url_with_database(postgres_url, name)


async def _fill(url: str) -> ReviewData:
    with tempfile.TemporaryDirectory() as folder:
        settings = offline_replay_settings(Path(folder), BORROWING)
    async with open_database_at(url, TEST_DATABASE_CONFIG) as db:
        pool = db.pool
        run_a = await _insert_run(pool, START, START + timedelta(hours=9))
        clock = FakeClock(START)
        feed = SyntheticFeed(
            SyntheticSettings(symbols=SYMBOLS, timeframe=Timeframe.M5, count=CANDLES, start=START, seed=5),
            clock=clock,
        )
        async with trading_system(
            settings,
            db,
            clock=clock,
            symbols=list(SYMBOLS),
            base_timeframe=Timeframe.M5,
            account_source=btc_partly_held,
            replaying=True,
            run_id=run_a,
            environ={},
        ) as running:
            await running.replay(feed)
            await running.bus.drain()
            await running.writer.flush()
        run_b = await _insert_run(pool, SPLIT, None)
        await pool.execute("UPDATE decisions SET run_id = $1 WHERE ts >= $2", run_b, SPLIT)
        await pool.execute("UPDATE agent_outputs SET run_id = $1 WHERE ts >= $2", run_b, SPLIT)
        await pool.execute("UPDATE llm_calls SET run_id = $1 WHERE started_at >= $2", run_b, SPLIT)
        filled = await _fill_orders(pool)
        await _insert_snapshots(pool)
        await _insert_level_changes(pool)
        deepseek_decision, error_call = await _insert_deepseek_calls(pool, run_b)
        symbol, action = await pool.fetchrow("SELECT symbol, action FROM decisions WHERE id = $1", deepseek_decision)
    return ReviewData(
        run_a=run_a,
        run_b=run_b,
        deepseek_decision=deepseek_decision,
        deepseek_symbol=symbol,
        deepseek_action=action,
        deepseek_error_call=error_call,
        filled_decision=filled,
    )


async def _insert_run(pool: Any, started: datetime, ended: datetime | None) -> int:
    run_id: int = await pool.fetchval(
        """
        INSERT INTO daemon_runs (account, started_at, ended_at, config_hash, version, host, pid, exit_reason)
        VALUES ($1, $2, $3, 'hash', '0.1.0', 'test-host', 4242, $4) RETURNING id
        """,
        ACCOUNT,
        started,
        ended,
        "SIGTERM" if ended else None,
    )
    return run_id


async def _fill_orders(pool: Any) -> uuid.UUID:
    """Fill two orders in three at their decision's entry price, five minutes later; the id of a filled
    order's conflicted decision."""
    orders = await pool.fetch(
        """
        SELECT o.id, o.qty, o.created_at, o.decision_id, (d.intent ->> 'entry_price')::numeric AS price,
               EXISTS (SELECT FROM conflicts c WHERE c.decision_id = d.id) AS conflicted
        FROM orders o JOIN decisions d ON d.id = o.decision_id ORDER BY o.created_at, o.id
        """
    )
    filled: uuid.UUID | None = None
    for number, order in enumerate(orders):
        if number % 3 == 2:
            continue
        await pool.execute(
            "UPDATE orders SET status = 'filled', updated_at = $2 WHERE id = $1",
            order["id"],
            order["created_at"] + timedelta(minutes=5),
        )
        price = round(order["price"], 8)
        await pool.execute(
            """
            INSERT INTO fills (order_id, client_fill_id, qty, price, fee, fee_currency, ts)
            VALUES ($1, $2, $3, $4, $5, 'USDT', $6)
            """,
            order["id"],
            f"fill-{order['id']}",
            order["qty"],
            price,
            round(order["qty"] * price * Decimal("0.001"), 8),
            order["created_at"] + timedelta(minutes=5),
        )
        if order["conflicted"] and filled is None:
            filled = order["decision_id"]
    assert filled is not None, "the replay made no conflicted order"
    return filled


async def _insert_snapshots(pool: Any) -> None:
    """Equity every 15 minutes, a gentle wave, with its drawdown from the running peak."""
    peak = 0.0
    rows: list[tuple[Any, ...]] = []
    for step in range(CANDLES // 3 + 1):
        equity = round(10_000 + 150 * math.sin(step / 6) + 4 * step, 2)
        peak = max(peak, equity)
        drawdown = round(1 - equity / peak, 8)
        at = START + timedelta(minutes=15 * step)
        rows.append((ACCOUNT, at, Decimal(repr(equity)), Decimal(repr(equity * 0.8)), {}, Decimal(repr(drawdown))))
    await pool.executemany(
        """
        INSERT INTO portfolio_snapshots (account, ts, equity, cash, positions, drawdown)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        rows,
    )


async def _insert_level_changes(pool: Any) -> None:
    changes = [
        (START + timedelta(hours=3), "NORMAL", "REDUCED"),
        (START + timedelta(hours=4), "REDUCED", "NORMAL"),
        (SPLIT + timedelta(hours=1), "NORMAL", "LIMITED"),
        (SPLIT + timedelta(hours=2), "LIMITED", "NORMAL"),
    ]
    await pool.executemany(
        "INSERT INTO degradation_events (account, ts, from_level, to_level, cause) VALUES ($1, $2, $3, $4, $5)",
        [
            (ACCOUNT, ts, before, after, [{"source": "llm:deepseek", "error_rate": 0.5}])
            for ts, before, after in changes
        ],
    )


async def _insert_deepseek_calls(pool: Any, run_b: int) -> tuple[uuid.UUID, uuid.UUID]:
    """A DeepSeek timeout and then an answer, for the first conflicted decision of run B."""
    decision = await pool.fetchrow(
        """
        SELECT d.id, d.ts FROM decisions d WHERE d.run_id = $1
        AND EXISTS (SELECT FROM conflicts c WHERE c.decision_id = d.id) ORDER BY d.ts, d.id LIMIT 1
        """,
        run_b,
    )
    request = uuid.uuid4()
    error_call, answer_call = uuid.uuid4(), uuid.uuid4()
    common = (
        request,
        decision["id"],
        run_b,
        "deepseek",
        "deepseek-chat",
        "conflict_resolution",
        None,
        "ResolutionAnswer",
        "digest",
        "You resolve conflicts.",
        MARKUP_PROMPT,
    )
    insert = """
        INSERT INTO llm_calls (id, request_id, decision_id, run_id, provider, model, purpose, symbol, answer_model,
            prompt_digest, system_prompt, user_prompt, raw_response, parsed, validation_error, input_tokens,
            output_tokens, cost_usd, latency_ms, attempt, cached, error_class, error_message, started_at,
            step, wall_started_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
            $23, $24, (SELECT coalesce(max(step), 0) + 1 FROM llm_calls WHERE decision_id = $3), $24)
    """
    await pool.execute(
        insert,
        error_call,
        *common,
        None,
        None,
        None,
        0,
        0,
        Decimal("0"),
        8000.0,
        1,
        False,
        "ProviderTimeout",
        "no answer within 8 s",
        decision["ts"],
    )
    await pool.execute(
        insert,
        answer_call,
        *common,
        '{"action": "wait"}',
        {"action": "wait", "confidence": 0.6},
        None,
        420,
        35,
        Decimal("0.00125"),
        950.5,
        2,
        False,
        None,
        None,
        decision["ts"] + timedelta(seconds=8),
    )
    return decision["id"], error_call
