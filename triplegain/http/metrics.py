"""``/metrics``: the daemon's figures in Prometheus's text format, from a registry of the app's own.

Everything is read at scrape time from the live status (``http.live``): nothing is counted twice and the trading
loop does no metrics work of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from triplegain.http.live import LiveSource, ProviderCalls
from triplegain.llm.tally import LATENCY_BUCKETS_SECONDS
from triplegain.model import DegradationLevel

_LEVELS = list(DegradationLevel)


class DaemonCollector(Collector):
    """One scrape: the live status as metric families."""

    def __init__(self, live: LiveSource) -> None:
        self._live = live

    def collect(self) -> Iterator[Metric]:
        status = self._live()
        labels = ["account"]
        account = [status.account]

        def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"triplegain_{name}", text, labels=labels)
            family.add_metric(account, value)
            return family

        def counter(name: str, text: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(f"triplegain_{name}", text, labels=labels)
            family.add_metric(account, value)
            return family

        decisions = CounterMetricFamily("triplegain_decisions", "decisions made, by action", labels=[*labels, "action"])
        for action, count in sorted(status.decisions_by_action.items()):
            decisions.add_metric([status.account, action], count)
        yield decisions
        yield counter("orders", "orders placed", status.orders_placed)
        yield counter("fills", "fills", status.fills)
        yield counter("breaker_trips", "circuit breaker trips", status.breaker_trips)
        yield counter("candles", "candles processed", status.candles)
        yield gauge("equity", "equity in the quote asset", status.equity)
        yield gauge("drawdown_ratio", "fraction below the equity peak", status.drawdown)
        level = _LEVELS.index(DegradationLevel[status.level]) if status.level in DegradationLevel.__members__ else -1
        yield gauge("degradation_level", "degradation level: 0 NORMAL … 3 EMERGENCY", level)
        yield gauge("writer_backlog_rows", "rows the batching writer holds, not written yet", status.writer_backlog)
        yield counter("bus_dead_letters", "bus messages expired, failed or dropped", status.bus_dead_letters)
        depths = GaugeMetricFamily(
            "triplegain_bus_queue_depth", "messages queued per subscription", labels=["subscription"]
        )
        for queue in status.bus_queues:
            depths.add_metric([queue.subscription], queue.depth)
        yield depths
        staleness = status.feed_staleness_seconds
        yield gauge(
            "feed_staleness_seconds",
            "wall seconds since the last candle (-1: none yet)",
            -1 if staleness is None else staleness,
        )
        yield from _llm_families(status.llm)


def _llm_families(llm: dict[str, ProviderCalls]) -> Iterator[Metric]:
    calls = CounterMetricFamily("triplegain_llm_calls", "LLM attempts", labels=["provider"])
    errors = CounterMetricFamily("triplegain_llm_errors", "LLM attempts that failed", labels=["provider"])
    spend = CounterMetricFamily("triplegain_llm_spend_usd", "LLM spend of this process", labels=["provider"])
    today = GaugeMetricFamily("triplegain_llm_spend_today_usd", "LLM spend of the UTC day", labels=["provider"])
    latency = HistogramMetricFamily("triplegain_llm_latency_seconds", "LLM attempt latency", labels=["provider"])
    for provider, tally in llm.items():
        calls.add_metric([provider], tally.calls)
        errors.add_metric([provider], tally.errors)
        spend.add_metric([provider], tally.cost_usd)
        today.add_metric([provider], tally.spend_today_usd)
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, LATENCY_BUCKETS_SECONDS), "+Inf"], tally.latency_buckets, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        latency.add_metric([provider], buckets, tally.latency_sum_seconds)
    yield from (calls, errors, spend, today, latency)


def daemon_registry(live: LiveSource) -> CollectorRegistry:
    """A registry holding only the daemon's collector (not prometheus-client's process-wide default one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(live))
    return registry
