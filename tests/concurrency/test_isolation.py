"""docs/ARCHITECTURE.md, bus rules 1 and 5: a slow or failing handler affects only its own subscription."""

import asyncio

import pytest
from structlog.testing import capture_logs

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


class Boom(BaseException):
    """A library's own base class of errors: neither an Exception nor a cancellation."""


async def test_a_base_exception_from_a_handler_fails_its_message_only_and_drain_returns(clock: FakeClock) -> None:
    async def explodes(message: Message) -> None:
        if label(message) == "boom":
            raise Boom("from a library")

    async with MessageBus(bus_config(), clock=clock) as bus:
        after = Recorder()
        await bus.subscribe(Topic.TA_SIGNALS, explodes, name="explodes")
        await bus.subscribe(Topic.TA_SIGNALS, after, name="after")
        for name in ("boom", "next"):
            await bus.publish(make_message(clock, name))
        async with asyncio.timeout(5):
            await bus.drain()

        stats = bus.stats().subscription("explodes")
        assert (stats.failed, stats.delivered, stats.running, stats.enqueued, stats.accounted) == (1, 1, False, 2, 2)
        assert after.labels == ["boom", "next"]
        [letter] = bus.dead_letters()
        assert (label(letter.message), letter.reason, letter.error) == (
            "boom",
            DeadLetterReason.HANDLER_ERROR,
            "Boom: from a library",
        )
        await bus.publish(make_message(clock, "later"))  # the worker is still there
        async with asyncio.timeout(5):
            await bus.drain()
        assert bus.stats().subscription("explodes").delivered == 2


async def test_a_base_exception_from_a_filter_fails_that_pair_only(clock: FakeClock) -> None:
    def refuses(message: Message) -> bool:
        raise Boom("from a library")

    async with MessageBus(bus_config(), clock=clock) as bus:
        other = Recorder()
        await bus.subscribe(Topic.TA_SIGNALS, Recorder(), name="filtered", filter=refuses)
        await bus.subscribe(Topic.TA_SIGNALS, other, name="other")
        await bus.publish(make_message(clock, "first"))
        await bus.drain()

        assert other.labels == ["first"]
        [letter] = bus.dead_letters()
        assert (letter.subscription, letter.reason, letter.error) == (
            "filtered",
            DeadLetterReason.FILTER_ERROR,
            "Boom: from a library",
        )
        stats = bus.stats()
        assert (stats.enqueued, stats.delivered, stats.failed, stats.accounted) == (2, 1, 1, 2)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


async def test_an_error_whose_text_cannot_be_made_fails_its_message_only(clock: FakeClock) -> None:
    async def raises_unprintable(message: Message) -> None:
        if label(message) == "first":
            raise Unprintable

    async with MessageBus(bus_config(), clock=clock) as bus:
        await bus.subscribe(Topic.TA_SIGNALS, raises_unprintable, name="unprintable")
        for name in ("first", "second"):
            await bus.publish(make_message(clock, name))
        async with asyncio.timeout(5):
            await bus.drain()

        stats = bus.stats().subscription("unprintable")
        assert (stats.failed, stats.delivered) == (1, 1)
        assert bus.dead_letters()[0].error == "Unprintable: <str() failed>"


class FailingMonotonic(FakeClock):
    """A clock whose ``monotonic()`` raises once ``broken``."""

    broken = False

    def monotonic(self) -> float:
        if self.broken:
            raise OSError("clock gone")
        return super().monotonic()


async def test_a_worker_stopped_by_an_error_outside_any_handler_closes_its_subscription_only() -> None:
    """Here the worker's own clock reading fails: the message it had taken and its queue are dead-lettered, the
    error is logged, the other subscriptions carry on and drain() returns."""
    clock = FailingMonotonic()
    with capture_logs() as logs:
        async with MessageBus(bus_config(), clock=clock) as bus:
            other = Recorder()
            await bus.subscribe(Topic.TA_SIGNALS, Recorder(), name="broken")
            for number in range(3):
                await bus.publish(make_message(clock, number))  # queued: the worker has not run yet
            clock.broken = True
            await bus.subscribe(Topic.REGIME_UPDATES, other, name="other")
            async with asyncio.timeout(5):
                await bus.drain()
            clock.broken = False
            await bus.publish(make_message(clock, "after", topic=Topic.REGIME_UPDATES))
            await bus.drain()

            assert other.labels == ["after"]
            assert [(label(letter.message), letter.reason) for letter in bus.dead_letters()] == [
                (number, DeadLetterReason.CLOSED) for number in range(3)
            ]
            stats = bus.stats()
            assert [subscription.name for subscription in stats.subscriptions] == ["other"]
            assert (stats.enqueued, stats.delivered, stats.discarded, stats.accounted) == (4, 1, 3, 4)
    [failure] = [entry for entry in logs if entry["log_level"] == "error"]
    assert (failure["event"], failure["subscription"]) == ("bus worker failed; its subscription closes", "broken")
    assert isinstance(failure["exc_info"], OSError)


def test_system_exit_from_a_handler_is_accounted_for_then_stops_the_program(clock: FakeClock) -> None:
    """KeyboardInterrupt and SystemExit fail their message (a dead letter like any error), then propagate: the loop
    stops, and the subscription's queue is dead-lettered as closed when the bus is closed on the way out."""
    bus = MessageBus(bus_config(close_timeout_seconds=0), clock=clock)
    handled: list[int] = []

    async def exits(message: Message) -> None:
        handled.append(label(message))
        raise SystemExit(3)

    async def main() -> None:
        await bus.subscribe(Topic.TA_SIGNALS, exits, name="exits")
        for number in range(3):
            await bus.publish(make_message(clock, number))
        try:
            await asyncio.Event().wait()  # the handler's SystemExit stops the loop; asyncio.run then cancels this
        finally:
            await bus.aclose()

    with pytest.raises(SystemExit):
        asyncio.run(main())

    assert handled == [0]
    assert [(label(letter.message), letter.reason, letter.error) for letter in bus.dead_letters()] == [
        (0, DeadLetterReason.HANDLER_ERROR, "SystemExit: 3"),
        (1, DeadLetterReason.CLOSED, None),
        (2, DeadLetterReason.CLOSED, None),
    ]
    stats = bus.stats()
    assert (stats.failed, stats.discarded, stats.enqueued, stats.accounted) == (1, 2, 3, 3)
