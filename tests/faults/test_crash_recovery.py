"""SIGKILL of the daemon at 20 seeded random points of a replay, each followed by a restart, then the replay's end.

The same seeded synthetic replay (two symbols, the offline provider) runs once uninterrupted on a database of
its own, and once killed and restarted 20 times on another. A kill point is a count of trading events (decisions,
orders accepted or rejected, fills, closed trades) read from the daemon's JSON log as it writes them, so kills
land between a decision's commit and its order, between an order and its fill, inside a candle's writes, and
so on. The killed run must end where the uninterrupted one does: the same decisions, orders and fills (their ids
are deterministic, so "the same" means present exactly once, nothing lost and nothing doubled), positions and
balances equal to a recomputation from the fills, and the same final equity. Every restart reports the
coordinator state and degradation level the killed run had stored, and each start has its daemon_runs row.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import TEST_DATABASE_CONFIG, create_database, drop_database, unique_name, url_with_database
from tests.faults.daemon_process import DaemonProcess, Event
from triplegain.execution import exchange
from triplegain.execution.accounting import Ledger
from triplegain.execution.settings import ExecutionSettings
from triplegain.store import open_database_at
from triplegain.store.execution import load_execution, stored_positions

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

CONFIG = """
market:
  synthetic:
    symbols: {BTC/USDT: 40000.0, ETH/USDT: 2500.0}
    count: 300
    start: 2024-01-01T00:00:00Z
coordinator:
  conflicts: {risk_cut_threshold: 0.3}
"""
REPLAY = ("--source", "synthetic", "--seed", "3")
ACCOUNT = "paper"
KILLS = 20
KILL_SEED = 7
RUN_SECONDS = 120.0
TRADING_EVENTS = {"decision", "order accepted", "order rejected", "fill", "trade closed"}


def is_progress(event: Event) -> bool:
    """A trading event the run did for the first time (a decision found stored again after a crash is not)."""
    return event.get("event") in TRADING_EVENTS and not event.get("already_stored", False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "triplegain.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
async def reference_url(postgres_url: str) -> AsyncIterator[str]:
    """A second empty database, for the uninterrupted run."""
    name = unique_name("test_reference")
    await create_database(postgres_url, name, template="template0")
    try:
        yield url_with_database(postgres_url, name)
    finally:
        await drop_database(postgres_url, name)


def env_for(url: str, config: Path) -> dict[str, str]:
    return {"TRIPLEGAIN_DATABASE_URL": url, "TRIPLEGAIN_CONFIG": str(config)}


def run_to_the_end(env: dict[str, str]) -> DaemonProcess:
    daemon = DaemonProcess.start(REPLAY, env=env)
    code = daemon.finish(within=RUN_SECONDS)
    assert code == 0, daemon.err()[-3000:]
    assert "Traceback" not in daemon.err()
    return daemon


def run_until_killed(env: dict[str, str], progress: int, kill_at: int) -> tuple[int, Event]:
    """Start the daemon, SIGKILL it once the replay's trading events reach ``kill_at``; the progress then, and
    what the daemon said it restored at its start."""
    daemon = DaemonProcess.start(REPLAY, env=env)
    started: Event | None = None
    try:
        for event in daemon.lines(RUN_SECONDS):
            if event.get("event") == "coordinator started":
                started = event
            elif is_progress(event):
                progress += 1
                if progress >= kill_at:
                    daemon.kill()
                    assert started is not None
                    return progress, started
    finally:
        daemon.kill()
    pytest.fail(f"the replay ended at {progress} trading events, before kill point {kill_at}: {daemon.err()[-2000:]}")


async def stored_state(url: str) -> tuple[str, str] | None:
    """The coordinator state and degradation level stored for the account (None before the first save)."""
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow(
            "SELECT state, degradation_level FROM coordinator_state WHERE account = $1", ACCOUNT
        )
    finally:
        await connection.close()
    return None if row is None else (row["state"], row["degradation_level"])


async def acknowledged(url: str) -> dict[str, Any]:
    """Every decision, order and fill, by id, with the values a duplicate or a loss would change."""
    connection = await asyncpg.connect(url)
    try:
        decisions = await connection.fetch("SELECT id, symbol, ts, action, confidence FROM decisions ORDER BY id")
        orders = await connection.fetch(
            "SELECT client_order_id, decision_id, symbol, side, type, qty, status FROM orders ORDER BY client_order_id"
        )
        fills = await connection.fetch(
            """
            SELECT f.client_fill_id, o.client_order_id, f.qty, f.price, f.fee, f.ts
            FROM fills f JOIN orders o ON o.id = f.order_id ORDER BY f.client_fill_id
            """
        )
        orders_per_trade = await connection.fetch(
            """
            SELECT d.id, count(o.id) AS orders FROM decisions d LEFT JOIN orders o ON o.decision_id = d.id
            WHERE d.action <> 'hold' GROUP BY d.id HAVING count(o.id) <> 1
            """
        )
        orders_of_holds = await connection.fetchval(
            "SELECT count(*) FROM orders o JOIN decisions d ON d.id = o.decision_id WHERE d.action = 'hold'"
        )
        decisions_per_moment = await connection.fetchval(
            "SELECT count(*) FROM (SELECT FROM decisions GROUP BY symbol, ts HAVING count(*) > 1) doubled"
        )
    finally:
        await connection.close()
    return {
        "decisions": [tuple(row) for row in decisions],
        "orders": [tuple(row) for row in orders],
        "fills": [tuple(row) for row in fills],
        "trades_without_one_order": len(orders_per_trade),
        "orders_of_holds": orders_of_holds,
        "decisions_doubled": decisions_per_moment,
    }


async def recomputed_from_fills(url: str) -> tuple[Ledger, dict[str, Any]]:
    """The ledger the stored fills give through the pure accounting (what a restarted broker computes), and what
    is stored: positions and the latest snapshot's cash and equity."""
    settings = ExecutionSettings()
    async with open_database_at(url, TEST_DATABASE_CONFIG) as db:
        stored = await load_execution(db, ACCOUNT)
        positions = await stored_positions(db, ACCOUNT)
        snapshot = await db.pool.fetchrow(
            "SELECT cash, equity FROM portfolio_snapshots WHERE account = $1 ORDER BY ts DESC LIMIT 1", ACCOUNT
        )
    state = exchange.restore(ACCOUNT, settings, settings.rules_for, stored.fills, (), stored.marks, None)
    ledger = state.ledger
    return ledger, {
        "positions": {row.symbol: (row.qty, row.avg_price, row.stop_price, row.target_price) for row in positions},
        "cash": float(snapshot["cash"]),
        "equity": float(snapshot["equity"]),
    }


