"""Settings of the message bus: queue bounds, memory bounds and each topic's TTL and full-queue policy."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from triplegain.section import Section


class Overflow(StrEnum):
    """What a full subscription queue does with one more message."""

    BLOCK = "block"
    DROP_OLDEST_LOWEST = "drop_oldest_lowest"


class TopicSettings(Section):
    ttl_seconds: float = Field(
        gt=0, description="seconds a message stays deliverable; an older one is dead-lettered as expired"
    )
    overflow: Overflow = Field(
        default=Overflow.BLOCK,
        description="full queue: block (the publisher waits) or drop_oldest_lowest (drop and count)",
    )
    maxsize: int | None = Field(
        default=None, ge=1, description="queue bound per subscription; null uses bus.default_maxsize"
    )


class TopicsSettings(Section):
    """Per-topic delivery settings; a message's own ttl wins over its topic's."""

    market_data: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=120, overflow=Overflow.DROP_OLDEST_LOWEST),
        description="closed candles taken in: newest matters most, so a full queue drops the oldest",
    )
    ta_signals: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=300), description="technical agent views"
    )
    regime_updates: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=900), description="market regime views"
    )
    sentiment_updates: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=3600), description="sentiment agent views"
    )
    portfolio_updates: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=7200), description="allocation drift and rebalancing"
    )
    trade_intents: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=60), description="every decision the coordinator makes"
    )
    risk_alerts: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=300), description="circuit-breaker trips"
    )
    execution_events: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=3600), description="orders and fills"
    )
    system_events: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=3600),
        description="coordinator state and degradation level changes",
    )


class BusSettings(Section):
    """The in-process priority message bus."""

    default_maxsize: int = Field(
        default=10_000,
        ge=1,
        description="queue bound per subscription (memory bound too; only messages a handler publishes into a "
        "full block queue go over it, counted as overflow_admitted)",
    )
    dead_letter_limit: int = Field(
        default=10_000,
        ge=1,
        description="dead letters kept in memory (memory bound); past this the oldest are evicted (and counted)",
    )
    history_size: int = Field(
        default=16,
        ge=1,
        description="messages kept per (topic, symbol) for late readers (memory bound, with the configured symbols)",
    )
    latency_window: int = Field(
        default=10_000,
        ge=1,
        description="most recent delivery latencies kept per subscription for the p50/p99/p99.9 figures (memory bound)",
    )
    close_timeout_seconds: float = Field(
        default=5.0,
        ge=0,
        description="aclose() waits this long for queues to drain, then dead-letters what is left",
    )
    topics: TopicsSettings = Field(default_factory=TopicsSettings, description="per-topic settings")
