"""What the risk rules read (a trade proposal, an account snapshot) and what they decide (a risk decision)."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from triplegain.model import OrderSide, RegimeName


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class TradeProposal(_Frozen):
    """An entry the coordinator wants to make: buy opens or adds to a long, sell opens or adds to a short."""

    symbol: str = Field(min_length=1)
    side: OrderSide
    entry_price: float = Field(gt=0)
    stop_price: float | None = Field(default=None, gt=0, description="None: rejected by the stop_loss rule")
    target_price: float | None = Field(default=None, gt=0, description="None: rejected by the reward_risk rule")
    confidence: float = Field(ge=0, le=1)
    regime: RegimeName
    size_reduction_pct: float = Field(default=0.0, ge=0, le=100, description="cut requested by a conflict resolver")
    leverage: float = Field(default=1.0, ge=1, description="leverage requested")


class RiskRule(StrEnum):
    """The rules, in the order they are evaluated."""

    COOLDOWN = "cooldown"
    MIN_CONFIDENCE = "min_confidence"
    STOP_LOSS = "stop_loss"
    REWARD_RISK = "reward_risk"
    RISK_PER_TRADE = "risk_per_trade"
    MAX_POSITION = "max_position"
    MAX_TOTAL_EXPOSURE = "max_total_exposure"
    RESOLVER_REDUCTION = "resolver_reduction"
    LEVERAGE = "leverage"


class Verdict(StrEnum):
    PASSED = "passed"
    CUT = "cut"
    REJECTED = "rejected"


class RuleOutcome(_Frozen):
    rule: RiskRule
    verdict: Verdict
    detail: str = Field(description="the numbers the rule compared, and before → after for a cut")


class RiskDecision(_Frozen):
    """The final word on a proposal. Rejected: quantity, notional and leverage are 0.

    ``risk_notional`` is the unconstrained size from risk per trade and stop distance (0 when a gate rejected
    the proposal before sizing); ``flat_notional`` is that size within the position and exposure caps, as on a
    flat account (what the account's holdings, cash and leverage may then cut). ``outcomes`` lists every rule
    evaluated, in order, up to the first rejection.
    """

    proposal: TradeProposal
    approved: bool
    quantity: float = Field(ge=0)
    notional: float = Field(ge=0)
    leverage: float = Field(ge=0)
    risk_notional: float = Field(ge=0)
    flat_notional: float = Field(ge=0)
    outcomes: tuple[RuleOutcome, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.approved == any(outcome.verdict is Verdict.REJECTED for outcome in self.outcomes):
            raise ValueError("approved must be true exactly when no rule rejected the proposal")
        if not self.approved and (self.quantity, self.notional, self.leverage) != (0, 0, 0):
            raise ValueError("a rejected decision has quantity, notional and leverage 0")
        return self

    @property
    def rejected_by(self) -> RiskRule | None:
        """The rule that rejected the proposal, or None when approved."""
        return next((outcome.rule for outcome in self.outcomes if outcome.verdict is Verdict.REJECTED), None)


def number(value: float) -> str:
    """A number as rule details show it: 8 significant digits, no trailing zeros."""
    return f"{value:.8g}"
