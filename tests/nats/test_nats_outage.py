"""NATS killed mid-run and started again, with real processes and a real server of the test's own.

At candle time (an agents service replaying synthetic candles, a remote coordinator following the stream): while
NATS is away what the agents publish waits in their outbox, within its bound, and the coordinator waits; once NATS
is back the stream holds every candle and view once, in order, the coordinator takes each once, and its decisions
are those of a single-process run over the same candles.

Live (a remote coordinator on the wall clock; the agents' side of the wire played by the test through the real
egress): views whose TTL passed in transit are never used; while NATS is away the level rises (each second counts
as a failed market-data request) and the views expire, so no decision is made on them (none at all: without a
fresh technical view there is no intent); the outbox holds what is published meanwhile and delivers all of it
after the restart (the coordinator drops those whose TTL passed meanwhile, counted); the level recovers and fresh
views are used again.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest
from pydantic import BaseModel

from tests.builders import nth_candle
from tests.faults.daemon_process import Event
from tests.nats.processes import (
    agents_service,
    difference,
    event_named,
    finished,
    remote_coordinator,
    role_env,
    single_process,
    trading_rows,
    wait_for_decisions,
    write_config,
)
from tests.nats.views import agent_messages
from tests.nats_server import NatsServer
from triplegain.bus import Message, MessageBus, Topic
from triplegain.bus.bridge import Egress, ensure_bus_stream
from triplegain.bus.jetstream import connect_jetstream
from triplegain.bus.settings import NatsSettings
from triplegain.clock import WallClock

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]

CANDLES = 96
SPEED = "1500"
LOST = "NATS connection lost; reconnecting"
BACK = "NATS connection back"


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A server of the test's own, to kill (never a shared one)."""
    server = NatsServer.start(tmp_path / "nats")
    try:
        yield server
    finally:
        server.stop()


async def stream_messages(url: str, names: dict[str, str]) -> int:
    settings = NatsSettings(url=url, **names)
    async with connect_jetstream(settings, name="test", environ={}) as link:
        info = await link.js.stream_info(settings.stream)
    return int(info.state.messages)


async def shared_views(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM agent_outputs WHERE run_id IS NULL AND agent IN ('technical', 'regime', 'sentiment')"
        )
    finally:
        await connection.close()
    return count


async def test_a_replay_through_nats_waits_while_nats_is_away_and_loses_and_doubles_nothing(
    migrated_database_url: str, own_nats: NatsServer, nats_names: dict[str, str], tmp_path: Path
) -> None:
    url = migrated_database_url
    env = role_env(url, write_config(tmp_path, nats_names, count=CANDLES), own_nats.url)
    reference = single_process(env, "reference")
    finished(reference, within=120)
    expected = await trading_rows(url, "reference")
    last_time = expected["decisions"][-1][1]
    before_the_last = sum(1 for row in expected["decisions"] if row[1] < last_time)

    coordinator = remote_coordinator(env, "remote")
    agents = agents_service(env, speed=SPEED)
    wait_for_decisions(coordinator, 10, within=60)
    own_nats.kill()
    agents.wait_for(lambda event: event.get("event") == LOST, within=30)
    coordinator.wait_for(lambda event: event.get("event") == LOST, within=30)
    own_nats.restart()
    agents.wait_for(lambda event: event.get("event") == BACK, within=30)
    summary = finished(agents, within=120)
    wait_for_decisions(coordinator, before_the_last, within=120)
    coordinator.send(signal.SIGTERM)
    finished(coordinator, within=60)

    stored = await stream_messages(own_nats.url, nats_names)
    # Each message acknowledged once: stored at the first try, or found stored when its batch was sent again.
    assert stored == summary["published"] == summary["candles"] + await shared_views(url)
    taken = event_named(coordinator, "nats ingress closed")
    assert (taken["taken"], taken["duplicates"], taken["expired"]) == (stored, 0, 0)
    assert await trading_rows(url, "remote") == expected, await difference(url, "remote", "reference", expected)


