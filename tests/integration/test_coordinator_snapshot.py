"""The coordinator's snapshot on a real server: round trips, task runs, events, and never the state columns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.state_rows import write_state_row
from triplegain.coordinator.breaker import PortfolioBreakerSettings, PortfolioBreakerState, on_equity
from triplegain.coordinator.degradation import (
    Cause,
    DegradationSettings,
    DegradationState,
    Observations,
    Transition,
    step,
)
from triplegain.coordinator.snapshot import (
    CoordinatorSnapshot,
    ended_event,
    load_snapshot,
    save_snapshot,
    tripped_event,
)
from triplegain.coordinator.state import apply_command
from triplegain.errors import DatabaseError
from triplegain.model import BreakerAction, BreakerRule, Command, CoordinatorState, DegradationLevel, StateRecord, Verb
from triplegain.store.coordinator_snapshot import TaskRunRow, load_task_runs
from triplegain.store.coordinator_state import apply_pending, load_state, submit_command
from triplegain.store.database import Database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)  # a Monday
ACCOUNT = "paper"
NORMAL, LIMITED = DegradationLevel.NORMAL, DegradationLevel.LIMITED


def limited_waiting_to_recover() -> DegradationState:
    cause = Cause(signal="market_data_errors", value=6.0, threshold=5.0, level=LIMITED)
    llm = Cause(signal="llm_error_rate", subject="deepseek", value=0.6, threshold=0.5, level=DegradationLevel.REDUCED)
    return DegradationState(
        level=LIMITED, since=T0, pending_recovery_since=T0 + timedelta(minutes=2), causes=(cause, llm)
    )


def tripped_breaker() -> PortfolioBreakerState:
    settings = PortfolioBreakerSettings(daily_loss_action=BreakerAction.PAUSE, max_drawdown_action=BreakerAction.HALT)
    state, _ = on_equity(PortfolioBreakerState(), 10_000.0, T0, settings)
    state, trips = on_equity(state, 8_400.0, T0 + timedelta(hours=1), settings)
    assert {trip.rule for trip in trips} == {BreakerRule.DAILY_LOSS, BreakerRule.WEEKLY_LOSS, BreakerRule.MAX_DRAWDOWN}
    return state


async def test_nothing_is_loaded_for_an_account_never_saved(migrated_database: Database) -> None:
    assert await load_snapshot(migrated_database, ACCOUNT) is None
    assert await load_task_runs(migrated_database, ACCOUNT) == {}


async def test_degradation_and_breaker_round_trip_with_timers_causes_and_trips(migrated_database: Database) -> None:
    degradation, breaker = limited_waiting_to_recover(), tripped_breaker()
    heartbeat = T0 + timedelta(hours=1, seconds=5)

    await save_snapshot(
        migrated_database, ACCOUNT, now=T0, degradation=degradation, breaker=breaker, heartbeat=heartbeat
    )

    snapshot = await load_snapshot(migrated_database, ACCOUNT)
    assert snapshot == CoordinatorSnapshot(
        state=StateRecord(
            state=CoordinatorState.RUNNING,
            changed_at=T0,
            changed_by="coordinator",
            reason="no state stored yet: starting RUNNING",
        ),
        degradation=degradation,
        breaker=breaker,
        last_heartbeat=heartbeat,
    )
    level = await migrated_database.pool.fetchval("SELECT degradation_level FROM coordinator_state")
    assert level == "LIMITED"
    assert await load_snapshot(migrated_database, "other") is None


async def test_a_snapshot_without_a_heartbeat_keeps_the_stored_one(migrated_database: Database) -> None:
    first = DegradationState(since=T0)
    await save_snapshot(
        migrated_database, ACCOUNT, now=T0, degradation=first, breaker=PortfolioBreakerState(), heartbeat=T0
    )
    later = DegradationState(level=DegradationLevel.EMERGENCY, since=T0 + timedelta(minutes=1))

    await save_snapshot(migrated_database, ACCOUNT, now=T0, degradation=later, breaker=PortfolioBreakerState())

    snapshot = await load_snapshot(migrated_database, ACCOUNT)
    assert snapshot is not None
    assert (snapshot.degradation, snapshot.last_heartbeat) == (later, T0)


async def test_a_row_written_only_by_the_command_applier_reads_as_its_level_since_its_change(
    migrated_database: Database,
) -> None:
    await submit_command(migrated_database, ACCOUNT, Command(Verb.HALT, reason="manual"), T0)
    await apply_pending(migrated_database, ACCOUNT, T0, DegradationLevel.REDUCED, apply_command)

    snapshot = await load_snapshot(migrated_database, ACCOUNT)

    assert snapshot is not None
    assert snapshot.state.state is CoordinatorState.HALTED
    assert snapshot.degradation == DegradationState(level=DegradationLevel.REDUCED, since=T0)
    assert snapshot.breaker == PortfolioBreakerState()
    assert snapshot.last_heartbeat is None


async def test_task_runs_are_upserted_per_task_and_symbol(migrated_database: Database) -> None:
    def run(task: str, symbol: str | None, minute: int, status: Any = "succeeded", error: str | None = None) -> Any:
        started = T0 + timedelta(minutes=minute)
        return TaskRunRow(task, symbol, started, started + timedelta(seconds=3), status, error)

    await save_snapshot(
        migrated_database,
        ACCOUNT,
        now=T0,
        degradation=DegradationState(since=T0),
        breaker=PortfolioBreakerState(),
        task_runs=[run("technical", "BTC/USDT", 0), run("technical", "ETH/USDT", 0), run("housekeeping", None, 0)],
    )
    newer = [
        run("technical", "BTC/USDT", 5, "failed", "ProviderTimeout: no answer"),
        run("housekeeping", None, 1, "skipped"),
        run("technical", "ETH/USDT", -5),  # older than the stored run: ignored
    ]
    await save_snapshot(
        migrated_database,
        ACCOUNT,
        now=T0,
        degradation=DegradationState(since=T0),
        breaker=PortfolioBreakerState(),
        task_runs=newer,
    )

    runs = await load_task_runs(migrated_database, ACCOUNT)
    assert runs == {
        ("technical", "BTC/USDT"): newer[0],
        ("technical", "ETH/USDT"): run("technical", "ETH/USDT", 0),
        ("housekeeping", None): newer[1],
    }
    symbols = await migrated_database.pool.fetch("SELECT symbol FROM task_runs WHERE task = 'housekeeping'")
    assert [row["symbol"] for row in symbols] == [""]
    assert await load_task_runs(migrated_database, "other") == {}


def test_a_task_run_is_checked_like_its_table() -> None:
    with pytest.raises(ValueError, match="without an error"):
        TaskRunRow("t", None, T0, T0, "failed")
    with pytest.raises(ValueError, match="finished before it started"):
        TaskRunRow("t", None, T0, T0 - timedelta(seconds=1), "succeeded")
    with pytest.raises(ValueError, match="symbol None"):
        TaskRunRow("t", "", T0, T0, "succeeded")
    with pytest.raises(ValueError, match="not 'running'"):
        TaskRunRow("t", None, T0, T0, "running")  # type: ignore[arg-type]


async def test_transitions_and_trips_become_event_rows_once(migrated_database: Database) -> None:
    settings = DegradationSettings()
    state, up = step(DegradationState(since=T0), Observations(market_data_errors=6), T0, settings)
    assert up is not None
    breaker = tripped_breaker()
    trip = next(trip for trip in breaker.trips if trip.rule is BreakerRule.DAILY_LOSS)
    reset_at = T0 + timedelta(hours=2)
    events = [tripped_event(trip), ended_event(trip, reset_at, "reset by alice")]

    for _ in range(2):  # the same snapshot sent again (its answer was lost) records nothing twice
        await save_snapshot(
            migrated_database,
            ACCOUNT,
            now=T0,
            degradation=state,
            breaker=breaker,
            degradation_events=[up],
            breaker_events=events,
        )

    pool = migrated_database.pool
    [row] = await pool.fetch("SELECT account, ts, from_level, to_level, cause FROM degradation_events")
    assert dict(row) == {
        "account": ACCOUNT,
        "ts": T0,
        "from_level": "NORMAL",
        "to_level": "LIMITED",
        "cause": [
            {"signal": "market_data_errors", "subject": None, "value": 6.0, "threshold": 5.0, "level": "limited"}
        ],
    }
    rows = await pool.fetch("SELECT ts, rule, state, details FROM breaker_events ORDER BY ts")
    assert [(r["ts"], r["rule"], r["state"]) for r in rows] == [
        (trip.at, "daily_loss", "tripped"),
        (reset_at, "daily_loss", "reset"),
    ]
    tripped = rows[0]["details"]
    assert {key: tripped[key] for key in ("measured", "threshold", "equity", "reference_equity", "action")} == {
        "measured": pytest.approx(16.0),
        "threshold": 3.0,
        "equity": 8400.0,
        "reference_equity": 10000.0,
        "action": "pause",
    }
    assert tripped == trip.model_dump(mode="json")  # why, and until when
    assert rows[1]["details"]["reason"] == "reset by alice"


async def test_a_snapshot_never_changes_the_state_an_operator_set(migrated_database: Database) -> None:
    degradation = limited_waiting_to_recover()
    await save_snapshot(migrated_database, ACCOUNT, now=T0, degradation=degradation, breaker=PortfolioBreakerState())
    await submit_command(migrated_database, ACCOUNT, Command(Verb.PAUSE, reason="news"), T0 + timedelta(minutes=1))
    await apply_pending(migrated_database, ACCOUNT, T0 + timedelta(minutes=1), NORMAL, apply_command)
    paused = await load_state(migrated_database, ACCOUNT)
    assert paused is not None
    assert paused.state is CoordinatorState.PAUSED

    # The coordinator saves its snapshot, built before it heard of the pause.
    recovered = DegradationState(level=DegradationLevel.REDUCED, since=T0 + timedelta(minutes=2))
    await save_snapshot(
        migrated_database, ACCOUNT, now=T0, degradation=recovered, breaker=PortfolioBreakerState(), heartbeat=T0
    )

    snapshot = await load_snapshot(migrated_database, ACCOUNT)
    assert snapshot is not None
    assert snapshot.state == paused
    assert snapshot.degradation == recovered


async def test_commands_and_saved_states_never_change_the_degradation(migrated_database: Database) -> None:
    degradation = limited_waiting_to_recover()
    await save_snapshot(migrated_database, ACCOUNT, now=T0, degradation=degradation, breaker=tripped_breaker())

    await submit_command(migrated_database, ACCOUNT, Command(Verb.HALT), T0)
    await apply_pending(migrated_database, ACCOUNT, T0, NORMAL, apply_command)  # its level is for a new row only
    record = StateRecord(state=CoordinatorState.PAUSED, changed_at=T0, changed_by="op", reason="x")
    await write_state_row(migrated_database, ACCOUNT, record)

    snapshot = await load_snapshot(migrated_database, ACCOUNT)
    assert snapshot is not None
    assert (snapshot.state, snapshot.degradation, snapshot.breaker) == (record, degradation, tripped_breaker())
    level = await migrated_database.pool.fetchval("SELECT degradation_level FROM coordinator_state")
    assert level == "LIMITED"


async def test_snapshots_and_commands_interleaved_keep_both(migrated_database: Database) -> None:
    verbs = [Verb.PAUSE, Verb.RESUME] * 5 + [Verb.HALT]
    for index, verb in enumerate(verbs):
        await submit_command(migrated_database, ACCOUNT, Command(verb), T0 + timedelta(seconds=index))
    states = [
        DegradationState(level=level, since=T0 + timedelta(seconds=index))
        for index, level in enumerate([NORMAL, LIMITED, DegradationLevel.EMERGENCY] * 4)
    ]

    async def snapshots() -> None:
        for state in states:
            await save_snapshot(migrated_database, ACCOUNT, now=T0, degradation=state, breaker=PortfolioBreakerState())

    async def commands() -> None:
        for _ in verbs:
            await apply_pending(migrated_database, ACCOUNT, T0, NORMAL, apply_command)

    await asyncio.gather(snapshots(), commands())

    snapshot = await load_snapshot(migrated_database, ACCOUNT)
    assert snapshot is not None
    assert snapshot.state.state is CoordinatorState.HALTED
    assert snapshot.degradation == states[-1]


async def test_a_failing_snapshot_stores_nothing_of_it(migrated_database: Database) -> None:
    before = DegradationState(since=T0)
    await save_snapshot(migrated_database, ACCOUNT, now=T0, degradation=before, breaker=PortfolioBreakerState())
    run = TaskRunRow("technical", None, T0, T0, "succeeded")
    object.__setattr__(run, "status", "exploded")  # past the row's checks, so the table's CHECK refuses it
    transition = Transition(from_level=NORMAL, to_level=LIMITED, at=T0, causes=())

    with pytest.raises(DatabaseError, match=r"saving the coordinator snapshot of paper failed on .*check constraint"):
        await save_snapshot(
            migrated_database,
            ACCOUNT,
            now=T0,
            degradation=limited_waiting_to_recover(),
            breaker=tripped_breaker(),
            task_runs=[run],
            degradation_events=[transition],
        )

    snapshot = await load_snapshot(migrated_database, ACCOUNT)
    assert snapshot is not None
    assert (snapshot.degradation, snapshot.breaker) == (before, PortfolioBreakerState())
    assert await migrated_database.pool.fetchval("SELECT count(*) FROM degradation_events") == 0


async def test_the_level_column_must_match_the_stored_degradation(migrated_database: Database) -> None:
    await save_snapshot(
        migrated_database, ACCOUNT, now=T0, degradation=limited_waiting_to_recover(), breaker=PortfolioBreakerState()
    )

    with pytest.raises(asyncpg.CheckViolationError):
        await migrated_database.pool.execute("UPDATE coordinator_state SET degradation_level = 'NORMAL'")


async def test_a_stored_snapshot_that_does_not_validate_is_a_clear_error(migrated_database: Database) -> None:
    await save_snapshot(
        migrated_database, ACCOUNT, now=T0, degradation=DegradationState(since=T0), breaker=PortfolioBreakerState()
    )
    await migrated_database.pool.execute("UPDATE coordinator_state SET breaker_state = $1", {"equity": "lots"})

    with pytest.raises(DatabaseError, match=r"the coordinator snapshot of paper stored on .* is not valid"):
        await load_snapshot(migrated_database, ACCOUNT)
