"""docs/ARCHITECTURE.md, bus rule 4: a message whose TTL passes while it is queued is never delivered; it is
counted and kept."""

from datetime import timedelta

import pytest

from tests.concurrency.helpers import Gate, bus_config, label, make_message, topic_settings
from triplegain.bus import DeadLetterReason, MessageBus, Topic
from triplegain.clock import FakeClock

pytestmark = pytest.mark.timeout(10)


async def test_message_expiring_in_the_queue_is_dead_lettered(clock: FakeClock) -> None:
    config = bus_config(ta_signals=topic_settings(ttl_seconds=60))
    async with MessageBus(config, clock=clock) as bus:
        gate = Gate()
        await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
        await bus.publish(make_message(clock, "first"))
        await gate.entered.wait()
        await bus.publish(make_message(clock, "ttl-10s", ttl=timedelta(seconds=10)))
        await bus.publish(make_message(clock, "topic-default-60s"))
        await bus.publish(make_message(clock, "ttl-100s", ttl=timedelta(seconds=100)))

        clock.advance(60)  # exactly the topic's TTL: no longer deliverable
        gate.open()
        await bus.drain()

        assert gate.labels == ["first", "ttl-100s"]
        stats = bus.stats()
        assert (stats.expired, stats.delivered) == (2, 2)
        assert stats.subscription("held").expired == 2
        letters = bus.dead_letters()
        assert [(label(letter.message), letter.reason) for letter in letters] == [
            ("ttl-10s", DeadLetterReason.EXPIRED),
            ("topic-default-60s", DeadLetterReason.EXPIRED),
        ]
        assert all(letter.subscription == "held" and letter.at == clock.now() for letter in letters)


async def test_message_just_inside_its_ttl_is_delivered(clock: FakeClock) -> None:
    config = bus_config(ta_signals=topic_settings(ttl_seconds=60))
    async with MessageBus(config, clock=clock) as bus:
        gate = Gate()
        await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
        await bus.publish(make_message(clock, "first"))
        await gate.entered.wait()
        await bus.publish(make_message(clock, "second"))

        clock.advance(timedelta(seconds=60) - timedelta(microseconds=1))
        gate.open()
        await bus.drain()

        assert gate.labels == ["first", "second"]
        assert bus.stats().expired == 0
