"""The paper account as the risk rules, the coordinator and the broker see it: its value and its closed trades."""

from __future__ import annotations

import re
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from triplegain.errors import UserError

ACCOUNT_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
"""What an account may be called: letters, digits, ``_``, ``.`` and ``-`` (it appears in order ids and commands)."""


def account_name(value: str, option: str) -> str:
    """``value`` as an account name; ``UserError`` naming ``option`` when it is not one."""
    text = value.strip()
    if not re.fullmatch(ACCOUNT_NAME_PATTERN, text):
        raise UserError(f"{option}: {value!r} is not an account name — letters, digits, '_', '.' and '-' are allowed")
    return text


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ClosedTrade(_Frozen):
    """A finished trade: its realised result (after fees) and when it closed."""

    pnl: float
    closed_at: AwareDatetime


class AccountSnapshot(_Frozen):
    """The account as the rules see it, at ``now`` (the only time they read)."""

    equity: float
    cash: float = Field(description="free cash, the margin an order can draw on")
    open_notional: dict[str, float] = Field(
        default_factory=dict, description="absolute notional held per symbol, at current prices"
    )
    closed_trades: tuple[ClosedTrade, ...] = Field(default=(), description="recent closed trades, any order")
    now: AwareDatetime

    @model_validator(mode="after")
    def _valid(self) -> Self:
        negative = {symbol: value for symbol, value in self.open_notional.items() if value < 0}
        if negative:
            raise ValueError(f"open_notional values must be ≥ 0 (absolute notional): {negative}")
        future = [trade.closed_at.isoformat() for trade in self.closed_trades if trade.closed_at > self.now]
        if future:
            raise ValueError(f"closed trades after now ({self.now.isoformat()}): {future}")
        return self
