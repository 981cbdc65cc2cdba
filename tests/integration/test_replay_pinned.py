"""A replay's stored rows and final equity, pinned: the daemon's own path (``run_daemon``) over seeded synthetic
candles (two symbols, then one, a few hundred candles each, the offline provider everywhere) stores exactly the
rows recorded in ``tests/data/replay_pinned.json`` before the replay was made faster.

Each table's rows are read as canonical JSON (``to_jsonb``) less what differs between two identical runs: ids
drawn at random, the run's id, wall-clock times and latencies (an id quoted inside a row's JSON is replaced by one
placeholder). The rows are sorted, hashed per table, and compared with the recorded digests, with the row counts
and the final equity. A change that alters what a replay stores or decides fails here; to record a new fixture on
purpose, run this module with ``REPIN_REPLAY=1``."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.offline_replay import offline_replay_settings
from triplegain.daemon.run import RunOptions, run_daemon
from triplegain.daemon.status import StatusBoard

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "replay_pinned.json"

MARKETS = {
    "two_symbols": "{BTC/USDT: 40000.0, ETH/USDT: 2500.0}",
    "one_symbol": "{BTC/USDT: 40000.0}",
}
"""The replays pinned: several symbols (a tick's decisions side by side), and one."""

LEFT_OUT = ("id", "run_id", "decision_id", "order_id", "llm_call_id", "request_id", "wall_started_at", "latency_ms")
"""Columns that differ between two runs of the same replay: random ids and the run's, the wall clock."""

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""An id inside a row's JSON (a view's ``output_id`` a decision quotes, a client order id): drawn at random."""

TABLES = {
    "decisions": "symbol, ts",
    "conflicts": "ts, rule",
    "orders": "client_order_id",
    "fills": "seq",
    "positions": "symbol",
    "portfolio_snapshots": "ts",
    "broker_marks": "symbol",
    "agent_outputs": "ts, agent, symbol",
    "llm_calls": "started_at, purpose, symbol, step, attempt",
    "degradation_events": "ts",
    "breaker_events": "ts, rule",
    "task_runs": "task, symbol",
}


async def stored_rows(url: str) -> dict[str, list[str]]:
    """Every pinned table's rows, as canonical JSON text, in a stable order."""
    connection = await asyncpg.connect(url)
    try:
        rows: dict[str, list[str]] = {}
        for table, order in TABLES.items():
            texts = await connection.fetch(
                f"SELECT (to_jsonb(t) - $1::text[])::text AS row FROM {table} t ORDER BY {order}", list(LEFT_OUT)
            )
            rows[table] = sorted(UUID.sub("<uuid>", record["row"]) for record in texts)
        return rows
    finally:
        await connection.close()


def digest(rows: list[str]) -> str:
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def pinned_figures(rows: dict[str, list[str]], final_equity: float, decisions: int) -> dict[str, Any]:
    return {
        "final_equity": final_equity,
        "decisions": decisions,
        "tables": {table: {"rows": len(texts), "sha256": digest(texts)} for table, texts in rows.items()},
    }


@pytest.mark.parametrize("market", MARKETS)
def test_a_replay_stores_the_rows_and_ends_at_the_equity_pinned(
    market: str, migrated_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", migrated_database_url)
    symbols = MARKETS[market]
    more = f"market: {{synthetic: {{symbols: {symbols}, count: 400, start: 2024-01-01T00:00:00Z, seed: 5}}}}\n"
    settings = offline_replay_settings(tmp_path, more)

    async def replay() -> tuple[float, int, dict[str, list[str]]]:
        summary = await run_daemon(
            settings,
            RunOptions(source="synthetic", status_interval_seconds=60),
            {},
            StatusBoard(io.StringIO(), rich_panel=False),
        )
        return summary.final_equity, summary.decisions, await stored_rows(migrated_database_url)

    final_equity, decisions, rows = asyncio.run(replay())
    measured = pinned_figures(rows, final_equity, decisions)
    if os.environ.get("REPIN_REPLAY"):
        recorded = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}
        FIXTURE.write_text(json.dumps({**recorded, market: measured}, indent=2, sort_keys=True) + "\n")
    pinned = json.loads(FIXTURE.read_text())[market]

    assert measured["tables"]["decisions"]["rows"] > 0
    assert measured["tables"]["llm_calls"]["rows"] > 0, "the offline provider answered the agents and the resolver"
    assert measured["tables"]["fills"]["rows"] > 0, "the replay traded"
    assert measured == pinned
