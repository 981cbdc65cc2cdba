"""The daemon's HTTP surface (``http``) over the run, and its in-memory state as the surface reads it
(``http.live.LiveStatus``), taken on demand from the run's tracker, the trading system (coordinator, bus, writer,
health monitor, spend ledger) and the store watch."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC

from triplegain.clock import WallClock
from triplegain.config import Settings
from triplegain.daemon.outage import StoreWatch
from triplegain.daemon.status import RunTracker, StatusBoard, progress
from triplegain.http.live import LastDecision, LiveSource, LiveStatus, ProviderCalls, QueueDepth, RecentEvent
from triplegain.model import BreakerTripped, LevelChanged, StateChanged
from triplegain.store.database import Database


def load_http(settings: Settings) -> None:
    """Import the HTTP stack (FastAPI, uvicorn: about a second) before trading starts, when HTTP is on."""
    if settings.http.enabled:
        importlib.import_module("triplegain.http.server")


@asynccontextmanager
async def serving_http(
    db: Database, tracker: RunTracker, watch: StoreWatch, board: StatusBoard, environ: Mapping[str, str]
) -> AsyncIterator[None]:
    """The HTTP surface over this run while the block runs, when ``http.enabled`` (FastAPI is imported only then)."""
    system = tracker.system
    settings = system.settings
    if not settings.http.enabled:
        yield
        return
    from triplegain.http.server import serving_http as serving
    from triplegain.review.cli import results_inputs

    async with serving(
        settings.http,
        db,
        system.coordinator.account,
        live_source(tracker, watch),
        apply=system.coordinator.apply_commands,
        results_inputs=results_inputs(settings.execution),
        environ=environ,
    ) as address:
        if address is not None:
            board.say(f"http: dashboard and API at http://{address[0]}:{address[1]}/")
        yield


def live_source(tracker: RunTracker, watch: StoreWatch, wall: WallClock | None = None) -> LiveSource:
    """A function returning the daemon's status now (no I/O, no await)."""
    clock = wall if wall is not None else WallClock()

    def status() -> LiveStatus:
        system, events = tracker.system, tracker.events
        coordinator = system.coordinator
        equity = tracker.broker.equity()
        peak = tracker.peak_equity
        quote = system.settings.execution.quote_asset
        held = {asset: qty for asset, qty in tracker.broker.balances().items() if qty and asset != quote}
        last = events.last_decision
        bus = system.bus.stats()
        today = clock.now().astimezone(UTC).date()
        seen = events.last_candle_monotonic
        return LiveStatus(
            account=coordinator.account,
            state=coordinator.state.value,
            level=coordinator.level.name,
            level_causes=tuple(cause.describe() for cause in system.monitor.state.causes),
            breaker_trips_active=tuple(
                f"{trip.rule.value} ({trip.action.value})" for trip in coordinator.breaker.trips
            ),
            equity=equity,
            peak_equity=peak,
            drawdown=(peak - equity) / peak if peak else 0.0,
            max_drawdown=tracker.max_drawdown,
            positions=dict(sorted(held.items())),
            last_decision=None
            if last is None
            else LastDecision(
                id=str(last.decision_id),
                symbol=last.symbol,
                action=last.action.value,
                at=last.at,
                confidence=last.confidence,
                reason=last.reason,
            ),
            progress=progress(events.candles, tracker.total, tracker.clock.monotonic() - tracker.started),
            candles=events.candles,
            total_candles=tracker.total,
            last_candle_close=events.last_candle_close,
            decisions_by_action={action.value: count for action, count in events.decisions.items()},
            orders_placed=events.orders_placed,
            fills=events.fills,
            breaker_trips=events.breaker_trips,
            recent_events=tuple(_recent(event) for event in events.recent),
            llm={
                name: ProviderCalls(
                    calls=tally.calls,
                    errors=tally.errors,
                    cost_usd=tally.cost_usd,
                    spend_today_usd=system.ledger.today(name, today).spent_usd,
                    latency_buckets=tuple(tally.latency_buckets),
                    latency_sum_seconds=tally.latency_sum_seconds,
                )
                for name, tally in sorted(system.monitor.calls.providers.items())
            },
            bus_queues=tuple(
                QueueDepth(subscription=sub.name, topic=sub.topic.value, depth=sub.depth) for sub in bus.subscriptions
            ),
            bus_dead_letters=bus.expired + bus.failed + bus.dropped,
            writer_backlog=system.writer.stats().buffered,
            database=watch.status(),
            database_ok=not watch.failing(),
            feed_staleness_seconds=None if seen is None else events.wall.monotonic() - seen,
        )

    return status


def _recent(event: BreakerTripped | StateChanged | LevelChanged) -> RecentEvent:
    if isinstance(event, BreakerTripped):
        return RecentEvent(kind="breaker", at=event.at, text=f"breaker {event.rule.value} tripped: {event.reason}")
    if isinstance(event, StateChanged):
        before = event.from_state.value if event.from_state is not None else "-"
        return RecentEvent(
            kind="state", at=event.at, text=f"state {before} → {event.to_state.value} by {event.by}: {event.reason}"
        )
    causes = "; ".join(event.causes)
    return RecentEvent(
        kind="level",
        at=event.at,
        text=f"level {event.from_level.name} → {event.to_level.name}" + (f": {causes}" if causes else ""),
    )
