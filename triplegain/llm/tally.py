"""Every LLM attempt counted per provider, in memory: calls, failures, cost and a latency histogram.

The daemon's metrics read it (``/metrics``); it is fed by the health monitor, which sees every call record.
Cached answers count as calls without latency (no provider was asked).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from triplegain.llm.models import LLMCallRecord

LATENCY_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds of the latency histogram's buckets (one more bucket, +Inf, takes the rest)."""


@dataclass
class ProviderTally:
    """One provider's counts; ``latency_buckets[i]`` counts attempts of at most ``LATENCY_BUCKETS_SECONDS[i]``
    (not cumulative), the last one those above every bound."""

    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_SECONDS) + 1))
    latency_sum_seconds: float = 0.0

    @property
    def latency_count(self) -> int:
        return sum(self.latency_buckets)


@dataclass
class CallTally:
    """Per-provider tallies, by the provider's name."""

    providers: dict[str, ProviderTally] = field(default_factory=dict)

    def add(self, record: LLMCallRecord) -> None:
        tally = self.providers.get(record.provider)
        if tally is None:
            tally = self.providers[record.provider] = ProviderTally()
        tally.calls += 1
        tally.errors += record.error_class is not None
        tally.cost_usd += record.cost_usd
        if not record.cached:
            seconds = record.latency_ms / 1000
            tally.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS_SECONDS, seconds)] += 1
            tally.latency_sum_seconds += seconds
