"""stats(): counts that add up, queue depth and high-water mark, delivery latency (docs/ARCHITECTURE.md, bus rule 8)."""

import asyncio

import pytest

from triplegain.bus import LatencySummary, Message, MessageBus, Overflow, Topic
from triplegain.bus.settings import BusSettings, TopicSettings, TopicsSettings
from triplegain.clock import FakeClock


class Held:
    """A handler that waits for ``release`` on every call and records what it got."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.count = 0

    async def __call__(self, message: Message) -> None:
        self.count += 1
        self.entered.set()
        await self.release.wait()


def test_latency_percentiles_are_nearest_rank_in_microseconds() -> None:
    summary = LatencySummary.of([n / 1e6 for n in range(1000, 0, -1)])
    assert summary.samples == 1000
    assert summary.p50_us == pytest.approx(500)
    assert summary.p99_us == pytest.approx(990)
    assert summary.p999_us == pytest.approx(999)
    assert LatencySummary.of([]) == LatencySummary(samples=0, p50_us=None, p99_us=None, p999_us=None)


async def test_latency_is_publish_to_handler_call_on_the_bus_clock() -> None:
    clock = FakeClock()
    async with MessageBus(BusSettings(latency_window=3), clock=clock) as bus:
        held = Held()
        await bus.subscribe(Topic.TA_SIGNALS, held, name="held")
        await bus.publish(bus.message(Topic.TA_SIGNALS, {}, source="t"))
        await held.entered.wait()  # delivered at once: 0 µs
        await bus.publish(bus.message(Topic.TA_SIGNALS, {}, source="t"))
        clock.advance(0.002)
        await bus.publish(bus.message(Topic.TA_SIGNALS, {}, source="t"))
        clock.advance(0.001)

        held.release.set()
        await bus.drain()

        latency = bus.stats().subscription("held").latency
        assert latency.samples == 3
        assert latency.p50_us == pytest.approx(1000)
        assert latency.p99_us == pytest.approx(3000)

        for _ in range(4):
            await bus.publish(bus.message(Topic.TA_SIGNALS, {}, source="t"))
        await bus.drain()
        assert bus.stats().subscription("held").latency == LatencySummary(
            samples=3, p50_us=0.0, p99_us=0.0, p999_us=0.0
        )


async def test_depth_high_water_and_running() -> None:
    clock = FakeClock()
    async with MessageBus(clock=clock) as bus:
        held = Held()
        await bus.subscribe(Topic.TA_SIGNALS, held, name="held")
        for _ in range(5):
            await bus.publish(bus.message(Topic.TA_SIGNALS, {}, source="t"))
        await held.entered.wait()

        stats = bus.stats().subscription("held")
        assert (stats.depth, stats.high_water, stats.running, stats.maxsize, stats.overflow) == (
            4,
            5,
            True,
            10_000,
            Overflow.BLOCK,
        )
        held.release.set()
        await bus.drain()
        stats = bus.stats().subscription("held")
        assert (stats.depth, stats.high_water, stats.running, stats.delivered) == (0, 5, False, 5)
        with pytest.raises(KeyError):
            bus.stats().subscription("nobody")


async def test_counts_per_subscription_and_in_total() -> None:
    clock = FakeClock()
    topics = TopicsSettings(market_data=TopicSettings(ttl_seconds=60, overflow=Overflow.DROP_OLDEST_LOWEST, maxsize=2))
    async with MessageBus(BusSettings(topics=topics), clock=clock) as bus:

        async def fine(message: Message) -> None:
            return None

        def broken_filter(message: Message) -> bool:
            raise KeyError("symbol")

        held = Held()
        await bus.subscribe(Topic.MARKET_DATA, held, name="ticks")
        await bus.subscribe(Topic.MARKET_DATA, fine, name="all-ticks", maxsize=10)
        await bus.subscribe(Topic.MARKET_DATA, fine, name="broken", filter=broken_filter)
        await bus.subscribe(Topic.TA_SIGNALS, fine, name="nothing-published-here")
        for _ in range(5):
            await bus.publish(bus.message(Topic.MARKET_DATA, {}, source="feed"))
        await held.entered.wait()
        held.release.set()
        await bus.drain()

        stats = bus.stats()
        assert (stats.published, stats.enqueued, stats.delivered, stats.dropped, stats.failed) == (5, 15, 7, 3, 5)
        assert stats.accounted == stats.enqueued
        ticks, all_ticks, broken, idle = stats.subscriptions
        assert (ticks.enqueued, ticks.delivered, ticks.dropped) == (5, 2, 3)
        assert (all_ticks.enqueued, all_ticks.delivered) == (5, 5)
        assert (broken.enqueued, broken.failed, broken.delivered) == (5, 5, 0)
        assert (idle.enqueued, idle.accounted) == (0, 0)
        assert {letter.error for letter in bus.dead_letters() if letter.subscription == "broken"} == {
            "KeyError: 'symbol'"
        }


async def test_publish_from_a_handler_into_a_full_block_queue_is_admitted_and_counted() -> None:
    clock = FakeClock()
    topics = TopicsSettings(regime_updates=TopicSettings(ttl_seconds=60, maxsize=1))
    async with MessageBus(BusSettings(topics=topics), clock=clock) as bus:
        held = Held()
        await bus.subscribe(Topic.REGIME_UPDATES, held, name="bounded")

        async def fan_out(message: Message) -> None:
            for _ in range(3):
                await bus.publish(bus.message(Topic.REGIME_UPDATES, {}, source="fan-out"))

        await bus.subscribe(Topic.TA_SIGNALS, fan_out, name="fan-out")
        await bus.publish(bus.message(Topic.TA_SIGNALS, {}, source="t"))
        await held.entered.wait()

        bounded = bus.stats().subscription("bounded")
        assert (bounded.depth, bounded.high_water, bounded.overflow_admitted) == (2, 3, 2)
        held.release.set()
        await bus.drain()
        assert bus.stats().overflow_admitted == 2


async def test_totals_keep_the_counts_of_unsubscribed_subscriptions_and_of_their_last_handler_call() -> None:
    clock = FakeClock()
    async with MessageBus(clock=clock) as bus:
        held = Held()
        subscription = await bus.subscribe(Topic.TA_SIGNALS, held, name="leaving")
        for _ in range(3):
            await bus.publish(bus.message(Topic.TA_SIGNALS, {}, source="t"))
        await held.entered.wait()

        await subscription.unsubscribe()  # one call in progress, two queued: discarded
        during = bus.stats()
        assert (during.enqueued, during.discarded, during.delivered, during.subscriptions) == (3, 2, 0, ())

        held.release.set()
        await bus.drain()  # waits for the call in progress although its subscription is gone
        after = bus.stats()
        assert (after.enqueued, after.delivered, after.discarded, after.accounted) == (3, 1, 2, 3)
