"""The candle model, timeframes, and the check that keeps bad candles out.

A candle is validated once, where it enters the system (a feed), and is trusted from then on. Feeds build
candles through ``candle_from_values``: a plain check of the five numbers followed by ``model_construct``, which
skips pydantic's per-field validation (a few microseconds per candle, which matters at replay speed). Calling
``Candle(...)`` directly runs the full validation, including the same check.

A candle that fails the check is never passed on: it becomes a ``Rejection`` with a reason, and the feed records
it in a ``CandleRejects`` (counted by reason, logged, the most recent kept for review).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import structlog
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from triplegain.errors import UserError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECONDS_PER_YEAR = 365 * 24 * 3600
"""A trading year: crypto markets trade around the clock, every day."""
_ONE_MS = timedelta(milliseconds=1)

_log = structlog.get_logger("triplegain.market")


class Timeframe(StrEnum):
    """The candle lengths triplegain works with."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @property
    def seconds(self) -> int:
        return _TIMEFRAME_SECONDS[self]

    @property
    def milliseconds(self) -> int:
        return _TIMEFRAME_SECONDS[self] * 1000

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=_TIMEFRAME_SECONDS[self])


_TIMEFRAME_SECONDS = {
    Timeframe.M1: 60,
    Timeframe.M5: 300,
    Timeframe.M15: 900,
    Timeframe.H1: 3600,
    Timeframe.H4: 14_400,
    Timeframe.D1: 86_400,
}
ALLOWED_TIMEFRAMES = ", ".join(timeframe.value for timeframe in Timeframe)


class TimeframeError(UserError, ValueError):
    """A timeframe that is not one of ``Timeframe``.

    Also a ``ValueError``, so pydantic reports it as a validation error of the field that holds it.
    """

    def __init__(self, value: object) -> None:
        super().__init__(f"timeframe {value!r} is not supported; allowed: {ALLOWED_TIMEFRAMES}")


def parse_timeframe(value: object) -> Timeframe:
    """``"5m"`` → ``Timeframe.M5``; anything else raises ``TimeframeError`` naming the value and what is allowed."""
    if isinstance(value, Timeframe):
        return value
    if isinstance(value, str):
        try:
            return Timeframe(value.strip())
        except ValueError:
            pass
    raise TimeframeError(value)


TimeframeField = Annotated[Timeframe, BeforeValidator(parse_timeframe)]
"""A pydantic field type for a timeframe with ``parse_timeframe``'s error message."""


def utc_from_ms(milliseconds: int) -> datetime:
    """Milliseconds since the Unix epoch → an aware UTC datetime (exact, no float rounding)."""
    return EPOCH + timedelta(milliseconds=milliseconds)


def ms_from_utc(moment: datetime) -> int:
    """An aware datetime → whole milliseconds since the Unix epoch (rounded down)."""
    return (moment - EPOCH) // _ONE_MS


class Candle(BaseModel):
    """One OHLCV candle of one symbol and timeframe; ``open_time`` is when the candle's period starts (UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field(min_length=1, description="unified symbol, e.g. BTC/USDT")
    timeframe: TimeframeField = Field(description="candle length")
    open_time: datetime = Field(description="start of the candle's period, timezone-aware UTC")
    open: float
    high: float
    low: float
    close: float
    volume: float = Field(description="traded amount in the base currency")

    @field_validator("open_time")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must be timezone-aware (UTC)")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> Candle:
        problem = ohlcv_problem(self.open, self.high, self.low, self.close, self.volume)
        if problem is not None:
            raise ValueError(problem[1])
        return self

    @property
    def close_time(self) -> datetime:
        """End of the candle's period: the candle is closed once this time has passed."""
        return self.open_time + self.timeframe.duration

    @property
    def open_time_ms(self) -> int:
        return ms_from_utc(self.open_time)


class RejectReason(StrEnum):
    """Why a candle was not passed on."""

    MISSING_VALUE = "missing_value"
    NOT_FINITE = "not_finite"
    NON_POSITIVE_PRICE = "non_positive_price"
    NEGATIVE_VOLUME = "negative_volume"
    HIGH_BELOW_BODY = "high_below_body"
    LOW_ABOVE_BODY = "low_above_body"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