async def test_twenty_kills_lose_and_double_nothing_and_end_at_the_uninterrupted_equity(
    empty_database_url: str, reference_url: str, config: Path
) -> None:
    reference = run_to_the_end(env_for(reference_url, config))
    total = sum(1 for event in reference.events if is_progress(event))
    assert total > KILLS * 2, f"the replay makes too few trading events ({total}) to kill it {KILLS} times"
    kill_points = sorted(random.Random(KILL_SEED).sample(range(1, total), KILLS))

    env = env_for(empty_database_url, config)
    progress = 0
    restored: list[tuple[tuple[str, str] | None, tuple[str, str]]] = []
    stored_before = None
    for kill_at in kill_points:
        progress, started = run_until_killed(env, progress, kill_at)
        restored.append((stored_before, (started["state"], started["degradation"])))
        stored_before = await stored_state(empty_database_url)
    final = run_to_the_end(env)
    [last_start] = [event for event in final.events if event.get("event") == "coordinator started"]
    restored.append((stored_before, (last_start["state"], last_start["degradation"])))

    # Each start reported the state and level the run before it had stored.
    assert all(before is None or before == reported for before, reported in restored), restored

    crashed_rows, reference_rows = await acknowledged(empty_database_url), await acknowledged(reference_url)
    assert crashed_rows["trades_without_one_order"] == 0
    assert crashed_rows["orders_of_holds"] == 0
    assert crashed_rows["decisions_doubled"] == 0
    assert len(reference_rows["fills"]) > 0, "the replay should trade, or fills go untested"
    for kind in ("decisions", "orders", "fills"):
        assert crashed_rows[kind] == reference_rows[kind], kind

    ledger, stored = await recomputed_from_fills(empty_database_url)
    assert stored["positions"] == {
        symbol: (position.qty, position.avg_price, position.stop_price, position.target_price)
        for symbol, position in ledger.positions.items()
    }
    assert stored["cash"] == ledger.cash
    assert stored["equity"] == pytest.approx(ledger.equity(), rel=1e-12)
    assert final.summary()["final_equity"] == reference.summary()["final_equity"]

    connection = await asyncpg.connect(empty_database_url)
    try:
        runs = await connection.fetch("SELECT pid, ended_at, exit_reason FROM daemon_runs ORDER BY id")
    finally:
        await connection.close()
    assert len(runs) == KILLS + 1  # one row per start
    assert [row["exit_reason"] for row in runs] == [None] * KILLS + ["replay finished"]
    assert len({row["pid"] for row in runs}) == KILLS + 1
