"""Decisions, their conflicts and their order, stored in one awaited transaction against the coordinator's state.

``commit_decision`` is how the coordinator records what it decided, so that a restart continues from what was
committed and never sends a second order for an intent already stored:

1. it holds the account's ``coordinator_state`` row ``FOR SHARE`` (creating a RUNNING row if there is none,
   dated by the decision's ``ts``).
   The command applier holds that row ``FOR UPDATE``, so a pause or halt is applied wholly before or wholly
   after the decision; decisions do not block each other;
2. it calls the caller's pure ``build(state)`` with the state it locked: the coordinator decides what to write
   given it (a buy becomes a hold while PAUSED) and records that state in the decision;
3. it inserts the decision; if its id is already stored (a decision re-run after a crash with the same
   deterministic id) nothing else is written: ``already_stored``, and no second order;
4. it inserts the conflicts and the order; an order whose ``client_order_id`` is already stored is skipped
   (``order_stored`` False): the idempotency key is never used twice.

Trading policy (which orders a state or degradation level allows) is ``build``'s; this module only checks that
the rows belong together and record the state they were built against.

``pending_orders`` gives the orders stored but not yet acknowledged, to hand to the broker again after a
restart. A decision with everything attached to it is read by the review (``review.decision_queries``).
LLM calls reach ``llm_calls`` through the batching writer, before or after the decision commits: their
reference to it is checked at their own commit, and the writer waits for a decision not stored yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, model_validator

from triplegain.model import CoordinatorState, DecisionAction, DegradationLevel, OrderRow, ResolutionAction
from triplegain.store.coordinator_state import ensure_state_row, locked_state
from triplegain.store.database import Database

_ROW_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class DecisionRow(BaseModel):
    """A ``decisions`` row: the action, and everything needed to review and recompute it."""

    model_config = _ROW_CONFIG

    id: UUID = Field(description="made by the coordinator, deterministic for a task run, so a re-run is recognised")
    run_id: int | None = Field(description="the daemon run; None outside a daemon")
    account: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    ts: AwareDatetime = Field(description="the time of the task run that decided (candle time in a replay)")
    action: DecisionAction
    confidence: float = Field(ge=0, le=1)
    consensus_inputs: list[JsonValue] | dict[str, JsonValue] = Field(description="the agent views that counted")
    consensus_terms: dict[str, JsonValue] = Field(description="the formula's constants and each view's term")
    consensus_result: dict[str, JsonValue]
    risk_checks: dict[str, JsonValue] = Field(default_factory=dict, description="sizing and the rules that cut")
    degradation_level: DegradationLevel = Field(description="stored as the member's name, upper case")
    coordinator_state: CoordinatorState = Field(description="the state the decision was built against")
    reason: str = Field(description="why this action, in a sentence")
    intent: dict[str, JsonValue] = Field(
        default_factory=dict, description="direction, entry/stop/target prices, base confidence, the plan"
    )
    resolution: dict[str, JsonValue] | None = Field(
        default=None,
        description="resolved_by, the bounded resolution, clamps and attempts; None when nothing was resolved",
    )
    effects: dict[str, JsonValue] = Field(default_factory=dict, description="the degradation level's effects applied")


class ConflictRow(BaseModel):
    """A ``conflicts`` row: a conflict rule that fired for a decision, and how it was settled."""

    model_config = _ROW_CONFIG

    id: UUID
    decision_id: UUID
    ts: AwareDatetime
    rule: str = Field(min_length=1)
    details: dict[str, JsonValue]
    resolution: ResolutionAction | None = Field(default=None, description="None until settled")
    resolved_by: str | None = Field(default=None, description="provider/model, or the conservative rule")

    @model_validator(mode="after")
    def _settled_by_someone(self) -> Self:
        if (self.resolution is None) != (self.resolved_by is None):
            raise ValueError("a conflict has both a resolution and who resolved it, or neither")
        return self


@dataclass(frozen=True)
class DecisionWrite:
    """What ``build`` asks to store: a decision, its conflicts, and the order it makes (None: no order)."""

    decision: DecisionRow
    conflicts: tuple[ConflictRow, ...] = ()
    order: OrderRow | None = None

    def __post_init__(self) -> None:
        decision = self.decision
        for conflict in self.conflicts:
            if conflict.decision_id != decision.id:
                raise ValueError(
                    f"conflict {conflict.id} belongs to decision {conflict.decision_id}, not {decision.id}"
                )
        order = self.order
        if order is not None:
            if order.decision_id != decision.id:
                raise ValueError(f"order {order.client_order_id} belongs to decision {order.decision_id}")
            if (order.account, order.symbol) != (decision.account, decision.symbol):
                raise ValueError(
                    f"order {order.client_order_id} is for {order.account}/{order.symbol}, "
                    f"its decision for {decision.account}/{decision.symbol}"
                )


@dataclass(frozen=True)
class StoredDecision:
    """The outcome of ``commit_decision``.

    ``write`` is what ``build`` returned this time. ``already_stored``: a decision with its id was committed
    before, so nothing was written now (the stored rows are those of the first commit). ``order_stored``: the
    order was inserted now; False without an order, when the decision was already stored, or when its
    ``client_order_id`` was.
    """

    write: DecisionWrite
    state: CoordinatorState
    already_stored: bool
    order_stored: bool


_DECISION_COLUMNS = """
    id, run_id, account, symbol, ts, action, confidence, consensus_inputs, consensus_terms, consensus_result,
    risk_checks, degradation_level, coordinator_state, reason, intent, resolution, effects
