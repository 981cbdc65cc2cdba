"""A run's results as a trader reads them, computed from the stored rows by pure functions.

    results(fills, equity, prices, events, starting_equity, dust) -> Results

**Round trips.** A symbol's fills, in the order the broker applied them, are replayed on a position of average
cost, the way the paper broker's books keep it (``execution.accounting``): a trip opens when a fill finds no
position, a fill against the position realises
``(price − average entry) × quantity × direction`` less the entry fees of the part closed and the fill's own
fee, and the trip closes when what is left is dust (below ``dust``, the market's smallest order) or the position
changes side (the rest opens the next trip).
A trip's P&L is after every fee; its entry and exit are the average prices in and out; its exit reason is that of
the order that closed it: ``stop`` (a stop-loss), ``target`` (a take-profit), ``flatten`` (an operator's
``halt --flatten``), ``breaker`` (a flatten the circuit breaker asked for), ``signal`` (a decision's order). A
trip still open at the end is marked at the symbol's last price (``open``) and counted apart.

**Figures**, per symbol and in total, over the closed trips: win rate (P&L > 0), profit factor (gross profit /
gross loss; None without a loss), average win and average loss, expectancy (the mean P&L of a trip), fees paid
(absolute and as a share of the starting equity), turnover (the notional of every fill, and as a multiple of the
starting equity), time in market (the share of the period with a position open; in total, with any).

**Equity.** From the portfolio snapshots: the deepest drawdown from a running peak (in % of that peak, with the
peak's and trough's times) and the longest time under water (from a peak until equity is back to it, or the end).
Sharpe and Sortino ratios on daily returns: each UTC day's last equity against the day before's (the first day
against the starting equity), annualised by √365 (crypto trades every day): Sharpe = mean / sample standard
deviation, Sortino = mean / downside deviation (√ of the mean of min(r, 0)² over every day). None with fewer
than two days, or no dispersion.

**Buy and hold** over the same candles: the starting equity split equally across the symbols at their first
price, valued at their last.

**Events**: breaker trips and resets, the coordinator's commands applied (pause, resume, halt — an operator's or
a breaker's) and degradation level changes, with their times and causes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")
DAYS_PER_YEAR = 365
"""Sharpe and Sortino are annualised with √365: a crypto market trades every day."""


class ExitReason(StrEnum):
    STOP = "stop"
    TARGET = "target"
    SIGNAL = "signal"
    BREAKER = "breaker"
    FLATTEN = "flatten"
    OPEN = "open"


class ResultFill(BaseModel):
    """A fill with what the results need of its order."""

    model_config = _FROZEN

    symbol: str
    side: str = Field(description="buy or sell")
    qty: float = Field(gt=0)
    price: float = Field(gt=0)
    fee: float = Field(ge=0)
    ts: AwareDatetime
    order_type: str = Field(description="market, limit, stop_loss or take_profit")
    from_decision: bool = Field(description="the order was a decision's")
    order_reason: str = Field(description="the order's reason; a flatten's names who asked for it")

    @property
    def exit_reason(self) -> ExitReason:
        """Why a trip this fill closes ended."""
        if self.order_type == "stop_loss":
            return ExitReason.STOP
        if self.order_type == "take_profit":
            return ExitReason.TARGET
        if self.from_decision:
            return ExitReason.SIGNAL
        return ExitReason.BREAKER if self.order_reason.startswith("flatten: breaker:") else ExitReason.FLATTEN


class ResultEvent(BaseModel):
    """A breaker trip or reset, an applied command, or a level change."""

    model_config = _FROZEN

    ts: AwareDatetime
    kind: str = Field(description="breaker trip, breaker reset, pause, resume, halt, level change")
    what: str = Field(description="the rule, the command and who gave it, or the levels")
    cause: str


class RoundTrip(BaseModel):
    model_config = _FROZEN

    symbol: str
    side: str = Field(description="long or short")
    quantity: float = Field(description="the largest size held")
    entry: float = Field(description="average entry price")
    exit: float | None = Field(description="average exit price; None when nothing was closed")
    opened_at: AwareDatetime
    closed_at: AwareDatetime | None = Field(description="None while open")
    pnl: float = Field(description="after every fee; an open trip's at the last price")
    fees: float
    reason: ExitReason

    @property
    def duration(self) -> timedelta | None:
        return None if self.closed_at is None else self.closed_at - self.opened_at


class TradeStats(BaseModel):
    """Figures of closed trips (of one symbol, or in total)."""

    model_config = _FROZEN

    closed: int
    open: int
    wins: int
    losses: int
    win_rate: float | None = Field(description="share of closed trips with a P&L > 0")
    net_pnl: float
    gross_profit: float
    gross_loss: float = Field(description="≤ 0")
    profit_factor: float | None = Field(description="gross profit / |gross loss|; None without a loss")
    average_win: float | None
    average_loss: float | None
    expectancy: float | None = Field(description="mean P&L of a closed trip")
    fees: float = Field(description="every fee paid, open trips' included")
    turnover: float = Field(description="notional of every fill")
    time_in_market: float | None = Field(description="share of the period with a position open")
    exits: dict[str, int] = Field(description="closed trips by exit reason")


class Drawdown(BaseModel):
    model_config = _FROZEN

    max_pct: float = Field(description="deepest fall from a running peak, % of the peak")
    peak_at: AwareDatetime | None
    trough_at: AwareDatetime | None
    longest_underwater: timedelta = Field(description="longest time from a peak until equity is back to it")


class Results(BaseModel):
    """Everything ``triplegain results`` prints."""

    model_config = _FROZEN

    starting_equity: float
    final_equity: float | None
    period_start: AwareDatetime | None
    period_end: AwareDatetime | None
    trips: tuple[RoundTrip, ...]
    by_symbol: dict[str, TradeStats]
    total: TradeStats
    fees_pct_of_start: float | None
    turnover_multiple: float | None = Field(description="turnover / starting equity")
    drawdown: Drawdown
    sharpe: float | None
    sortino: float | None
    daily_returns: int = Field(description="days the ratios are computed over")
    buy_and_hold: float | None = Field(description="equity of buy-and-hold at the end")
    events: tuple[ResultEvent, ...]


def round_trips(
    fills: Sequence[ResultFill], last_prices: Mapping[str, float], dust: Mapping[str, float]
) -> list[RoundTrip]:
    """Every symbol's round trips, in the order they opened (see the module docstring)."""
    trips: list[RoundTrip] = []
    for symbol in sorted({fill.symbol for fill in fills}):
        trips.extend(_trips_of(symbol, [f for f in fills if f.symbol == symbol], last_prices, dust.get(symbol, 0.0)))
    return sorted(trips, key=lambda trip: (trip.opened_at, trip.symbol))


