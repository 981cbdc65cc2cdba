"""The portfolio agent: value and drift per asset against the target allocation, and the orders that correct it.

``plan_rebalance`` is the pure core:

    value      = quantity · price          (the quote asset's price is 1)
    weight     = value / total value
    drift      = (weight − target) · 100   percentage points

Every asset other than the quote whose |drift| exceeds ``drift_threshold_points`` gets an order back to its target:
notional |target · total − value|, quantity notional / price, a sell never more than held. Sells go first; buys
are funded by the quote balance plus the sells that pass the minimums, and scaled down together when that is not
enough. An order below the asset's minimum quantity or notional is not proposed but listed as skipped, with why.

There is no LLM refinement: the view is arithmetic on the given balances and prices, so its confidence is 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator

from triplegain.agents.base import AgentOutput, Baseline
from triplegain.agents.settings import PortfolioSettings
from triplegain.clock import Clock
from triplegain.model import AgentName, OrderSide


class Holdings(BaseModel):
    """What the account holds and what each asset costs in the quote asset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    balances: dict[str, float] = Field(description="asset → quantity held (free + locked)")
    prices: dict[str, float] = Field(description="asset → price in the quote asset; the quote itself may be left out")

    @field_validator("balances")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {asset: quantity for asset, quantity in value.items() if not (math.isfinite(quantity) and quantity >= 0)}
        if bad:
            raise ValueError(f"quantities must be finite and ≥ 0: {bad}")
        return value

    @field_validator("prices")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {asset: price for asset, price in value.items() if not (math.isfinite(price) and price > 0)}
        if bad:
            raise ValueError(f"prices must be finite and > 0: {bad}")
        return value


