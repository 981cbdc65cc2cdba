"""The paper broker's rows: order statuses, fills, positions, portfolio snapshots and marks (migration 003).

Every write is awaited and idempotent, so a write retried after a failure (or after a crash, with the same
deterministic ids) never duplicates anything:

- ``settle_submission`` takes an order the coordinator stored as ``pending`` (inserting it when it is not stored
  yet) and, holding its row ``FOR UPDATE``, lets the broker decide ``open`` or ``rejected``; an order already
  past ``pending`` is returned as stored and left alone;
- ``record_candles`` stores what consecutive candles did in one transaction: the broker's own orders (triggered
  stops and targets), fills (``ON CONFLICT (client_fill_id) DO NOTHING``), order statuses, positions (upserted,
  or deleted when closed), the portfolio snapshots (one per account and time) and each symbol's last mark;
- ``record_orders`` stores a flatten: its market orders and the cancellations, at once;
- ``load_execution`` reads what a restarted broker needs: every fill of the account in the order applied, with
  its order's side and protection, the open orders, the marks and the equity peak.

Quantities, prices and money are floats in the rows and ``numeric`` in the tables, converted through each
float's shortest repr (0.1 is stored as 0.1): reading a value back gives the same float.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ConfigDict

from triplegain.model import (
    CandleWrite,
    FillRow,
    MarkRow,
    OrderRow,
    OrderStatus,
    OrderUpdate,
    PortfolioSnapshotRow,
    PositionRow,
    StoredFill,
)
from triplegain.store.database import Database
from triplegain.store.decisions import INSERT_ORDER, ORDER_COLUMNS, order_from_row, order_values

_ROW_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True)
class Submission:
    """The outcome of ``settle_submission``: the order as stored now, why it has its status, and whether this
    call changed it (False: it was settled before)."""

    order: OrderRow
    status_reason: str | None
    changed: bool


@dataclass(frozen=True)
class StoredExecution:
    """What a restarted broker reads: fills in the order applied, open orders oldest first, marks, the peak."""

    fills: tuple[StoredFill, ...]
    open_orders: tuple[OrderRow, ...]
    marks: tuple[MarkRow, ...]
    peak_equity: float | None


_SELECT_ORDER_FOR_UPDATE = f"SELECT {ORDER_COLUMNS}, status_reason FROM orders WHERE client_order_id = $1 FOR UPDATE"
_UPDATE_ORDER = """
    UPDATE orders SET status = $2, updated_at = $3, status_reason = coalesce($4, status_reason),
                      qty = coalesce($5, qty)
    WHERE client_order_id = $1
"""
_INSERT_FILL = """
    INSERT INTO fills (id, order_id, client_fill_id, qty, price, fee, fee_currency, ts, liquidity)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (client_fill_id) DO NOTHING
