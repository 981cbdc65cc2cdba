"""DESIGN §4.1 and §4.5: a slow or failing handler affects only its own subscription."""

import asyncio

import pytest

from tests.concurrency.helpers import Gate, Recorder, bus_config, label, make_message
from triplegain.bus import DeadLetterReason, Message, MessageBus, Topic
from triplegain.clock import FakeClock

pytestmark = pytest.mark.timeout(10)


async def test_slow_handler_delays_neither_publish_nor_other_subscriptions(clock: FakeClock) -> None:
    async with MessageBus(bus_config(), clock=clock) as bus:
        slow, same_topic, other_topic = Gate(), Recorder(), Recorder()
        await bus.subscribe(Topic.TA_SIGNALS, slow, name="slow")
        await bus.subscribe(Topic.TA_SIGNALS, same_topic, name="same-topic")
        await bus.subscribe(Topic.REGIME_UPDATES, other_topic, name="other-topic")

        for index in range(1000):
            await bus.publish(make_message(clock, index))
            await bus.publish(make_message(clock, index, topic=Topic.REGIME_UPDATES))
        # publish() returned 2000 times without ever letting a handler run: it never awaits one.
        assert (slow.messages, same_topic.messages, other_topic.messages) == ([], [], [])

        await same_topic.until(1000)
        await other_topic.until(1000)
        assert same_topic.labels == other_topic.labels == list(range(1000))
        held = bus.stats().subscription("slow")
        assert (slow.labels, held.running, held.depth) == ([0], True, 999)

        slow.open()
        await bus.drain()
        assert slow.labels == list(range(1000))


async def test_raising_handler_affects_no_one_else(clock: FakeClock) -> None:
    async def failing(message: Message) -> None:
        if label(message) % 3 == 0:
            raise ValueError(f"cannot handle {label(message)}")

    async with MessageBus(bus_config(), clock=clock) as bus:
        healthy = Recorder()
        await bus.subscribe(Topic.TA_SIGNALS, failing, name="failing")
        await bus.subscribe(Topic.TA_SIGNALS, healthy, name="healthy")
        for index in range(30):
            await bus.publish(make_message(clock, index))
        await bus.drain()

        assert healthy.labels == list(range(30))
        stats = bus.stats()
        assert (stats.subscription("failing").failed, stats.subscription("failing").delivered) == (10, 20)
        assert (stats.subscription("healthy").failed, stats.failed) == (0, 10)
        letters = bus.dead_letters()
        assert [label(letter.message) for letter in letters] == list(range(0, 30, 3))
        for letter in letters:
            assert letter.reason is DeadLetterReason.HANDLER_ERROR
            assert letter.subscription == "failing"
            assert letter.error == f"ValueError: cannot handle {label(letter.message)}"
            assert letter.traceback is not None
            assert "in failing" in letter.traceback
            assert letter.traceback.rstrip().endswith(letter.error)


async def test_cancelled_error_escaping_a_handler_is_a_failure_not_a_stop(clock: FakeClock) -> None:
    """A handler whose own awaitable was cancelled fails that message; the worker was not asked to stop."""

    async def awaits_a_cancelled_future(message: Message) -> None:
        if label(message) == "first":
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.cancel()
            await future

    async with MessageBus(bus_config(), clock=clock) as bus:
        await bus.subscribe(Topic.TA_SIGNALS, awaits_a_cancelled_future, name="stray-cancel")
        await bus.publish(make_message(clock, "first"))
        await bus.publish(make_message(clock, "second"))
        await bus.drain()

        stats = bus.stats().subscription("stray-cancel")
        assert (stats.failed, stats.delivered) == (1, 1)
        assert bus.dead_letters()[0].error == "CancelledError: "
