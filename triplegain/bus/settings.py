"""Settings of the message bus: queue bounds, memory bounds and each topic's TTL and full-queue policy."""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import Field, field_validator

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


class NatsSettings(Section):
    """The bridge to NATS JetStream (``triplegain agents``, ``triplegain run --agents remote``); unused otherwise."""

    url: str = Field(
        default="nats://127.0.0.1:4222",
        description="the NATS server (JetStream enabled, 2.10+); TRIPLEGAIN_NATS_URL wins; a URL with a user's "
        "password or token belongs in TRIPLEGAIN_NATS_URL only, never in this file",
    )
    stream: str = Field(
        default="TRIPLEGAIN",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="the deployment's JetStream stream (created if missing, its limits updated to these settings)",
    )
    subject_prefix: str = Field(
        default="triplegain",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="first token of every subject: <prefix>.<topic>.<symbol>; one per deployment on a server",
    )
    max_age_seconds: float = Field(
        default=86_400.0, gt=0, description="the stream keeps a message at most this long (bound by age)"
    )
    max_bytes: int = Field(
        default=1_073_741_824, ge=1_048_576, description="the stream keeps at most this many bytes (oldest go first)"
    )
    duplicate_window_seconds: float = Field(
        default=120.0,
        gt=0,
        description="a message resent within this long (same id) is stored once: covers resends after a lost ack",
    )
    max_unacked_messages: int = Field(
        default=100_000,
        ge=1,
        description="messages held in memory that NATS has not acknowledged (an outage); past this the process "
        "stops (exit 75) rather than drop one",
    )
    ack_timeout_seconds: float = Field(
        default=5.0, gt=0, description="a batch not acknowledged within this long is sent again (same ids)"
    )
    connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="the first connection must succeed within this long, else one line, exit 1"
    )
    reconnect_wait_seconds: float = Field(
        default=0.5, gt=0, description="wait between two attempts to reconnect (attempts never stop)"
    )

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.hostname:
            raise ValueError("not a nats://host:port URL")
        if parts.password is not None or (parts.username is not None and parts.password is None):
            raise ValueError("holds a user's credentials: give them in TRIPLEGAIN_NATS_URL, never in a file")
        return value


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
    nats: NatsSettings = Field(
        default_factory=NatsSettings, description="NATS JetStream, for agents and coordinators in several processes"
    )
