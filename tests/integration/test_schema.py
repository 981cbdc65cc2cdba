"""Migration 001's schema: the constraints hold, and a decision's whole trail can be written and read back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

pytestmark = pytest.mark.postgres

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

EXPECTED_TABLES = {
    "schema_migrations",
    "broker_marks",
    "coordinator_state",
    "coordinator_commands",
    "task_runs",
    "daemon_runs",
    "agent_outputs",
    "decisions",
    "llm_calls",
    "conflicts",
    "orders",
    "fills",
    "positions",
    "portfolio_snapshots",
    "degradation_events",
    "breaker_events",
    "dead_letters",
    "alerts",
}


async def insert_decision(pool: Any, *, confidence: float = 0.7, symbol: str = "BTC/USDT") -> uuid.UUID:
    decision_id: uuid.UUID = await pool.fetchval(
        """
        INSERT INTO decisions (account, symbol, ts, action, confidence, consensus_inputs, consensus_terms,
                               consensus_result, degradation_level, coordinator_state, reason)
        VALUES ('paper', $1, $2, 'buy', $3, $4, $5, $6, 'NORMAL', 'RUNNING', 'TA and regime agree')
        RETURNING id
        """,
        symbol,
        T0,
        confidence,
        [{"agent": "technical", "bias": "long", "confidence": 0.8}],
        {"agree_weight": 0.5},
        {"score": 0.7},
    )
    return decision_id


async def insert_order(pool: Any, *, client_order_id: str, decision_id: uuid.UUID | None = None) -> uuid.UUID:
    order_id: uuid.UUID = await pool.fetchval(
        """
        INSERT INTO orders (client_order_id, account, decision_id, symbol, side, type, qty, price, status,
                            created_at, updated_at, reason)
        VALUES ($1, 'paper', $2, 'BTC/USDT', 'buy', 'limit', 0.5, 60000, 'open', $3, $3, 'entry')
        RETURNING id
        """,
        client_order_id,
        decision_id,
        T0,
    )
    return order_id


async def test_the_schema_has_every_table(migrated_pool: Any) -> None:
    rows = await migrated_pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")

    assert {row["tablename"] for row in rows} == EXPECTED_TABLES


async def test_a_decision_trail_is_written_and_read_back(migrated_pool: Any) -> None:
    run_id = await migrated_pool.fetchval(
        """
        INSERT INTO daemon_runs (account, started_at, config_hash, version, host, pid)
        VALUES ('paper', $1, 'abc123', '0.1.0', 'box', 4242) RETURNING id
        """,
        T0,
    )
    decision_id = await insert_decision(migrated_pool)
    call_id = await migrated_pool.fetchval(
        """
        INSERT INTO llm_calls (request_id, decision_id, run_id, provider, model, purpose, symbol, answer_model,
                               prompt_digest, system_prompt, user_prompt, raw_response, parsed,
                               input_tokens, output_tokens, cost_usd, latency_ms, attempt, step, started_at,
                               wall_started_at)
        VALUES (gen_random_uuid(), $1, $2, 'deepseek', 'deepseek-chat', 'conflict_resolution', 'BTC/USDT',
                'ResolutionAnswer', 'digest', 'system', 'user', 'answer', '{"action": "proceed"}',
                120, 40, 0.00021, 850, 1, 1, $3, $3)
        RETURNING id
        """,
        decision_id,
        run_id,
        T0,
    )
    await migrated_pool.execute(
        """
        INSERT INTO conflicts (decision_id, ts, rule, details, resolution, resolved_by)
        VALUES ($1, $2, 'ta_vs_sentiment', $3, 'modify', 'deepseek/deepseek-chat')
        """,
        decision_id,
        T0,
        {"ta": 0.8, "sentiment": -0.7},
    )
    order_id = await insert_order(migrated_pool, client_order_id="c-1", decision_id=decision_id)
    await migrated_pool.execute(
        """
        INSERT INTO fills (order_id, client_fill_id, qty, price, fee, fee_currency, ts)
        VALUES ($1, 'f-1', 0.5, 60010.5, 0.03, 'USDT', $2)
        """,
        order_id,
        T0 + timedelta(seconds=1),
    )

    trail = await migrated_pool.fetchrow(
        """
        SELECT d.action, d.consensus_inputs, l.cost_usd, c.details, f.price
        FROM decisions d
        JOIN llm_calls l ON l.decision_id = d.id
        JOIN conflicts c ON c.decision_id = d.id
        JOIN orders o ON o.decision_id = d.id
        JOIN fills f ON f.order_id = o.id
        WHERE d.symbol = 'BTC/USDT' AND d.ts >= $1 AND l.id = $2
        """,
        T0,
        call_id,
    )
    assert dict(trail) == {
        "action": "buy",
        "consensus_inputs": [{"agent": "technical", "bias": "long", "confidence": 0.8}],
        "cost_usd": Decimal("0.00021"),
        "details": {"ta": 0.8, "sentiment": -0.7},
        "price": Decimal("60010.5"),
    }


async def test_a_fill_without_its_order_is_rejected(migrated_pool: Any) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await migrated_pool.execute(
            """
            INSERT INTO fills (order_id, client_fill_id, qty, price, fee, fee_currency, ts)
            VALUES ($1, 'f-1', 1, 1, 0, 'USDT', $2)
            """,
            uuid.uuid4(),
            T0,
        )


async def test_a_second_order_with_the_same_client_order_id_is_rejected(migrated_pool: Any) -> None:
    await insert_order(migrated_pool, client_order_id="same")

    with pytest.raises(asyncpg.UniqueViolationError):
        await insert_order(migrated_pool, client_order_id="same")


@pytest.mark.parametrize("confidence", [-0.01, 1.01, float("nan")])
async def test_a_confidence_outside_0_to_1_is_rejected(migrated_pool: Any, confidence: float) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await insert_decision(migrated_pool, confidence=confidence)
    with pytest.raises(asyncpg.CheckViolationError):
        await migrated_pool.execute(
            "INSERT INTO agent_outputs (agent, symbol, ts, confidence, body) VALUES ('technical', 'X', $1, $2, '{}')",
            T0,
            confidence,
        )


@pytest.mark.parametrize(
    ("table", "columns", "values"),
    [
        ("coordinator_state", "account, state, changed_at, changed_by, reason", "'a', 'STOPPED', now(), 'cli', ''"),
        ("coordinator_commands", "account, verb, requested_by, requested_at", "'a', 'restart', 'cli', now()"),
        ("orders", "client_order_id, account, symbol, side, type, qty, status, created_at, updated_at, reason",
         "'c', 'a', 'X', 'buy', 'market', 0, 'open', now(), now(), 'r'"),
        ("orders", "client_order_id, account, symbol, side, type, qty, status, created_at, updated_at, reason",
         "'c', 'a', 'X', 'buy', 'limit', 1, 'open', now(), now(), 'r'"),
        ("orders", "client_order_id, account, symbol, side, type, qty, status, created_at, updated_at, reason",
         "'c', 'a', 'X', 'hold', 'market', 1, 'open', now(), now(), 'r'"),
        ("task_runs", "account, task, started_at, finished_at, status", "'a', 't', now(), now(), 'failed'"),
        ("portfolio_snapshots", "account, ts, equity, cash, positions, drawdown", "'a', now(), 1, 1, '{}', 1.5"),
        ("degradation_events", "account, ts, from_level, to_level, cause", "'a', now(), 'NORMAL', 'NORMAL', '{}'"),
        ("breaker_events", "account, ts, rule, state, details", "'a', now(), 'daily_loss', 'open', '{}'"),
        ("dead_letters", "ts, topic, subscription, reason, message_id, message",
         "now(), 't', 's', 'lost', gen_random_uuid(), '{}'"),
    ],
)  # fmt: skip
async def test_values_outside_the_allowed_ones_are_rejected(
    migrated_pool: Any, table: str, columns: str, values: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await migrated_pool.execute(f"INSERT INTO {table} ({columns}) VALUES ({values})")


async def test_a_settled_command_has_a_settle_time_and_a_pending_one_has_none(migrated_pool: Any) -> None:
    command_id = await migrated_pool.fetchval(
        "INSERT INTO coordinator_commands (account, verb, args, requested_by, requested_at)"
        " VALUES ('paper', 'resume', $1, 'cli', $2) RETURNING id",
        {"force": True},
        T0,
    )

    with pytest.raises(asyncpg.CheckViolationError):
        await migrated_pool.execute("UPDATE coordinator_commands SET status = 'applied' WHERE id = $1", command_id)
    await migrated_pool.execute(
        "UPDATE coordinator_commands SET status = 'refused', outcome = 'halted: needs --force', applied_at = $2"
        " WHERE id = $1",
        command_id,
        T0,
    )
    assert (
        await migrated_pool.fetchval(
            "SELECT count(*) FROM coordinator_commands WHERE status = 'pending' AND account = 'paper'"
        )
        == 0
    )


async def test_an_llm_call_may_precede_its_decision_within_a_transaction(migrated_pool: Any) -> None:
    decision_id = uuid.uuid4()
    insert_call = """
        INSERT INTO llm_calls (request_id, decision_id, provider, model, purpose, answer_model, prompt_digest,
                               system_prompt, user_prompt, latency_ms, attempt, step, error_class, error_message,
                               started_at, wall_started_at)
        VALUES (gen_random_uuid(), $1, 'anthropic', 'claude', 'conflict_resolution', 'ResolutionAnswer', 'd',
                's', 'u', 20000, 1, 1, 'ProviderTimeout', 'no answer within 20 s', $2, $2)
    """
    async with migrated_pool.acquire() as connection:
        async with connection.transaction():
            await connection.execute(insert_call, decision_id, T0)
            await connection.execute(
                """
                INSERT INTO decisions (id, account, symbol, ts, action, confidence, consensus_inputs,
                                       consensus_terms, consensus_result, degradation_level, coordinator_state,
                                       reason)
                VALUES ($1, 'paper', 'XRP/USDT', $2, 'hold', 0.4, '[]', '{}', '{}', 'REDUCED', 'PAUSED', 'paused')
                """,
                decision_id,
                T0,
            )

        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await connection.execute(insert_call, uuid.uuid4(), T0)


async def test_an_llm_call_needs_a_validated_answer_or_an_error(migrated_pool: Any) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await migrated_pool.execute(
            "INSERT INTO llm_calls (request_id, provider, model, purpose, answer_model, prompt_digest,"
            " system_prompt, user_prompt, raw_response, latency_ms, attempt, step, started_at, wall_started_at)"
            " VALUES (gen_random_uuid(), 'deepseek', 'deepseek-chat', 'sentiment', 'SentimentAnswer', 'd',"
            " 's', 'u', 'unparsed prose', 900, 1, 1, $1, $1)",
            T0,
        )


async def test_one_position_per_account_and_symbol(migrated_pool: Any) -> None:
    insert = """
        INSERT INTO positions (account, symbol, qty, avg_price, opened_at, updated_at)
        VALUES ('paper', 'BTC/USDT', 0.5, 60000, $1, $1)
    """
    await migrated_pool.execute(insert, T0)

    with pytest.raises(asyncpg.UniqueViolationError):
        await migrated_pool.execute(insert, T0)