"""
_INSERT_DECISION_ONCE = f"""
    INSERT INTO decisions ({_DECISION_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
    ON CONFLICT (id) DO NOTHING
"""
_INSERT_DECISION = f"{_INSERT_DECISION_ONCE} RETURNING true"

_CONFLICT_COLUMNS = "id, decision_id, ts, rule, details, resolution, resolved_by"
_INSERT_CONFLICT = f"INSERT INTO conflicts ({_CONFLICT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
_INSERT_CONFLICT_ONCE = f"{_INSERT_CONFLICT} ON CONFLICT (id) DO NOTHING"

ORDER_COLUMNS = """
    id, client_order_id, account, decision_id, symbol, side, type, qty, price, status, created_at, updated_at, reason,
    stop_price, target_price
"""
INSERT_ORDER = f"""
    INSERT INTO orders ({ORDER_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    ON CONFLICT (client_order_id) DO NOTHING
    RETURNING true
"""
_SELECT_PENDING_ORDERS = f"""
    SELECT {ORDER_COLUMNS} FROM orders WHERE account = $1 AND status = 'pending'
    ORDER BY created_at, client_order_id
"""


async def commit_decision(
    db: Database, account: str, build: Callable[[CoordinatorState], DecisionWrite]
) -> StoredDecision:
    """Store the decision ``build`` makes from the account's locked state, with its conflicts and order, at once.

    ``build`` must be pure and record the state it was given; a write for another account or another state
    raises ``ValueError`` and nothing is stored. It is called again, and only its last write stored, in the one
    case where the account had no row yet and another process created one with another state meanwhile. See
    the module docstring.
    """
    with db.errors(f"storing a decision of {account}"):
        async with db.pool.acquire() as connection, connection.transaction():
            record = await locked_state(connection, account, mode="share")
            if record is None:
                # No row yet: it starts RUNNING, dated by the decision (the caller's clock, candle time in a
                # replay). A row created concurrently with another state wins, and is built against again.
                write = build(CoordinatorState.RUNNING)
                await ensure_state_row(connection, account, write.decision.ts)
                record = await locked_state(connection, account, mode="share")
                assert record is not None, "the row was just ensured"
                if record.state is not CoordinatorState.RUNNING:
                    write = build(record.state)
            else:
                write = build(record.state)
            _check(write, account, record.state)
            decision = write.decision
            if not await connection.fetchval(_INSERT_DECISION, *_decision_values(decision)):
                return StoredDecision(write=write, state=record.state, already_stored=True, order_stored=False)
            if write.conflicts:
                await connection.executemany(_INSERT_CONFLICT, [_conflict_values(c) for c in write.conflicts])
            order_stored = False
            if write.order is not None:
                order_stored = bool(await connection.fetchval(INSERT_ORDER, *order_values(write.order)))
    return StoredDecision(write=write, state=record.state, already_stored=False, order_stored=order_stored)


async def store_holds(connection: Any, writes: Sequence[DecisionWrite]) -> None:
    """Store hold decisions and their conflicts on ``connection`` (in the caller's transaction); a decision stored
    before keeps its rows. A hold places nothing, so it needs no lock on the account's state: it records the state
    its coordinator decided in."""
    orders = [write.decision.id for write in writes if write.order is not None]
    if orders:
        raise ValueError(f"decisions with an order are stored by commit_decision, not as holds: {orders}")
    if not writes:
        return
    await connection.executemany(
        _INSERT_DECISION_ONCE, [_decision_values(write.decision) for write in writes]
    )
    conflicts = [_conflict_values(conflict) for write in writes for conflict in write.conflicts]
    if conflicts:
        await connection.executemany(_INSERT_CONFLICT_ONCE, conflicts)


async def pending_orders(db: Database, account: str) -> list[OrderRow]:
    """The account's orders stored but not yet acknowledged (status ``pending``), oldest first.

    These are the open intents a restarted coordinator hands to the broker again; their ``client_order_id``
    keeps that from placing any of them twice.
    """
    with db.errors(f"reading the pending orders of {account}"):
        rows = await db.pool.fetch(_SELECT_PENDING_ORDERS, account)
    return [order_from_row(row) for row in rows]


def _check(write: DecisionWrite, account: str, state: CoordinatorState) -> None:
    """A write for another account, or recording a state other than the one locked, is a bug in ``build``."""
    decision = write.decision
    if decision.account != account:
        raise ValueError(f"decision {decision.id} is for account {decision.account!r}, not {account!r}")
    if decision.coordinator_state is not state:
        raise ValueError(
            f"decision {decision.id} records state {decision.coordinator_state.value} but was built against "
            f"{state.value}"
        )


def _decision_values(decision: DecisionRow) -> tuple[Any, ...]:
    return (
        decision.id,
        decision.run_id,
        decision.account,
        decision.symbol,
        decision.ts,
        decision.action,
        decision.confidence,
        decision.consensus_inputs,
        decision.consensus_terms,
        decision.consensus_result,
        decision.risk_checks,
        decision.degradation_level.name,
        decision.coordinator_state.value,
        decision.reason,
        decision.intent,
        decision.resolution,
        decision.effects,
    )


def _conflict_values(conflict: ConflictRow) -> tuple[Any, ...]:
    return (
        conflict.id,
        conflict.decision_id,
        conflict.ts,
        conflict.rule,
        conflict.details,
        conflict.resolution,
        conflict.resolved_by,
    )


def order_values(order: OrderRow) -> tuple[Any, ...]:
    return (
        order.id,
        order.client_order_id,
        order.account,
        order.decision_id,
        order.symbol,
        order.side,
        order.type,
        order.qty,
        order.price,
        order.status,
        order.created_at,
        order.updated_at,
        order.reason,
        order.stop_price,
        order.target_price,
    )


def decision_from_row(row: Any) -> DecisionRow:
    """A ``decisions`` row as read (the level stored by name) as a ``DecisionRow``."""
    fields = dict(row)
    fields["degradation_level"] = DegradationLevel[fields["degradation_level"]]
    return DecisionRow(**fields)


def order_from_row(row: Any) -> OrderRow:
    """An ``orders`` row read with ``ORDER_COLUMNS`` as an ``OrderRow``."""
    return OrderRow(**dict(row))
