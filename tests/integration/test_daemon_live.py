"""The daemon's live path: APScheduler fires the schedule on the wall clock while candles stream in.

The exchange is replaced by a fast synthetic feed and the intervals are a fraction of a second, so the same code
that runs against kraken (``daemon.run._live``: the live schedule, the candle loop, the stop) is exercised here
in seconds. Decisions are awaited on the bus (``trade_intents``), never by sleeping.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from triplegain.bus import Message, Topic
from triplegain.clock import WallClock
from triplegain.config import load_settings
from triplegain.daemon.run import StopRequest, run_live
from triplegain.execution import PaperBroker
from triplegain.market import SyntheticFeed, Timeframe
from triplegain.store import Database
from triplegain.system import trading_system

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

FAST_SCHEDULE = """
market:
  synthetic: {symbols: {BTC/USDT: 40000.0}, speed: 30000.0, count: null}
coordinator:
  resolver: {providers: [offline]}
  schedule:
    jitter_seconds: 0.0
    misfire_grace_seconds: 1.0
    shutdown_timeout_seconds: 2.0
    technical: {interval_seconds: 0.2, offset_seconds: 0.0}
    regime: {interval_seconds: 0.2, offset_seconds: 0.0}
    sentiment: {interval_seconds: 0.4, offset_seconds: 0.0}
    portfolio: {interval_seconds: 0.4, offset_seconds: 0.0}
    trade_decision: {interval_seconds: 0.2, offset_seconds: 0.05}
    housekeeping: {interval_seconds: 0.5}
"""
DECISIONS = 3


async def test_the_live_schedule_decides_until_told_to_stop(migrated_database: Database, tmp_path: Path) -> None:
    config = tmp_path / "live.yaml"
    config.write_text(FAST_SCHEDULE)
    settings = load_settings(config, environ={})
    clock = WallClock()
    broker = PaperBroker(settings.execution, migrated_database, account="paper", clock=clock)
    await broker.start()
    feed = SyntheticFeed(settings.market.synthetic, clock=clock)
    decided = asyncio.Event()
    seen: list[Message] = []

    async def count(message: Message) -> None:
        seen.append(message)
        if len(seen) >= DECISIONS:
            decided.set()

    async with trading_system(
        settings,
        migrated_database,
        clock=clock,
        symbols=["BTC/USDT"],
        base_timeframe=Timeframe.M5,
        account_source=broker.account,
        replaying=False,
        balances=broker.balances,
        order_sink=broker,
        environ={},
    ) as system:
        await system.bus.subscribe(Topic.TRADE_INTENTS, count, name="test.decisions")
        stop = StopRequest()
        running = asyncio.create_task(run_live(system, feed, stop))
        await asyncio.wait_for(decided.wait(), 30)
        stop.requested.set()
        await asyncio.wait_for(running, 30)
        assert system.runner.failures == 0
        assert system.runner.running == frozenset()
    await feed.aclose()

    stored = await migrated_database.pool.fetchval("SELECT count(*) FROM decisions")
    assert stored >= DECISIONS
    runs = await migrated_database.pool.fetch("SELECT task, status FROM task_runs ORDER BY task")
    assert {row["task"] for row in runs} >= {"technical", "trade_decision", "housekeeping"}
    assert {row["status"] for row in runs} <= {"succeeded"}
    heartbeat = await migrated_database.pool.fetchval("SELECT last_heartbeat FROM coordinator_state")
    assert heartbeat is not None
