"""Bus counters and their snapshots (docs/ARCHITECTURE.md, bus rule 8).

Every (message, subscription) pair that passes the subscription's filter is ``enqueued`` once and ends in
exactly one outcome: ``delivered``, ``expired``, ``failed``, ``dropped`` or ``discarded`` (unsubscribed or
closed while queued, in the worker's hands, or waiting for room). ``accounted`` is their sum; it equals
``enqueued`` whenever nothing is queued or running, in particular after ``aclose()``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from triplegain.bus.message import Topic
from triplegain.bus.settings import Overflow


class Counters:
    """Mutable counts kept on the hot path (a plain slotted object: no validation per increment)."""

    __slots__ = ("delivered", "discarded", "dropped", "enqueued", "expired", "failed", "overflow_admitted")

    def __init__(self) -> None:
        self.enqueued = 0
        self.delivered = 0
        self.expired = 0
        self.failed = 0
        self.dropped = 0
        self.discarded = 0
        self.overflow_admitted = 0

    @classmethod
    def total(cls, *parts: Counters) -> Counters:
        """The field-by-field sum of ``parts``."""
        total = cls()
        for part in parts:
            total.add(part)
        return total

    def add(self, other: Counters) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def snapshot(self) -> dict[str, Any]:
        """The fields of ``Counts``."""
        accounted = self.delivered + self.expired + self.failed + self.dropped + self.discarded
        return {name: getattr(self, name) for name in self.__slots__} | {"accounted": accounted}


class _Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Counts(_Snapshot):
    enqueued: int = Field(description="(message, subscription) pairs routed to a subscription")
    delivered: int = Field(description="handler called and returned")
    expired: int = Field(description="TTL passed before delivery")
    failed: int = Field(description="handler (or filter) raised")
    dropped: int = Field(description="dropped by a full drop_oldest_lowest queue")
    discarded: int = Field(description="still queued (or waiting for room) at unsubscribe() or aclose()")
    overflow_admitted: int = Field(description="published from a handler into a full block queue, kept anyway")
    accounted: int = Field(description="delivered + expired + failed + dropped + discarded")


class LatencySummary(_Snapshot):
    """Delivery latency (publish to handler call) over the most recent deliveries; None without samples."""

    samples: int
    p50_us: float | None
    p99_us: float | None
    p999_us: float | None

    @classmethod
    def of(cls, seconds: Collection[float]) -> LatencySummary:
        ordered = sorted(seconds)
        return cls(
            samples=len(ordered),
            p50_us=_percentile_us(ordered, 0.5),
            p99_us=_percentile_us(ordered, 0.99),
            p999_us=_percentile_us(ordered, 0.999),
        )


def _percentile_us(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile, in microseconds."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1] * 1e6


class SubscriptionStats(Counts):
    name: str
    topic: Topic
    overflow: Overflow
    maxsize: int
    depth: int = Field(description="messages queued now")
    high_water: int = Field(description="largest depth seen")
    running: bool = Field(description="a handler call is in progress")
    latency: LatencySummary


class BusStats(Counts):
    published: int = Field(description="publish() calls accepted, each counted once")
    dead_letters_kept: int
    dead_letters_evicted: int = Field(description="oldest dead letters dropped past dead_letter_limit")
    dead_letter_hook_errors: int = Field(description="on_dead_letter calls that raised")
    subscriptions: tuple[SubscriptionStats, ...] = Field(description="active subscriptions")

    def subscription(self, name: str) -> SubscriptionStats:
        """The stats of the active subscription called ``name``."""
        for stats in self.subscriptions:
            if stats.name == name:
                return stats
        raise KeyError(name)
