"""Settings of the paper broker, a section for ``triplegain.config`` (nested there as ``execution``).

Basis points: 1 bp = 0.01 %. Fees are charged in the quote currency of the symbol traded. A market's rules
(minimum size, steps) come from ``markets``, else from ``default_market``.
"""

from __future__ import annotations

from typing import Self

from pydantic import ConfigDict, Field, model_validator

from triplegain.section import Section

KRAKEN_FEE_SCHEDULE = "https://www.kraken.com/features/fee-schedule"
"""Where the default fees come from (Kraken Pro, spot, lowest 30-day volume tier)."""

MAX_SLIPPAGE_BPS = 5_000.0
"""Total slippage is capped at 50 %: a sell's price stays positive whatever the settings and the order's size."""


class FeeSchedule(Section):
    """One exchange's trading fees, in basis points of a fill's notional."""

    model_config = ConfigDict(allow_inf_nan=False)

    maker_bps: float = Field(
        default=25.0,
        ge=0,
        le=1_000,
        description="fee of a fill that rested on the book (limit orders), bps of notional; default: Kraken Pro's "
        f"spot base tier, 0.25 % ({KRAKEN_FEE_SCHEDULE})",
    )
    taker_bps: float = Field(
        default=40.0,
        ge=0,
        le=1_000,
        description="fee of a fill that took liquidity (market orders, triggered stops and targets), bps of "
        f"notional; default: Kraken Pro's spot base tier, 0.40 % ({KRAKEN_FEE_SCHEDULE})",
    )


class MarketRules(Section):
    """What one market accepts: the smallest order and the steps of quantity and price."""

    model_config = ConfigDict(allow_inf_nan=False)

    min_qty: float = Field(ge=0, description="smallest order quantity, in the base asset")
    qty_step: float = Field(gt=0, description="quantities are floored to a multiple of this")
    price_step: float = Field(gt=0, description="prices are rounded to a multiple of this (against the trader)")
    min_notional: float = Field(default=0.0, ge=0, description="smallest order value, in the quote asset")


def _default_fees() -> dict[str, FeeSchedule]:
    # Binance: spot, regular user, without the BNB discount (https://www.binance.com/en/fee/schedule).
    return {"kraken": FeeSchedule(), "binance": FeeSchedule(maker_bps=10.0, taker_bps=10.0)}


class ExecutionSettings(Section):
    """The paper broker: starting balances, borrowing, slippage, fees and market rules."""

    model_config = ConfigDict(allow_inf_nan=False)

    exchange: str = Field(default="kraken", min_length=1, description="whose fees apply: a key of execution.fees")
    quote_asset: str = Field(
        default="USDT",
        min_length=1,
        description="the currency of cash and equity; every traded symbol must be quoted in it (BTC/USDT)",
    )
    starting_balances: dict[str, float] = Field(
        default_factory=lambda: {"USDT": 10_000.0},
        description="asset → quantity a fresh account starts with; other assets than the quote are valued from "
        "the first price seen",
    )
    allow_borrowing: bool = Field(
        default=False,
        description="false: spot, no balance may go below 0 (a sell needs the asset held); true: a negative base "
        "balance is a short and a negative quote balance a loan, as long as equity stays positive",
    )
    slippage_bps: float = Field(
        default=5.0,
        ge=0,
        le=1_000,
        description="market orders (and triggered stops and targets) fill this many bps worse than the next price",
    )
    slippage_volume_bps: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="extra slippage, bps per 1 % of the candle's volume the order takes (capped at 100 %); 0: off",
    )
    fees: dict[str, FeeSchedule] = Field(
        default_factory=_default_fees, description="exchange → maker and taker fees in bps"
    )
    markets: dict[str, MarketRules] = Field(
        default_factory=dict,
        description="symbol → its rules (minimum quantity and notional, quantity and price steps)",
    )
    default_market: MarketRules = Field(
        default_factory=lambda: MarketRules(min_qty=1e-8, qty_step=1e-8, price_step=1e-8, min_notional=5.0),
        description="the rules of a symbol not in markets",
    )
    replay_quiet_candles_per_write: int = Field(
        default=256,
        ge=1,
        description="in a replay, candles that only move a mark and the equity (no order placed, filled or "
        "updated) are stored together, up to this many per transaction; a crash re-processes them at restart. "
        "Live, every candle is stored before the next",
    )
    max_unstored_candles: int = Field(
        default=50_000,
        ge=1,
        description="while the database is out of reach, at most this many candles' writes (marks, snapshot, fills) "
        "wait in memory (50,000: some 35 days of 1m candles of one symbol); past it the daemon stops without "
        "dropping them",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.exchange not in self.fees:
            known = ", ".join(sorted(self.fees)) or "none"
            raise ValueError(f"exchange {self.exchange!r} has no fee schedule in fees (known: {known})")
        negative = {asset: qty for asset, qty in self.starting_balances.items() if qty < 0}
        if negative:
            raise ValueError(f"starting_balances must be ≥ 0, got {negative}")
        return self

    @property
    def fee_schedule(self) -> FeeSchedule:
        """The fees of ``exchange``."""
        return self.fees[self.exchange]

    def rules_for(self, symbol: str) -> MarketRules:
        """``symbol``'s rules from ``markets``, else ``default_market``."""
        return self.markets.get(symbol, self.default_market)
