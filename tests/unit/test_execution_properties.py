"""Properties of the paper exchange over any sequence of orders and candles.

- value is conserved: cash + Σ (signed quantity × fill price) + Σ fees stays the starting cash, and each base
  balance is its start plus the signed quantities filled — value leaves the account only as fees;
- without borrowing no balance ever goes below zero;
- every fill belongs to exactly one order, and an order fills at most once, never more than its quantity.

Floats: cash is compared with a relative tolerance of 1e-9 (sums of products round differently in another order).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triplegain.execution.exchange import BrokerState, accepted, assess_submission, restore, step
from triplegain.execution.settings import ExecutionSettings, FeeSchedule, MarketRules
from triplegain.market.candle import Candle, Timeframe
from triplegain.model import FillRow, OrderRow

pytestmark = pytest.mark.timeout(240)

T0 = datetime(2024, 3, 1, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT")
RULES = MarketRules(min_qty=0.001, qty_step=0.001, price_step=0.01, min_notional=1.0)
TOLERANCE = 1e-9


@dataclass(frozen=True)
class NewOrder:
    symbol: str
    side: str
    type: str
    qty: Decimal
    price_factor: float
    stop_factor: float | None
    target_factor: float | None


@dataclass(frozen=True)
class NewCandle:
    symbol: str
    open_factor: float
    close_factor: float
    wick_up: float
    wick_down: float
    volume: float


@st.composite
def execution_settings(draw: st.DrawFn, *, borrowing: bool | None = None) -> ExecutionSettings:
    usdt = draw(st.floats(100.0, 50_000.0))
    btc = draw(st.sampled_from([0.0, 0.0, 1.5, 20.0]))
    return ExecutionSettings(
        starting_balances={"USDT": usdt, "BTC": btc} if btc else {"USDT": usdt},
        allow_borrowing=draw(st.booleans()) if borrowing is None else borrowing,
        slippage_bps=draw(st.floats(0.0, 100.0)),
        slippage_volume_bps=draw(st.sampled_from([0.0, 0.0, 1.0, 20.0])),
        fees={"kraken": FeeSchedule(maker_bps=draw(st.floats(0.0, 50.0)), taker_bps=draw(st.floats(0.0, 80.0)))},
        markets={symbol: RULES for symbol in SYMBOLS},
    )


new_orders = st.builds(
    NewOrder,
    symbol=st.sampled_from(SYMBOLS),
    side=st.sampled_from(["buy", "sell"]),
    type=st.sampled_from(["market", "market", "limit", "stop_loss", "take_profit"]),
    qty=st.decimals(min_value=Decimal("0.0005"), max_value=Decimal("60"), places=4),
    price_factor=st.floats(0.8, 1.2),
    stop_factor=st.none() | st.floats(0.8, 0.99),
    target_factor=st.none() | st.floats(1.01, 1.3),
)
new_candles = st.builds(
    NewCandle,
    symbol=st.sampled_from(SYMBOLS),
    open_factor=st.floats(0.85, 1.15),
    close_factor=st.floats(0.85, 1.15),
    wick_up=st.floats(0.0, 0.1),
    wick_down=st.floats(0.0, 0.1),
    volume=st.sampled_from([0.0, 10.0, 1_000.0, 1e6]),
)
actions = st.lists(st.one_of(new_orders, new_candles), min_size=1, max_size=40)


@dataclass
class Replay:
    """Drives the exchange through a sequence of actions, keeping every order and fill it produced."""

    settings: ExecutionSettings
    state: BrokerState = field(init=False)
    prices: dict[str, float] = field(default_factory=lambda: {"BTC/USDT": 100.0, "ETH/USDT": 20.0})
    candles: int = 0
    orders: list[OrderRow] = field(default_factory=list)
    fills: list[FillRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = restore("paper", self.settings, self.settings.rules_for, (), (), (), None)

    @property
    def now(self) -> datetime:
        return T0 + timedelta(minutes=5 * self.candles)

    def apply(self, action: NewOrder | NewCandle) -> None:
        if isinstance(action, NewCandle):
            self._candle(action)
        else:
            self._order(action)

    def _order(self, new: NewOrder) -> None:
        price = self.prices[new.symbol]
        long = new.side == "buy"
        stop = new.stop_factor if long else (2 - new.stop_factor if new.stop_factor else None)
        target = new.target_factor if long else (2 - new.target_factor if new.target_factor else None)
        order = OrderRow(
            id=uuid.uuid4(),
            client_order_id=f"o{len(self.orders)}",
            account="paper",
            decision_id=None,
            symbol=new.symbol,
            side=new.side,
            type=new.type,
            qty=new.qty,
            price=None if new.type == "market" else Decimal(repr(round(price * new.price_factor, 2))),
            created_at=self.now,
            updated_at=self.now,
            reason="property",
            stop_price=Decimal(repr(round(price * stop, 2))) if stop else None,
            target_price=Decimal(repr(round(price * target, 2))) if target else None,
        )
        self.orders.append(order)
        update = assess_submission(self.state, order, self.now, self.settings, self.settings.rules_for)
        if update.status == "open":
            self.state = self.state.model_copy(
                update={"open_orders": (*self.state.open_orders, accepted(order, update))}
            )

    def _candle(self, new: NewCandle) -> None:
        previous = self.prices[new.symbol]
        open_, close = previous * new.open_factor, previous * new.open_factor * new.close_factor
        candle = Candle(
            symbol=new.symbol,
            timeframe=Timeframe.M5,
            open_time=self.now,
            open=open_,
            high=max(open_, close) * (1 + new.wick_up),
            low=min(open_, close) * (1 - new.wick_down),
            close=close,
            volume=new.volume,
        )
        self.candles += 1
        outcome = step(self.state, candle, self.settings, self.settings.rules_for)
        assert outcome is not None
        self.state = outcome.state
        self.prices[new.symbol] = close
        self.orders.extend(outcome.write.new_orders)
        self.fills.extend(outcome.fills)


def check_conservation(replay: Replay) -> None:
    ledger, start = replay.state.ledger, replay.settings.starting_balances
    traded = sum((f.qty * f.price if f.side == "buy" else -f.qty * f.price) for f in replay.fills)
    fees = sum(f.fee for f in replay.fills)
    scale = start["USDT"] + sum(abs(f.qty * f.price) for f in replay.fills)
    assert ledger.cash + traded + fees == pytest.approx(start["USDT"], rel=0, abs=TOLERANCE * scale)
    assert ledger.fees_paid == pytest.approx(fees, rel=TOLERANCE, abs=1e-12)
    for asset in ("BTC", "ETH"):
        moved = sum((f.qty if f.side == "buy" else -f.qty) for f in replay.fills if f.symbol.startswith(f"{asset}/"))
        assert ledger.balances.get(asset, 0.0) == pytest.approx(start.get(asset, 0.0) + moved, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(execution_settings(), actions)
def test_value_is_conserved_but_for_fees(execution: ExecutionSettings, steps: list[NewOrder | NewCandle]) -> None:
    replay = Replay(execution)
    for action in steps:
        replay.apply(action)
        check_conservation(replay)


@settings(max_examples=200, deadline=None)
@given(execution_settings(borrowing=False), actions)
def test_no_balance_goes_negative_without_borrowing(
    execution: ExecutionSettings, steps: list[NewOrder | NewCandle]
) -> None:
    replay = Replay(execution)
    for action in steps:
        replay.apply(action)
        negative = {asset: qty for asset, qty in replay.state.ledger.balances.items() if qty < 0}
        assert not negative, f"negative balances {negative} after {action}"
        for position in replay.state.ledger.positions.values():
            assert position.qty > 0, "spot without borrowing holds no short"


@settings(max_examples=200, deadline=None)
@given(execution_settings(), actions)
def test_every_fill_belongs_to_exactly_one_order(
    execution: ExecutionSettings, steps: list[NewOrder | NewCandle]
) -> None:
    replay = Replay(execution)
    for action in steps:
        replay.apply(action)
    by_id: dict[uuid.UUID, list[OrderRow]] = {}
    for order in replay.orders:
        by_id.setdefault(order.id, []).append(order)
    assert len({order.client_order_id for order in replay.orders}) == len(replay.orders)
    filled: dict[str, int] = {}
    for fill in replay.fills:
        owners = by_id.get(fill.order_id, [])
        assert len(owners) == 1, f"fill {fill.client_fill_id} belongs to {len(owners)} orders"
        (owner,) = owners
        assert (fill.client_order_id, fill.symbol, fill.side) == (owner.client_order_id, owner.symbol, owner.side)
        assert Decimal(repr(fill.qty)) <= owner.qty
        filled[owner.client_order_id] = filled.get(owner.client_order_id, 0) + 1
    assert all(count == 1 for count in filled.values()), "an order fills at most once"
    assert len({fill.client_fill_id for fill in replay.fills}) == len(replay.fills)
    waiting = {order.client_order_id for order in replay.state.open_orders}
    assert not waiting & set(filled), "a filled order is no longer open"
