"""docs/ARCHITECTURE.md, bus rule 3: under backlog, higher priority first; equal priorities keep publish order."""

import pytest

from tests.concurrency.helpers import Gate, bus_config, make_message
from triplegain.bus import MessageBus, Priority, Topic
from triplegain.clock import FakeClock

pytestmark = pytest.mark.timeout(10)

LOW, NORMAL, HIGH, URGENT = Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT


async def test_urgent_overtakes_queued_normal_and_low(clock: FakeClock) -> None:
    async with MessageBus(bus_config(), clock=clock) as bus:
        gate = Gate()
        await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
        await bus.publish(make_message(clock, "first"))
        await gate.entered.wait()  # the worker is busy with "first"; everything below queues up behind it
        backlog = [
            ("low-1", LOW),
            ("normal-1", NORMAL),
            ("normal-2", NORMAL),
            ("urgent-1", URGENT),
            ("high-1", HIGH),
            ("low-2", LOW),
            ("normal-3", NORMAL),
            ("urgent-2", URGENT),
        ]
        for name, priority in backlog:
            await bus.publish(make_message(clock, name, priority=priority))
        assert bus.stats().subscription("held").depth == len(backlog)

        gate.open()
        await bus.drain()

        assert gate.labels == [
            "first",
            "urgent-1",
            "urgent-2",
            "high-1",
            "normal-1",
            "normal-2",
            "normal-3",
            "low-1",
            "low-2",
        ]


async def test_equal_priorities_keep_publish_order_under_backlog(clock: FakeClock) -> None:
    async with MessageBus(bus_config(), clock=clock) as bus:
        gate = Gate()
        await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
        await bus.publish(make_message(clock, -1))
        await gate.entered.wait()
        for index in range(500):
            await bus.publish(make_message(clock, index, priority=HIGH if index % 2 else NORMAL))

        gate.open()
        await bus.drain()

        odd, even = list(range(1, 500, 2)), list(range(0, 500, 2))
        assert gate.labels == [-1, *odd, *even]
