"""docs/ARCHITECTURE.md, bus rule 6: a full queue blocks the publisher (backpressure) or drops the oldest of the
lowest priority."""

import asyncio

import pytest

from tests.concurrency.helpers import Gate, Recorder, bus_config, label, make_message, topic_settings
from triplegain.bus import DeadLetterReason, Message, MessageBus, Overflow, Priority, Topic
from triplegain.clock import FakeClock

pytestmark = pytest.mark.timeout(10)

LOW, NORMAL, HIGH, URGENT = Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT


async def test_block_makes_the_publisher_wait_for_room_then_continue(clock: FakeClock) -> None:
    config = bus_config(ta_signals=topic_settings(maxsize=2))
    async with MessageBus(config, clock=clock) as bus:
        returned = 0
        returned_at_delivery: list[int] = []

        async def observe(message: Message) -> None:
            returned_at_delivery.append(returned)

        await bus.subscribe(Topic.TA_SIGNALS, observe, name="bounded")

        async def publisher() -> None:
            nonlocal returned
            for index in range(20):
                await bus.publish(make_message(clock, index))
                returned += 1

        await publisher()
        await bus.drain()

        assert len(returned_at_delivery) == 20
        # The publisher never ran more than the queue bound (plus the message in hand) ahead of delivery.
        for delivered, returned_then in enumerate(returned_at_delivery):
            assert returned_then <= delivered + 2 + 1
        stats = bus.stats().subscription("bounded")
        assert (stats.high_water, stats.delivered, stats.overflow_admitted) == (2, 20, 0)


async def test_many_blocked_publishers_all_get_through_in_their_own_order(clock: FakeClock) -> None:
    config = bus_config(ta_signals=topic_settings(maxsize=3))
    async with MessageBus(config, clock=clock) as bus:
        recorder = Recorder()
        await bus.subscribe(Topic.TA_SIGNALS, recorder, name="bounded")

        async def publisher(number: int) -> None:
            for index in range(50):
                await bus.publish(make_message(clock, (number, index)))

        await asyncio.gather(*(publisher(number) for number in range(8)))
        await bus.drain()

        for number in range(8):
            assert [index for who, index in recorder.labels if who == number] == list(range(50))
        assert bus.stats().subscription("bounded").high_water == 3


async def test_cancelled_blocked_publisher_leaves_the_others_running(clock: FakeClock) -> None:
    config = bus_config(ta_signals=topic_settings(maxsize=1))
    async with MessageBus(config, clock=clock) as bus:
        gate = Gate()
        await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
        await bus.publish(make_message(clock, "in-hand"))
        await gate.entered.wait()
        await bus.publish(make_message(clock, "queued"))  # the queue is now full
        started = [asyncio.Event() for _ in range(3)]

        async def publisher(number: int) -> None:
            started[number].set()  # then blocks in publish() before anything else runs
            await bus.publish(make_message(clock, number))

        tasks = [asyncio.create_task(publisher(number)) for number in range(3)]
        for event in started:
            await event.wait()
        tasks[0].cancel()
        gate.open()
        await asyncio.gather(*tasks[1:])
        await bus.drain()

        assert tasks[0].cancelled()
        assert gate.labels == ["in-hand", "queued", 1, 2]
        stats = bus.stats()
        assert (stats.enqueued, stats.delivered, stats.accounted) == (4, 4, 4)


async def test_a_publisher_waiting_for_room_when_the_subscription_goes_ends_its_message_as_unsubscribed(
    clock: FakeClock,
) -> None:
    config = bus_config(ta_signals=topic_settings(maxsize=1))
    async with MessageBus(config, clock=clock) as bus:
        gate, other = Gate(), Recorder()
        held = await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
        await bus.subscribe(Topic.TA_SIGNALS, other, name="other")
        await bus.publish(make_message(clock, "in-hand"))
        await gate.entered.wait()
        await bus.publish(make_message(clock, "queued"))  # the queue is now full
        started = asyncio.Event()

        async def publisher() -> None:
            started.set()  # then blocks in publish() before anything else runs
            await bus.publish(make_message(clock, "waiting"))

        waiting = asyncio.create_task(publisher())
        await started.wait()
        await held.unsubscribe()
        await waiting  # returns: the message went to every subscription still there

        gate.open()
        await bus.drain()
        assert other.labels == ["in-hand", "queued", "waiting"]
        assert [(label(letter.message), letter.reason) for letter in bus.dead_letters()] == [
            ("queued", DeadLetterReason.UNSUBSCRIBED),
            ("waiting", DeadLetterReason.UNSUBSCRIBED),
        ]
        stats = bus.stats()
        assert (stats.enqueued, stats.delivered, stats.discarded, stats.accounted) == (6, 4, 2, 6)


async def test_drop_oldest_lowest_drops_and_counts(clock: FakeClock) -> None:
    config = bus_config(market_data=topic_settings(maxsize=3, overflow=Overflow.DROP_OLDEST_LOWEST))
    async with MessageBus(config, clock=clock) as bus:
        gate = Gate()
        await bus.subscribe(Topic.MARKET_DATA, gate, name="ticks")

        async def publish(name: str, priority: Priority) -> None:
            await bus.publish(make_message(clock, name, topic=Topic.MARKET_DATA, priority=priority))

        await publish("in-hand", NORMAL)
        await gate.entered.wait()
        await publish("normal-1", NORMAL)
        await publish("low-1", LOW)
        await publish("high-1", HIGH)  # full from here on
        await publish("low-2", LOW)  # drops low-1: the oldest of the lowest priority
        await publish("urgent-1", URGENT)  # drops low-2
        await publish("low-3", LOW)  # lower than everything queued: dropped itself
        await publish("normal-2", NORMAL)  # drops normal-1
        gate.open()
        await bus.drain()

        assert gate.labels == ["in-hand", "urgent-1", "high-1", "normal-2"]
        letters = bus.dead_letters()
        assert [label(letter.message) for letter in letters] == ["low-1", "low-2", "low-3", "normal-1"]
        assert {letter.reason for letter in letters} == {DeadLetterReason.DROPPED}
        stats = bus.stats()
        assert (stats.dropped, stats.delivered, stats.enqueued, stats.accounted) == (4, 4, 8, 8)
        assert stats.subscription("ticks").high_water == 3


async def test_drop_oldest_lowest_never_blocks_a_publisher(clock: FakeClock) -> None:
    config = bus_config(market_data=topic_settings(maxsize=10, overflow=Overflow.DROP_OLDEST_LOWEST))
    async with MessageBus(config, clock=clock) as bus:
        gate = Gate()
        await bus.subscribe(Topic.MARKET_DATA, gate, name="ticks")
        for index in range(1000):
            await bus.publish(make_message(clock, index, topic=Topic.MARKET_DATA))
        stats = bus.stats().subscription("ticks")
        assert (stats.depth, stats.dropped) == (10, 990)

        gate.open()
        await bus.drain()
        assert gate.labels == list(range(990, 1000))
