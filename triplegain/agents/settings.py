"""Settings of the four agents, as sections for ``triplegain.config`` (nested there as ``agents``).

Like every settings section: immutable, unknown keys are errors, every field has a default and a description.
``valid_seconds`` is how long an agent's view stays valid: the TTL of the message that carries it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from triplegain.llm.settings import ProvidersSettings
from triplegain.market.candle import Timeframe, TimeframeField
from triplegain.section import Section

ALLOCATION_TOLERANCE = 1e-9
"""How far the target weights may sum from 1 (float rounding of e.g. three thirds)."""


def _known_provider(name: str | None) -> str | None:
    known = ProvidersSettings.model_fields
    if name is not None and name not in known:
        raise ValueError(f"unknown LLM provider {name!r}; known: {', '.join(known)}")
    return name


ProviderName = Annotated[str | None, AfterValidator(_known_provider)]
"""A provider under ``llm.providers``, or None."""

_LLM_PROVIDER_DESCRIPTION = (
    "LLM provider (a name under llm.providers, e.g. deepseek or offline) that refines the deterministic baseline; "
    "null: the baseline alone"
)


class TechnicalWeights(Section):
    """Weights of the directional components in a timeframe's score (they are normalised; only ratios matter)."""

    ema_cross: float = Field(default=0.3, ge=0, description="fast EMA above/below slow EMA, in ATRs")
    macd: float = Field(default=0.25, ge=0, description="MACD histogram, in tenths of an ATR")
    rsi: float = Field(default=0.2, ge=0, description="RSI momentum, fading past overbought/oversold")
    vwap: float = Field(default=0.25, ge=0, description="close above/below the rolling VWAP, in ATRs")

    @model_validator(mode="after")
    def _some_weight(self) -> Self:
        if self.ema_cross + self.macd + self.rsi + self.vwap <= 0:
            raise ValueError("at least one weight must be > 0")
        return self


class TechnicalSettings(Section):
    """The technical-analysis agent: bias, strength and key levels from indicators of 1–3 timeframes."""

    timeframes: list[TimeframeField] = Field(
        default_factory=lambda: [Timeframe.M5, Timeframe.M15, Timeframe.H1],
        min_length=1,
        max_length=3,
        description="timeframes analysed, shortest first; the first is the feed's (or built from it), the others "
        "are built by aggregating its candles",
    )
    weights: TechnicalWeights = Field(default_factory=TechnicalWeights, description="component weights")
    adx_trend_level: float = Field(
        default=25.0, gt=0, description="ADX at which a trend counts as fully established (scales score and confidence)"
    )
    neutral_band: float = Field(
        default=0.15, ge=0, lt=1, description="|score| below this is a neutral bias; at or above, long or short"
    )
    swing_lookback: int = Field(
        default=50, ge=5, description="candles per timeframe searched for swing highs and lows (support/resistance)"
    )
    swing_width: int = Field(
        default=2,
        ge=1,
        description="a swing high (low) is the highest (lowest) of this many candles on each side (the frame book "
        "marks them as candles close)",
    )
    max_levels: int = Field(default=3, ge=1, description="support and resistance levels reported, nearest first")
    valid_seconds: float = Field(default=300.0, gt=0, description="how long a technical view stays valid (its TTL)")
    llm_provider: ProviderName = Field(default=None, description=_LLM_PROVIDER_DESCRIPTION)

    @field_validator("timeframes")
    @classmethod
    def _ascending(cls, value: list[Timeframe]) -> list[Timeframe]:
        seconds = [timeframe.seconds for timeframe in value]
        if seconds != sorted(set(seconds)):
            raise ValueError("list each timeframe once, shortest first")
        if any(step % seconds[0] for step in seconds):
            raise ValueError(f"every timeframe must be a multiple of the first ({value[0].value})")
        return value


class RegimeSettings(Section):
    """The regime agent: the market's state from ADX, Bollinger bandwidth, realised volatility and EMA slope."""

    timeframe: TimeframeField = Field(
        default=Timeframe.M15, description="timeframe classified (the feed's, or built by aggregating its candles)"
    )
    confirmations: int = Field(
        default=3,
        ge=1,
        description="consecutive detections, on distinct candles, needed to change a symbol's regime",
    )
    adx_trending: float = Field(default=25.0, gt=0, description="ADX at or above this (with a slope) is a trend")
    adx_ranging: float = Field(default=20.0, gt=0, description="ADX below this (and no squeeze) is a range")
    slope_lookback: int = Field(default=10, ge=1, description="candles over which the slow EMA's slope is measured")
    slope_trending: float = Field(
        default=0.05, gt=0, description="|slow EMA slope| in ATRs per candle at or above which the market has direction"
    )
    volatile_annualised: float = Field(
        default=1.0, gt=0, description="annualised realised volatility (1.0 = 100%) at or above which it is volatile"
    )
    squeeze_ratio: float = Field(
        default=0.6,
        gt=0,
        lt=1,
        description="Bollinger bandwidth at or below this fraction of its median over squeeze_lookback is a squeeze "
        "(breakout potential)",
    )
    squeeze_lookback: int = Field(default=100, ge=5, description="candles of bandwidth history for that median")
    valid_seconds: float = Field(default=900.0, gt=0, description="how long a regime view stays valid (its TTL)")
    llm_provider: ProviderName = Field(default=None, description=_LLM_PROVIDER_DESCRIPTION)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Self:
        if self.adx_ranging > self.adx_trending:
            raise ValueError(f"adx_ranging ({self.adx_ranging}) must not exceed adx_trending ({self.adx_trending})")
        return self


