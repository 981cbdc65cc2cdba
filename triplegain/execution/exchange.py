"""The paper exchange: what happens to an order at submission, at each candle, and in a flatten. Pure.

    assess_submission(state, order, now, …)  the order's status at submission: open, or rejected naming the rule
                                             and values
    step(state, candle, …)                   everything one candle does (``CandleOutcome``); None for a candle
                                             already seen
    flatten(state, now, reason, …)           market orders closing every holding, every other open order cancelled
    restore(…)                               the state recomputed from the stored fills, open orders and marks

A candle works on the orders of its symbol that existed before it closed (an order placed at a candle's close
waits for the next candle), in this order:

1. market orders fill at the open ± slippage (``fills``), oldest first;
2. limit orders the candle traded through, oldest first;
3. the position's stop or target — the stop when the candle reached both (``fills`` explains why) — then
   standalone stop-loss orders, then take-profit orders;
4. the close becomes the symbol's last price; the equity peak, the snapshot and the mark follow.

Checks, at submission against the last price and what other open orders hold, and again at the fill against
the fill price and the balances alone (first come, first served):

- the symbol must be quoted in the account's quote asset;
- the quantity, floored to the market's step, must reach ``min_qty``, and its notional ``min_notional``;
- spot (no borrowing): a sell needs the base asset — none held is rejected ("no BTC to sell: spot without
  borrowing"), less than ordered reduces the order to what is free; a buy needs the quote for quantity × price
  plus fee and slippage — short at submission is rejected, short at the fill (the price moved) reduces the order
  to what the cash buys, or rejects it when that is below the minimums;
- borrowing: no order while equity is not positive.

Fills are whole: an order fills completely in one candle, or not at all (no partial fills). A fill's client id
is ``<client_order_id>:1``; the broker's own orders have deterministic client ids too (``stop_loss:…``,
``take_profit:…``, ``flatten:…``), so a candle or a flatten computed again writes the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from triplegain.execution.accounting import (
    FillEffect,
    Ledger,
    Position,
    apply_fill,
    quote_change,
    split_symbol,
    tradable,
)
from triplegain.execution.fills import (
    BPS,
    ExitKind,
    attached_exit,
    decimal,
    fee,
    floor_qty,
    limit_fill_price,
    round_price,
    taker_price,
    trigger_reference,
)
from triplegain.execution.settings import ExecutionSettings, MarketRules
from triplegain.market.candle import Candle
from triplegain.model import (
    CandleWrite,
    ClosedTrade,
    FillRow,
    Liquidity,
    MarkRow,
    OrderRow,
    OrderSide,
    OrderUpdate,
    PortfolioSnapshotRow,
    PositionRow,
    StoredFill,
)

ORDER_NAMESPACE = uuid.UUID("0b5e7c1a-93d4-4f0e-b6a2-2d8c4e6f1a37")
"""Namespace of the ids of the broker's own orders and of fills: uuid5 of the client id."""

RulesFor = Callable[[str], MarketRules]
"""A symbol's market rules."""


