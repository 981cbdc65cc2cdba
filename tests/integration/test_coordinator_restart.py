"""The breaker and the degradation level driven through the coordinator, stored, and restored by a restart."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.coordinator_harness import ACCOUNT, coordinator_harness
from tests.unit.test_consensus import T0, view
from triplegain.bus import Topic
from triplegain.clock import FakeClock
from triplegain.coordinator.degradation import DegradationSettings
from triplegain.coordinator.runner import TaskRun
from triplegain.coordinator.schedule import TaskName
from triplegain.model import (
    AgentName,
    Bias,
    BreakerAction,
    BreakerRule,
    BreakerTripped,
    Command,
    CoordinatorState,
    DegradationLevel,
    LevelChanged,
    TaskStatus,
    Verb,
)
from triplegain.store import Database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

LONG = (
    view(AgentName.TECHNICAL, Bias.LONG, 0.9),
    view(AgentName.REGIME, Bias.LONG, 0.9),
    view(AgentName.SENTIMENT, Bias.LONG, 0.9),
)


async def test_the_breaker_trips_on_a_losing_sequence_and_a_halt_survives_a_restart(
    migrated_database: Database,
) -> None:
    db = migrated_database
    clock = FakeClock(T0)
    async with coordinator_harness(db, clock=clock) as harness:
        coordinator = harness.coordinator
        await harness.publish(*LONG)
        assert await coordinator.on_equity(10_000.0, T0) == []
        for loss in range(4):
            assert await coordinator.on_trade_closed(-60.0, T0 + timedelta(minutes=loss)) == []
        [streak] = await coordinator.on_trade_closed(-60.0, T0 + timedelta(minutes=4))
        assert (streak.rule, streak.action) == (BreakerRule.CONSECUTIVE_LOSSES, BreakerAction.PAUSE)
        paused = await coordinator.decide("BTC/USDT", T0 + timedelta(minutes=5))
        assert paused is not None
        assert paused.write.decision.action == "hold"
        assert "circuit breaker tripped" in paused.write.decision.reason
        assert coordinator.state is CoordinatorState.RUNNING  # a pause trip blocks entries; the state stays

        trips = await coordinator.on_equity(8_400.0, T0 + timedelta(minutes=6))
        assert {trip.rule for trip in trips} == {
            BreakerRule.DAILY_LOSS,
            BreakerRule.WEEKLY_LOSS,
            BreakerRule.MAX_DRAWDOWN,
        }
        assert coordinator.state is CoordinatorState.HALTED
        alerts = [message.payload for message in harness.bus.history(Topic.RISK_ALERTS)]
        assert all(isinstance(alert, BreakerTripped) for alert in alerts)
        assert sorted(alert.rule for alert in alerts) == [  # type: ignore[union-attr]
            "consecutive_losses",
            "daily_loss",
            "max_drawdown",
            "weekly_loss",
        ]

    events = await db.pool.fetch("SELECT rule, state, details FROM breaker_events ORDER BY id")
    assert (events[0]["rule"], events[0]["state"]) == ("consecutive_losses", "tripped")
    assert {(row["rule"], row["state"]) for row in events[1:]} == {
        ("daily_loss", "tripped"),
        ("weekly_loss", "tripped"),
        ("max_drawdown", "tripped"),
    }
    drawdown = next(row["details"] for row in events if row["rule"] == "max_drawdown")
    assert (drawdown["equity"], drawdown["reference_equity"], drawdown["threshold"]) == (8_400.0, 10_000.0, 15.0)
    assert drawdown["measured"] == pytest.approx(16.0)
    halt = await db.pool.fetchrow("SELECT requested_by, status, args FROM coordinator_commands WHERE verb = 'halt'")
    assert halt["requested_by"].startswith("breaker:")
    assert "max_drawdown" in halt["requested_by"]
    assert halt["status"] == "applied"

    later = FakeClock(T0 + timedelta(minutes=10))
    async with coordinator_harness(db, clock=later) as restarted:
        coordinator = restarted.coordinator
        assert coordinator.state is CoordinatorState.HALTED
        assert {trip.rule for trip in coordinator.breaker.trips} >= {BreakerRule.MAX_DRAWDOWN}
        await restarted.publish(*LONG)
        held = await coordinator.decide("BTC/USDT", later.now())
        assert held is not None
        assert held.write.decision.reason == "coordinator HALTED: no new entries"

        assert await coordinator.submit(Command(verb=Verb.RESUME), later.now()) == (
            "refused",
            "resume from HALTED needs --force",
        )
        resumed, _ = await coordinator.submit(Command(verb=Verb.RESUME, force=True, reason="checked"), later.now())
        assert resumed == "applied"
        assert coordinator.state is CoordinatorState.RUNNING
        assert all(trip.action is BreakerAction.PAUSE for trip in coordinator.breaker.trips)
    resets = await db.pool.fetch("SELECT rule FROM breaker_events WHERE state = 'reset'")
    assert {row["rule"] for row in resets} == {"max_drawdown", "weekly_loss"}


def timed_out(at_seconds: float) -> TaskRun:
    at = T0 + timedelta(seconds=at_seconds)
    return TaskRun(
        task=TaskName.TECHNICAL,
        symbol="BTC/USDT",
        started_at=at,
        finished_at=at,
        status=TaskStatus.FAILED,
        error="TimeoutError: timed out after 30s",
        timed_out=True,
    )


async def test_degradation_rises_under_failures_recovers_after_them_and_survives_a_restart(
    migrated_database: Database,
) -> None:
    db = migrated_database
    settings = DegradationSettings()
    hold = timedelta(seconds=settings.recovery_hold_seconds)
    clock = FakeClock(T0)
    async with coordinator_harness(db, clock=clock) as harness:
        coordinator = harness.coordinator
        for second in range(3):
            await coordinator.record_task_run(timed_out(second))
        first = await coordinator.refresh_level(T0 + timedelta(seconds=3))
        assert first is not None
        assert first.to_level is DegradationLevel.LIMITED
        for _ in range(3):
            harness.monitor.db_write(False)
        second = await coordinator.refresh_level(T0 + timedelta(seconds=4))
        assert second is not None
        assert second.to_level is DegradationLevel.EMERGENCY
        events = [message.payload for message in harness.bus.history(Topic.SYSTEM_EVENTS)]
        assert [(e.from_level.name, e.to_level.name) for e in events if isinstance(e, LevelChanged)] == [
            ("NORMAL", "LIMITED"),
            ("LIMITED", "EMERGENCY"),
        ]
    stored = await db.pool.fetchrow("SELECT degradation_level FROM coordinator_state WHERE account = $1", ACCOUNT)
    assert stored["degradation_level"] == "EMERGENCY"
    runs = await db.pool.fetch("SELECT task, status, error FROM task_runs")
    assert [(row["task"], row["status"]) for row in runs] == [("technical", "failed")]

    now = T0 + timedelta(seconds=10)
    later = FakeClock(now)
    async with coordinator_harness(db, clock=later) as restarted:
        coordinator = restarted.coordinator
        assert coordinator.level is DegradationLevel.EMERGENCY  # restored, hold timer and all
        restarted.monitor.db_write(True)
        now += timedelta(seconds=settings.window_seconds)  # the timeouts have left the window
        assert await coordinator.refresh_level(now) is None  # recovery starts waiting
        steps = []
        for _ in range(3):
            now += hold
            transition = await coordinator.refresh_level(now)
            assert transition is not None
            steps.append((transition.from_level, transition.to_level))
        assert steps == [
            (DegradationLevel.EMERGENCY, DegradationLevel.LIMITED),
            (DegradationLevel.LIMITED, DegradationLevel.REDUCED),
            (DegradationLevel.REDUCED, DegradationLevel.NORMAL),
        ]
    rows = await db.pool.fetch("SELECT from_level, to_level, cause FROM degradation_events ORDER BY ts")
    assert [(row["from_level"], row["to_level"]) for row in rows] == [
        ("NORMAL", "LIMITED"),
        ("LIMITED", "EMERGENCY"),
        ("EMERGENCY", "LIMITED"),
        ("LIMITED", "REDUCED"),
        ("REDUCED", "NORMAL"),
    ]
    assert rows[0]["cause"][0]["signal"] == "task_timeouts"
    assert {cause["signal"] for cause in rows[1]["cause"]} == {"db_consecutive_write_failures", "task_timeouts"}
    assert rows[2]["cause"][0]["signal"] == "recovery_hold"