LIVE_CONFIG = """
market:
  source: ccxt
  ccxt: {{symbols: [BTC/USDT], timeframe: 5m}}
coordinator:
  resolver: {{providers: [offline]}}
  degradation:
    window_seconds: 5
    recovery_hold_seconds: 1
    market_data_errors: {{at: 2, level: limited}}
  schedule:
    jitter_seconds: 0.0
    misfire_grace_seconds: 1.0
    shutdown_timeout_seconds: 2.0
    portfolio: {{interval_seconds: 3600}}
    trade_decision: {{interval_seconds: 0.5, offset_seconds: 0.0}}
    housekeeping: {{interval_seconds: 0.5}}
bus:
  nats: {{stream: {stream}, subject_prefix: {subject_prefix}, ack_timeout_seconds: 1.0, reconnect_wait_seconds: 0.2}}
"""
VIEW_TTL = timedelta(seconds=2)
SHARED = (Topic.TA_SIGNALS, Topic.REGIME_UPDATES, Topic.SENTIMENT_UPDATES)


class Publisher:
    """An agents service's side of the wire, in the test: fresh candles and views every 0.25 s through the real
    egress, each view's id and time noted."""

    def __init__(self, egress: Egress, bus: MessageBus, views: dict[Topic, Message]) -> None:
        self._egress = egress
        self._bus = bus
        self._views = views
        self.published: dict[UUID, datetime] = {}
        self._candle_open: datetime | None = None

    async def once(self, *, created_at: datetime | None = None) -> None:
        clock = self._bus.clock
        now = clock.now()
        open_time = (now - timedelta(minutes=5)).replace(second=0, microsecond=0)
        open_time -= timedelta(minutes=open_time.minute % 5)
        if open_time != self._candle_open:
            self._candle_open = open_time
            candle = nth_candle(open_time, 0, 100.0, 101.0, 99.0, 100.5)
            await self._bus.publish(self._bus.message(Topic.MARKET_DATA, candle, source="market", symbol="BTC/USDT"))
        for topic, template in self._views.items():
            payload = template.payload
            assert isinstance(payload, BaseModel)
            view = payload.model_copy(update={"id": uuid4(), "timestamp": created_at or now})
            message = self._bus.message(topic, view, source="test", ttl=VIEW_TTL, symbol="BTC/USDT")
            if created_at is not None:
                message = message.replace(created_at=created_at)
            self.published[view.id] = message.created_at
            self._egress.put(message)

    async def run(self) -> None:
        while True:
            await self.once()
            await asyncio.sleep(0.25)


def at(event: Event) -> datetime:
    return datetime.fromisoformat(event["timestamp"])


