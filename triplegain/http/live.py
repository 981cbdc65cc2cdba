"""What the running daemon knows in memory, as the HTTP surface reads it: a ``LiveStatus`` taken on demand.

The daemon hands ``serving_http`` a ``LiveSource`` (``daemon.http_view``); reading it touches no database and
never awaits, so the status, the live stream and ``/metrics`` cost the trading loop nothing but a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class LastDecision(_Frozen):
    id: str
    symbol: str
    action: str
    at: datetime
    confidence: float
    reason: str


class RecentEvent(_Frozen):
    """A breaker trip, a state change or a level change, as the daemon heard it on the bus."""

    kind: str = Field(description="breaker, state or level")
    at: datetime
    text: str


class ProviderCalls(_Frozen):
    """One LLM provider's attempts in this process."""

    calls: int
    errors: int
    cost_usd: float
    spend_today_usd: float
    latency_buckets: tuple[int, ...] = Field(description="attempts per bucket of LATENCY_BUCKETS_SECONDS, then +Inf")
    latency_sum_seconds: float


class QueueDepth(_Frozen):
    subscription: str
    topic: str
    depth: int


class LiveStatus(_Frozen):
    """The daemon's state now: what ``/api/status``, the live stream, ``/healthz`` and ``/metrics`` show."""

    account: str
    state: str
    level: str
    level_causes: tuple[str, ...]
    breaker_trips_active: tuple[str, ...]
    equity: float
    peak_equity: float | None
    drawdown: float = Field(description="below the peak now, as a fraction")
    max_drawdown: float
    positions: dict[str, float] = Field(description="held assets (not the quote asset) and their quantity")
    last_decision: LastDecision | None
    progress: str
    candles: int
    total_candles: int | None
    last_candle_close: datetime | None
    decisions_by_action: dict[str, int]
    orders_placed: int
    fills: int
    breaker_trips: int
    recent_events: tuple[RecentEvent, ...]
    llm: dict[str, ProviderCalls]
    bus_queues: tuple[QueueDepth, ...]
    bus_dead_letters: int
    writer_backlog: int
    database: str = Field(description="the database's part of the status line")
    database_ok: bool
    feed_staleness_seconds: float | None = Field(description="wall seconds since the last candle; None before one")


LiveSource = Callable[[], LiveStatus]