class _Open:
    """A trip being replayed: signed quantity, average entry, fees on the open part, and what was realised."""

    def __init__(self, fill: ResultFill, qty: float, fee: float) -> None:
        self.direction = 1 if qty > 0 else -1
        self.qty = qty
        self.avg = fill.price
        self.opened_at = fill.ts
        self.entry_fees = fee
        self.fees = fee
        self.realized = 0.0
        self.largest = abs(qty)
        self.exit_value = 0.0
        self.exit_qty = 0.0

    def trip(self, closed_at: datetime | None, reason: ExitReason, pnl: float) -> RoundTrip:
        return RoundTrip(
            symbol="",
            side="long" if self.direction > 0 else "short",
            quantity=self.largest,
            entry=self.avg,
            exit=self.exit_value / self.exit_qty if self.exit_qty else None,
            opened_at=self.opened_at,
            closed_at=closed_at,
            pnl=pnl,
            fees=self.fees,
            reason=reason,
        )


def _trips_of(
    symbol: str, fills: Sequence[ResultFill], last_prices: Mapping[str, float], dust: float
) -> list[RoundTrip]:
    trips: list[RoundTrip] = []
    current: _Open | None = None
    for fill in fills:
        signed = fill.qty if fill.side == "buy" else -fill.qty
        if current is None:
            current = _Open(fill, signed, fill.fee)
            continue
        if (signed > 0) == (current.direction > 0):
            size = abs(current.qty)
            current.avg = (size * current.avg + fill.qty * fill.price) / (size + fill.qty)
            current.qty += signed
            current.entry_fees += fill.fee
            current.fees += fill.fee
            current.largest = max(current.largest, abs(current.qty))
            continue
        size = abs(current.qty)
        closing = min(fill.qty, size)
        share = closing / size
        fee_share = fill.fee * closing / fill.qty
        current.realized += (fill.price - current.avg) * closing * current.direction
        current.realized -= current.entry_fees * share + fee_share
        current.entry_fees *= 1 - share
        current.fees += fee_share
        current.exit_value += fill.price * closing
        current.exit_qty += closing
        left = current.qty + signed
        flipped = left != 0 and (left > 0) != (current.qty > 0)
        if not flipped and left != 0 and abs(left) >= dust:
            current.qty = left
            continue
        trips.append(current.trip(fill.ts, fill.exit_reason, current.realized).model_copy(update={"symbol": symbol}))
        current = _Open(fill, left, fill.fee - fee_share) if flipped else None
    if current is not None:
        price = last_prices.get(symbol, current.avg)
        pnl = current.realized + (price - current.avg) * current.qty - current.entry_fees
        trips.append(current.trip(None, ExitReason.OPEN, pnl).model_copy(update={"symbol": symbol}))
    return trips


def trade_stats(
    trips: Sequence[RoundTrip],
    fills: Sequence[ResultFill],
    period: tuple[datetime, datetime] | None,
) -> TradeStats:
    """Figures of ``trips`` (closed and open) and ``fills`` over ``period`` (for the time in market)."""
    closed = [trip for trip in trips if trip.closed_at is not None]
    wins = [trip.pnl for trip in closed if trip.pnl > 0]
    losses = [trip.pnl for trip in closed if trip.pnl <= 0]
    gross_profit, gross_loss = sum(wins), sum(losses)
    exits: dict[str, int] = {}
    for trip in closed:
        exits[trip.reason.value] = exits.get(trip.reason.value, 0) + 1
    return TradeStats(
        closed=len(closed),
        open=len(trips) - len(closed),
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / len(closed) if closed else None,
        net_pnl=sum(trip.pnl for trip in closed),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=gross_profit / -gross_loss if gross_loss < 0 else None,
        average_win=gross_profit / len(wins) if wins else None,
        average_loss=gross_loss / len(losses) if losses else None,
        expectancy=sum(trip.pnl for trip in closed) / len(closed) if closed else None,
        fees=sum(fill.fee for fill in fills),
        turnover=sum(fill.qty * fill.price for fill in fills),
        time_in_market=_time_in_market(trips, period),
        exits=exits,
    )


