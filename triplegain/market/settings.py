"""Settings of the market-data feeds and indicators, as sections for ``triplegain.config``.

Defined here rather than in ``config.py`` so the market package does not import upward; ``config.py`` nests them.
Like every settings section: immutable, unknown keys are errors, every field has a default and a description.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, Field, field_validator, model_validator

from triplegain.market.candle import Timeframe, TimeframeField
from triplegain.section import Section


class CcxtFeedSettings(Section):
    """Live closed candles polled from an exchange's public OHLCV endpoint through ccxt (no API keys)."""

    exchange: str = Field(
        default="kraken", pattern=r"^[a-z0-9_]+$", description="ccxt exchange id, e.g. kraken, binance, coinbase"
    )
    symbols: list[str] = Field(
        default_factory=lambda: ["BTC/USDT", "ETH/USDT"],
        min_length=1,
        description="unified ccxt symbols to follow, e.g. BTC/USD",
    )
    timeframe: TimeframeField = Field(default=Timeframe.M5, description="candle length: 1m, 5m, 15m, 1h, 4h or 1d")
    warmup_candles: int = Field(
        default=100,
        ge=0,
        le=1000,
        description="closed candles per symbol emitted at start so indicators are warm (the exchange may return "
        "fewer: kraken keeps 720); 0 starts with the next candle to close",
    )
    poll_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="seconds between polls while a closed candle is due but not yet published",
    )
    publish_delay_seconds: float = Field(
        default=2.0,
        ge=0,
        description="seconds after a candle closes before asking for it (exchanges publish it a moment later)",
    )
    request_timeout_seconds: float = Field(
        default=10.0, gt=0, description="give up on one HTTP request after this long (then it may be retried)"
    )
    max_attempts: int = Field(
        default=5,
        ge=1,
        description="attempts per request on transient errors (network, timeout, 5xx, rate limit) before the "
        "feed raises an error",
    )
    retry_initial_seconds: float = Field(
        default=1.0, gt=0, description="first wait before a retry; doubles with each attempt, plus jitter"
    )
    retry_max_seconds: float = Field(default=30.0, gt=0, description="longest wait between two attempts")
    rate_limit_ms: int | None = Field(
        default=None,
        ge=1,
        description="milliseconds between requests; null uses the exchange's published limit (set it only to be "
        "gentler than that)",
    )


class ReplayFile(Section):
    """One CSV file of candles (header timestamp,open,high,low,close,volume; timestamp in ms UTC)."""

    path: Path = Field(description="CSV file; relative paths are relative to the working directory")
    symbol: str | None = Field(
        default=None, min_length=1, description="symbol of its candles; null infers it from a name like BTC_USDT-5m.csv"
    )
    timeframe: TimeframeField | None = Field(
        default=None, description="timeframe of its candles; null infers it from a name like BTC_USDT-5m.csv"
    )

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        """A bare path (``- data/BTC_USDT-5m.csv``) means: infer symbol and timeframe from the file name."""
        return {"path": value} if isinstance(value, str | Path) else value


class ReplaySettings(Section):
    """Candles replayed from CSV files, several symbols merged in time order."""

    files: list[ReplayFile] = Field(
        default_factory=list,
        description="files to replay: a path, or {path, symbol, timeframe}; symbol and timeframe default to "
        "what the file name says (BTC_USDT-5m.csv: BTC/USDT, 5m)",
    )
    speed: float | None = Field(
        default=None,
        gt=0,
        description="replay speed relative to candle time (60: an hour of candles per minute); null is as fast "
        "as possible",
    )


class SyntheticSettings(Section):
    """Seeded, reproducible made-up candles for offline demos and tests."""

    symbols: dict[str, float] = Field(
        default_factory=lambda: {"BTC/USDT": 40_000.0, "ETH/USDT": 2_500.0},
        min_length=1,
        description="symbol → its first open price",
    )
    timeframe: TimeframeField = Field(default=Timeframe.M5, description="candle length")
    seed: int = Field(default=7, description="the same seed gives the same candles")
    start: AwareDatetime = Field(
        default=datetime(2024, 1, 1, tzinfo=UTC), description="open time of the first candle (with a time zone)"
    )
    count: int | None = Field(
        default=2_000, ge=1, description="candles per symbol; null: until end, or without end if end is null too"
    )
    end: AwareDatetime | None = Field(
        default=None, description="no candle opens at or after this time; null: no end time"
    )
    speed: float | None = Field(
        default=None, gt=0, description="pace relative to candle time, as for replay; null is as fast as possible"
    )

    @field_validator("symbols")
    @classmethod
    def _positive_prices(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {symbol: price for symbol, price in value.items() if not price > 0}
        if bad:
            raise ValueError(f"start prices must be > 0: {bad}")
        return value

    @model_validator(mode="after")
    def _end_after_start(self) -> SyntheticSettings:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        return self


class IndicatorSettings(Section):
    """Periods of the indicators computed for the technical and regime agents (in candles)."""

    sma_period: int = Field(default=20, ge=1, description="simple moving average")
    ema_fast_period: int = Field(default=9, ge=1, description="fast exponential moving average")
    ema_slow_period: int = Field(default=21, ge=1, description="slow exponential moving average")
    rsi_period: int = Field(default=14, ge=1, description="relative strength index (Wilder)")
    macd_fast_period: int = Field(default=12, ge=1, description="MACD fast EMA")
    macd_slow_period: int = Field(default=26, ge=2, description="MACD slow EMA; must exceed the fast one")
    macd_signal_period: int = Field(default=9, ge=1, description="EMA of the MACD line")
    atr_period: int = Field(default=14, ge=1, description="average true range (Wilder)")
    bollinger_period: int = Field(default=20, ge=1, description="Bollinger bands' moving average")
    bollinger_width: float = Field(default=2.0, gt=0, description="Bollinger bands: standard deviations from the mid")
    adx_period: int = Field(default=14, ge=1, description="average directional index and ±DI (Wilder)")
    volatility_window: int = Field(
        default=20, ge=2, description="log returns in the realised volatility (annualised for the timeframe)"
    )
    vwap_window: int = Field(default=20, ge=1, description="candles in the rolling volume-weighted average price")

    @model_validator(mode="after")
    def _macd_order(self) -> IndicatorSettings:
        if self.macd_fast_period >= self.macd_slow_period:
            raise ValueError(
                f"macd_fast_period ({self.macd_fast_period}) must be less than "
                f"macd_slow_period ({self.macd_slow_period})"
            )
        return self


class MarketSettings(Section):
    """Where candles come from, and the indicators computed from them."""

    source: Literal["ccxt", "replay", "synthetic"] = Field(
        default="ccxt", description="ccxt (live public candles), replay (CSV files) or synthetic (seeded)"
    )
    ccxt: CcxtFeedSettings = Field(default_factory=CcxtFeedSettings, description="live candles from an exchange")
    replay: ReplaySettings = Field(default_factory=ReplaySettings, description="candles replayed from CSV files")
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings, description="seeded synthetic candles")
    indicators: IndicatorSettings = Field(default_factory=IndicatorSettings, description="indicator periods")
