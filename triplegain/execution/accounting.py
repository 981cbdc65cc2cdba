"""Spot accounting in the quote currency: balances per asset, positions, fees and realised results. Pure.

A fill of quantity q at price p with fee f on BASE/QUOTE moves two balances:

    buy    BASE += q    QUOTE −= q·p + f
    sell   BASE −= q    QUOTE += q·p − f

so, whatever the fills, cash + Σ signed q·p + Σ f stays the starting cash (property-tested): value only leaves
the account as fees. Fees are in the quote currency.

Positions, per symbol, follow the base balance (a position's quantity is the balance of its base asset):

- a fill in the position's direction (or opening one) averages its price in; its fee is kept as entry fees;
- a fill against it realises ``(p − avg) · closed · direction`` minus the entry fees of the closed part and the
  fill's own fee for that part; a fill larger than the position closes it and opens the other way with the rest;
- the trade closes when the balance left is below the market's smallest tradable quantity (dust, which stays in
  the balance and in equity) or changes sign: ``ClosedTrade.pnl`` is everything realised since it opened, after
  all its fees;
- a fill arriving while no position is open takes whatever is held (starting holdings, dust) into the new
  position at the fill's price: its result counts from then;
- stop and target come from the order that opens the position; a later order in the same direction with its own
  replaces them; a reducing order keeps them.

Everything follows from the fills in the order applied, so a restart recomputes the same state from the stored
fills. Numbers are floats; base balances are summed in decimal (from each float's shortest repr), so buying 0.1
and 0.2 and selling 0.3 leaves exactly 0, never a phantom −3e-17. Quote balances and prices are not rounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from triplegain.execution.fills import decimal, floor_qty
from triplegain.execution.settings import MarketRules
from triplegain.model import ClosedTrade, OrderSide

RECENT_CLOSED_TRADES = 100
"""Closed trades kept for the risk rules (cooldowns) and the breaker (consecutive losses)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTC/USDT`` → ``("BTC", "USDT")`` (a ccxt settle suffix such as ``:USDT`` is dropped)."""
    base, slash, rest = symbol.partition("/")
    quote = rest.partition(":")[0]
    if not slash or not base or not quote:
        raise ValueError(f"symbol {symbol!r} is not BASE/QUOTE")
    return base, quote


def tradable(qty: float, rules: MarketRules) -> bool:
    """Whether ``|qty|`` floored to the step is an order the market accepts by size (else it is dust)."""
    floored = floor_qty(abs(qty), rules.qty_step)
    return floored > 0 and floored >= decimal(rules.min_qty)


def quote_change(side: OrderSide, qty: float, price: float, fee: float) -> float:
    """What a fill does to the quote balance; the one formula both the checks and the books use."""
    return -(qty * price + fee) if side == "buy" else qty * price - fee


class Position(_Frozen):
    """An open position: signed quantity (negative is a short), average entry, protection, and its running result."""

    symbol: str = Field(min_length=1)
    qty: float = Field(description="the base balance; > 0 long, < 0 short")
    avg_price: float = Field(gt=0)
    stop_price: float | None = Field(default=None, gt=0)
    target_price: float | None = Field(default=None, gt=0)
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    entry_fees: float = Field(default=0.0, ge=0, description="fees paid on the open quantity, not yet realised")
    realized_pnl: float = Field(default=0.0, description="result of the parts already closed, after their fees")

    @model_validator(mode="after")
    def _open(self) -> Self:
        if self.qty == 0:
            raise ValueError("a position holds a non-zero quantity")
        return self

    @property
    def is_long(self) -> bool:
        return self.qty > 0

    def unrealized(self, price: float) -> float:
        """Result if closed at ``price`` without fees, entry fees included."""
        return (price - self.avg_price) * self.qty - self.entry_fees


class FillEffect(_Frozen):
    """One fill as the books need it: what, how much, at what price and fee, when, and the order's protection."""

    symbol: str
    side: OrderSide
    qty: float = Field(gt=0)
    price: float = Field(gt=0)
    fee: float = Field(ge=0)
    ts: AwareDatetime
    stop_price: float | None = None
    target_price: float | None = None