class BrokerState(BaseModel):
    """The paper account: its books, the orders waiting for a candle, and the last candle seen per symbol."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str = Field(min_length=1)
    ledger: Ledger
    open_orders: tuple[OrderRow, ...] = Field(default=(), description="accepted, not yet filled; oldest first")
    candles: dict[str, AwareDatetime] = Field(
        default_factory=dict, description="symbol → open time of the last candle processed"
    )


@dataclass(frozen=True)
class CandleOutcome:
    """What one candle did: the next state, the rows to store, and what the coordinator hears of it."""

    state: BrokerState
    write: CandleWrite
    fills: tuple[FillRow, ...]
    closed_trades: tuple[ClosedTrade, ...]
    rejected: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sized:
    """The quantity an order may trade (None: rejected) and why: the rejection, or a note on a change."""

    qty: Decimal | None
    reason: str | None = None


def executable_quantity(
    order: OrderRow,
    price: float | None,
    ledger: Ledger,
    settings: ExecutionSettings,
    rules: MarketRules,
    *,
    liquidity: Liquidity,
    at_fill: bool,
    reserved_quote: float = 0.0,
    reserved_base: float = 0.0,
) -> Sized:
    """The checks of the module docstring for ``order`` at ``price`` (None: no price known yet, so the checks
    that need one wait for the fill). ``at_fill``: ``price`` is the fill's own (slippage included)."""
    try:
        base, quote = split_symbol(order.symbol)
    except ValueError as exc:
        return Sized(None, str(exc))
    if quote != ledger.quote_asset:
        return Sized(None, f"{order.symbol} is quoted in {quote}, the account in {ledger.quote_asset}")
    qty = floor_qty(order.qty, rules.qty_step)
    notes = [] if qty == order.qty else [f"quantity {_q(order.qty)} floored to the step {rules.qty_step:g}: {_q(qty)}"]
    problem = _size_problem(qty, price, order.symbol, quote, rules)
    if problem is not None:
        return Sized(None, problem)
    if settings.allow_borrowing:
        equity = ledger.equity()
        if equity <= 0:
            return Sized(None, f"equity {equity:.8g} {quote} is not positive: no order while borrowing")
    elif order.side == "sell":
        held = ledger.balances.get(base, 0.0)
        if not tradable(held, rules) or held < 0:
            return Sized(None, f"no {base} to sell: spot without borrowing")
        free = held - reserved_base
        if decimal(free) < qty:
            available = floor_qty(max(free, 0.0), rules.qty_step)
            holding = f"{held:.8g} {base} held" + (
                f", {reserved_base:.8g} of it for open orders" if reserved_base else ""
            )
            if available <= 0 or _size_problem(available, price, order.symbol, quote, rules) is not None:
                return Sized(None, f"{_q(qty)} {base} to sell, {holding}: spot without borrowing")
            notes.append(
                f"reduced from {_q(qty)} to the {_q(available)} {base} free ({holding}): spot without borrowing"
            )
            qty = available
    elif price is not None:
        free_cash = ledger.cash - reserved_quote
        unit = price if at_fill or liquidity == "maker" else price * (1 + settings.slippage_bps / BPS)
        if ledger.cash + _buy_change(qty, unit, liquidity, settings) - reserved_quote < 0:
            need = -_buy_change(qty, unit, liquidity, settings)
            shortfall = f"{_q(qty)} at {unit:.8g} needs {need:.8g} {quote} with fees, {free_cash:.8g} {quote} free"
            if not at_fill:
                return Sized(None, f"insufficient {quote}: {shortfall}")
            affordable = _affordable(ledger.cash, unit, liquidity, settings, rules)
            if affordable <= 0 or _size_problem(affordable, price, order.symbol, quote, rules) is not None:
                return Sized(None, f"insufficient {quote}: {shortfall}")
            notes.append(f"reduced from {_q(qty)} to {_q(affordable)}, what the {quote} buys at {unit:.8g}")
            qty = affordable
    return Sized(qty, "; ".join(notes) or None)


def assess_submission(
    state: BrokerState, order: OrderRow, now: datetime, settings: ExecutionSettings, rules_for: RulesFor
) -> OrderUpdate:
    """The status an order gets at submission: ``open`` (with its accepted quantity) or ``rejected``."""
    if order.account != state.account:
        raise ValueError(f"order {order.client_order_id} is for account {order.account!r}, not {state.account!r}")
    at = max(now, order.created_at)
    ledger = state.ledger
    price = float(order.price) if order.price is not None else ledger.last_prices.get(order.symbol)
    reserved_quote, reserved_base = _reserved(state, settings, exclude=order.client_order_id)
    base = order.symbol.partition("/")[0]
    sized = executable_quantity(
        order,
        price,
        ledger,
        settings,
        rules_for(order.symbol),
        liquidity=Liquidity.MAKER if order.type == "limit" else Liquidity.TAKER,
        at_fill=False,
        reserved_quote=reserved_quote,
        reserved_base=reserved_base.get(base, 0.0),
    )
    if sized.qty is None:
        return OrderUpdate(
            client_order_id=order.client_order_id, status="rejected", updated_at=at, status_reason=sized.reason
        )
    return OrderUpdate(
        client_order_id=order.client_order_id,
        status="open",
        updated_at=at,
        status_reason=sized.reason,
        qty=sized.qty if sized.qty != order.qty else None,
    )


def accepted(order: OrderRow, update: OrderUpdate) -> OrderRow:
    """``order`` as ``update`` leaves it."""
    changes: dict[str, object] = {"status": update.status, "updated_at": update.updated_at}
    if update.qty is not None:
        changes["qty"] = update.qty
    return order.model_copy(update=changes)


def step(state: BrokerState, candle: Candle, settings: ExecutionSettings, rules_for: RulesFor) -> CandleOutcome | None:
    """Everything ``candle`` does to the account (see the module docstring); None when a candle of its symbol at
    or after its open time was processed already (a retry or a replay: nothing fills twice)."""
    last = state.candles.get(candle.symbol)
    if last is not None and candle.open_time <= last:
        return None
    return _CandleRun(state, candle, settings, rules_for(candle.symbol)).run()


