"""A trade intent: the technical view's lean turned into an entry with a stop and a target.

The technical agent's fresh view of a symbol opens an intent when it leans long or short:

    entry     the view's price (the close of its first timeframe's latest candle)
    distance  stop_atr_multiple · ATR of that timeframe, or fallback_stop_pct of the entry while ATR warms up,
              brought within the risk rules' [min_stop_distance_pct, max_stop_distance_pct] of the entry
    stop      entry − distance for a long, entry + distance for a short
    target    entry ± reward_risk · distance, on the profit side (a short's target no lower than 1 % of entry)

The base confidence is the technical view's confidence; consensus adjusts it. A neutral view, or none, opens
nothing. A resolver may move the stop (``with_stop_distance``); the target keeps the same reward/risk.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from triplegain.agents.technical import TechnicalView
from triplegain.coordinator.consensus import SymbolViews
from triplegain.model import AgentName, Bias, OrderSide
from triplegain.risk import RiskSettings
from triplegain.section import Section

_BOUND_MARGIN = 1e-9


class IntentSettings(Section):
    """How a technical view's lean becomes an entry, a stop and a target."""

    stop_atr_multiple: float = Field(
        default=2.0, gt=0, description="stop distance from entry, in ATRs of the technical agent's first timeframe"
    )
    fallback_stop_pct: float = Field(
        default=2.0, gt=0, lt=100, description="stop distance in % of entry while the ATR is not known yet"
    )
    reward_risk: float = Field(
        default=2.0, gt=0, description="target distance from entry, as a multiple of the stop distance"
    )
    min_strength: float = Field(
        default=0.0, ge=0, le=1, description="a technical lean weaker than this (its strength, 0–1) opens no intent"
    )


class TradeIntent(BaseModel):
    """An entry the coordinator considers: which way, at what price, with which stop and target, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    symbol: str = Field(min_length=1)
    direction: Bias = Field(description="long or short")
    entry_price: float = Field(gt=0)
    stop_price: float = Field(gt=0)
    target_price: float = Field(gt=0)
    base_confidence: float = Field(ge=0, le=1, description="the technical view's confidence")
    source_output_id: str = Field(description="id of the technical view that opened it")
    stop_basis: str = Field(description="how the stop distance was chosen")

    @model_validator(mode="after")
    def _sides(self) -> Self:
        if self.direction is Bias.NEUTRAL:
            raise ValueError("an intent goes long or short")
        below, above = (self.stop_price, self.target_price) if self.is_long else (self.target_price, self.stop_price)
        if not below < self.entry_price < above:
            raise ValueError(
                f"a {self.direction.value} intent at {self.entry_price} needs its stop and target on either side, "
                f"got stop {self.stop_price} and target {self.target_price}"
            )
        return self

    @property
    def is_long(self) -> bool:
        return self.direction is Bias.LONG

    @property
    def side(self) -> OrderSide:
        return OrderSide.BUY if self.is_long else OrderSide.SELL

    @property
    def stop_distance_pct(self) -> float:
        return abs(self.entry_price - self.stop_price) / self.entry_price * 100

    def with_stop_distance(self, distance_pct: float, reward_risk: float) -> TradeIntent:
        """The same intent with its stop ``distance_pct`` % from entry and the target ``reward_risk`` times as far."""
        stop, target = _stop_and_target(self.entry_price, self.direction, distance_pct, reward_risk)
        basis = f"{self.stop_basis}; moved by the resolver to {distance_pct:.4g} %"
        return self.model_copy(update={"stop_price": stop, "target_price": target, "stop_basis": basis})


def intent_from(views: SymbolViews, settings: IntentSettings, risk: RiskSettings) -> TradeIntent | None:
    """The intent the fresh technical view of ``views.symbol`` opens, or None when it does not lean (or is absent)."""
    technical = views.fresh.get(AgentName.TECHNICAL)
    if technical is None or not isinstance(technical.body, TechnicalView):
        return None
    body = technical.body
    if body.bias is Bias.NEUTRAL or body.strength < settings.min_strength:
        return None
    entry = body.price
    atr = body.timeframes[0].indicators.atr if body.timeframes else None
    if atr is not None and atr > 0:
        wanted_pct = settings.stop_atr_multiple * atr / entry * 100
        basis = f"{settings.stop_atr_multiple:g} × ATR {atr:.6g} = {wanted_pct:.4g} % of entry"
    else:
        wanted_pct = settings.fallback_stop_pct
        basis = f"ATR not known yet: fallback {wanted_pct:g} % of entry"
    # A hair inside the bounds: the risk rules measure the distance back from the prices, and at exactly a bound
    # float rounding could put it a hair outside.
    low, high = risk.min_stop_distance_pct * (1 + _BOUND_MARGIN), risk.max_stop_distance_pct * (1 - _BOUND_MARGIN)
    distance_pct = min(high, max(low, wanted_pct))
    if distance_pct != wanted_pct:
        basis += (
            f", brought within the risk rules' {risk.min_stop_distance_pct:g}–{risk.max_stop_distance_pct:g} %: "
            f"{distance_pct:.4g} %"
        )
    stop, target = _stop_and_target(entry, body.bias, distance_pct, settings.reward_risk)
    return TradeIntent(
        symbol=views.symbol,
        direction=body.bias,
        entry_price=entry,
        stop_price=stop,
        target_price=target,
        base_confidence=technical.confidence,
        source_output_id=str(technical.id),
        stop_basis=basis,
    )


def _stop_and_target(entry: float, direction: Bias, distance_pct: float, reward_risk: float) -> tuple[float, float]:
    """Stop and target prices; a short's target stays above 1 % of entry (a price cannot fall below zero)."""
    distance = entry * distance_pct / 100
    if direction is Bias.LONG:
        return entry - distance, entry + reward_risk * distance
    return entry + distance, max(entry - reward_risk * distance, entry / 100)
