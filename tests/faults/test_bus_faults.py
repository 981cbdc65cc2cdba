"""Issue 7, message bus faults: a handler that blocks forever, one that raises on every message, and a flood of
1,000,000 market-data messages. In each, the coordinator's critical topics (risk alerts, system events,
coordinator commands) keep reaching their subscribers promptly, and what the bus holds stays bounded.

Latency is measured on the wall clock from ``publish()`` to the handler call (the bus's own per-subscription
figure); every wait is on an event, with a timeout, never a sleep.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from benchmarks.figures import resident_bytes
from triplegain.bus import DeadLetter, DeadLetterReason, Message, MessageBus, Priority, Topic
from triplegain.bus.settings import BusSettings, Overflow, TopicSettings, TopicsSettings
from triplegain.clock import WallClock

CRITICAL = (Topic.RISK_ALERTS, Topic.SYSTEM_EVENTS, Topic.EXECUTION_EVENTS)
# Publish to handler call, for the coordinator's topics, even on a loaded 2-core CI machine.
CRITICAL_LATENCY_BOUND_SECONDS = 0.25
DELIVERY_TIMEOUT_SECONDS = 10


class Critical:
    """A subscriber of every critical topic; ``until(n)`` returns once it has received ``n`` messages."""

    def __init__(self) -> None:
        self.received = 0
        self._target = 0
        self._reached = asyncio.Event()

    async def __call__(self, message: Message) -> None:
        self.received += 1
        if self.received == self._target:
            self._reached.set()

    async def until(self, count: int) -> None:
        if self.received >= count:
            return
        self._target, self._reached = count, asyncio.Event()
        async with asyncio.timeout(DELIVERY_TIMEOUT_SECONDS):
            await self._reached.wait()

    async def subscribe(self, bus: MessageBus) -> None:
        for topic in CRITICAL:
            await bus.subscribe(topic, self, name=f"coordinator.{topic.value}")


def critical_messages(bus: MessageBus, number: int) -> Iterator[Message]:
    """One message on each critical topic; risk alerts are URGENT, as the risk rules send them."""
    for topic in CRITICAL:
        priority = Priority.URGENT if topic is Topic.RISK_ALERTS else Priority.HIGH
        yield bus.message(topic, {"n": number}, source="faults", priority=priority)


def assert_critical_latency(bus: MessageBus) -> None:
    for topic in CRITICAL:
        latency = bus.stats().subscription(f"coordinator.{topic.value}").latency
        assert latency.samples > 0
        assert latency.p999_us is not None
        assert latency.p999_us / 1e6 < CRITICAL_LATENCY_BOUND_SECONDS, (topic, latency)


async def blocked_forever(message: Message) -> None:
    await asyncio.Event().wait()


@pytest.mark.timeout(30)
async def test_a_handler_blocked_forever_holds_only_its_own_bounded_queue() -> None:
    topics = TopicsSettings(
        market_data=TopicSettings(ttl_seconds=120, overflow=Overflow.DROP_OLDEST_LOWEST, maxsize=500),
        risk_alerts=TopicSettings(ttl_seconds=300, maxsize=5_000),
    )
    config = BusSettings(dead_letter_limit=1_000, topics=topics, close_timeout_seconds=0)
    async with MessageBus(config, clock=WallClock()) as bus:
        critical = Critical()
        await critical.subscribe(bus)
        await bus.subscribe(Topic.MARKET_DATA, blocked_forever, name="agent.stuck")
        await bus.subscribe(Topic.RISK_ALERTS, blocked_forever, name="risk.stuck")
        candle = bus.message(Topic.MARKET_DATA, {"close": 1.0}, source="feed", symbol="BTC/USDT")

        for number in range(1_000):
            for _ in range(10):
                await bus.publish(candle)
            for message in critical_messages(bus, number):
                await bus.publish(message)
            await critical.until(3 * (number + 1))  # delivered before the next round is published

        assert_critical_latency(bus)
        stats = bus.stats()
        stuck = stats.subscription("agent.stuck")
        assert (stuck.running, stuck.depth, stuck.high_water) == (True, 500, 500)
        assert stuck.dropped == 10_000 - 1 - 500
        risk_stuck = stats.subscription("risk.stuck")
        assert (risk_stuck.running, risk_stuck.depth) == (True, 999)
        assert stats.dead_letters_kept == 1_000  # the bound, not the 9,499 drops


@pytest.mark.timeout(30)
async def test_a_handler_raising_on_every_message_costs_only_its_own_messages() -> None:
    def refuse(letter: DeadLetter) -> None:
        raise RuntimeError("the dead-letter writer is full")

    config = BusSettings(dead_letter_limit=1_000, close_timeout_seconds=0)
    failures = 5_000
    with capture_logs() as logs:
        async with MessageBus(config, clock=WallClock(), on_dead_letter=refuse) as bus:
            critical = Critical()
            await critical.subscribe(bus)

            async def broken(message: Message) -> None:
                raise ValueError(f"cannot handle {message.id}")

            for topic in (Topic.MARKET_DATA, Topic.RISK_ALERTS):
                await bus.subscribe(topic, broken, name=f"broken.{topic.value}")
            candle = bus.message(Topic.MARKET_DATA, {"close": 1.0}, source="feed", symbol="BTC/USDT")

            for number in range(failures // 2):
                await bus.publish(candle)
                for message in critical_messages(bus, number):
                    await bus.publish(message)
                await critical.until(3 * (number + 1))
            await bus.drain()

            assert_critical_latency(bus)
            stats = bus.stats()
            assert critical.received == 3 * failures // 2
            assert (stats.failed, stats.dead_letters_kept, stats.dead_letter_hook_errors) == (failures, 1_000, failures)
            letters = bus.dead_letters()
            assert all(letter.reason is DeadLetterReason.HANDLER_ERROR for letter in letters)
            assert letters[-1].error is not None
            assert letters[-1].error.startswith("ValueError: cannot handle")

    # Every failure is a dead letter, but the log gets the 1st, 10th, 100th and 1000th of each subscription's
    # errors and of the hook's: a handler failing on every message of a flood cannot flood the log.
    logged = [entry for entry in logs if entry["log_level"] in ("warning", "error")]
    assert len(logged) == 4 + 4 + 4


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_flood_of_a_million_market_data_messages_leaves_critical_topics_flowing_in_bounded_memory() -> None:
    flood, round_size = 1_000_000, 1_000
    history_size, dead_letter_limit, market_maxsize = 16, 10_000, 10_000
    topics = TopicsSettings(
        market_data=TopicSettings(ttl_seconds=120, overflow=Overflow.DROP_OLDEST_LOWEST, maxsize=market_maxsize)
    )
    config = BusSettings(
        history_size=history_size, dead_letter_limit=dead_letter_limit, topics=topics, close_timeout_seconds=0
    )
    async with MessageBus(config, clock=WallClock()) as bus:
        critical = Critical()
        await critical.subscribe(bus)
        handled = 0

        async def agent(message: Message) -> None:
            nonlocal handled
            handled += 1

        await bus.subscribe(Topic.MARKET_DATA, agent, name="agent.technical")
        await bus.subscribe(Topic.MARKET_DATA, blocked_forever, name="agent.stuck")
        # Distinct messages (building a million would take longer than the flood): the bus's own structures are
        # what must stay bounded, and each publish makes its own envelope and, once the stuck queue is full,
        # its own dead letter.
        symbols = [f"SYM{number}/USDT" for number in range(20)]
        candles = [
            bus.message(Topic.MARKET_DATA, {"close": float(n)}, source="feed", symbol=symbols[n % len(symbols)])
            for n in range(round_size)
        ]
        rss_after_a_tenth = 0
        started = time.perf_counter()
        for number in range(flood // round_size):
            for candle in candles:
                await bus.publish(candle)
            for message in critical_messages(bus, number):
                await bus.publish(message)
            await critical.until(3 * (number + 1))
            if number + 1 == flood // round_size // 10:
                gc.collect()
                rss_after_a_tenth = resident_bytes()
        gc.collect()
        growth = resident_bytes() - rss_after_a_tenth
        elapsed = time.perf_counter() - started

        assert_critical_latency(bus)
        stats = bus.stats()
        stuck = stats.subscription("agent.stuck")
        assert stats.published == flood + 3 * flood // round_size
        assert (stuck.depth, stuck.high_water) == (market_maxsize, market_maxsize)
        assert stuck.dropped == flood - 1 - market_maxsize
        assert handled == stats.subscription("agent.technical").delivered == flood
        assert stats.dead_letters_kept == dead_letter_limit
        assert all(len(bus.history(Topic.MARKET_DATA, symbol)) == history_size for symbol in symbols)
        # Unbounded growth would be ~1 KB a dropped message (its envelope and dead letter): about 900 MB here.
        assert growth < 40 * 2**20, f"RSS grew {growth / 2**20:.1f} MB over the last 900,000 messages"
        assert elapsed < 60
