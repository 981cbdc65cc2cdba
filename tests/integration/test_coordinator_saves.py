"""What the coordinator saves together: hold decisions and task runs wait for the next snapshot, orders do not."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.concurrency.test_coordinator import agreeing
from tests.coordinator_harness import coordinator_harness
from tests.unit.test_consensus import T0
from triplegain.coordinator.runner import TaskRun
from triplegain.coordinator.schedule import TaskName
from triplegain.errors import DatabaseError
from triplegain.model import Bias, Command, TaskStatus, Verb
from triplegain.store import Database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


def finished_run(symbol: str, minutes: int) -> TaskRun:
    at = T0 + timedelta(minutes=minutes)
    return TaskRun(
        task=TaskName.TRADE_DECISION,
        symbol=symbol,
        started_at=at,
        finished_at=at,
        status=TaskStatus.SUCCEEDED,
        error=None,
    )


async def stored(db: Database, table: str) -> int:
    return int(await db.pool.fetchval(f"SELECT count(*) FROM {table}"))


async def test_a_hold_is_stored_with_its_task_run_at_the_next_snapshot_and_an_order_at_once(
    migrated_database: Database,
) -> None:
    db = migrated_database
    async with coordinator_harness(db) as harness:
        coordinator = harness.coordinator
        await harness.publish(*agreeing("BTC/USDT", Bias.LONG), *agreeing("ETH/USDT", Bias.LONG))
        bought = await coordinator.decide("BTC/USDT", T0 + timedelta(minutes=5))
        assert bought is not None
        assert bought.write.decision.action == "buy"
        assert (await stored(db, "decisions"), await stored(db, "orders")) == (1, 1)

        await coordinator.submit(Command(verb=Verb.PAUSE, reason="test"), T0)
        held = await coordinator.decide("ETH/USDT", T0 + timedelta(minutes=5))
        assert held is not None
        assert held.write.decision.action == "hold"
        await coordinator.record_task_run(finished_run("ETH/USDT", 5))
        assert (await stored(db, "decisions"), await stored(db, "task_runs")) == (1, 0)

        await coordinator.housekeeping(None, T0 + timedelta(minutes=5))
        assert (await stored(db, "decisions"), await stored(db, "task_runs")) == (2, 1)
        state = await db.pool.fetchval("SELECT coordinator_state FROM decisions WHERE action = 'hold'")
        assert state == "PAUSED"


async def test_an_order_is_committed_only_after_the_holds_and_runs_before_it(migrated_database: Database) -> None:
    """A crash right after an order must not leave earlier holds to be decided again at restart: they would see
    the position the order opened (a hot standby once sold at 05:35 what the dead daemon bought at 07:45)."""
    db = migrated_database
    async with coordinator_harness(db) as harness:
        coordinator = harness.coordinator
        await harness.publish(*agreeing("ETH/USDT", Bias.LONG), *agreeing("BTC/USDT", Bias.LONG))
        await coordinator.submit(Command(verb=Verb.PAUSE, reason="test"), T0)
        held = await coordinator.decide("ETH/USDT", T0 + timedelta(minutes=5))
        assert held is not None
        assert held.write.decision.action == "hold"
        await coordinator.record_task_run(finished_run("ETH/USDT", 5))
        assert (await stored(db, "decisions"), await stored(db, "task_runs")) == (0, 0)

        await coordinator.submit(Command(verb=Verb.RESUME, reason="test"), T0 + timedelta(minutes=6))
        bought = await coordinator.decide("BTC/USDT", T0 + timedelta(minutes=10))
        assert bought is not None
        assert bought.write.decision.action == "buy"
        assert (await stored(db, "decisions"), await stored(db, "orders"), await stored(db, "task_runs")) == (2, 1, 1)


async def test_a_failed_save_keeps_its_holds_and_runs_for_the_next(migrated_database: Database) -> None:
    db = migrated_database
    async with coordinator_harness(db) as harness:
        coordinator = harness.coordinator
        await harness.publish(*agreeing("ETH/USDT", Bias.LONG))
        await coordinator.submit(Command(verb=Verb.PAUSE, reason="test"), T0)
        await coordinator.decide("ETH/USDT", T0 + timedelta(minutes=5))
        await coordinator.record_task_run(finished_run("ETH/USDT", 5))
        await db.pool.execute("ALTER TABLE task_runs RENAME TO task_runs_away")
        with pytest.raises(DatabaseError):
            await coordinator.housekeeping(None, T0 + timedelta(minutes=5))
        await db.pool.execute("ALTER TABLE task_runs_away RENAME TO task_runs")
        assert await stored(db, "decisions") == 0, "the failed transaction stored nothing"

        await coordinator.housekeeping(None, T0 + timedelta(minutes=10))
        assert (await stored(db, "decisions"), await stored(db, "task_runs")) == (1, 1)


async def test_housekeeping_saves_at_most_once_per_snapshot_interval(migrated_database: Database) -> None:
    db = migrated_database
    wall = [100.0]
    async with coordinator_harness(db, snapshot_interval_seconds=1.0, monotonic=lambda: wall[0]) as harness:
        coordinator = harness.coordinator
        heartbeat = "SELECT last_heartbeat FROM coordinator_state"
        await coordinator.housekeeping(None, T0 + timedelta(minutes=5))
        assert await db.pool.fetchval(heartbeat) == T0 + timedelta(minutes=5)
        wall[0] += 0.5
        await coordinator.housekeeping(None, T0 + timedelta(minutes=10))
        assert await db.pool.fetchval(heartbeat) == T0 + timedelta(minutes=5), "saved within the interval"
        wall[0] += 0.5
        await coordinator.housekeeping(None, T0 + timedelta(minutes=15))
        assert await db.pool.fetchval(heartbeat) == T0 + timedelta(minutes=15)
