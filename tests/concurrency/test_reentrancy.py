"""docs/ARCHITECTURE.md, bus rule 2: handlers may publish, subscribe and unsubscribe without deadlock."""

import asyncio

import pytest

from tests.concurrency.helpers import Gate, Recorder, bus_config, label, make_message, topic_settings
from triplegain.bus import DeadLetterReason, Handler, Message, MessageBus, Subscription, Topic
from triplegain.clock import FakeClock

pytestmark = pytest.mark.timeout(10)

DEPTH = 100


async def test_handler_publishing_to_its_own_topic_and_another_nested_100_deep(clock: FakeClock) -> None:
    async with MessageBus(bus_config(), clock=clock) as bus:
        received_own: list[int] = []
        other = Recorder()

        async def chain(message: Message) -> None:
            depth = label(message)
            received_own.append(depth)
            if depth < DEPTH:
                await bus.publish(make_message(clock, depth + 1))
                await bus.publish(make_message(clock, depth, topic=Topic.REGIME_UPDATES))

        await bus.subscribe(Topic.TA_SIGNALS, chain, name="chain")
        await bus.subscribe(Topic.REGIME_UPDATES, other, name="other")
        await bus.publish(make_message(clock, 0))
        await bus.drain()

        assert received_own == list(range(DEPTH + 1))
        assert other.labels == list(range(DEPTH))
        stats = bus.stats()
        assert (stats.published, stats.delivered, stats.accounted) == (2 * DEPTH + 1, 2 * DEPTH + 1, 2 * DEPTH + 1)


async def test_handlers_publishing_into_each_others_full_block_queues_do_not_deadlock(clock: FakeClock) -> None:
    """A's handler publishes into B's full queue while B's handler publishes into A's: both are admitted."""
    config = bus_config(ta_signals=topic_settings(maxsize=1), regime_updates=topic_settings(maxsize=1))
    async with MessageBus(config, clock=clock) as bus:
        depths: list[int] = []

        def ping_pong(target: Topic) -> Handler:
            async def handler(message: Message) -> None:
                depth, branch = label(message)
                depths.append(depth)
                if depth < 20 and branch == 0:  # three replies, of which the first carries on
                    for reply in range(3):
                        await bus.publish(make_message(clock, (depth + 1, reply), topic=target))

            return handler

        await bus.subscribe(Topic.TA_SIGNALS, ping_pong(Topic.REGIME_UPDATES), name="a")
        await bus.subscribe(Topic.REGIME_UPDATES, ping_pong(Topic.TA_SIGNALS), name="b")
        await bus.publish(make_message(clock, (0, 0)))
        await bus.publish(make_message(clock, (0, 0), topic=Topic.REGIME_UPDATES))
        await bus.drain()

        stats = bus.stats()
        assert stats.delivered == stats.enqueued == len(depths) == 2 * (1 + 3 * 20)
        assert stats.overflow_admitted > 0
        assert max(sub.high_water for sub in stats.subscriptions) > 1


async def test_handler_subscribes_and_unsubscribes_others_during_delivery(clock: FakeClock) -> None:
    async with MessageBus(bus_config(), clock=clock) as bus:
        victim_gate, late = Gate(), Recorder()
        victim = await bus.subscribe(Topic.REGIME_UPDATES, victim_gate, name="victim")
        await bus.publish(make_message(clock, "held", topic=Topic.REGIME_UPDATES))
        await victim_gate.entered.wait()
        for index in range(5):
            await bus.publish(make_message(clock, index, topic=Topic.REGIME_UPDATES))
        subscribed: list[Subscription] = []

        async def reorganise(message: Message) -> None:
            subscribed.append(await bus.subscribe(Topic.REGIME_UPDATES, late, name="late"))
            await victim.unsubscribe()
            await bus.publish(make_message(clock, "after", topic=Topic.REGIME_UPDATES))

        await bus.subscribe(Topic.TA_SIGNALS, reorganise, name="reorganiser")
        await bus.publish(make_message(clock, "go"))
        await late.until(1)

        assert late.labels == ["after"]
        assert not victim.active
        assert subscribed[0].active
        assert [(label(letter.message), letter.reason) for letter in bus.dead_letters()] == [
            (index, DeadLetterReason.UNSUBSCRIBED) for index in range(5)
        ]
        # The victim's handler call in progress is not interrupted; drain() waits for it.
        victim_gate.open()
        await bus.drain()
        assert victim_gate.labels == ["held"]
        stats = bus.stats()
        assert [sub.name for sub in stats.subscriptions] == ["reorganiser", "late"]
        assert (stats.delivered, stats.discarded, stats.enqueued) == (3, 5, 8)


async def test_handler_unsubscribing_itself_stops_its_worker(clock: FakeClock) -> None:
    async with MessageBus(bus_config(), clock=clock) as bus:
        calls: list[int] = []
        subscriptions: list[Subscription] = []

        async def once(message: Message) -> None:
            calls.append(label(message))
            await subscriptions[0].unsubscribe()
            # Still running after unsubscribing: publishing from here is fine.
            await bus.publish(make_message(clock, "from-unsubscribed", topic=Topic.REGIME_UPDATES))

        subscriptions.append(await bus.subscribe(Topic.TA_SIGNALS, once, name="once"))
        other = Recorder()
        await bus.subscribe(Topic.REGIME_UPDATES, other, name="other")
        for index in range(4):
            await bus.publish(make_message(clock, index))
        await bus.drain()
        await bus.publish(make_message(clock, "after"))
        await bus.drain()

        assert calls == [0]
        assert other.labels == ["from-unsubscribed"]
        assert [label(letter.message) for letter in bus.dead_letters()] == [1, 2, 3]
        stats = bus.stats()
        assert (stats.delivered, stats.discarded, stats.enqueued) == (2, 3, 5)


async def test_two_running_handlers_unsubscribing_each_other(clock: FakeClock) -> None:
    async with MessageBus(bus_config(), clock=clock) as bus:
        subscriptions: dict[str, Subscription] = {}
        entered = {"a": asyncio.Event(), "b": asyncio.Event()}
        go = asyncio.Event()

        def unsubscribing(name: str, other: str) -> Handler:
            async def handler(message: Message) -> None:
                entered[name].set()
                await go.wait()
                await subscriptions[other].unsubscribe()

            return handler

        subscriptions["a"] = await bus.subscribe(Topic.TA_SIGNALS, unsubscribing("a", "b"), name="a")
        subscriptions["b"] = await bus.subscribe(Topic.TA_SIGNALS, unsubscribing("b", "a"), name="b")
        for index in range(3):
            await bus.publish(make_message(clock, index))
        await entered["a"].wait()
        await entered["b"].wait()
        go.set()
        await bus.drain()

        assert not subscriptions["a"].active
        assert not subscriptions["b"].active
        stats = bus.stats()
        # Whichever resumes first discards the other's two queued messages, then handles its own.
        assert (stats.delivered, stats.discarded, stats.accounted, stats.enqueued) == (4, 2, 6, 6)
        assert stats.subscriptions == ()
