"""The coordinator's snapshot as models: what a restarted coordinator continues from, and the rows of its events.

The store keeps the degradation and breaker states as JSON (``store.coordinator_snapshot``); this module saves
the coordinator's models there and validates them when they are read back, so a corrupted row is one clear
``DatabaseError`` rather than a coordinator that starts from a wrong state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import JsonValue, ValidationError

from triplegain.coordinator.breaker import PortfolioBreakerState, Trip
from triplegain.coordinator.degradation import DegradationState, Transition
from triplegain.errors import DatabaseError
from triplegain.model import StateRecord
from triplegain.store.coordinator_snapshot import (
    BreakerEventRow,
    DegradationEventRow,
    TaskRunRow,
    read_snapshot,
    store_snapshot,
)
from triplegain.store.database import Database
from triplegain.store.decisions import DecisionWrite


@dataclass(frozen=True)
class CoordinatorSnapshot:
    """What a restarted coordinator continues from. ``last_heartbeat`` is None until a daemon has run."""

    state: StateRecord
    degradation: DegradationState
    breaker: PortfolioBreakerState
    last_heartbeat: datetime | None


def tripped_event(trip: Trip) -> BreakerEventRow:
    """The event of ``trip``: why (reason) and the figures (measured, threshold, equity, reference equity), with the
    action taken and until when."""
    return BreakerEventRow(ts=trip.at, rule=trip.rule, state="tripped", details=trip.model_dump(mode="json"))


def ended_event(trip: Trip, at: datetime, reason: str) -> BreakerEventRow:
    """The event of ``trip`` ending at ``at`` (a pause expiring, a person resetting a halt), and why."""
    details: dict[str, JsonValue] = {"reason": reason, "trip": trip.model_dump(mode="json")}
    return BreakerEventRow(ts=at, rule=trip.rule, state="reset", details=details)


def degradation_event(transition: Transition) -> DegradationEventRow:
    """The row of a change of level, with its causes."""
    return DegradationEventRow(
        ts=transition.at,
        from_level=transition.from_level,
        to_level=transition.to_level,
        causes=[cause.model_dump(mode="json") for cause in transition.causes],
    )


async def save_snapshot(
    db: Database,
    account: str,
    *,
    now: datetime,
    degradation: DegradationState,
    breaker: PortfolioBreakerState,
    heartbeat: datetime | None = None,
    task_runs: Sequence[TaskRunRow] = (),
    degradation_events: Sequence[Transition] = (),
    breaker_events: Sequence[BreakerEventRow] = (),
    holds: Sequence[DecisionWrite] = (),
) -> None:
    """Store the snapshot of ``account``, the step's events and the hold decisions made since the last save, in one
    transaction (``store.coordinator_snapshot.store_snapshot``)."""
    await store_snapshot(
        db,
        account,
        now=now,
        degradation_level=degradation.level,
        degradation=degradation.model_dump(mode="json"),
        breaker=breaker.model_dump(mode="json"),
        heartbeat=heartbeat,
        task_runs=task_runs,
        degradation_events=[degradation_event(transition) for transition in degradation_events],
        breaker_events=breaker_events,
        holds=holds,
    )


async def load_snapshot(db: Database, account: str) -> CoordinatorSnapshot | None:
    """The stored snapshot of ``account``; None if the account has no row.

    A row that only the command applier or a decision has written (no snapshot saved yet) reads as its degradation
    level since its state changed, with no recovery pending, and an empty breaker.
    """
    row = await read_snapshot(db, account)
    if row is None:
        return None
    try:
        degradation = (
            DegradationState.model_validate(row.degradation)
            if row.degradation
            else DegradationState(level=row.degradation_level, since=row.state.changed_at)
        )
        breaker = PortfolioBreakerState.model_validate(row.breaker)
    except ValidationError as exc:
        raise DatabaseError(
            f"the coordinator snapshot of {account} stored on {db.server} is not valid: {' '.join(str(exc).split())}"
        ) from exc
    return CoordinatorSnapshot(
        state=row.state, degradation=degradation, breaker=breaker, last_heartbeat=row.last_heartbeat
    )
