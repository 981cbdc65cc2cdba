"""The paper broker against a real PostgreSQL: orders, fills, positions and snapshots stored, idempotent, restored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.builders import nth_candle
from triplegain.clock import FakeClock
from triplegain.execution import ExecutionSettings, FeeSchedule, MarketRules, PaperBroker
from triplegain.market.candle import Candle
from triplegain.model import CoordinatorState, DegradationLevel, OrderRow
from triplegain.store.database import Database
from triplegain.store.decisions import DecisionRow, DecisionWrite, commit_decision, pending_orders
from triplegain.store.execution import order_status, stored_positions

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
ACCOUNT = "paper"
SYMBOL = "BTC/USDT"
RULES = MarketRules(min_qty=0.001, qty_step=0.001, price_step=0.01, min_notional=10.0)
SETTINGS = ExecutionSettings(
    slippage_bps=10.0, fees={"kraken": FeeSchedule(maker_bps=16.0, taker_bps=26.0)}, markets={SYMBOL: RULES}
)


def candle(index: int, open_: float, high: float, low: float, close: float, symbol: str = SYMBOL) -> Candle:
    """The 5m candle ``index`` after T0 (candle 0 opens at T0)."""
    return nth_candle(T0, index, open_, high, low, close, symbol=symbol)


def flat(index: int, price: float, symbol: str = SYMBOL) -> Candle:
    return candle(index, price, price, price, price, symbol)


def order(
    client_order_id: str,
    side: str = "buy",
    qty: str = "2",
    *,
    type_: str = "market",
    price: str | None = None,
    at: datetime = T0,
    stop: str | None = "95",
    target: str | None = "120",
    decision_id: uuid.UUID | None = None,
) -> OrderRow:
    fields: dict[str, Any] = {
        "id": uuid.uuid5(uuid.NAMESPACE_URL, client_order_id),
        "client_order_id": client_order_id,
        "account": ACCOUNT,
        "decision_id": decision_id,
        "symbol": SYMBOL,
        "side": side,
        "type": type_,
        "qty": Decimal(qty),
        "price": Decimal(price) if price is not None else None,
        "created_at": at,
        "updated_at": at,
        "reason": "test",
        "stop_price": Decimal(stop) if stop is not None and side == "buy" else None,
        "target_price": Decimal(target) if target is not None and side == "buy" else None,
    }
    return OrderRow(**fields)


async def started(db: Database, clock: FakeClock | None = None) -> PaperBroker:
    broker = PaperBroker(SETTINGS, db, account=ACCOUNT, clock=clock or FakeClock(T0))
    await broker.start()
    return broker


async def rows(db: Database, query: str, *args: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in await db.pool.fetch(query, *args)]


async def counts(db: Database, *tables: str) -> dict[str, int]:
    """Rows per table (default: every table the broker writes)."""
    tables = tables or ("orders", "fills", "positions", "portfolio_snapshots", "broker_marks")
    return {table: await db.pool.fetchval(f"SELECT count(*) FROM {table}") for table in tables}


async def test_a_fresh_account_has_its_starting_balances(migrated_database: Database) -> None:
    broker = await started(migrated_database)
    assert broker.balances() == {"USDT": 10_000.0}
    assert broker.equity() == 10_000.0
    assert broker.positions() == {}
    assert broker.account(T0).cash == 10_000.0


async def test_a_submitted_order_fills_at_the_next_candle_and_every_row_is_stored(migrated_database: Database) -> None:
    db = migrated_database
    broker = await started(db)
    await broker.on_candle(flat(-1, 100.0))
    await broker.submit(order("a"))
    assert await order_status(db, "a") == ("open", None)
    update = await broker.on_candle(candle(0, 101.0, 102.0, 100.0, 101.5))

    (fill,) = update.fills
    assert (fill.client_fill_id, fill.qty, fill.price) == ("a:1", 2.0, 101.11)
    assert update.equity == pytest.approx(10_000.0 - 2 * 101.11 - fill.fee + 2 * 101.5)
    (order_row,) = await rows(db, "SELECT status, qty, stop_price, target_price FROM orders")
    assert order_row == {"status": "filled", "qty": Decimal("2"), "stop_price": Decimal("95"), "target_price": 120}
    (fill_row,) = await rows(db, "SELECT client_fill_id, qty, price, fee, fee_currency, liquidity, ts FROM fills")
    assert fill_row == {
        "client_fill_id": "a:1",
        "qty": Decimal("2.0"),
        "price": Decimal("101.11"),
        "fee": Decimal(repr(fill.fee)),
        "fee_currency": "USDT",
        "liquidity": "taker",
        "ts": T0,
    }
    (position,) = await stored_positions(db, ACCOUNT)
    assert (position.qty, position.avg_price, position.stop_price, position.target_price) == (2.0, 101.11, 95.0, 120.0)
    snapshots = await rows(db, "SELECT ts, equity, cash, positions, drawdown FROM portfolio_snapshots ORDER BY ts")
    assert [s["ts"] for s in snapshots] == [T0, T0 + timedelta(minutes=5)]
    last = snapshots[-1]
    assert float(last["equity"]) == pytest.approx(update.equity)
    assert float(last["cash"]) == pytest.approx(broker.balances()["USDT"])
    assert last["positions"][SYMBOL]["qty"] == 2.0
    (mark,) = await rows(db, "SELECT symbol, candle_open_time, price FROM broker_marks")
    assert mark == {"symbol": SYMBOL, "candle_open_time": T0, "price": Decimal("101.5")}


async def test_a_rejection_is_stored_with_its_reason(migrated_database: Database) -> None:
    db = migrated_database
    broker = await started(db)
    await broker.on_candle(flat(-1, 100.0))
    await broker.submit(order("sell", side="sell"))
    await broker.submit(order("tiny", qty="0.05"))
    assert await order_status(db, "sell") == ("rejected", "no BTC to sell: spot without borrowing")
    assert await order_status(db, "tiny") == (
        "rejected",
        "notional 5 USDT (0.05 at 100) is below the minimum 10 USDT of BTC/USDT (min_notional)",
    )
    assert broker.open_orders() == ()


async def test_the_coordinators_pending_order_is_settled_with_its_protective_prices(
    migrated_database: Database,
) -> None:
    db = migrated_database
    decision_id = uuid.uuid4()
    pending = order("tg-1", decision_id=decision_id)
    decision = DecisionRow(
        id=decision_id,
        run_id=None,
        account=ACCOUNT,
        symbol=SYMBOL,
        ts=T0,
        action="buy",
        confidence=0.7,
        consensus_inputs=[],
        consensus_terms={},
        consensus_result={},
        degradation_level=DegradationLevel.NORMAL,
        coordinator_state=CoordinatorState.RUNNING,
        reason="test",
        intent={"stop_price": 95.0, "target_price": 120.0},
    )
    stored = await commit_decision(db, ACCOUNT, lambda _state: DecisionWrite(decision=decision, order=pending))
    assert stored.order_stored
    assert [(o.client_order_id, o.stop_price, o.target_price) for o in await pending_orders(db, ACCOUNT)] == [
        ("tg-1", Decimal("95"), Decimal("120"))
    ]
    broker = await started(db)
    await broker.submit(pending)
    assert await pending_orders(db, ACCOUNT) == []
    await broker.on_candle(flat(0, 100.0))
    position = broker.positions()[SYMBOL]
    assert (position.stop_price, position.target_price) == (95.0, 120.0)


async def test_submitting_twice_and_replaying_a_candle_never_duplicates(migrated_database: Database) -> None:
    db = migrated_database
    broker = await started(db)
    await broker.on_candle(flat(-1, 100.0))
    await broker.submit(order("a"))
    await broker.submit(order("a"))
    assert len(broker.open_orders()) == 1
    first = await broker.on_candle(flat(0, 100.0))
    before = await counts(db)
    balances = broker.balances()
    again = await broker.on_candle(flat(0, 100.0))
    await broker.submit(order("a"))
    assert (again.fills, again.closed_trades, again.rejected) == ((), (), ())
    assert again.equity == first.equity
    assert (
        await counts(db)
        == before
        == {
            "orders": 1,
            "fills": 1,
            "positions": 1,
            "portfolio_snapshots": 2,
            "broker_marks": 1,
        }
    )
    assert broker.balances() == balances
    assert await order_status(db, "a") == ("filled", None)


async def test_a_restarted_broker_has_the_same_account(migrated_database: Database) -> None:
    db = migrated_database
    broker = await started(db)
    await broker.on_candle(flat(-1, 100.0))
    await broker.submit(order("a", qty="3"))
    await broker.on_candle(candle(0, 100.0, 101.0, 99.5, 100.5))
    await broker.submit(order("b", side="sell", qty="1", at=T0 + timedelta(minutes=5)))
    await broker.on_candle(candle(1, 101.0, 102.0, 100.0, 101.5))
    await broker.submit(order("c", qty="1", type_="limit", price="90", at=T0 + timedelta(minutes=10)))
    await broker.submit(
        order("e", side="sell", qty="1", type_="take_profit", price="130", at=T0 + timedelta(minutes=10))
    )

    restarted = await started(db)
    assert restarted.balances() == broker.balances()
    assert restarted.positions() == broker.positions()
    assert restarted.open_orders() == broker.open_orders()
    assert [o.client_order_id for o in restarted.open_orders()] == ["c", "e"]
    assert restarted.equity() == broker.equity()
    assert restarted.last_price(SYMBOL) == 101.5
    now = T0 + timedelta(minutes=15)
    assert restarted.account(now) == broker.account(now)
    assert restarted.state.ledger.peak_equity == pytest.approx(broker.state.ledger.peak_equity)

    before = await counts(db)
    assert (await restarted.on_candle(candle(1, 101.0, 102.0, 100.0, 101.5))).fills == (), "already processed"
    assert await counts(db) == before


async def test_a_stop_closes_the_position_with_a_stored_order_and_a_closed_trade(migrated_database: Database) -> None:
    db = migrated_database
    broker = await started(db)
    await broker.on_candle(flat(-1, 100.0))
    await broker.submit(order("a", stop="95", target="120"))
    await broker.on_candle(flat(0, 100.0))
    update = await broker.on_candle(candle(1, 99.0, 99.5, 94.0, 95.0))
    (trade,) = update.closed_trades
    assert trade.pnl < 0
    assert trade.closed_at == T0 + timedelta(minutes=10)
    stop_orders = await rows(db, "SELECT type, side, decision_id, status, price FROM orders WHERE type = 'stop_loss'")
    assert stop_orders == [{"type": "stop_loss", "side": "sell", "decision_id": None, "status": "filled", "price": 95}]
    assert await stored_positions(db, ACCOUNT) == []
    assert broker.positions() == {}
    assert broker.account(T0 + timedelta(minutes=10)).closed_trades == (trade,)
    assert broker.account(T0 + timedelta(minutes=9)).closed_trades == (), "not closed yet at that time"
    restarted = await started(db)
    assert restarted.account(T0 + timedelta(minutes=10)).closed_trades == (trade,)


async def test_flatten_stores_market_orders_without_a_decision_and_they_fill_at_the_next_candle(
    migrated_database: Database,
) -> None:
    db = migrated_database
    broker = await started(db)
    await broker.on_candle(flat(-1, 100.0))
    await broker.submit(order("a", qty="3"))
    await broker.on_candle(flat(0, 100.0))
    await broker.submit(order("limit", qty="1", type_="limit", price="50", at=T0 + timedelta(minutes=5)))
    now = T0 + timedelta(minutes=7)

    created = await broker.flatten(now, "halt --flatten by alice")
    (flatten,) = created
    assert (flatten.side, flatten.qty, flatten.decision_id) == ("sell", Decimal("3.000"), None)
    assert await broker.flatten(now, "again") == []
    stored = await rows(
        db, "SELECT client_order_id, status, status_reason, decision_id FROM orders ORDER BY created_at"
    )
    assert [(r["client_order_id"], r["status"], r["decision_id"]) for r in stored] == [
        ("a", "filled", None),
        ("limit", "cancelled", None),
        (flatten.client_order_id, "open", None),
    ]
    assert stored[1]["status_reason"] == "cancelled by a flatten: halt --flatten by alice"

    update = await broker.on_candle(flat(1, 99.0))
    assert [fill.client_order_id for fill in update.fills] == [flatten.client_order_id]
    assert broker.balances()["BTC"] == 0.0
    assert await stored_positions(db, ACCOUNT) == []
    assert await order_status(db, flatten.client_order_id) == ("filled", None)


async def test_calls_before_start_are_refused(migrated_database: Database) -> None:
    broker = PaperBroker(SETTINGS, migrated_database, account=ACCOUNT, clock=FakeClock(T0))
    with pytest.raises(RuntimeError, match=r"start\(\) must be awaited"):
        await broker.on_candle(flat(0, 100.0))


async def test_an_order_settled_by_a_write_whose_answer_was_lost_is_still_taken(migrated_database: Database) -> None:
    db = migrated_database
    retrying = await started(db)
    other = await started(db)
    await other.submit(order("a"))
    await retrying.submit(order("a"))
    assert [o.client_order_id for o in retrying.open_orders()] == ["a"]


async def test_a_failed_candle_write_is_held_reported_and_stored_once_with_the_next_candle(
    migrated_database: Database,
) -> None:
    db = migrated_database
    outcomes: list[bool] = []
    broker = await started(db)
    broker.on_write = outcomes.append
    await broker.on_candle(flat(-1, 100.0))
    await broker.submit(order("a"))
    await db.pool.execute("ALTER TABLE broker_marks RENAME TO broker_marks_away")
    update = await broker.on_candle(flat(0, 100.0))  # the database refuses: held, and the state moves on
    assert [fill.client_fill_id for fill in update.fills] == ["a:1"]
    assert (broker.unstored, broker.write_failures, outcomes[-1]) == (1, 1, False)
    assert await counts(db, "fills", "positions", "portfolio_snapshots") == {
        "fills": 0,
        "positions": 0,
        "portfolio_snapshots": 1,
    }
    await db.pool.execute("ALTER TABLE broker_marks_away RENAME TO broker_marks")
    await broker.on_candle(flat(1, 100.0))  # quiet, but tried at once after a failure: both candles stored
    assert (broker.unstored, broker.write_failures, outcomes[-1]) == (0, 0, True)
    assert await counts(db) == {"orders": 1, "fills": 1, "positions": 1, "portfolio_snapshots": 3, "broker_marks": 1}


async def test_quiet_candles_are_held_back_and_stored_with_the_next_candle_that_fills(
    migrated_database: Database,
) -> None:
    db = migrated_database
    broker = PaperBroker(SETTINGS, db, account=ACCOUNT, clock=FakeClock(T0), quiet_candles_per_write=10)
    await broker.start()
    for index in range(-3, 0):
        await broker.on_candle(flat(index, 100.0))
    assert await counts(db, "portfolio_snapshots", "broker_marks") == {"portfolio_snapshots": 0, "broker_marks": 0}
    await broker.submit(order("a"))
    update = await broker.on_candle(flat(0, 101.0))
    assert [fill.client_fill_id for fill in update.fills] == ["a:1"]
    assert await counts(db) == {"orders": 1, "fills": 1, "positions": 1, "portfolio_snapshots": 4, "broker_marks": 1}
    (mark,) = await rows(db, "SELECT candle_open_time FROM broker_marks")
    assert mark["candle_open_time"] == flat(0, 101.0).open_time


async def test_quiet_candles_lost_to_a_crash_are_processed_again_to_the_same_account(
    migrated_database: Database,
) -> None:
    db = migrated_database
    broker = PaperBroker(SETTINGS, db, account=ACCOUNT, clock=FakeClock(T0), quiet_candles_per_write=100)
    await broker.start()
    await broker.on_candle(flat(-1, 100.0))
    await broker.submit(order("a"))
    await broker.on_candle(flat(0, 100.0))  # fills: stored at once
    held = [flat(index, 100.0 + index) for index in range(1, 6)]
    for quiet in held:
        await broker.on_candle(quiet)
    before_crash = broker.state.ledger
    assert await counts(db, "portfolio_snapshots") == {"portfolio_snapshots": 2}

    restarted = PaperBroker(SETTINGS, db, account=ACCOUNT, clock=FakeClock(T0), quiet_candles_per_write=100)
    await restarted.start()  # the held candles' marks never reached the database
    for quiet in held:
        update = await restarted.on_candle(quiet)
        assert update.fills == ()
    assert restarted.state.ledger.balances == before_crash.balances
    assert restarted.equity() == pytest.approx(broker.equity())
    await restarted.flush()
    assert await counts(db, "portfolio_snapshots", "broker_marks") == {"portfolio_snapshots": 7, "broker_marks": 1}
    await restarted.on_candle(held[-1])  # processed already: changes nothing, holds nothing
    await restarted.flush()
    assert await counts(db, "portfolio_snapshots") == {"portfolio_snapshots": 7}


async def test_no_more_quiet_candles_are_held_than_the_bound(migrated_database: Database) -> None:
    db = migrated_database
    broker = PaperBroker(SETTINGS, db, account=ACCOUNT, clock=FakeClock(T0), quiet_candles_per_write=3)
    await broker.start()
    for index in range(5):
        await broker.on_candle(flat(index, 100.0))
    assert await counts(db, "portfolio_snapshots") == {"portfolio_snapshots": 3}
    with pytest.raises(ValueError, match="quiet_candles_per_write must be ≥ 1, got 0"):
        PaperBroker(SETTINGS, db, account=ACCOUNT, clock=FakeClock(T0), quiet_candles_per_write=0)
