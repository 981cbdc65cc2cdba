"""docs/ARCHITECTURE.md, bus rule 7: aclose() drains or reports every undelivered message; nothing is left
unaccounted."""

import asyncio
from collections import Counter
from datetime import timedelta
from uuid import UUID

import pytest

from tests.concurrency.helpers import Gate, Recorder, bus_config, label, make_message, topic_settings
from triplegain.bus import BusClosed, DeadLetterReason, Handler, Message, MessageBus, Overflow, Priority, Topic
from triplegain.clock import FakeClock

pytestmark = pytest.mark.timeout(10)


async def test_close_with_messages_in_flight_accounts_for_every_one(clock: FakeClock) -> None:
    config = bus_config(
        close_timeout_seconds=0,
        market_data=topic_settings(maxsize=5, overflow=Overflow.DROP_OLDEST_LOWEST),
    )
    bus = MessageBus(config, clock=clock)
    held, fast, expiring, ticks = Gate(), Recorder(), Gate(), Gate()

    async def failing(message: Message) -> None:
        if label(message) % 4 == 0:
            raise RuntimeError("no")

    handlers: list[tuple[str, Handler]] = [("held", held), ("fast", fast), ("failing", failing), ("expiring", expiring)]
    for name, handler in handlers:
        await bus.subscribe(Topic.TA_SIGNALS, handler, name=name)
    await bus.subscribe(Topic.MARKET_DATA, ticks, name="ticks")
    routed: set[tuple[UUID, str]] = set()
    for index in range(40):
        message = make_message(clock, index, ttl=timedelta(seconds=5 if index % 5 == 0 else 60))
        tick = make_message(clock, index, topic=Topic.MARKET_DATA, priority=Priority(index % 4))
        await bus.publish(message)
        await bus.publish(tick)  # only 5 fit: 35 are dropped
        routed |= {(message.id, name) for name in ("held", "fast", "failing", "expiring")}
        routed.add((tick.id, "ticks"))
    await expiring.entered.wait()
    await ticks.entered.wait()
    clock.advance(10)  # 5, 10, ..., 35 expire in the queues; 0 is already in the expiring handler's hands
    expiring.open()
    await expiring.until(33)
    await fast.until(40)

    await bus.aclose()  # held: 1 running + 39 queued; ticks: 1 running + 4 queued

    letters = bus.dead_letters()
    dead = Counter((letter.message.id, letter.subscription) for letter in letters)
    assert set(dead.values()) == {1}
    delivered = {
        (message.id, name) for name, gate in [("fast", fast), ("expiring", expiring)] for message in gate.messages
    }
    delivered |= {(message.id, "failing") for message in fast.messages if label(message) % 4}
    assert delivered | set(dead) == routed
    assert not delivered & set(dead)
    reasons = Counter((letter.subscription, letter.reason) for letter in letters)
    assert reasons == {
        ("held", DeadLetterReason.CLOSED): 40,
        ("ticks", DeadLetterReason.CLOSED): 5,
        ("ticks", DeadLetterReason.DROPPED): 35,
        ("failing", DeadLetterReason.HANDLER_ERROR): 10,
        ("expiring", DeadLetterReason.EXPIRED): 7,
    }
    stats = bus.stats()
    assert (stats.delivered, stats.failed, stats.expired, stats.dropped, stats.discarded) == (103, 10, 7, 35, 45)
    assert stats.enqueued == stats.accounted == len(routed) == 200
    assert stats.subscriptions == ()


async def test_close_drains_while_handlers_can_finish(clock: FakeClock) -> None:
    bus = MessageBus(bus_config(close_timeout_seconds=30), clock=clock)
    gate = Gate()
    await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
    for index in range(100):
        await bus.publish(make_message(clock, index))
    await gate.entered.wait()

    closing = asyncio.create_task(bus.aclose())
    await gate.until(1)
    gate.open()
    await closing

    assert gate.labels == list(range(100))
    stats = bus.stats()
    assert (stats.delivered, stats.discarded, stats.accounted) == (100, 0, 100)


async def test_close_cancels_a_handler_that_does_not_finish(clock: FakeClock) -> None:
    bus = MessageBus(bus_config(close_timeout_seconds=0.01), clock=clock)
    never = Gate()
    await bus.subscribe(Topic.TA_SIGNALS, never, name="stuck")
    for index in range(3):
        await bus.publish(make_message(clock, index))
    await never.entered.wait()

    await bus.aclose()

    assert [(label(letter.message), letter.reason) for letter in bus.dead_letters()] == [
        (0, DeadLetterReason.CLOSED),
        (1, DeadLetterReason.CLOSED),
        (2, DeadLetterReason.CLOSED),
    ]
    stats = bus.stats()
    assert (stats.delivered, stats.discarded, stats.enqueued) == (0, 3, 3)


