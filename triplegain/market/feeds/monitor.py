"""What a feed has done: candles emitted, rejected by reason, gaps, failed requests — and the order check.

Every feed passes each valid candle through ``FeedMonitor.admit`` before emitting it. Per (symbol, timeframe)
the monitor remembers the last admitted open time: a candle at that time is a ``duplicate``, an earlier one is
``out_of_order`` (both rejected and counted), and a later one that skips candle periods is a gap. A gap is
reported — counted, logged with the first and last missing open time, listed in the stats — and never filled.
A rejected candle leaves a hole in what consumers see, so it also shows up as a gap.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime

import structlog
from pydantic import BaseModel, ConfigDict, Field

from triplegain.market.candle import Candle, CandleRejects, Rejection, RejectReason, Timeframe, utc_from_ms

_log = structlog.get_logger("triplegain.market")


class Gap(BaseModel):
    """Candle periods with no candle between two consecutive candles of one symbol and timeframe."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    timeframe: Timeframe
    first_missing: datetime = Field(description="open time of the first missing candle")
    last_missing: datetime = Field(description="open time of the last missing candle")
    missing: int = Field(description="number of missing candles")


class FeedStats(BaseModel):
    """A snapshot of a feed's counters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    emitted: int = Field(description="candles passed on")
    emitted_by_symbol: dict[str, int] = Field(description="candles passed on, per symbol")
    rejected: int = Field(description="candles not passed on")
    rejected_by_reason: dict[str, int] = Field(description="rejections per reason")
    recent_rejections: list[str] = Field(description="the most recent rejections, one line each, oldest first")
    gaps: int = Field(description="gap events: places where one or more candles are missing")
    missing_candles: int = Field(description="candles missing across all gaps")
    longest_gap: Gap | None = Field(description="the gap with the most missing candles (the first, on a tie)")
    recent_gaps: list[Gap] = Field(description="the most recent gaps, oldest first")
    failed_requests: int = Field(description="exchange requests that failed, retried ones included")


class FeedMonitor:
    """The mutable counters behind ``FeedStats``, and the per-symbol order and gap check."""

    def __init__(self, *, feed: str, keep: int = 100) -> None:
        self.rejects = CandleRejects(keep, feed=feed)
        self.failed_requests = 0
        self._feed = feed
        self._last_open_ms: dict[tuple[str, Timeframe], int] = {}
        self._emitted: Counter[str] = Counter()
        self._gap_count = 0
        self._missing = 0
        self._longest: Gap | None = None
        self._recent_gaps: deque[Gap] = deque(maxlen=keep)

    def admit(self, candle: Candle, *, source: str | None = None) -> bool:
        """True if ``candle`` follows the last admitted one of its symbol and timeframe; records gaps.

        A duplicate or older candle is recorded as a rejection and False is returned.
        """
        key = (candle.symbol, candle.timeframe)
        open_ms = candle.open_time_ms
        last_ms = self._last_open_ms.get(key)
        if last_ms is not None:
            if open_ms <= last_ms:
                reason = RejectReason.DUPLICATE if open_ms == last_ms else RejectReason.OUT_OF_ORDER
                detail = (
                    "a candle with this open time was already passed on"
                    if open_ms == last_ms
                    else f"older than the last candle passed on ({utc_from_ms(last_ms).isoformat()})"
                )
                self.reject(Rejection(reason, detail, candle.symbol, candle.timeframe, candle.open_time, source))
                return False
            step = candle.timeframe.milliseconds
            missing = (open_ms - last_ms - 1) // step
            if missing:
                self._record_gap(candle, last_ms + step, open_ms - step, missing)
        self._last_open_ms[key] = open_ms
        return True

    def reject(self, rejection: Rejection) -> None:
        self.rejects.record(rejection)

    def count_emitted(self, candle: Candle) -> None:
        self._emitted[candle.symbol] += 1

    def snapshot(self) -> FeedStats:
        return FeedStats(
            emitted=sum(self._emitted.values()),
            emitted_by_symbol=dict(self._emitted),
            rejected=self.rejects.total,
            rejected_by_reason=self.rejects.by_reason(),
            recent_rejections=[rejection.describe() for rejection in self.rejects.recent()],
            gaps=self._gap_count,
            missing_candles=self._missing,
            longest_gap=self._longest,
            recent_gaps=list(self._recent_gaps),
            failed_requests=self.failed_requests,
        )

    def _record_gap(self, candle: Candle, first_ms: int, last_ms: int, missing: int) -> None:
        gap = Gap.model_construct(
            symbol=candle.symbol,
            timeframe=candle.timeframe,
            first_missing=utc_from_ms(first_ms),
            last_missing=utc_from_ms(last_ms),
            missing=missing,
        )
        self._gap_count += 1
        self._missing += missing
        self._recent_gaps.append(gap)
        if self._longest is None or missing > self._longest.missing:
            self._longest = gap
        _log.info(
            "candle gap",
            feed=self._feed,
            symbol=gap.symbol,
            timeframe=gap.timeframe.value,
            first_missing=gap.first_missing.isoformat(),
            last_missing=gap.last_missing.isoformat(),
            missing=missing,
        )