def flatten(
    state: BrokerState, now: datetime, reason: str, settings: ExecutionSettings, rules_for: RulesFor
) -> tuple[BrokerState, tuple[OrderRow, ...], tuple[OrderUpdate, ...]]:
    """A market order closing each holding (a sell of every base balance, a buy back of every short) and every
    other open order cancelled; the new state, the new orders and the cancellations.

    A symbol whose flatten order is still open gets no second one; a holding too small to trade is left as dust.
    """
    ledger = state.ledger
    waiting = tuple(order for order in state.open_orders if _is_flatten(order))
    cancelled = tuple(
        OrderUpdate(
            client_order_id=order.client_order_id,
            status="cancelled",
            updated_at=max(now, order.created_at),
            status_reason=f"cancelled by a flatten: {reason}",
        )
        for order in state.open_orders
        if not _is_flatten(order)
    )
    covered = {order.symbol for order in waiting}
    created: list[OrderRow] = []
    for asset, held in sorted(ledger.balances.items()):
        symbol = f"{asset}/{ledger.quote_asset}"
        rules = rules_for(symbol)
        if asset == ledger.quote_asset or symbol in covered or not tradable(held, rules):
            continue
        client_order_id = f"flatten:{state.account}:{symbol}:{now.isoformat()}"
        created.append(
            OrderRow(
                id=uuid.uuid5(ORDER_NAMESPACE, client_order_id),
                client_order_id=client_order_id,
                account=state.account,
                decision_id=None,
                symbol=symbol,
                side="sell" if held > 0 else "buy",
                type="market",
                qty=floor_qty(abs(held), rules.qty_step),
                status="open",
                created_at=now,
                updated_at=now,
                reason=f"flatten: {reason}",
            )
        )
    new_state = state.model_copy(update={"open_orders": (*waiting, *created)})
    return new_state, tuple(created), cancelled


def restore(
    account: str,
    settings: ExecutionSettings,
    rules_for: RulesFor,
    fills: Iterable[StoredFill],
    open_orders: Sequence[OrderRow],
    marks: Iterable[MarkRow],
    peak_equity: float | None,
) -> BrokerState:
    """The state a broker had: starting balances plus every fill in the order applied, then the marks."""
    ledger = Ledger.starting(settings.quote_asset, settings.starting_balances)
    for stored in fills:
        row = stored.fill
        effect = FillEffect(
            symbol=row.symbol,
            side=row.side,
            qty=row.qty,
            price=row.price,
            fee=row.fee,
            ts=row.ts,
            stop_price=stored.stop_price,
            target_price=stored.target_price,
        )
        ledger, _ = apply_fill(ledger, effect, rules_for(row.symbol))
    candles: dict[str, datetime] = {}
    for mark in marks:
        ledger = ledger.mark(mark.symbol, mark.price)
        candles[mark.symbol] = mark.candle_open_time
    ledger = ledger.model_copy(update={"peak_equity": peak_equity})
    return BrokerState(account=account, ledger=ledger, open_orders=tuple(open_orders), candles=candles)


def free_cash(state: BrokerState, settings: ExecutionSettings) -> float:
    """The quote balance less what open buy orders would spend (at their limit or trigger, else the last price)."""
    return state.ledger.cash - _reserved(state, settings)[0]


def holdings_json(ledger: Ledger) -> dict[str, JsonValue]:
    """Every non-quote holding by symbol: quantity, price, value, and the position's entry and protection."""
    held: dict[str, JsonValue] = {}
    for asset, qty in sorted(ledger.balances.items()):
        if asset == ledger.quote_asset or qty == 0:
            continue
        symbol = f"{asset}/{ledger.quote_asset}"
        price = ledger.price_of(asset)
        entry: dict[str, JsonValue] = {"qty": qty, "price": price, "value": qty * price if price else None}
        position = ledger.positions.get(symbol)
        if position is not None:
            entry |= {
                "avg_price": position.avg_price,
                "stop_price": position.stop_price,
                "target_price": position.target_price,
                "opened_at": position.opened_at.isoformat(),
            }
        held[symbol] = entry
    return held


def position_row(account: str, position: Position) -> PositionRow:
    """The ``positions`` row of ``position``."""
    return PositionRow(
        account=account,
        symbol=position.symbol,
        qty=position.qty,
        avg_price=position.avg_price,
        stop_price=position.stop_price,
        target_price=position.target_price,
        opened_at=position.opened_at,
        updated_at=position.updated_at,
    )