"""
_UPSERT_POSITION = """
    INSERT INTO positions (account, symbol, qty, avg_price, stop_price, target_price, opened_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (account, symbol) DO UPDATE SET
        qty = excluded.qty, avg_price = excluded.avg_price, stop_price = excluded.stop_price,
        target_price = excluded.target_price, opened_at = excluded.opened_at, updated_at = excluded.updated_at
"""
_DELETE_POSITION = "DELETE FROM positions WHERE account = $1 AND symbol = $2"
_UPSERT_SNAPSHOT = """
    INSERT INTO portfolio_snapshots (account, ts, equity, cash, positions, drawdown)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (account, ts) DO UPDATE SET
        equity = excluded.equity, cash = excluded.cash, positions = excluded.positions, drawdown = excluded.drawdown
"""
_UPSERT_MARK = """
    INSERT INTO broker_marks (account, symbol, candle_open_time, price) VALUES ($1, $2, $3, $4)
    ON CONFLICT (account, symbol) DO UPDATE SET candle_open_time = excluded.candle_open_time, price = excluded.price
    WHERE broker_marks.candle_open_time <= excluded.candle_open_time
"""
_SELECT_FILLS = """
    SELECT f.id, f.order_id, o.client_order_id, f.client_fill_id, o.account, o.symbol, o.side, f.qty, f.price,
           f.fee, f.fee_currency, f.liquidity, f.ts, o.stop_price, o.target_price
    FROM fills f JOIN orders o ON o.id = f.order_id
    WHERE o.account = $1
    ORDER BY f.seq
"""
_SELECT_OPEN_ORDERS = f"""
    SELECT {ORDER_COLUMNS} FROM orders WHERE account = $1 AND status IN ('open', 'partially_filled')
    ORDER BY created_at, client_order_id
"""
_SELECT_MARKS = "SELECT account, symbol, candle_open_time, price FROM broker_marks WHERE account = $1 ORDER BY symbol"
_SELECT_PEAK = "SELECT max(equity) FROM portfolio_snapshots WHERE account = $1"
_SELECT_POSITIONS = """
    SELECT account, symbol, qty, avg_price, stop_price, target_price, opened_at, updated_at FROM positions
    WHERE account = $1 ORDER BY symbol
"""
_SELECT_STATUS = "SELECT status, status_reason FROM orders WHERE client_order_id = $1"


async def settle_submission(db: Database, order: OrderRow, decide: Callable[[OrderRow], OrderUpdate]) -> Submission:
    """Give a ``pending`` order the status ``decide`` chooses for it, once (see the module docstring).

    ``decide`` gets the order as stored (inserted first if it was not) and must be pure; it is not called for an
    order already past ``pending``.
    """
    with db.errors(f"settling order {order.client_order_id}"):
        async with db.pool.acquire() as connection, connection.transaction():
            await connection.fetchval(INSERT_ORDER, *order_values(order))
            row = await connection.fetchrow(_SELECT_ORDER_FOR_UPDATE, order.client_order_id)
            stored, reason = _order_with_reason(row)
            if stored.account != order.account:
                raise ValueError(
                    f"client order id {order.client_order_id} is stored for account {stored.account!r}, "
                    f"not {order.account!r}"
                )
            if stored.status != "pending":
                return Submission(order=stored, status_reason=reason, changed=False)
            update = decide(stored)
            await connection.execute(_UPDATE_ORDER, *_update_values(update))
            row = await connection.fetchrow(_SELECT_ORDER_FOR_UPDATE, order.client_order_id)
    settled, reason = _order_with_reason(row)
    return Submission(order=settled, status_reason=reason, changed=True)


async def record_candles(db: Database, writes: Sequence[CandleWrite]) -> None:
    """Store what consecutive candles did, in order, in one transaction (see the module docstring).

    Positions and marks are as the last candle of each symbol left them; every candle's snapshot is kept.
    """
    if not writes:
        return
    last = writes[-1]
    latest = {write.mark.symbol: write for write in writes}
    positions = [row for write in latest.values() for row in write.positions]
    closed = [(write.account, symbol) for write in latest.values() for symbol in write.closed_positions]
    what = (
        f"the {last.mark.symbol} candle"
        if len(writes) == 1
        else f"{len(writes)} candles (the last {last.mark.symbol})"
    )
    with db.errors(f"recording {what} of {last.account}"):
        async with db.pool.acquire() as connection, connection.transaction():
            for write in writes:
                if changes_anything(write):
                    await _write_changes(connection, write)
            if positions:
                await connection.executemany(_UPSERT_POSITION, [_position_values(row) for row in positions])
            if closed:
                await connection.executemany(_DELETE_POSITION, closed)
            await connection.executemany(_UPSERT_SNAPSHOT, [_snapshot_values(write.snapshot) for write in writes])
            await connection.executemany(
                _UPSERT_MARK,
                [
                    (write.account, symbol, write.mark.candle_open_time, _num(write.mark.price))
                    for symbol, write in latest.items()
                ],
            )


def changes_anything(write: CandleWrite) -> bool:
    """Whether a candle placed, filled or updated an order (else it only moved marks, equity and the position's
    valuation, which the next candle's write carries again)."""
    return bool(write.new_orders or write.fills or write.updates)


async def _write_changes(connection: Any, write: CandleWrite) -> None:
    if write.new_orders:
        await connection.executemany(INSERT_ORDER, [order_values(order) for order in write.new_orders])
    if write.fills:
        await connection.executemany(_INSERT_FILL, [_fill_values(fill) for fill in write.fills])
    if write.updates:
        await connection.executemany(_UPDATE_ORDER, [_update_values(update) for update in write.updates])


async def record_orders(db: Database, account: str, orders: Sequence[OrderRow], updates: Sequence[OrderUpdate]) -> None:
    """Store the broker's own orders (a flatten's) and status changes (its cancellations) in one transaction."""
    with db.errors(f"recording the orders of {account}"):
        async with db.pool.acquire() as connection, connection.transaction():
            if orders:
                await connection.executemany(INSERT_ORDER, [order_values(order) for order in orders])
            if updates:
                await connection.executemany(_UPDATE_ORDER, [_update_values(update) for update in updates])


async def load_execution(db: Database, account: str) -> StoredExecution:
    """Everything a restarted broker of ``account`` reads, in one snapshot of the database."""
    with db.errors(f"reading the paper account {account}"):
        async with (
            db.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            fills = await connection.fetch(_SELECT_FILLS, account)
            orders = await connection.fetch(_SELECT_OPEN_ORDERS, account)
            marks = await connection.fetch(_SELECT_MARKS, account)
            peak = await connection.fetchval(_SELECT_PEAK, account)
    return StoredExecution(
        fills=tuple(_stored_fill(row) for row in fills),
        open_orders=tuple(order_from_row(row) for row in orders),
        marks=tuple(_mark(row) for row in marks),
        peak_equity=float(peak) if peak is not None else None,
    )


async def stored_positions(db: Database, account: str) -> list[PositionRow]:
    """The account's ``positions`` rows, by symbol (for reports and tests; the broker's are recomputed)."""
    with db.errors(f"reading the positions of {account}"):
        rows = await db.pool.fetch(_SELECT_POSITIONS, account)
    return [PositionRow(**{k: _float(v) if isinstance(v, Decimal) else v for k, v in dict(r).items()}) for r in rows]


async def stored_marks(db: Database, account: str) -> list[MarkRow]:
    """The last candle the broker processed of each symbol of ``account`` (none for an account never run)."""
    with db.errors(f"reading the marks of {account}"):
        rows = await db.pool.fetch(_SELECT_MARKS, account)
    return [_mark(row) for row in rows]


async def order_status(db: Database, client_order_id: str) -> tuple[OrderStatus, str | None] | None:
    """An order's status and its reason; None when no such order is stored."""
    with db.errors(f"reading order {client_order_id}"):
        row = await db.pool.fetchrow(_SELECT_STATUS, client_order_id)
    return None if row is None else (row["status"], row["status_reason"])


def _mark(row: Any) -> MarkRow:
    return MarkRow(
        account=row["account"], symbol=row["symbol"], candle_open_time=row["candle_open_time"], price=row["price"]
    )


def _num(value: float | None) -> Decimal | None:
    """A float as numeric: its shortest repr, so it reads back as the same float."""
    return None if value is None else Decimal(repr(value))


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _order_with_reason(row: Any) -> tuple[OrderRow, str | None]:
    fields = dict(row)
    reason = fields.pop("status_reason")
    return order_from_row(fields), reason


def _update_values(update: OrderUpdate) -> tuple[Any, ...]:
    return (update.client_order_id, update.status, update.updated_at, update.status_reason, update.qty)


def _fill_values(fill: FillRow) -> tuple[Any, ...]:
    return (
        fill.id,
        fill.order_id,
        fill.client_fill_id,
        _num(fill.qty),
        _num(fill.price),
        _num(fill.fee),
        fill.fee_currency,
        fill.ts,
        fill.liquidity,
    )


def _position_values(row: PositionRow) -> tuple[Any, ...]:
    return (
        row.account,
        row.symbol,
        _num(row.qty),
        _num(row.avg_price),
        _num(row.stop_price),
        _num(row.target_price),
        row.opened_at,
        row.updated_at,
    )


def _snapshot_values(row: PortfolioSnapshotRow) -> tuple[Any, ...]:
    return (row.account, row.ts, _num(row.equity), _num(row.cash), row.positions, _num(row.drawdown))


def _stored_fill(row: Any) -> StoredFill:
    fields = dict(row)
    stop, target = fields.pop("stop_price"), fields.pop("target_price")
    for name in ("qty", "price", "fee"):
        fields[name] = float(fields[name])
    return StoredFill(fill=FillRow(**fields), stop_price=_float(stop), target_price=_float(target))
