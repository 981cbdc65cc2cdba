"""Orders and what becomes of them: the rows the coordinator and the paper broker make, and the store keeps.

Quantities and prices of an order are ``Decimal`` (a float is taken by its shortest repr: 0.1 is Decimal("0.1"),
not the binary value); those of fills, positions and snapshots are floats, stored as ``numeric`` through each
float's shortest repr, so reading a value back gives the same float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, model_validator

from triplegain.model.names import Liquidity, OrderSide, OrderStatus, OrderType

_ROW_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class OrderRow(BaseModel):
    """An ``orders`` row. ``client_order_id`` is the idempotency key; a float quantity or price is taken by its
    shortest repr (0.1 is Decimal("0.1"), not the binary value)."""

    model_config = _ROW_CONFIG

    id: UUID
    client_order_id: str = Field(min_length=1)
    account: str = Field(min_length=1)
    decision_id: UUID | None = Field(description="None for an order no decision made (a stop, a flatten)")
    symbol: str = Field(min_length=1)
    side: OrderSide
    type: OrderType
    qty: Decimal = Field(gt=0)
    price: Decimal | None = Field(default=None, gt=0, description="limit or trigger price; None for market")
    status: OrderStatus = OrderStatus.PENDING
    created_at: AwareDatetime
    updated_at: AwareDatetime
    reason: str
    stop_price: Decimal | None = Field(
        default=None, gt=0, description="the stop the position this order opens gets; None: none (or keep the one set)"
    )
    target_price: Decimal | None = Field(
        default=None, gt=0, description="the target the position this order opens gets; None: none (or keep it)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type is not OrderType.MARKET and self.price is None:
            raise ValueError(f"a {self.type.value} order needs a price")
        if self.updated_at < self.created_at:
            raise ValueError("updated_at is before created_at")
        stop, target = self.stop_price, self.target_price
        if stop is not None and target is not None and (stop < target) != (self.side is OrderSide.BUY):
            below = "below" if self.side is OrderSide.BUY else "above"
            raise ValueError(f"a {self.side.value} order's stop {stop} must lie {below} its target {target}")
        return self


class FillRow(BaseModel):
    """A ``fills`` row, with the order's client id, account, symbol and side for the reader's convenience."""

    model_config = _ROW_CONFIG

    id: UUID = Field(description="derived from client_fill_id, so a retried write has the same id")
    order_id: UUID
    client_order_id: str = Field(min_length=1)
    client_fill_id: str = Field(min_length=1, description="the idempotency key, e.g. '<client_order_id>:1'")
    account: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    side: OrderSide
    qty: float = Field(gt=0)
    price: float = Field(gt=0)
    fee: float = Field(ge=0)
    fee_currency: str = Field(min_length=1)
    liquidity: Liquidity
    ts: AwareDatetime


class OrderUpdate(BaseModel):
    """A status the broker gives an order, why, and the quantity it accepted (None: unchanged)."""

    model_config = _ROW_CONFIG

    client_order_id: str = Field(min_length=1)
    status: OrderStatus
    updated_at: AwareDatetime
    status_reason: str | None = None
    qty: Decimal | None = Field(default=None, gt=0)


class PositionRow(BaseModel):
    """A ``positions`` row: what the account holds in one symbol."""

    model_config = _ROW_CONFIG

    account: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    qty: float
    avg_price: float = Field(gt=0)
    stop_price: float | None = Field(default=None, gt=0)
    target_price: float | None = Field(default=None, gt=0)
    opened_at: AwareDatetime
    updated_at: AwareDatetime


class PortfolioSnapshotRow(BaseModel):
    """A ``portfolio_snapshots`` row: the account's value at a time."""

    model_config = _ROW_CONFIG

    account: str = Field(min_length=1)
    ts: AwareDatetime
    equity: float
    cash: float
    positions: dict[str, JsonValue] = Field(description="symbol → qty, price, value (and entry, stop, target)")
    drawdown: float = Field(ge=0, le=1)


class MarkRow(BaseModel):
    """A ``broker_marks`` row: the last candle processed of a symbol, and its close."""

    model_config = _ROW_CONFIG

    account: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    candle_open_time: AwareDatetime
    price: float = Field(gt=0)


@dataclass(frozen=True)
class CandleWrite:
    """What one candle did to an account (stored by ``record_candles``)."""

    account: str
    new_orders: tuple[OrderRow, ...]
    updates: tuple[OrderUpdate, ...]
    fills: tuple[FillRow, ...]
    positions: tuple[PositionRow, ...]
    closed_positions: tuple[str, ...]
    snapshot: PortfolioSnapshotRow
    mark: MarkRow


@dataclass(frozen=True)
class StoredFill:
    """A stored fill with what the books need of its order."""

    fill: FillRow
    stop_price: float | None
    target_price: float | None
