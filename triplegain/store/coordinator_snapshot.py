"""The coordinator's snapshot: degradation, breaker, heartbeat, last task runs and their events, saved at once.

``store_snapshot`` stores, in one transaction, everything the coordinator changed in a step: the degradation
state (with its hysteresis timers, so a restart does not recover early), the breaker state (baselines, streak,
active trips), the heartbeat, the last run of each task, and the degradation transitions and breaker trips or
resets of that step as event rows. ``read_snapshot`` and ``load_task_runs`` give them back at start. The
degradation and breaker states are JSON here: their models are the coordinator's (``coordinator.snapshot``).

The account's state (RUNNING, PAUSED, HALTED) is read here but never written: it belongs to the command applier
(``coordinator_state.apply_pending``), and writing it from a snapshot taken before an operator's pause would
undo the pause. The UPDATE names only the snapshot's columns, so whichever of the two commits last, neither
loses the other's change.

Events are recorded once: sending the same snapshot again (its commit reached the server but the answer did
not) skips the events already stored (unique on account, time and levels or rule and state).

Task runs: each row given replaces the stored one of its task and symbol, whatever its status — a skipped run
too, so a caller that counts a skip as the run of that tick (the next one due an interval later) can store it;
a caller that wants the last run that did the work simply does not pass skips. A run that started before the
stored one (saved out of order) never replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import JsonValue

from triplegain.model import BreakerRule, CoordinatorState, DegradationLevel, StateRecord, TaskStatus
from triplegain.store.coordinator_state import ensure_state_row
from triplegain.store.database import Database
from triplegain.store.decisions import DecisionWrite, store_holds

BreakerEventState = Literal["tripped", "reset"]

NO_SYMBOL = ""
"""``task_runs.symbol`` of a task that is not about one symbol (``None`` in ``TaskRunRow``)."""


@dataclass(frozen=True)
class TaskRunRow:
    """The last finished run of a task, for one symbol or (``symbol`` None) for none."""

    task: str
    symbol: str | None
    started_at: datetime
    finished_at: datetime
    status: TaskStatus
    error: str | None = None

    def __post_init__(self) -> None:
        if not self.task:
            raise ValueError("a task run names its task")
        if self.symbol == NO_SYMBOL:
            raise ValueError("a task run without a symbol has symbol None, not ''")
        if self.started_at.tzinfo is None or self.finished_at.tzinfo is None:
            raise ValueError("task run times must be timezone-aware")
        if self.finished_at < self.started_at:
            raise ValueError(f"task {self.task} finished before it started")
        if self.status not in ("succeeded", "failed", "skipped"):
            raise ValueError(f"a finished task run succeeded, failed or was skipped, not {self.status!r}")
        if self.status == "failed" and self.error is None:
            raise ValueError(f"failed run of task {self.task} without an error")


@dataclass(frozen=True)
class BreakerEventRow:
    """A ``breaker_events`` row: a rule tripped or reset at ``ts``, with the figures in ``details``."""

    ts: datetime
    rule: BreakerRule
    state: BreakerEventState
    details: dict[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError("breaker event times must be timezone-aware")
        if self.state not in ("tripped", "reset"):
            raise ValueError(f"a breaker event is tripped or reset, not {self.state!r}")


@dataclass(frozen=True)
class DegradationEventRow:
    """A ``degradation_events`` row: the level changed at ``ts``, with the causes (as JSON) that moved it."""

    ts: datetime
    from_level: DegradationLevel
    to_level: DegradationLevel
    causes: list[JsonValue]


@dataclass(frozen=True)
class SnapshotRow:
    """The account's row as a restarted coordinator reads it: the state, the degradation level, the degradation
    and breaker states as stored (JSON; ``degradation`` None until a snapshot was saved) and the heartbeat (None
    until a daemon has run). The coordinator turns the JSON back into its models (``coordinator.snapshot``)."""

    state: StateRecord
    degradation_level: DegradationLevel
    degradation: JsonValue
    breaker: JsonValue
    last_heartbeat: datetime | None


_SELECT_SNAPSHOT = """
    SELECT state, changed_at, changed_by, reason, degradation_level, degradation, breaker_state, last_heartbeat
    FROM coordinator_state WHERE account = $1
"""

# Never the state columns: see the module docstring.
_UPDATE_SNAPSHOT = """
    UPDATE coordinator_state SET
        degradation_level = $2,
        degradation = $3,
        breaker_state = $4,
        last_heartbeat = COALESCE($5, last_heartbeat)
    WHERE account = $1