async def test_close_stops_a_worker_whose_handler_swallows_the_cancellation(clock: FakeClock) -> None:
    bus = MessageBus(bus_config(close_timeout_seconds=0), clock=clock)
    entered = asyncio.Event()

    async def stubborn(message: Message) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return  # wrong, but it must not keep close() waiting

    await bus.subscribe(Topic.TA_SIGNALS, stubborn, name="stubborn")
    for index in range(3):
        await bus.publish(make_message(clock, index))
    await entered.wait()

    await bus.aclose()

    stats = bus.stats()
    assert (stats.delivered, stats.discarded, stats.accounted, stats.enqueued) == (1, 2, 3, 3)


async def test_blocked_publishers_get_bus_closed(clock: FakeClock) -> None:
    bus = MessageBus(bus_config(close_timeout_seconds=0, ta_signals=topic_settings(maxsize=1)), clock=clock)
    gate = Gate()
    await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
    await bus.publish(make_message(clock, "in-hand"))
    await gate.entered.wait()
    await bus.publish(make_message(clock, "queued"))
    started = [asyncio.Event() for _ in range(3)]

    async def publisher(number: int) -> None:
        started[number].set()
        await bus.publish(make_message(clock, number))

    tasks = [asyncio.create_task(publisher(number)) for number in range(3)]
    for event in started:
        await event.wait()

    await bus.aclose()

    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, BusClosed) for result in results)
    stats = bus.stats()
    assert (stats.enqueued, stats.discarded, stats.accounted) == (2, 2, 2)


async def test_after_close_publish_and_subscribe_are_refused(clock: FakeClock) -> None:
    bus = MessageBus(bus_config(), clock=clock)
    await bus.aclose()
    await bus.aclose()  # a second close is harmless

    with pytest.raises(BusClosed, match="closed"):
        await bus.publish(make_message(clock, "late"))
    with pytest.raises(BusClosed, match="closed"):
        await bus.subscribe(Topic.TA_SIGNALS, Recorder(), name="late")
    assert bus.stats().published == 0


async def test_drain_or_close_from_a_handler_fails_that_message_only(clock: FakeClock) -> None:
    async with MessageBus(bus_config(), clock=clock) as bus:

        async def waits_for_itself(message: Message) -> None:
            if label(message) == "drain":
                await bus.drain()
            else:
                await bus.aclose()

        await bus.subscribe(Topic.TA_SIGNALS, waits_for_itself, name="self-waiter")
        await bus.publish(make_message(clock, "drain"))
        await bus.publish(make_message(clock, "close"))
        await bus.drain()

        errors = [letter.error for letter in bus.dead_letters()]
        assert errors == [
            "RuntimeError: drain() called from a bus handler would wait for that handler to return; "
            "call it from outside the bus's handlers",
            "RuntimeError: close() called from a bus handler would wait for that handler to return; "
            "call it from outside the bus's handlers",
        ]


async def test_drain_or_close_awaited_through_wait_for_in_a_handler_is_refused_at_once(clock: FakeClock) -> None:
    """``asyncio.wait_for`` runs what it waits for in a task of its own, which must be refused as the handler is."""
    async with MessageBus(bus_config(), clock=clock) as bus:

        async def waits_for_itself(message: Message) -> None:
            waited = bus.drain() if label(message) == "drain" else bus.aclose()
            await asyncio.wait_for(waited, timeout=3600)

        await bus.subscribe(Topic.TA_SIGNALS, waits_for_itself, name="self-waiter")
        await bus.publish(make_message(clock, "drain"))
        await bus.publish(make_message(clock, "close"))
        async with asyncio.timeout(5):
            await bus.drain()

        errors = [letter.error for letter in bus.dead_letters()]
        assert errors == [
            "RuntimeError: drain() called from a bus handler would wait for that handler to return; "
            "call it from outside the bus's handlers",
            "RuntimeError: close() called from a bus handler would wait for that handler to return; "
            "call it from outside the bus's handlers",
        ]


async def test_a_handler_of_one_bus_may_drain_another(clock: FakeClock) -> None:
    async with MessageBus(bus_config(), clock=clock) as first, MessageBus(bus_config(), clock=clock) as second:
        downstream = Recorder()

        async def forwards(message: Message) -> None:
            await second.publish(make_message(clock, label(message)))
            await second.drain()

        await first.subscribe(Topic.TA_SIGNALS, forwards, name="forwards")
        await second.subscribe(Topic.TA_SIGNALS, downstream, name="downstream")
        await first.publish(make_message(clock, "hop"))
        await first.drain()

        assert downstream.labels == ["hop"]
        assert first.dead_letters() == []
