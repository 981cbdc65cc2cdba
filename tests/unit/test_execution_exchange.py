"""The paper exchange: submission checks, what a candle fills, flatten and restore (``execution.exchange``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.builders import nth_candle
from triplegain.execution.exchange import (
    BrokerState,
    CandleOutcome,
    accepted,
    assess_submission,
    flatten,
    restore,
    step,
)
from triplegain.execution.settings import ExecutionSettings, FeeSchedule, MarketRules
from triplegain.market.candle import Candle
from triplegain.model import OrderRow, StoredFill

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
ACCOUNT = "paper"
SYMBOL = "BTC/USDT"
RULES = MarketRules(min_qty=0.001, qty_step=0.001, price_step=0.01, min_notional=10.0)
SETTINGS = ExecutionSettings(
    slippage_bps=10.0,
    fees={"kraken": FeeSchedule(maker_bps=16.0, taker_bps=26.0)},
    markets={SYMBOL: RULES},
)


def rules_for(symbol: str) -> MarketRules:
    return SETTINGS.rules_for(symbol)


def candle(
    index: int, open_: float, high: float, low: float, close: float, volume: float = 1_000.0, symbol: str = SYMBOL
) -> Candle:
    """The 5m candle ``index`` after T0 (candle 0 opens at T0 and closes at T0 + 5 min)."""
    return nth_candle(T0, index, open_, high, low, close, volume=volume, symbol=symbol)


def flat(index: int, price: float, symbol: str = SYMBOL) -> Candle:
    return candle(index, price, price, price, price, symbol=symbol)


def order(
    client_order_id: str,
    side: str = "buy",
    qty: str = "1",
    *,
    type_: str = "market",
    price: str | None = None,
    at: datetime = T0,
    symbol: str = SYMBOL,
    stop: str | None = None,
    target: str | None = None,
) -> OrderRow:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "client_order_id": client_order_id,
        "account": ACCOUNT,
        "decision_id": None,
        "symbol": symbol,
        "side": side,
        "type": type_,
        "qty": Decimal(qty),
        "price": Decimal(price) if price is not None else None,
        "created_at": at,
        "updated_at": at,
        "reason": "test",
        "stop_price": Decimal(stop) if stop is not None else None,
        "target_price": Decimal(target) if target is not None else None,
    }
    return OrderRow(**fields)


def fresh(balances: dict[str, float] | None = None) -> BrokerState:
    settings = SETTINGS.model_copy(update={"starting_balances": balances}) if balances else SETTINGS
    return restore(ACCOUNT, settings, settings.rules_for, (), (), (), None)


def run(
    state: BrokerState, *candles: Candle, settings: ExecutionSettings = SETTINGS
) -> tuple[BrokerState, list[CandleOutcome]]:
    outcomes = []
    for each in candles:
        outcome = step(state, each, settings, settings.rules_for)
        assert outcome is not None
        state = outcome.state
        outcomes.append(outcome)
    return state, outcomes


def submit(
    state: BrokerState, new: OrderRow, settings: ExecutionSettings = SETTINGS
) -> tuple[BrokerState, str, str | None]:
    update = assess_submission(state, new, new.created_at, settings, settings.rules_for)
    if update.status == "open":
        state = state.model_copy(update={"open_orders": (*state.open_orders, accepted(new, update))})
    return state, update.status, update.status_reason


def priced(price: float = 100.0, **balances: float) -> BrokerState:
    """A fresh account that has seen one candle of BTC/USDT (candle −1, closing at T0) at ``price``."""
    state, _ = run(fresh(balances), flat(-1, price))
    return state


# ------------------------------------------------------------------------------------------ submission


def test_an_order_within_the_rules_is_accepted() -> None:
    state, status, reason = submit(priced(), order("a", qty="2"))
    assert (status, reason) == ("open", None)
    assert [o.client_order_id for o in state.open_orders] == ["a"]


def test_the_quantity_is_floored_to_the_step_and_the_note_says_so() -> None:
    update = assess_submission(priced(), order("a", qty="1.23456"), T0, SETTINGS, rules_for)
    assert (update.status, update.qty) == ("open", Decimal("1.234"))
    assert update.status_reason == "quantity 1.23456 floored to the step 0.001: 1.234"


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        (order("a", qty="0.0009"), "quantity 0 is below the minimum 0.001 of BTC/USDT (min_qty)"),
        (
            order("a", qty="0.05"),
            "notional 5 USDT (0.05 at 100) is below the minimum 10 USDT of BTC/USDT (min_notional)",
        ),
        (order("a", side="sell"), "no BTC to sell: spot without borrowing"),
        (
            order("a", qty="200"),
            "insufficient USDT: 200 at 100.1 needs 20072.052 USDT with fees, 10000 USDT free",
        ),
        (order("a", symbol="BTC/USD"), "BTC/USD is quoted in USD, the account in USDT"),
    ],
    ids=["min_qty", "min_notional", "nothing_to_sell", "insufficient_cash", "other_quote"],
)
def test_each_rule_rejects_naming_itself_and_the_values(new: OrderRow, reason: str) -> None:
    update = assess_submission(priced(), new, T0, SETTINGS, rules_for)
    assert (update.status, update.status_reason) == ("rejected", reason)


def test_a_limit_buy_is_checked_at_its_own_price_with_the_maker_fee() -> None:
    update = assess_submission(priced(), order("a", qty="100", type_="limit", price="99.8"), T0, SETTINGS, rules_for)
    assert update.status == "open", "9980 + 0.16 % fee fits in 10000"
    update = assess_submission(priced(), order("a", qty="100", type_="limit", price="100"), T0, SETTINGS, rules_for)
    assert update.status == "rejected"


def test_without_a_price_yet_a_market_order_waits_for_its_fill_to_be_checked() -> None:
    assert assess_submission(fresh(), order("a", qty="0.05"), T0, SETTINGS, rules_for).status == "open"


def test_a_sell_larger_than_the_holding_is_reduced_to_it() -> None:
    update = assess_submission(priced(BTC=0.5, USDT=0.0), order("a", side="sell", qty="2"), T0, SETTINGS, rules_for)
    assert (update.status, update.qty) == ("open", Decimal("0.5"))
    assert update.status_reason == "reduced from 2 to the 0.5 BTC free (0.5 BTC held): spot without borrowing"


def test_open_orders_hold_what_they_will_spend() -> None:
    state, status, _ = submit(priced(BTC=1.0, USDT=0.0), order("a", side="sell", qty="1"))
    assert status == "open"
    update = assess_submission(state, order("b", side="sell", qty="1"), T0, SETTINGS, rules_for)
    assert (update.status, update.status_reason) == (
        "rejected",
        "1 BTC to sell, 1 BTC held, 1 of it for open orders: spot without borrowing",
    )
    state, status, _ = submit(priced(), order("c", qty="60"))
    assert status == "open"
    update = assess_submission(state, order("d", qty="60"), T0, SETTINGS, rules_for)
    assert update.status == "rejected", "the cash is spoken for"


def test_with_borrowing_a_sell_without_holdings_opens_a_short() -> None:
    settings = SETTINGS.model_copy(update={"allow_borrowing": True})
    state = restore(ACCOUNT, settings, rules_for, (), (), (), None)
    state, _ = run(state, flat(-1, 100.0), settings=settings)
    state, status, _ = submit(state, order("a", side="sell", qty="2", stop="110", target="90"), settings)
    assert status == "open"
    state, _ = run(state, flat(0, 100.0), settings=settings)
    short = state.ledger.positions[SYMBOL]
    assert (short.qty, short.stop_price, short.target_price) == (-2.0, 110.0, 90.0)
    assert state.ledger.balances["BTC"] == -2.0


def test_an_order_of_another_account_is_a_bug() -> None:
    with pytest.raises(ValueError, match="for account 'other'"):
        assess_submission(priced(), order("a").model_copy(update={"account": "other"}), T0, SETTINGS, rules_for)


# ------------------------------------------------------------------------------------------ candles


def test_a_market_order_fills_at_the_next_open_with_slippage_and_the_taker_fee() -> None:
    state, _, _ = submit(priced(), order("a", qty="2", stop="95", target="120"))
    state, (outcome,) = run(state, candle(0, 101.0, 102.0, 100.0, 101.5))
    (fill,) = outcome.fills
    assert (fill.client_fill_id, fill.qty, fill.price, fill.liquidity, fill.ts) == ("a:1", 2.0, 101.11, "taker", T0)
    assert fill.fee == pytest.approx(2 * 101.11 * 0.0026)
    assert state.ledger.cash == pytest.approx(10_000.0 - 2 * 101.11 - fill.fee)
    position = state.ledger.positions[SYMBOL]
    assert (position.qty, position.avg_price, position.stop_price, position.target_price) == (2.0, 101.11, 95.0, 120.0)
    assert state.open_orders == ()
    assert [(u.client_order_id, u.status) for u in outcome.write.updates] == [("a", "filled")]
    assert outcome.write.positions[0].stop_price == 95.0


def test_an_order_placed_at_a_candles_close_waits_for_the_next_candle() -> None:
    state, _, _ = submit(priced(), order("a", at=T0 + timedelta(minutes=5)))
    state, (first, second) = run(state, flat(0, 100.0), flat(1, 102.0))
    assert first.fills == ()
    assert [fill.price for fill in second.fills] == [102.11], "102 · 1.001 = 102.102, rounded up to the cent"


def test_orders_of_other_symbols_wait_for_their_own_candles() -> None:
    state, _, _ = submit(priced(), order("a", qty="1"))
    state, (outcome,) = run(state, flat(0, 2_000.0, symbol="ETH/USDT"))
    assert outcome.fills == ()
    assert len(state.open_orders) == 1


def test_a_limit_order_rests_until_a_candle_trades_through_it_and_pays_the_maker_fee() -> None:
    state, _, _ = submit(priced(), order("a", qty="1", type_="limit", price="98"))
    state, (untouched, through) = run(state, candle(0, 100.0, 101.0, 98.0, 99.0), candle(1, 99.0, 99.5, 97.5, 98.5))
    assert untouched.fills == ()
    (fill,) = through.fills
    assert (fill.price, fill.liquidity, fill.ts) == (98.0, "maker", T0 + timedelta(minutes=10))
    assert fill.fee == pytest.approx(98.0 * 0.0016)


def test_a_stop_triggered_in_the_entry_candle_closes_the_position() -> None:
    state, _, _ = submit(priced(), order("a", qty="2", stop="95", target="110"))
    state, (outcome,) = run(state, candle(0, 100.0, 111.0, 94.0, 96.0))
    entry, stop = outcome.fills
    assert stop.client_order_id == f"stop_loss:{ACCOUNT}:{SYMBOL}:{T0.isoformat()}"
    assert (stop.side, stop.qty, stop.price) == ("sell", 2.0, 94.9), "the stop (95) less 10 bps, not the target"
    (exit_order,) = outcome.write.new_orders
    assert (exit_order.type, exit_order.decision_id, exit_order.price) == ("stop_loss", None, Decimal("95.0"))
    (trade,) = outcome.closed_trades
    assert trade.pnl == pytest.approx((94.9 - entry.price) * 2 - entry.fee - stop.fee)
    assert state.ledger.positions == {}
    assert outcome.write.closed_positions == (SYMBOL,)


def test_a_target_reached_alone_takes_the_profit() -> None:
    state, _, _ = submit(priced(), order("a", qty="2", stop="95", target="110"))
    state, (_, outcome) = run(state, flat(0, 100.0), candle(1, 105.0, 112.0, 104.0, 111.0))
    (exit_fill,) = outcome.fills
    assert exit_fill.client_order_id.startswith("take_profit:")
    assert exit_fill.price == pytest.approx(109.89)
    assert outcome.closed_trades[0].pnl > 0


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    state, _, _ = submit(priced(), order("a", qty="1", stop="95"))
    state, (_, outcome) = run(state, flat(0, 100.0), candle(1, 90.0, 91.0, 89.0, 90.5))
    assert outcome.fills[0].price == pytest.approx(89.91)


def test_a_standalone_stop_order_triggers_like_an_attached_one() -> None:
    state = priced(BTC=1.0, USDT=0.0)
    state, status, _ = submit(state, order("s", side="sell", qty="1", type_="stop_loss", price="95"))
    assert status == "open"
    state, (quiet, hit) = run(state, candle(0, 100.0, 101.0, 96.0, 97.0), candle(1, 97.0, 97.0, 94.0, 95.0))
    assert quiet.fills == ()
    assert [(fill.client_fill_id, fill.price) for fill in hit.fills] == [("s:1", 94.9)]


def test_a_sell_whose_holding_went_before_its_fill_is_rejected_at_the_fill() -> None:
    state, _, _ = submit(priced(), order("buy", qty="1", stop="95"))
    state, _ = run(state, flat(0, 100.0))
    state, status, _ = submit(
        state, order("sell", side="sell", qty="1", type_="limit", price="105", at=T0 + timedelta(minutes=5))
    )
    assert status == "open"
    state, (stopped, outcome) = run(state, candle(1, 96.0, 96.0, 94.0, 95.0), candle(2, 100.0, 106.0, 99.0, 104.0))
    assert [fill.client_order_id.split(":")[0] for fill in stopped.fills] == ["stop_loss"]
    assert outcome.rejected == (("sell", "at the fill (105): no BTC to sell: spot without borrowing"),)
    assert [(u.client_order_id, u.status) for u in outcome.write.updates] == [("sell", "rejected")]
    assert state.open_orders == ()


def test_a_buy_the_cash_no_longer_covers_after_a_gap_is_reduced_at_the_fill() -> None:
    state, status, _ = submit(priced(), order("a", qty="99"))
    assert status == "open"
    state, (outcome,) = run(state, flat(0, 110.0))
    (fill,) = outcome.fills
    assert fill.qty < 99
    assert state.ledger.cash >= 0
    assert outcome.write.updates[0].qty == Decimal(repr(fill.qty))
    assert "reduced from 99 to" in (outcome.write.updates[0].status_reason or "")


def test_a_candle_already_processed_changes_nothing() -> None:
    state, _, _ = submit(priced(), order("a"))
    state, _ = run(state, flat(0, 100.0))
    assert step(state, flat(0, 100.0), SETTINGS, rules_for) is None
    assert step(state, flat(-3, 100.0), SETTINGS, rules_for) is None


def test_the_snapshot_values_the_account_at_the_close() -> None:
    state, _, _ = submit(priced(), order("a", qty="10", stop="90", target="150"))
    state, (outcome,) = run(state, candle(0, 100.0, 101.0, 99.0, 101.0))
    snapshot = outcome.write.snapshot
    fill = outcome.fills[0]
    assert snapshot.ts == T0 + timedelta(minutes=5)
    assert snapshot.cash == pytest.approx(10_000.0 - 10 * fill.price - fill.fee)
    assert snapshot.equity == pytest.approx(snapshot.cash + 10 * 101.0)
    assert snapshot.positions[SYMBOL] == {
        "qty": 10.0,
        "price": 101.0,
        "value": 1010.0,
        "avg_price": fill.price,
        "stop_price": 90.0,
        "target_price": 150.0,
        "opened_at": T0.isoformat(),
    }
    assert snapshot.drawdown == 0.0
    assert (outcome.write.mark.symbol, outcome.write.mark.price) == (SYMBOL, 101.0)


# ------------------------------------------------------------------------------------------ flatten, restore


def test_flatten_sells_every_holding_and_cancels_the_other_orders() -> None:
    state, _, _ = submit(priced(), order("buy", qty="3"))
    state, _ = run(state, flat(0, 100.0))
    state, _, _ = submit(state, order("limit", qty="1", type_="limit", price="50", at=T0 + timedelta(minutes=5)))
    later = T0 + timedelta(minutes=6)
    state, created, cancelled = flatten(state, later, "operator", SETTINGS, rules_for)
    (sell,) = created
    assert (sell.side, sell.qty, sell.decision_id, sell.status, sell.type) == (
        "sell",
        Decimal("3.000"),
        None,
        "open",
        "market",
    )
    assert sell.client_order_id == f"flatten:{ACCOUNT}:{SYMBOL}:{later.isoformat()}"
    assert [(u.client_order_id, u.status, u.status_reason) for u in cancelled] == [
        ("limit", "cancelled", "cancelled by a flatten: operator")
    ]
    again, more, none = flatten(state, later + timedelta(seconds=1), "operator", SETTINGS, rules_for)
    assert (more, none) == ((), ()), "a flatten still open is not doubled"
    state, (outcome,) = run(again, flat(1, 99.0))
    assert [fill.client_order_id for fill in outcome.fills] == [sell.client_order_id]
    assert state.ledger.balances["BTC"] == 0.0
    assert state.ledger.positions == {}


def test_restore_from_the_fills_gives_the_state_the_broker_had() -> None:
    state, _, _ = submit(priced(), order("a", qty="2", stop="90", target="130"))
    state, outcomes = run(state, flat(0, 100.0), candle(1, 100.0, 101.0, 99.0, 100.5))
    state, _, _ = submit(state, order("b", side="sell", qty="1", at=T0 + timedelta(minutes=10)))
    state, _, _ = submit(state, order("c", qty="1", type_="limit", price="80", at=T0 + timedelta(minutes=10)))
    state, more = run(state, candle(2, 101.0, 102.0, 100.0, 101.0))
    outcomes += more
    fills = [
        StoredFill(
            fill=fill,
            stop_price=90.0 if fill.client_order_id == "a" else None,
            target_price=130.0 if fill.client_order_id == "a" else None,
        )
        for outcome in outcomes
        for fill in outcome.fills
    ]
    marks = [outcome.write.mark for outcome in outcomes]
    restored = restore(ACCOUNT, SETTINGS, rules_for, fills, state.open_orders, [marks[-1]], state.ledger.peak_equity)
    assert restored.ledger.balances == state.ledger.balances
    assert restored.ledger.positions == state.ledger.positions
    assert restored.ledger.closed_trades == state.ledger.closed_trades
    assert restored.ledger.equity() == state.ledger.equity()
    assert restored.open_orders == state.open_orders
    assert restored.candles == {SYMBOL: T0 + timedelta(minutes=10)}