"""

_UPSERT_TASK_RUN = """
    INSERT INTO task_runs (account, task, symbol, started_at, finished_at, status, error)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (account, task, symbol) DO UPDATE SET
        started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at,
        status = EXCLUDED.status,
        error = EXCLUDED.error
    WHERE task_runs.started_at <= EXCLUDED.started_at
"""

# A 'running' row (a run in progress, written by no one here) is not a last finished run.
_SELECT_TASK_RUNS = """
    SELECT task, symbol, started_at, finished_at, status, error FROM task_runs
    WHERE account = $1 AND status <> 'running'
    ORDER BY task, symbol
"""

_INSERT_DEGRADATION_EVENT = """
    INSERT INTO degradation_events (account, ts, from_level, to_level, cause) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (account, ts, from_level, to_level) DO NOTHING
"""

_INSERT_BREAKER_EVENT = """
    INSERT INTO breaker_events (account, ts, rule, state, details) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (account, ts, rule, state) DO NOTHING
"""


async def store_snapshot(
    db: Database,
    account: str,
    *,
    now: datetime,
    degradation_level: DegradationLevel,
    degradation: JsonValue,
    breaker: JsonValue,
    heartbeat: datetime | None = None,
    task_runs: Sequence[TaskRunRow] = (),
    degradation_events: Sequence[DegradationEventRow] = (),
    breaker_events: Sequence[BreakerEventRow] = (),
    holds: Sequence[DecisionWrite] = (),
) -> None:
    """Store the coordinator's snapshot of ``account``, the step's events and the hold decisions made since the
    last save, in one transaction: a task run is never stored without the decision it made.

    ``now`` dates the account's RUNNING row if none exists yet; ``heartbeat`` None keeps the stored one. The
    state columns are never written (see the module docstring).
    """
    with db.errors(f"saving the coordinator snapshot of {account}"):
        async with db.pool.acquire() as connection, connection.transaction():
            await ensure_state_row(connection, account, now, degradation_level)
            await store_holds(connection, holds)
            await connection.execute(
                _UPDATE_SNAPSHOT,
                account,
                degradation_level.name,
                degradation,
                breaker,
                heartbeat,
            )
            if task_runs:
                await connection.executemany(_UPSERT_TASK_RUN, [_task_run_values(account, run) for run in task_runs])
            if degradation_events:
                await connection.executemany(
                    _INSERT_DEGRADATION_EVENT, [_degradation_event_values(account, t) for t in degradation_events]
                )
            if breaker_events:
                await connection.executemany(
                    _INSERT_BREAKER_EVENT,
                    [(account, event.ts, event.rule.value, event.state, event.details) for event in breaker_events],
                )


async def read_snapshot(db: Database, account: str) -> SnapshotRow | None:
    """The stored snapshot of ``account``; None if the account has no row."""
    with db.errors(f"loading the coordinator snapshot of {account}"):
        row = await db.pool.fetchrow(_SELECT_SNAPSHOT, account)
    if row is None:
        return None
    state = StateRecord(
        state=CoordinatorState(row["state"]),
        changed_at=row["changed_at"],
        changed_by=row["changed_by"],
        reason=row["reason"],
    )
    return SnapshotRow(
        state=state,
        degradation_level=DegradationLevel[row["degradation_level"]],
        degradation=row["degradation"],
        breaker=row["breaker_state"],
        last_heartbeat=row["last_heartbeat"],
    )


async def load_task_runs(db: Database, account: str) -> dict[tuple[str, str | None], TaskRunRow]:
    """The last finished run of every task of ``account``, by (task, symbol); symbol None for no symbol."""
    with db.errors(f"loading the task runs of {account}"):
        rows = await db.pool.fetch(_SELECT_TASK_RUNS, account)
    runs: dict[tuple[str, str | None], TaskRunRow] = {}
    for row in rows:
        symbol = None if row["symbol"] == NO_SYMBOL else row["symbol"]
        runs[(row["task"], symbol)] = TaskRunRow(
            task=row["task"],
            symbol=symbol,
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            status=TaskStatus(row["status"]),
            error=row["error"],
        )
    return runs


def _task_run_values(account: str, run: TaskRunRow) -> tuple[Any, ...]:
    symbol = NO_SYMBOL if run.symbol is None else run.symbol
    return (account, run.task, symbol, run.started_at, run.finished_at, run.status, run.error)


def _degradation_event_values(account: str, event: DegradationEventRow) -> tuple[Any, ...]:
    return (account, event.ts, event.from_level.name, event.to_level.name, event.causes)