def ohlcv_problem(
    open_: float, high: float, low: float, close: float, volume: float
) -> tuple[RejectReason, str] | None:
    """What is wrong with these five numbers as a candle, or None when they are a valid one.

    Valid: every price finite and > 0, volume finite and ≥ 0, high ≥ max(open, close), low ≤ min(open, close).
    """
    # One chained comparison decides the common case; NaN fails every comparison, so it falls through too.
    if 0 < low <= open_ <= high < math.inf and low <= close <= high and 0 <= volume < math.inf:
        return None
    named = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    for name, value in named.items():
        if not math.isfinite(value):
            return RejectReason.NOT_FINITE, f"{name} is {value}"
    for name, value in named.items():
        if name != "volume" and value <= 0:
            return RejectReason.NON_POSITIVE_PRICE, f"{name} is {value}, prices must be > 0"
    if volume < 0:
        return RejectReason.NEGATIVE_VOLUME, f"volume is {volume}, must be ≥ 0"
    if high < max(open_, close):
        return RejectReason.HIGH_BELOW_BODY, f"high {high} is below max(open, close) {max(open_, close)}"
    return RejectReason.LOW_ABOVE_BODY, f"low {low} is above min(open, close) {min(open_, close)}"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A candle that was not passed on, and why; ``source`` says where it came from (file and line, exchange)."""

    reason: RejectReason
    detail: str
    symbol: str
    timeframe: Timeframe
    open_time: datetime | None
    source: str | None = None

    def describe(self) -> str:
        """One line: ``BTC/USDT 5m 2023-01-02T16:45:00+00:00 (data.csv line 17): high_below_body — …``."""
        when = f" {self.open_time.isoformat()}" if self.open_time is not None else ""
        where = f" ({self.source})" if self.source else ""
        return f"{self.symbol} {self.timeframe.value}{when}{where}: {self.reason.value} — {self.detail}"


def candle_from_values(
    symbol: str,
    timeframe: Timeframe,
    open_time_ms: int,
    open_: float,
    high: float,
    low: float,
    close: float,
    volume: float,
    *,
    source: str | None = None,
) -> Candle | Rejection:
    """The candle these raw values describe, or the reason they do not describe a valid one.

    ``symbol`` and ``timeframe`` are trusted (the feed's own configuration); the numbers are checked.
    """
    problem = ohlcv_problem(open_, high, low, close, volume)
    open_time = utc_from_ms(open_time_ms)
    if problem is not None:
        return Rejection(problem[0], problem[1], symbol, timeframe, open_time, source)
    return Candle.model_construct(
        symbol=symbol,
        timeframe=timeframe,
        open_time=open_time,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )


class CandleRejects:
    """Rejected candles: a count per reason, a log line each, and the ``keep`` most recent for review."""

    def __init__(self, keep: int = 100, *, feed: str = "feed") -> None:
        self._counts: Counter[RejectReason] = Counter()
        self._recent: deque[Rejection] = deque(maxlen=keep)
        self._feed = feed

    def record(self, rejection: Rejection) -> None:
        self._counts[rejection.reason] += 1
        self._recent.append(rejection)
        fields: dict[str, Any] = {
            "feed": self._feed,
            "reason": rejection.reason.value,
            "detail": rejection.detail,
            "symbol": rejection.symbol,
            "timeframe": rejection.timeframe.value,
        }
        if rejection.open_time is not None:
            fields["open_time"] = rejection.open_time.isoformat()
        if rejection.source:
            fields["source"] = rejection.source
        _log.warning("candle rejected", **fields)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def by_reason(self) -> dict[str, int]:
        """Counts keyed by reason value, in the order of ``RejectReason``; reasons never seen are left out."""
        return {reason.value: self._counts[reason] for reason in RejectReason if self._counts[reason]}

    def recent(self) -> list[Rejection]:
        """The most recent rejections, oldest first."""
        return list(self._recent)
