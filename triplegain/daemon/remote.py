"""Candles and views from NATS: what ``triplegain run --agents remote`` trades on instead of a feed of its own.

A ``RemoteFeed`` is a feed (``market.feeds.Feed``) over the bridge's ingress: each message of the shared agents'
topics goes on the local bus as it arrives (``latest()`` sees it, keeping its id, time, TTL and correlation id),
and each candle is handed to the daemon like a feed's candle (the broker, the frames, freshness). Messages are
taken one at a time, in stream order, only when the daemon asks for its next candle, so everything published
before a candle has reached the bus when that candle is taken in.

Two ways to follow the stream, from the settings' market source (the one the agents service runs):

- ``ccxt`` (live): the wall clock and the live schedule. The consumer starts from the newest message of every
  subject, so a coordinator starting or taking over decides on the current views at once (older than their TTL:
  never taken). While NATS is unreachable every second counts as a failed market-data request (the level rises
  as for a failing feed), no candle arrives (the data goes stale), and the views expire: no decision is made on
  stale data. The client reconnects by itself and the consumer carries on where it was.
- ``replay`` or ``synthetic``: candle time, as a replay in one process. The consumer reads the stream from its
  start; a decision at candle time T runs when the first candle after T arrives, when every view of T has (the
  agents service puts a time's candles in its outbox only after the views before them, and the outbox is sent in
  order). A coordinator restarted or taking over reads it again from the start: the candles its account processed
  are skipped, as a restarted replay skips them. An outage only delays it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import structlog

from triplegain.bus import Message, MessageBus, Topic
from triplegain.bus.bridge import Delivery, Ingress, ensure_bus_stream
from triplegain.bus.jetstream import JetStreamLink, connect_jetstream
from triplegain.clock import Clock, FakeClock, WallClock
from triplegain.config import Settings
from triplegain.errors import UserError
from triplegain.market import Candle, Timeframe
from triplegain.market.feeds import FeedStats
from triplegain.market.feeds.monitor import FeedMonitor
from triplegain.market.feeds.replay import CandleFile
from triplegain.market.settings import ReplayFile
from triplegain.system.assembly import SHARED_AGENT_TOPICS
from triplegain.system.payloads import decode_payload
from triplegain.waiting import unless_set

if TYPE_CHECKING:
    from pathlib import Path

    from triplegain.daemon.run import FeedErrors

logger = structlog.get_logger(__name__)

REMOTE_TOPICS = frozenset({Topic.MARKET_DATA, *SHARED_AGENT_TOPICS})
"""What a coordinator takes from NATS."""


@dataclass(frozen=True)
class RemoteMarket:
    """The symbols and timeframe the agents service runs on, as the settings say, and how to follow its time."""

    symbols: list[str]
    timeframe: Timeframe
    candle_time: bool


def remote_market(settings: Settings, source: str, replay_files: tuple[Path, ...]) -> RemoteMarket:
    """What a remote coordinator trades, from the source the agents service runs (no candle is read)."""
    market = settings.market
    if source == "ccxt":
        return RemoteMarket(list(market.ccxt.symbols), market.ccxt.timeframe, candle_time=False)
    if source == "synthetic":
        return RemoteMarket(sorted(market.synthetic.symbols), market.synthetic.timeframe, candle_time=True)
    entries = [ReplayFile(path=path) for path in replay_files] or list(market.replay.files)
    if not entries:
        raise UserError("run --agents remote --replay: name the agents service's candle files (or market.replay.files)")
    files = [CandleFile.from_settings(entry) for entry in entries]
    return RemoteMarket(sorted({f.symbol for f in files}), files[0].timeframe, candle_time=True)


class RemoteFeed:
    """The candles of the stream, with every shared view put on the local bus on the way (module docstring)."""

    def __init__(self, link: JetStreamLink, ingress: Ingress, stack: AsyncExitStack) -> None:
        self._link = link
        self._ingress = ingress
        self._stack = stack
        self._monitor = FeedMonitor(feed="nats")
        self._bus: MessageBus | None = None
        self._early: list[Message] = []
        self._closed = False

    @classmethod
    async def open(
        cls, settings: Settings, market: RemoteMarket, *, account: str, environ: Mapping[str, str]
    ) -> RemoteFeed:
        """Connected, the stream made sure of, the consumer started (``NatsUnavailable`` when it cannot be)."""
        nats = settings.bus.nats
        async with AsyncExitStack() as stack:
            link = await stack.enter_async_context(
                connect_jetstream(nats, name=f"triplegain run {account}", environ=environ)
            )
            await ensure_bus_stream(link, nats)
            delivery: Delivery = "all" if market.candle_time else "last_per_subject"
            ingress = Ingress(
                link, nats, decode_payload, topics=REMOTE_TOPICS, symbols=market.symbols, delivery=delivery
            )
            await ingress.start()
            return cls(link, ingress, stack.pop_all())
        raise AssertionError("unreachable")

    @property
    def link(self) -> JetStreamLink:
        return self._link

    @property
    def ingress(self) -> Ingress:
        return self._ingress

    def bind(self, bus: MessageBus) -> None:
        """From now on, views go on ``bus`` (those read before, with the first candle, go there at the next read)."""
        self._bus = bus

    def __aiter__(self) -> RemoteFeed:
        return self

    async def __anext__(self) -> Candle:
        if self._closed:
            raise StopAsyncIteration
        while True:
            bus = self._bus
            if bus is not None and self._early:
                for early in self._early:
                    if self._ingress.admit(early, bus):
                        await bus.publish(early)
                self._early.clear()
            message = await self._ingress.next(bus)
            if message.topic is Topic.MARKET_DATA:
                candle = message.payload
                assert isinstance(candle, Candle)
                if self._monitor.admit(candle, source="nats"):
                    self._monitor.count_emitted(candle)
                    return candle
            elif bus is None:
                self._early.append(message)
            else:
                await bus.publish(message)

    def note_outage(self) -> bool:
        """Count a failed request when the connection is down now (called once a second); whether it is."""
        if self._link.connected.is_set():
            return False
        self._monitor.failed_requests += 1
        return True

    def stats(self) -> FeedStats:
        return self._monitor.snapshot()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._ingress.aclose()
        await self._stack.aclose()
        logger.info("nats ingress closed", **asdict(self._ingress.stats()), candles=self._monitor.snapshot().emitted)


async def first_candle(feed: RemoteFeed, stop: asyncio.Event) -> Candle | None:
    """The stream's first candle (waiting for the agents service to publish one); None when a stop comes first."""
    reading = await unless_set(anext(feed), stop)
    return None if reading.cancelled() else reading.result()


def remote_clock(market: RemoteMarket, first: Candle | None) -> Clock:
    """Candle time from the first candle, or the wall clock (live)."""
    if market.candle_time:
        assert first is not None
        return FakeClock(first.open_time)
    return WallClock()


async def report_outages(feed: RemoteFeed, feed_errors: FeedErrors, clock: Clock) -> None:
    """Live: once a second, a second of NATS unreachable is a failed market-data request for the monitor."""
    while True:
        await asyncio.sleep(1.0)
        if feed.note_outage():
            feed_errors.report(clock.now())