async def decisions_with_inputs(url: str) -> list[tuple[datetime, list[UUID]]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT ts, consensus_inputs FROM decisions WHERE account = 'live' ORDER BY ts")
    finally:
        await connection.close()
    return [(row["ts"], [UUID(entry["output_id"]) for entry in json.loads(row["consensus_inputs"])]) for row in rows]


async def test_live_nats_away_raises_the_level_holds_off_stale_views_and_recovers(
    migrated_database_url: str, own_nats: NatsServer, nats_names: dict[str, str], tmp_path: Path
) -> None:
    url = migrated_database_url
    config = tmp_path / "live.yaml"
    config.write_text(LIVE_CONFIG.format(**nats_names))
    nats = NatsSettings(url=own_nats.url, ack_timeout_seconds=1.0, reconnect_wait_seconds=0.2, **nats_names)
    templates = {message.topic: message for message in await agent_messages() if message.topic in SHARED}
    wall = WallClock()
    async with connect_jetstream(nats, name="test agents", environ={}) as link, MessageBus(clock=wall) as bus:
        await ensure_bus_stream(link, nats)
        egress = Egress(link, bus, nats, [Topic.MARKET_DATA])
        await egress.start()
        publisher = Publisher(egress, bus, templates)
        # Views whose TTL passed on the way: the coordinator starting reads them (newest per subject), never uses them.
        stale = await publisher_once_stale(publisher, wall)
        await egress.flush()
        coordinator = remote_coordinator(role_env(url, config, own_nats.url), "live", source="ccxt")
        await asyncio.to_thread(coordinator.wait_for, lambda e: e.get("event") == "coordinator started", within=60)
        publishing = asyncio.create_task(publisher.run())
        try:
            await asyncio.sleep(VIEW_TTL.total_seconds())  # decisions on fresh views
            own_nats.kill()
            lost = await asyncio.to_thread(coordinator.wait_for, lambda e: e.get("event") == LOST, within=30)
            raised = await asyncio.to_thread(coordinator.wait_for, is_level_change("LIMITED"), within=30)
            await asyncio.sleep(2 * VIEW_TTL.total_seconds())  # the outage goes on past the views' TTL
            held_during_outage = egress.stats().held
            own_nats.restart()
            back = await asyncio.to_thread(coordinator.wait_for, lambda e: e.get("event") == BACK, within=30)
            await asyncio.to_thread(coordinator.wait_for, is_level_change("NORMAL"), within=60)
            await asyncio.sleep(VIEW_TTL.total_seconds())  # decisions on fresh views again
        finally:
            publishing.cancel()
            await asyncio.gather(publishing, return_exceptions=True)
        await egress.flush()
        coordinator.send(signal.SIGTERM)
        await asyncio.to_thread(finished, coordinator, within=60)
        stats = egress.stats()
        await egress.aclose()

    assert held_during_outage > 0
    assert stats.held == 0
    assert await stream_messages(own_nats.url, nats_names) == stats.acknowledged
    taken = event_named(coordinator, "nats ingress closed")
    assert taken["expired"] >= len(stale)
    decisions = await decisions_with_inputs(url)
    remote = set(publisher.published)  # the shared agents' views (not the coordinator's own portfolio view)
    used = [(ts, output) for ts, inputs in decisions for output in inputs if output in remote]
    assert used, "fresh views must be used before and after the outage"
    assert not set(stale) & {output for _, output in used}
    for ts, output in used:  # no view past its TTL at the decision
        assert ts < publisher.published[output] + VIEW_TTL, (ts, output)
    # Without a fresh technical view there is no intent, so no decision at all until views flow again.
    assert not [ts for ts, _ in decisions if at(lost) + VIEW_TTL < ts < at(back)]
    assert any(ts < at(lost) for ts, _ in used)
    assert any(ts > at(back) for ts, _ in used)
    assert at(lost) < at(raised) < at(back)


async def publisher_once_stale(publisher: Publisher, wall: WallClock) -> list[UUID]:
    before = set(publisher.published)
    await publisher.once(created_at=wall.now() - 3 * VIEW_TTL)
    return [output for output in publisher.published if output not in before]


def is_level_change(level: str) -> Callable[[Event], bool]:
    return lambda event: event.get("event") == "degradation level changed" and event.get("to_level") == level


async def test_past_its_bound_the_agents_service_stops_with_one_line_and_exit_75(
    migrated_database_url: str, own_nats: NatsServer, nats_names: dict[str, str], tmp_path: Path
) -> None:
    config = write_config(tmp_path, nats_names, count=CANDLES)
    bounded = config.read_text().replace("ack_timeout_seconds: 2.0", "max_unacked_messages: 3")
    config.write_text(bounded)
    agents = agents_service(role_env(migrated_database_url, config, own_nats.url), speed=SPEED)
    agents.wait_for(lambda event: event.get("event") == "agents service publishing", within=60)
    own_nats.kill()
    code = agents.finish(within=60)
    assert code == 75, agents.err()[-2000:]
    [line] = [line for line in agents.stderr if line.startswith("error: ")]
    assert "the bound bus.nats.max_unacked_messages = 3 reached" in line
    assert "Traceback" not in agents.err()