class Position(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    asset: str = Field(description="the asset")
    quantity: float = Field(ge=0, description="held")
    price: float = Field(gt=0, description="in the quote asset")
    value: float = Field(ge=0, description="quantity · price")
    weight: float = Field(ge=0, le=1, description="share of the total value")
    target: float = Field(ge=0, le=1, description="target share")
    drift_points: float = Field(description="(weight − target) · 100")


class Proposal(BaseModel):
    """An order that would move an asset back to its target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset: str = Field(description="the asset traded")
    symbol: str = Field(description="the market, asset/quote")
    side: OrderSide = Field(description="buy or sell")
    quantity: float = Field(gt=0, description="in the asset")
    notional: float = Field(gt=0, description="in the quote asset")


class Skipped(BaseModel):
    """An order that would have been proposed but is below the market's minimum (or could not be funded)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset: str = Field(description="the asset")
    symbol: str = Field(description="the market, asset/quote")
    side: OrderSide = Field(description="buy or sell")
    quantity: float = Field(ge=0, description="in the asset")
    notional: float = Field(ge=0, description="in the quote asset")
    reason: str = Field(description="why it is not proposed")


class PortfolioView(BaseModel):
    """The portfolio agent's body (for a symbol: only that market's assets and orders)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quote_asset: str = Field(description="the currency of values and notionals")
    total_value: float = Field(ge=0, description="the whole portfolio's value")
    positions: tuple[Position, ...] = Field(description="value and drift per asset")
    proposals: tuple[Proposal, ...] = Field(description="orders that would correct the drift")
    skipped: tuple[Skipped, ...] = Field(description="orders below the minimums")


class PortfolioOutput(AgentOutput[PortfolioView]):
    """What the portfolio agent publishes."""


# --------------------------------------------------------------------------------------------------- core


@dataclass(frozen=True, slots=True)
class _Order:
    asset: str
    side: OrderSide
    quantity: float
    price: float

    @property
    def notional(self) -> float:
        return self.quantity * self.price


def plan_rebalance(holdings: Holdings, settings: PortfolioSettings) -> PortfolioView:
    """Positions, proposals and skipped orders for the whole portfolio (see the module docstring).

    Raises ValueError naming the assets that are held or targeted but have no price.
    """
    quote = settings.quote_asset
    targets = settings.target_allocation
    balances = holdings.balances
    assets = [*sorted({*balances, *targets} - {quote}), quote]
    prices = {**holdings.prices, quote: 1.0}
    unpriced = [asset for asset in assets if asset not in prices]
    if unpriced:
        raise ValueError(f"no price for {', '.join(unpriced)}: every asset held or targeted needs one")
    values = {asset: balances.get(asset, 0.0) * prices[asset] for asset in assets}
    total = math.fsum(values.values())
    weights = {asset: values[asset] / total if total > 0 else 0.0 for asset in assets}
    positions = tuple(
        Position(
            asset=asset,
            quantity=balances.get(asset, 0.0),
            price=prices[asset],
            value=values[asset],
            weight=min(1.0, weights[asset]),
            target=targets.get(asset, 0.0),
            drift_points=(weights[asset] - targets.get(asset, 0.0)) * 100,
        )
        for asset in assets
    )
    if total <= 0:
        return PortfolioView(quote_asset=quote, total_value=0.0, positions=positions, proposals=(), skipped=())
    wanted = [
        _order_to_target(position, total)
        for position in positions
        if position.asset != quote and abs(position.drift_points) > settings.drift_threshold_points
    ]
    proposals: list[Proposal] = []
    skipped: list[Skipped] = []
    sells = [order for order in wanted if order.side is OrderSide.SELL]
    buys = [order for order in wanted if order.side is OrderSide.BUY]
    proceeds = 0.0
    for order in sells:
        if _admit(order, settings, proposals, skipped):
            proceeds += order.notional
    funds = values[quote] + proceeds
    needed = math.fsum(order.notional for order in buys)
    scale = min(1.0, funds / needed) if needed > 0 else 1.0
    for order in buys:
        scaled = _Order(order.asset, order.side, order.quantity * scale, order.price)
        if scaled.quantity <= 0:
            skipped.append(_skipped(scaled, quote, f"no {quote} to fund it"))
        else:
            _admit(scaled, settings, proposals, skipped)
    return PortfolioView(
        quote_asset=quote,
        total_value=total,
        positions=positions,
        proposals=tuple(proposals),
        skipped=tuple(skipped),
    )


def _order_to_target(position: Position, total: float) -> _Order:
    gap = position.target * total - position.value
    if gap > 0:
        return _Order(position.asset, OrderSide.BUY, gap / position.price, position.price)
    return _Order(position.asset, OrderSide.SELL, min(position.quantity, -gap / position.price), position.price)


def _admit(order: _Order, settings: PortfolioSettings, proposals: list[Proposal], skipped: list[Skipped]) -> bool:
    """Propose ``order`` if it meets the asset's minimums, else list it as skipped; True when proposed."""
    quote = settings.quote_asset
    min_quantity = settings.min_order_quantity.get(order.asset, 0.0)
    min_notional = settings.min_order_notional.get(order.asset, 0.0)
    if order.quantity < min_quantity:
        skipped.append(_skipped(order, quote, f"quantity {order.quantity:.8g} is below the minimum {min_quantity:g}"))
        return False
    if order.notional < min_notional:
        reason = f"notional {order.notional:.2f} {quote} is below the minimum {min_notional:g}"
        skipped.append(_skipped(order, quote, reason))
        return False
    proposals.append(
        Proposal(
            asset=order.asset,
            symbol=f"{order.asset}/{quote}",
            side=order.side,
            quantity=order.quantity,
            notional=order.notional,
        )
    )
    return True


def _skipped(order: _Order, quote: str, reason: str) -> Skipped:
    return Skipped(
        asset=order.asset,
        symbol=f"{order.asset}/{quote}",
        side=order.side,
        quantity=order.quantity,
        notional=order.notional,
        reason=reason,
    )


def scope_to_symbol(view: PortfolioView, symbol: str) -> PortfolioView:
    """Only ``symbol``'s base and quote positions, and only its orders; the total stays the portfolio's."""
    base, _, quote = symbol.partition("/")
    if quote != view.quote_asset:
        raise ValueError(f"symbol {symbol} is not quoted in the portfolio's quote asset {view.quote_asset}")
    return view.model_copy(
        update={
            "positions": tuple(position for position in view.positions if position.asset in (base, quote)),
            "proposals": tuple(proposal for proposal in view.proposals if proposal.symbol == symbol),
            "skipped": tuple(item for item in view.skipped if item.symbol == symbol),
        }
    )


def assess_portfolio(holdings: Holdings, symbol: str | None, settings: PortfolioSettings) -> Baseline[PortfolioView]:
    """The view for ``symbol`` (None: the whole portfolio), at confidence 1, with its reasoning."""
    whole = plan_rebalance(holdings, settings)
    view = whole if symbol is None else scope_to_symbol(whole, symbol)
    return Baseline(view, 1.0, _reasoning(view, settings))


def _reasoning(view: PortfolioView, settings: PortfolioSettings) -> str:
    quote = view.quote_asset
    parts = [f"total {view.total_value:,.2f} {quote}."]
    for position in view.positions:
        parts.append(
            f"{position.asset} {position.weight:.1%} vs target {position.target:.1%} ({position.drift_points:+.1f} pp)."
        )
    for proposal in view.proposals:
        parts.append(
            f"{proposal.side.value} {proposal.quantity:.8g} {proposal.asset} ({proposal.notional:,.2f} {quote})."
        )
    for item in view.skipped:
        parts.append(f"skipped {item.side.value} {item.asset}: {item.reason}.")
    if not view.proposals and not view.skipped:
        parts.append(f"no drift beyond {settings.drift_threshold_points:g} pp: nothing to rebalance.")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------------- agent


@dataclass(frozen=True, slots=True)
class PortfolioContext:
    """The holdings, and the market to scope the view to (None: the whole portfolio)."""

    symbol: str | None
    holdings: Holdings


class PortfolioAgent:
    """Publishes on portfolio_updates."""

    def __init__(self, settings: PortfolioSettings, *, clock: Clock, new_id: Callable[[], UUID] = uuid4) -> None:
        self._settings = settings
        self._clock = clock
        self._new_id = new_id
        self._valid_for = timedelta(seconds=settings.valid_seconds)

    @property
    def name(self) -> AgentName:
        return AgentName.PORTFOLIO

    @property
    def valid_for(self) -> timedelta:
        return self._valid_for

    async def analyze(self, context: PortfolioContext) -> PortfolioOutput:
        baseline = assess_portfolio(context.holdings, context.symbol, self._settings)
        return PortfolioOutput(
            id=self._new_id(),
            agent=AgentName.PORTFOLIO,
            symbol=context.symbol,
            timestamp=self._clock.now(),
            confidence=baseline.confidence,
            body=baseline.body,
            reasoning=baseline.reasoning,
        )