@dataclass
class _CandleRun:
    """One candle's work on local copies; ``run`` returns it all (the state passed in is never changed)."""

    state: BrokerState
    candle: Candle
    settings: ExecutionSettings
    rules: MarketRules
    ledger: Ledger = field(init=False)
    waiting: list[OrderRow] = field(init=False)
    new_orders: list[OrderRow] = field(default_factory=list)
    updates: list[OrderUpdate] = field(default_factory=list)
    fills: list[FillRow] = field(default_factory=list)
    closed: list[ClosedTrade] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ledger = self.state.ledger.mark(self.candle.symbol, self.candle.open)
        self.waiting = list(self.state.open_orders)

    def run(self) -> CandleOutcome:
        candle = self.candle
        due = [
            order for order in self.waiting if order.symbol == candle.symbol and candle.close_time > order.created_at
        ]
        for order in (order for order in due if order.type == "market"):
            self._take(order)
            self._execute(order, candle.open, Liquidity.TAKER, max(candle.open_time, order.created_at))
        for order in (order for order in due if order.type == "limit"):
            assert order.price is not None
            price = limit_fill_price(order.side, float(order.price), candle)
            if price is not None:
                self._take(order)
                self._execute(order, price, Liquidity.MAKER, candle.close_time)
        self._attached_exit()
        for kind in (ExitKind.STOP_LOSS, ExitKind.TAKE_PROFIT):
            for order in (order for order in due if order.type == kind.value):
                assert order.price is not None
                reference = trigger_reference(kind, order.side, float(order.price), candle)
                if reference is not None:
                    self._take(order)
                    self._execute(order, reference, Liquidity.TAKER, candle.close_time)
        return self._outcome()

    def _take(self, order: OrderRow) -> None:
        self.waiting.remove(order)

    def _attached_exit(self) -> None:
        candle = self.candle
        position = self.ledger.positions.get(candle.symbol)
        if position is None:
            return
        hit = attached_exit(position.qty, position.stop_price, position.target_price, candle)
        if hit is None:
            return
        kind, trigger, reference = hit
        qty = floor_qty(abs(position.qty), self.rules.qty_step)
        if qty <= 0:
            return
        client_order_id = f"{kind.value}:{self.state.account}:{candle.symbol}:{candle.open_time.isoformat()}"
        direction = "long" if position.is_long else "short"
        what = "stop-loss" if kind is ExitKind.STOP_LOSS else "take-profit"
        order = OrderRow(
            id=uuid.uuid5(ORDER_NAMESPACE, client_order_id),
            client_order_id=client_order_id,
            account=self.state.account,
            decision_id=None,
            symbol=candle.symbol,
            side="sell" if position.is_long else "buy",
            type=kind.value,
            qty=qty,
            price=decimal(trigger),
            status="open",
            created_at=candle.close_time,
            updated_at=candle.close_time,
            reason=f"{what} of the {direction} position at {trigger:.8g}",
        )
        self.new_orders.append(order)
        self._execute(order, reference, Liquidity.TAKER, candle.close_time)

    def _execute(self, order: OrderRow, reference: float, liquidity: Liquidity, ts: datetime) -> None:
        """Fill ``order`` from the market at ``reference`` (a maker's own price), or reject it at the fill."""
        side: OrderSide = order.side
        if liquidity == "taker":
            price = taker_price(side, reference, float(order.qty), self.candle.volume, self.settings, self.rules)
        else:
            price = round_price(reference, self.rules.price_step, side)
        sized = executable_quantity(
            order, price, self.ledger, self.settings, self.rules, liquidity=liquidity, at_fill=True
        )
        if sized.qty is None:
            reason = f"at the fill ({price:.8g}): {sized.reason}"
            self.updates.append(
                OrderUpdate(
                    client_order_id=order.client_order_id, status="rejected", updated_at=ts, status_reason=reason
                )
            )
            self.rejected.append((order.client_order_id, reason))
            return
        qty = float(sized.qty)
        paid = fee(qty * price, liquidity, self.settings.fee_schedule)
        quote = self.ledger.quote_asset
        client_fill_id = f"{order.client_order_id}:1"
        self.fills.append(
            FillRow(
                id=uuid.uuid5(ORDER_NAMESPACE, client_fill_id),
                order_id=order.id,
                client_order_id=order.client_order_id,
                client_fill_id=client_fill_id,
                account=order.account,
                symbol=order.symbol,
                side=side,
                qty=qty,
                price=price,
                fee=paid,
                fee_currency=quote,
                liquidity=liquidity,
                ts=ts,
            )
        )
        effect = FillEffect(
            symbol=order.symbol,
            side=side,
            qty=qty,
            price=price,
            fee=paid,
            ts=ts,
            stop_price=float(order.stop_price) if order.stop_price is not None else None,
            target_price=float(order.target_price) if order.target_price is not None else None,
        )
        self.ledger, closed = apply_fill(self.ledger, effect, self.rules)
        if closed is not None:
            self.closed.append(closed)
        self.updates.append(
            OrderUpdate(
                client_order_id=order.client_order_id,
                status="filled",
                updated_at=ts,
                status_reason=sized.reason,
                qty=sized.qty if sized.qty != order.qty else None,
            )
        )

    def _outcome(self) -> CandleOutcome:
        candle, account = self.candle, self.state.account
        ledger = self.ledger.mark(candle.symbol, candle.close).with_peak()
        state = self.state.model_copy(
            update={
                "ledger": ledger,
                "open_orders": tuple(self.waiting),
                "candles": {**self.state.candles, candle.symbol: candle.open_time},
            }
        )
        position = ledger.positions.get(candle.symbol)
        write = CandleWrite(
            account=account,
            new_orders=tuple(self.new_orders),
            updates=tuple(self.updates),
            fills=tuple(self.fills),
            positions=(position_row(account, position),) if position is not None else (),
            closed_positions=() if position is not None else (candle.symbol,),
            snapshot=PortfolioSnapshotRow(
                account=account,
                ts=candle.close_time,
                equity=ledger.equity(),
                cash=ledger.cash,
                positions=holdings_json(ledger),
                drawdown=ledger.drawdown(),
            ),
            mark=MarkRow(account=account, symbol=candle.symbol, candle_open_time=candle.open_time, price=candle.close),
        )
        return CandleOutcome(
            state=state,
            write=write,
            fills=tuple(self.fills),
            closed_trades=tuple(self.closed),
            rejected=tuple(self.rejected),
        )