class Ledger(_Frozen):
    """Balances, positions, last prices and results of one account."""

    quote_asset: str = Field(min_length=1)
    balances: dict[str, float] = Field(description="asset → quantity")
    positions: dict[str, Position] = Field(default_factory=dict, description="symbol → its open position")
    last_prices: dict[str, float] = Field(default_factory=dict, description="symbol → its last price")
    fees_paid: float = 0.0
    closed_trades: tuple[ClosedTrade, ...] = Field(default=(), description="most recent last, bounded")
    peak_equity: float | None = Field(default=None, description="highest equity seen; None before the first")

    @classmethod
    def starting(cls, quote_asset: str, balances: Mapping[str, float]) -> Ledger:
        """A fresh account: the starting balances (the quote asset at 0 if not given)."""
        return cls(quote_asset=quote_asset, balances={quote_asset: 0.0, **balances})

    @property
    def cash(self) -> float:
        """The quote balance."""
        return self.balances.get(self.quote_asset, 0.0)

    def price_of(self, asset: str) -> float | None:
        """``asset``'s price in the quote asset: the last price of ASSET/QUOTE, else its position's entry."""
        if asset == self.quote_asset:
            return 1.0
        symbol = f"{asset}/{self.quote_asset}"
        price = self.last_prices.get(symbol)
        if price is None and symbol in self.positions:
            price = self.positions[symbol].avg_price
        return price

    def equity(self) -> float:
        """Every balance valued in the quote asset; an asset with no price yet counts 0."""
        return sum(qty * (self.price_of(asset) or 0.0) for asset, qty in self.balances.items() if qty)

    def drawdown(self) -> float:
        """Fraction of equity below its peak, 0…1."""
        peak = self.peak_equity
        if peak is None or peak <= 0:
            return 0.0
        return min(1.0, max(0.0, 1.0 - self.equity() / peak))

    def mark(self, symbol: str, price: float) -> Ledger:
        """The last price of ``symbol`` is ``price``."""
        return self.model_copy(update={"last_prices": {**self.last_prices, symbol: price}})

    def with_peak(self) -> Ledger:
        """The peak raised to the current equity when it is higher."""
        equity = self.equity()
        if self.peak_equity is not None and self.peak_equity >= equity:
            return self
        return self.model_copy(update={"peak_equity": equity})


def apply_fill(ledger: Ledger, fill: FillEffect, rules: MarketRules) -> tuple[Ledger, ClosedTrade | None]:
    """The ledger after ``fill``, and the trade it closed, if any (see the module doc).

    ``rules`` are the symbol's market rules: a balance they would not accept as an order is dust, not a position.
    """
    base, quote = split_symbol(fill.symbol)
    direction = 1 if fill.side == "buy" else -1
    held = ledger.balances.get(base, 0.0)
    new_held = float(decimal(held) + direction * decimal(fill.qty))
    balances = {
        **ledger.balances,
        base: new_held,
        quote: ledger.balances.get(quote, 0.0) + quote_change(fill.side, fill.qty, fill.price, fill.fee),
    }
    positions = dict(ledger.positions)
    position = positions.pop(fill.symbol, None)
    if position is None and held != 0:
        # Held without a position (starting holdings, dust): taken in at this fill's price.
        position = Position(symbol=fill.symbol, qty=held, avg_price=fill.price, opened_at=fill.ts, updated_at=fill.ts)
    closed: ClosedTrade | None = None
    opened: Position | None
    if position is None or (position.qty > 0) == (direction > 0):
        opened = _add(position, fill, new_held)
    else:
        opened, closed = _reduce(position, fill, new_held, rules)
    if opened is not None and tradable(opened.qty, rules):
        positions[fill.symbol] = opened
    trades = ledger.closed_trades
    if closed is not None:
        trades = (*trades, closed)[-RECENT_CLOSED_TRADES:]
    updated = ledger.model_copy(
        update={
            "balances": balances,
            "positions": positions,
            "fees_paid": ledger.fees_paid + fill.fee,
            "closed_trades": trades,
        }
    )
    return updated, closed


def _add(position: Position | None, fill: FillEffect, new_held: float) -> Position:
    """Open a position, or add to one in the same direction."""
    if position is None:
        return Position(
            symbol=fill.symbol,
            qty=new_held,
            avg_price=fill.price,
            stop_price=fill.stop_price,
            target_price=fill.target_price,
            opened_at=fill.ts,
            updated_at=fill.ts,
            entry_fees=fill.fee,
        )
    size = abs(position.qty)
    avg = (size * position.avg_price + fill.qty * fill.price) / (size + fill.qty)
    protected = fill.stop_price is not None or fill.target_price is not None
    return position.model_copy(
        update={
            "qty": new_held,
            "avg_price": avg,
            "stop_price": fill.stop_price if protected else position.stop_price,
            "target_price": fill.target_price if protected else position.target_price,
            "updated_at": max(position.updated_at, fill.ts),
            "entry_fees": position.entry_fees + fill.fee,
        }
    )


def _reduce(
    position: Position, fill: FillEffect, new_held: float, rules: MarketRules
) -> tuple[Position | None, ClosedTrade | None]:
    """Reduce, close or flip ``position`` with a fill against it; the position left and the trade closed."""
    size = abs(position.qty)
    closing = min(fill.qty, size)
    share = closing / size
    fee_share = fill.fee * closing / fill.qty
    direction = 1 if position.qty > 0 else -1
    realized = (fill.price - position.avg_price) * closing * direction - position.entry_fees * share - fee_share
    total = position.realized_pnl + realized
    at = max(position.updated_at, fill.ts)
    flipped = new_held != 0 and (new_held > 0) != (position.qty > 0)
    if not flipped and tradable(new_held, rules):
        reduced = position.model_copy(
            update={
                "qty": new_held,
                "entry_fees": position.entry_fees * (1 - share),
                "realized_pnl": total,
                "updated_at": at,
            }
        )
        return reduced, None
    closed = ClosedTrade(pnl=total, closed_at=at)
    if not flipped:
        return None, closed
    reopened = Position(
        symbol=fill.symbol,
        qty=new_held,
        avg_price=fill.price,
        stop_price=fill.stop_price,
        target_price=fill.target_price,
        opened_at=at,
        updated_at=at,
        entry_fees=fill.fee - fee_share,
    )
    return reopened, closed
