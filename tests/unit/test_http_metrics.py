"""``/metrics`` renders the daemon's live status in Prometheus's text format, from a registry of its own."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from tests.http.live_status import status
from triplegain.http.metrics import daemon_registry


def test_the_status_as_prometheus_text() -> None:
    text = generate_latest(daemon_registry(status)).decode()
    for line in (
        'triplegain_decisions_total{account="paper",action="buy"} 2.0',
        'triplegain_decisions_total{account="paper",action="hold"} 7.0',
        'triplegain_orders_total{account="paper"} 2.0',
        'triplegain_fills_total{account="paper"} 1.0',
        'triplegain_breaker_trips_total{account="paper"} 3.0',
        'triplegain_equity{account="paper"} 10250.5',
        'triplegain_drawdown_ratio{account="paper"} 0.0238',
        'triplegain_degradation_level{account="paper"} 2.0',
        'triplegain_writer_backlog_rows{account="paper"} 12.0',
        'triplegain_bus_dead_letters_total{account="paper"} 4.0',
        'triplegain_bus_queue_depth{subscription="daemon.events.market_data"} 5.0',
        'triplegain_candles_total{account="paper"} 10.0',
        'triplegain_feed_staleness_seconds{account="paper"} 1.5',
        'triplegain_llm_calls_total{provider="deepseek"} 4.0',
        'triplegain_llm_errors_total{provider="deepseek"} 1.0',
        'triplegain_llm_spend_usd_total{provider="deepseek"} 0.02',
        'triplegain_llm_spend_today_usd{provider="deepseek"} 0.5',
        'triplegain_llm_latency_seconds_bucket{le="0.05",provider="deepseek"} 2.0',
        'triplegain_llm_latency_seconds_bucket{le="1.0",provider="deepseek"} 3.0',
        'triplegain_llm_latency_seconds_bucket{le="60.0",provider="deepseek"} 3.0',
        'triplegain_llm_latency_seconds_bucket{le="+Inf",provider="deepseek"} 4.0',
        'triplegain_llm_latency_seconds_count{provider="deepseek"} 4.0',
        'triplegain_llm_latency_seconds_sum{provider="deepseek"} 62.5',
    ):
        assert line in text.splitlines(), line
    assert b"triplegain_" not in generate_latest(REGISTRY)  # the process-wide registry is left alone
