"""A daemon's live status as the HTTP surface reads it, for the tests of what is drawn from it."""

from __future__ import annotations

from datetime import UTC, datetime

from triplegain.http.live import LiveStatus, ProviderCalls, QueueDepth
from triplegain.llm.tally import LATENCY_BUCKETS_SECONDS


def status() -> LiveStatus:
    buckets = [0] * (len(LATENCY_BUCKETS_SECONDS) + 1)
    buckets[0], buckets[4], buckets[-1] = 2, 1, 1  # two of ≤ 50 ms, one of ≤ 1 s, one above 60 s
    return LiveStatus(
        account="paper",
        state="RUNNING",
        level="LIMITED",
        level_causes=("llm_error_rate 0.5",),
        breaker_trips_active=(),
        equity=10_250.5,
        peak_equity=10_500.0,
        drawdown=0.0238,
        max_drawdown=0.05,
        positions={"BTC": 0.1},
        last_decision=None,
        progress="candle 10 of 20",
        candles=10,
        total_candles=20,
        last_candle_close=datetime(2024, 1, 1, tzinfo=UTC),
        decisions_by_action={"hold": 7, "buy": 2},
        orders_placed=2,
        fills=1,
        breaker_trips=3,
        recent_events=(),
        llm={
            "deepseek": ProviderCalls(
                calls=4,
                errors=1,
                cost_usd=0.02,
                spend_today_usd=0.5,
                latency_buckets=tuple(buckets),
                latency_sum_seconds=62.5,
            )
        },
        bus_queues=(QueueDepth(subscription="daemon.events.market_data", topic="market_data", depth=5),),
        bus_dead_letters=4,
        writer_backlog=12,
        database="ok",
        database_ok=True,
        feed_staleness_seconds=1.5,
    )
