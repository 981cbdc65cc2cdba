"""When and at what price an order fills, and what it pays: pure functions of the order, the candle and settings.

Prices
    market       the next price: the open of the first candle of its symbol that closes after the order was placed
                 — in a replay the candle after the decision's, live the candle running when the order came, whose
                 open is the last trade known then — moved against the trader by the slippage. Taker fee.
    limit        fills when a candle trades through its price: a buy when low < limit, a sell when high > limit
                 (a mere touch is not enough: an order at the touch may still be queued). At the limit, or at the
                 open when the candle opened beyond it. Maker fee, no slippage.
    stop-loss,   trigger when the candle reaches the trigger price (a sell stop, a buy target: low ≤ price; a buy
    take-profit  stop, a sell target: high ≥ price) and then execute as a market order: at the trigger price, or at
                 the open when the candle gapped past it, with slippage. Taker fee. Attached to a position or
                 standing alone as an order.

**Stop and target in the same candle.** A candle tells its high and its low, not which came first. When both the
stop and the target of a position lie within one candle's range, the worse outcome is assumed: the stop fills and
the target never does. Backtests are then pessimistic rather than flattering.

Slippage, in basis points: ``slippage_bps + slippage_volume_bps × participation``, where participation is the
order's quantity as a percentage of the candle's volume, capped at 100 (a candle without volume counts as 100);
the total is capped at ``MAX_SLIPPAGE_BPS``.

Rounding: quantities are floored to the market's ``qty_step`` and prices rounded to its ``price_step`` against
the trader (a buy up, a sell down), in decimal arithmetic, so a step of 0.1 gives exactly 0.1's multiples.
Fees are ``notional × bps / 10 000`` in the quote currency, unrounded (stored as numeric at full float
precision).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from triplegain.execution.settings import MAX_SLIPPAGE_BPS, ExecutionSettings, FeeSchedule, MarketRules
from triplegain.market.candle import Candle
from triplegain.model import Liquidity, OrderSide

BPS = 10_000.0


class ExitKind(StrEnum):
    """Which protective order of a position fired."""

    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


def decimal(value: float | Decimal) -> Decimal:
    """A float as the decimal of its shortest repr (0.1 → Decimal("0.1")), a Decimal as it is."""
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def floor_qty(qty: float | Decimal, step: float) -> Decimal:
    """``qty`` floored to a multiple of ``step`` (exact, in decimal)."""
    step_decimal = decimal(step)
    return (decimal(qty) / step_decimal).to_integral_value(rounding=ROUND_FLOOR) * step_decimal


def round_price(price: float, step: float, side: OrderSide) -> float:
    """``price`` on the ``step`` grid, against the trader: a buy pays the step above, a sell gets the one below
    (never less than one step, so a price stays positive)."""
    step_decimal = decimal(step)
    rounding = ROUND_CEILING if side == "buy" else ROUND_FLOOR
    steps = (decimal(price) / step_decimal).to_integral_value(rounding=rounding)
    return float(max(steps, Decimal(1)) * step_decimal)


def slippage_bps(qty: float, candle_volume: float, settings: ExecutionSettings) -> float:
    """The slippage of a taker fill of ``qty`` in a candle that traded ``candle_volume`` (see the module doc)."""
    participation = 100.0 if candle_volume <= 0 else min(100.0, 100.0 * qty / candle_volume)
    return min(MAX_SLIPPAGE_BPS, settings.slippage_bps + settings.slippage_volume_bps * participation)


def taker_price(
    side: OrderSide, reference: float, qty: float, candle_volume: float, settings: ExecutionSettings, rules: MarketRules
) -> float:
    """The price a taker fill of ``qty`` gets when the market is at ``reference``: slipped and rounded against
    the trader."""
    slip = slippage_bps(qty, candle_volume, settings) / BPS
    moved = reference * (1 + slip) if side == "buy" else reference * (1 - slip)
    return round_price(moved, rules.price_step, side)


def fee(notional: float, liquidity: Liquidity, schedule: FeeSchedule) -> float:
    """The fee of a fill of ``notional`` (quote currency)."""
    bps = schedule.maker_bps if liquidity == "maker" else schedule.taker_bps
    return abs(notional) * bps / BPS


def limit_fill_price(side: OrderSide, limit: float, candle: Candle) -> float | None:
    """The price a resting limit order fills at in ``candle``, or None when the candle did not trade through it."""
    if side == "buy":
        return min(candle.open, limit) if candle.low < limit else None
    return max(candle.open, limit) if candle.high > limit else None


def trigger_reference(kind: ExitKind, side: OrderSide, trigger: float, candle: Candle) -> float | None:
    """The market price a stop-loss or take-profit order executes from in ``candle`` (before slippage), or None
    when the candle did not reach its trigger.

    ``side`` is the order's: a long's stop and target are sells, a short's are buys.
    """
    falling = (kind is ExitKind.STOP_LOSS) == (side == "sell")  # fires when the price falls to the trigger
    if falling:
        return min(candle.open, trigger) if candle.low <= trigger else None
    return max(candle.open, trigger) if candle.high >= trigger else None


def attached_exit(
    qty: float, stop: float | None, target: float | None, candle: Candle
) -> tuple[ExitKind, float, float] | None:
    """Which protective price of a position holding ``qty`` (signed) fires in ``candle``, its trigger, and the
    reference price it executes from; the stop when both are reached (the worse one first, see the module doc)."""
    side = OrderSide.SELL if qty > 0 else OrderSide.BUY
    for kind, trigger in ((ExitKind.STOP_LOSS, stop), (ExitKind.TAKE_PROFIT, target)):
        if trigger is None:
            continue
        reference = trigger_reference(kind, side, trigger, candle)
        if reference is not None:
            return kind, trigger, reference
    return None