class FeedSourceSettings(Section):
    """A news feed fetched over HTTP: RSS 2.0, Atom or JSON Feed (detected from the document)."""

    kind: Literal["feed"] = Field(default="feed", description="feed: an RSS 2.0, Atom or JSON Feed document")
    name: str = Field(min_length=1, description="the source's name, recorded with each of its items")
    url: str = Field(pattern=r"^https?://", description="address of the feed document")
    timeout_seconds: float = Field(default=10.0, gt=0, description="give up on one fetch after this long")
    max_bytes: int = Field(default=2_000_000, ge=1024, description="a larger document is refused, not parsed")


class ReplaySourceSettings(Section):
    """A JSONL file of items, each with ``published_at``; only items published by the clock's now are read."""

    kind: Literal["replay"] = Field(default="replay", description="replay: a JSONL file of recorded items")
    name: str = Field(default="replay", min_length=1, description="the source's name for items that give none")
    path: Path = Field(description="JSONL file; relative paths are relative to the working directory")


SourceSettings = Annotated[FeedSourceSettings | ReplaySourceSettings, Field(discriminator="kind")]


class SentimentSettings(Section):
    """The sentiment agent: a lexicon score of recent headlines and posts, per symbol."""

    sources: list[SourceSettings] = Field(
        default_factory=list,
        description="where items come from: {kind: feed, name, url} or {kind: replay, path}; none: always neutral",
    )
    poll_interval_seconds: float = Field(
        default=300.0, ge=0, description="sources are read at most this often; analyses in between reuse the items"
    )
    lookback_hours: float = Field(default=24.0, gt=0, description="items older than this are ignored")
    half_life_hours: float = Field(default=6.0, gt=0, description="an item's weight halves with each such age")
    general_item_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="weight of items that name no asset (market-wide news); items about other assets weigh 0",
    )
    evidence_scale: float = Field(
        default=3.0,
        gt=0,
        description="total item weight at which evidence is 63% of full (confidence grows as 1 − e^(−w/scale))",
    )
    neutral_band: float = Field(
        default=0.15, ge=0, lt=1, description="|score| below this is a neutral bias; at or above, long or short"
    )
    max_drivers: int = Field(default=5, ge=1, description="items reported as driving the score")
    max_prompt_items: int = Field(default=20, ge=1, description="most items shown to the LLM, strongest first")
    asset_aliases: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "BTC": ["btc", "bitcoin", "xbt"],
            "ETH": ["eth", "ether", "ethereum"],
            "XRP": ["xrp", "ripple"],
        },
        description="asset → lower-case words that name it in an untagged item's text",
    )
    valid_seconds: float = Field(default=3600.0, gt=0, description="how long a sentiment view stays valid (its TTL)")
    llm_provider: ProviderName = Field(default=None, description=_LLM_PROVIDER_DESCRIPTION)


class PortfolioSettings(Section):
    """The portfolio agent: drift from the target allocation and the orders that would correct it."""

    quote_asset: str = Field(default="USDT", min_length=1, description="the currency values and orders are in")
    target_allocation: dict[str, float] = Field(
        default_factory=lambda: {"BTC": 1 / 3, "XRP": 1 / 3, "USDT": 1 / 3},
        min_length=1,
        description="asset → target share of the portfolio's value; each 0–1, summing to 1",
    )
    drift_threshold_points: float = Field(
        default=5.0, gt=0, le=100, description="rebalance an asset whose weight is off target by more than this (pp)"
    )
    min_order_notional: dict[str, float] = Field(
        default_factory=lambda: {"BTC": 10.0, "XRP": 10.0},
        description="asset → smallest order value in the quote asset; a smaller proposal is skipped",
    )
    min_order_quantity: dict[str, float] = Field(
        default_factory=lambda: {"BTC": 0.0001, "XRP": 1.0},
        description="asset → smallest order quantity; a smaller proposal is skipped",
    )
    valid_seconds: float = Field(default=7200.0, gt=0, description="how long a portfolio view stays valid (its TTL)")

    @field_validator("target_allocation")
    @classmethod
    def _weights_sum_to_one(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {asset: weight for asset, weight in value.items() if not 0 <= weight <= 1}
        if bad:
            raise ValueError(f"each weight must be between 0 and 1: {bad}")
        total = math.fsum(value.values())
        if abs(total - 1) > ALLOCATION_TOLERANCE:
            raise ValueError(f"weights sum to {total!r}; they must sum to 1 (within {ALLOCATION_TOLERANCE:g})")
        return value

    @field_validator("min_order_notional", "min_order_quantity")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {asset: minimum for asset, minimum in value.items() if not minimum >= 0}
        if bad:
            raise ValueError(f"minimums must be ≥ 0: {bad}")
        return value

    @model_validator(mode="after")
    def _quote_in_allocation(self) -> Self:
        if self.quote_asset not in self.target_allocation:
            raise ValueError(
                f"target_allocation has no weight for the quote asset {self.quote_asset!r} (give it 0 if none is "
                "wanted)"
            )
        return self


class AgentsSettings(Section):
    """The four analysis agents."""

    technical: TechnicalSettings = Field(default_factory=TechnicalSettings, description="technical analysis")
    regime: RegimeSettings = Field(default_factory=RegimeSettings, description="market regime")
    sentiment: SentimentSettings = Field(default_factory=SentimentSettings, description="news and social sentiment")
    portfolio: PortfolioSettings = Field(default_factory=PortfolioSettings, description="allocation drift")
