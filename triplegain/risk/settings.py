"""Settings of the deterministic risk rules, a section for ``triplegain.config`` (to be nested there as ``risk``).

Percentages are in percent (1.0 = 1 %), of account equity unless said otherwise. Per-regime limits are a default
plus overrides by regime name; a regime without an override gets the default.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from triplegain.model import RegimeName
from triplegain.section import Section

VOLATILE_REGIMES = frozenset({RegimeName.VOLATILE_BULL, RegimeName.VOLATILE_BEAR})
"""Regimes whose leverage may never exceed 1."""

Leverage = Annotated[float, Field(ge=1, le=10)]
Confidence = Annotated[float, Field(ge=0, le=1)]


class RiskSettings(Section):
    """The risk rules: sizing from risk per trade and stop distance, exposure caps, leverage, stops, gates."""

    model_config = ConfigDict(allow_inf_nan=False)

    risk_per_trade_pct: float = Field(
        default=1.0, gt=0, le=10, description="equity lost if the stop is hit: sets the unconstrained size"
    )
    max_position_pct: float = Field(
        default=20.0, gt=0, le=100, description="largest notional on one symbol (held plus this order), % of equity"
    )
    max_total_exposure_pct: float = Field(
        default=60.0, gt=0, le=100, description="largest notional on all symbols together (gross), % of equity"
    )
    max_leverage: Leverage = Field(
        default=1.0, description="leverage limit (1–10) in a regime without an override; 1: spot"
    )
    max_leverage_by_regime: dict[RegimeName, Leverage] = Field(
        default_factory=dict,
        description="leverage limit by regime name, overriding max_leverage; volatile_bull and volatile_bear must "
        "end up ≤ 1",
    )
    min_stop_distance_pct: float = Field(
        default=0.5, gt=0, description="a stop closer to entry than this, % of entry price, is rejected"
    )
    max_stop_distance_pct: float = Field(
        default=10.0, gt=0, lt=100, description="a stop farther from entry than this, % of entry price, is rejected"
    )
    min_reward_risk: float = Field(
        default=1.5,
        gt=0,
        description="least |target − entry| / |entry − stop|; a proposal without a target is rejected",
    )
    min_confidence: Confidence = Field(
        default=0.55, description="least proposal confidence in a regime without an override (0–1)"
    )
    min_confidence_by_regime: dict[RegimeName, Confidence] = Field(
        default_factory=lambda: {
            RegimeName.CHOPPY: 0.7,
            RegimeName.VOLATILE_BULL: 0.7,
            RegimeName.VOLATILE_BEAR: 0.7,
        },
        description="least proposal confidence by regime name, overriding min_confidence",
    )
    cooldown_after_losses: dict[PositiveInt, PositiveFloat] = Field(
        default_factory=lambda: {3: 60.0, 5: 240.0},
        description="consecutive losing trades → minutes without new entries, counted from the last loss's close; "
        "of the tiers reached, the longest cooldown applies; {} disables it",
    )
    min_notional: float = Field(
        default=10.0, gt=0, description="an order sized below this notional (quote currency) is rejected"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_stop_distance_pct >= self.max_stop_distance_pct:
            raise ValueError(
                f"min_stop_distance_pct ({self.min_stop_distance_pct}) must be < max_stop_distance_pct "
                f"({self.max_stop_distance_pct})"
            )
        too_high = sorted(regime.value for regime in VOLATILE_REGIMES if self.leverage_limit(regime) > 1)
        if too_high:
            raise ValueError(
                f"leverage in {', '.join(too_high)} must be ≤ 1: set max_leverage_by_regime for them when "
                f"max_leverage ({self.max_leverage}) is above 1"
            )
        return self

    def leverage_limit(self, regime: RegimeName) -> float:
        """The most leverage allowed in ``regime``."""
        return self.max_leverage_by_regime.get(regime, self.max_leverage)

    def confidence_floor(self, regime: RegimeName) -> float:
        """The least confidence a proposal needs in ``regime``."""
        return self.min_confidence_by_regime.get(regime, self.min_confidence)