def _buy_change(qty: Decimal, price: float, liquidity: Liquidity, settings: ExecutionSettings) -> float:
    """What buying ``qty`` at ``price`` does to the quote balance, fee included."""
    amount = float(qty)
    return quote_change(OrderSide.BUY, amount, price, fee(amount * price, liquidity, settings.fee_schedule))


def _affordable(
    cash: float, price: float, liquidity: Liquidity, settings: ExecutionSettings, rules: MarketRules
) -> Decimal:
    """The largest quantity on the step grid that ``cash`` buys at ``price`` with the fee."""
    bps = settings.fee_schedule.maker_bps if liquidity == "maker" else settings.fee_schedule.taker_bps
    qty = floor_qty(max(cash, 0.0) / (price * (1 + bps / BPS)), rules.qty_step)
    step = decimal(rules.qty_step)
    while qty > 0 and cash + _buy_change(qty, price, liquidity, settings) < 0:
        qty -= step  # the float division may round a step too far
    return max(qty, Decimal(0))


def _size_problem(qty: Decimal, price: float | None, symbol: str, quote: str, rules: MarketRules) -> str | None:
    """Why ``qty`` (at ``price``, when known) is too small an order for the market, or None."""
    if qty <= 0 or qty < decimal(rules.min_qty):
        return f"quantity {_q(qty)} is below the minimum {rules.min_qty:g} of {symbol} (min_qty)"
    if price is not None and float(qty) * price < rules.min_notional:
        notional = float(qty) * price
        return (
            f"notional {notional:.8g} {quote} ({_q(qty)} at {price:.8g}) is below the minimum "
            f"{rules.min_notional:g} {quote} of {symbol} (min_notional)"
        )
    return None


def _reserved(state: BrokerState, settings: ExecutionSettings, exclude: str = "") -> tuple[float, dict[str, float]]:
    """What open orders would spend: quote for buys (estimated with the taker fee and slippage), base for sells."""
    ledger = state.ledger
    quote = 0.0
    base: dict[str, float] = {}
    markup = 1 + (settings.slippage_bps + settings.fee_schedule.taker_bps) / BPS
    for order in state.open_orders:
        if order.client_order_id == exclude:
            continue
        if order.side == "sell":
            asset = order.symbol.partition("/")[0]
            base[asset] = base.get(asset, 0.0) + float(order.qty)
            continue
        price = float(order.price) if order.price is not None else ledger.last_prices.get(order.symbol)
        if price is not None:
            quote += float(order.qty) * price * markup
    return quote, base


def _is_flatten(order: OrderRow) -> bool:
    return order.decision_id is None and order.client_order_id.startswith("flatten:")


def _q(qty: Decimal) -> str:
    """A quantity without exponent or trailing zeros: 0.00012, 3."""
    return format(qty.normalize(), "f")