def _time_in_market(trips: Sequence[RoundTrip], period: tuple[datetime, datetime] | None) -> float | None:
    """Share of ``period`` covered by at least one trip (an open one runs to the period's end)."""
    if period is None or period[1] <= period[0]:
        return None
    start, end = period
    spans = sorted((max(trip.opened_at, start), min(trip.closed_at or end, end)) for trip in trips)
    covered = timedelta(0)
    reach = start
    for begin, finish in spans:
        begin = max(begin, reach)
        if finish > begin:
            covered += finish - begin
            reach = finish
    return covered / (end - start)


def drawdown(equity: Sequence[tuple[datetime, float]]) -> Drawdown:
    """The deepest drawdown and the longest time under water of an equity series, oldest first."""
    deepest, peak_at, trough_at = 0.0, None, None
    longest = timedelta(0)
    peak: tuple[datetime, float] | None = None
    for at, value in equity:
        if peak is None or value >= peak[1]:
            if peak is not None:
                longest = max(longest, at - peak[0])
            peak = (at, value)
            continue
        depth = 100 * (peak[1] - value) / peak[1] if peak[1] > 0 else 0.0
        if depth > deepest:
            deepest, peak_at, trough_at = depth, peak[0], at
    if peak is not None and equity:
        longest = max(longest, equity[-1][0] - peak[0])
    return Drawdown(max_pct=deepest, peak_at=peak_at, trough_at=trough_at, longest_underwater=longest)


def daily_returns(equity: Sequence[tuple[datetime, float]], starting_equity: float) -> list[float]:
    """Each UTC day's return: its last equity against the previous day's (the first day's against the start)."""
    closes: dict[date, float] = {}
    for at, value in equity:
        closes[at.astimezone(UTC).date()] = value
    returns: list[float] = []
    previous = starting_equity
    for day in sorted(closes):
        if previous > 0:
            returns.append(closes[day] / previous - 1)
        previous = closes[day]
    return returns


def sharpe(returns: Sequence[float]) -> float | None:
    """Annualised mean over sample standard deviation; None with fewer than two returns or none apart."""
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    variance = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return mean / math.sqrt(variance) * math.sqrt(DAYS_PER_YEAR) if variance > 0 else None


def sortino(returns: Sequence[float]) -> float | None:
    """Annualised mean over downside deviation; None with fewer than two returns or no losing day."""
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    return mean / downside * math.sqrt(DAYS_PER_YEAR) if downside > 0 else None


def buy_and_hold_value(first: Mapping[str, float], last: Mapping[str, float], starting_equity: float) -> float | None:
    """The starting equity split equally across the symbols at their first price, at their last price."""
    symbols = [symbol for symbol in first if symbol in last and first[symbol] > 0]
    if not symbols:
        return None
    share = starting_equity / len(symbols)
    return sum(share / first[symbol] * last[symbol] for symbol in symbols)


def results(
    fills: Sequence[ResultFill],
    equity: Sequence[tuple[datetime, float]],
    first_prices: Mapping[str, float],
    last_prices: Mapping[str, float],
    events: Sequence[ResultEvent],
    starting_equity: float,
    dust: Mapping[str, float],
) -> Results:
    """A run's results from its rows (see the module docstring); ``equity`` and ``fills`` oldest first."""
    trips = round_trips(fills, last_prices, dust)
    times = [at for at, _ in equity] + [fill.ts for fill in fills]
    period = (min(times), max(times)) if times else None
    symbols = sorted({fill.symbol for fill in fills})
    by_symbol = {
        symbol: trade_stats(
            [trip for trip in trips if trip.symbol == symbol], [fill for fill in fills if fill.symbol == symbol], period
        )
        for symbol in symbols
    }
    total = trade_stats(trips, fills, period)
    returns = daily_returns(equity, starting_equity)
    return Results(
        starting_equity=starting_equity,
        final_equity=equity[-1][1] if equity else None,
        period_start=period[0] if period else None,
        period_end=period[1] if period else None,
        trips=tuple(trips),
        by_symbol=by_symbol,
        total=total,
        fees_pct_of_start=100 * total.fees / starting_equity if starting_equity > 0 else None,
        turnover_multiple=total.turnover / starting_equity if starting_equity > 0 else None,
        drawdown=drawdown(equity),
        sharpe=sharpe(returns),
        sortino=sortino(returns),
        daily_returns=len(returns),
        buy_and_hold=buy_and_hold_value(first_prices, last_prices, starting_equity),
        events=tuple(sorted(events, key=lambda event: event.ts)),
    )
