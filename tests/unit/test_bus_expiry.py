"""The TTL check at delivery reads the wall clock only near a message's deadline (bus.EXPIRY_MARGIN): these
clocks let the wall clock and the monotonic one disagree, as real ones do, and show that an expired message is
still never delivered while they drift apart within WALL_CLOCK_DRIFT, nor after a step of the wall clock made
before it was published (the bus reads both clocks again at most CALIBRATION_INTERVAL apart)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from triplegain.bus import DeadLetterReason, Message, MessageBus, Topic
from triplegain.bus.bus import CALIBRATION_INTERVAL, WALL_CLOCK_DRIFT
from triplegain.bus.settings import BusSettings, TopicSettings, TopicsSettings

pytestmark = pytest.mark.timeout(10)
TTL_SECONDS = 3600


class TwoClocks:
    """A wall clock and a monotonic clock moved separately."""

    def __init__(self) -> None:
        self.wall = datetime(2024, 1, 1, tzinfo=UTC)
        self.seconds = 1000.0
        self.wall_reads = 0

    def now(self) -> datetime:
        self.wall_reads += 1
        return self.wall

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, wall_seconds: float, monotonic_seconds: float) -> None:
        self.wall += timedelta(seconds=wall_seconds)
        self.seconds += monotonic_seconds


class PausedAfterWallReads(TwoClocks):
    """Real time passes (both clocks move by ``pause``) right after each reading of the wall clock, as when the
    thread is descheduled between two readings."""

    def __init__(self, pause: float) -> None:
        super().__init__()
        self.pause = pause

    def now(self) -> datetime:
        wall = super().now()
        self.advance(self.pause, self.pause)
        return wall


class Gate:
    """Holds its first call until ``open()``, so what is published meanwhile waits in the queue."""

    def __init__(self) -> None:
        self.received: list[Message] = []
        self.entered = asyncio.Event()
        self._open = asyncio.Event()

    def open(self) -> None:
        self._open.set()

    async def __call__(self, message: Message) -> None:
        self.received.append(message)
        self.entered.set()
        await self._open.wait()


def config() -> BusSettings:
    return BusSettings(topics=TopicsSettings(ta_signals=TopicSettings(ttl_seconds=TTL_SECONDS)))


async def deliver_after(clocks: TwoClocks, bus: MessageBus, wall_seconds: float, monotonic_seconds: float) -> Gate:
    """Publish a message behind a held one, move the clocks, then let the queue go."""
    gate = Gate()
    await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
    await bus.publish(bus.message(Topic.TA_SIGNALS, {"n": 0}, source="t"))
    await gate.entered.wait()
    await bus.publish(bus.message(Topic.TA_SIGNALS, {"n": 1}, source="t"))
    clocks.advance(wall_seconds, monotonic_seconds)
    gate.open()
    await bus.drain()
    return gate


async def test_expired_on_the_wall_clock_although_the_monotonic_one_ran_slower() -> None:
    clocks = TwoClocks()
    async with MessageBus(config(), clock=clocks) as bus:
        # The wall clock reaches the deadline while the monotonic one is 0.09 % behind (within the drift).
        gate = await deliver_after(clocks, bus, TTL_SECONDS, TTL_SECONDS * (1 - 0.9 * WALL_CLOCK_DRIFT))
        assert len(gate.received) == 1
        assert [letter.reason for letter in bus.dead_letters()] == [DeadLetterReason.EXPIRED]


async def test_delivered_without_reading_the_wall_clock_far_from_the_deadline() -> None:
    clocks = TwoClocks()
    async with MessageBus(config(), clock=clocks) as bus:
        gate = Gate()
        await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
        gate.open()
        await bus.publish(bus.message(Topic.TA_SIGNALS, {"n": 0}, source="t"))  # reads now() for created_at
        reads = clocks.wall_reads
        await bus.drain()
        assert len(gate.received) == 1
        assert clocks.wall_reads == reads


async def test_a_wall_clock_step_counts_for_messages_published_after_it() -> None:
    clocks = TwoClocks()
    async with MessageBus(config(), clock=clocks) as bus:
        clocks.advance(TTL_SECONDS, CALIBRATION_INTERVAL + 1)  # the wall clock is stepped an hour ahead
        gate = await deliver_after(clocks, bus, TTL_SECONDS, TTL_SECONDS)
        assert len(gate.received) == 1
        assert [letter.reason for letter in bus.dead_letters()] == [DeadLetterReason.EXPIRED]


async def test_a_pause_between_the_two_calibration_readings_makes_deadlines_early_never_late() -> None:
    pause = 10.0  # more than the drift allowance at this TTL (TTL_SECONDS * WALL_CLOCK_DRIFT = 3.6 s)
    clocks = PausedAfterWallReads(pause)
    bus = MessageBus(config(), clock=clocks)  # reads both clocks; the pause follows its wall-clock reading
    clocks.pause = 0
    async with bus:
        # Taken from the queue half the pause past its deadline: a pair read wall clock first would put the
        # deadline a whole pause later on the monotonic clock, and deliver it without reading the wall clock.
        gate = await deliver_after(clocks, bus, TTL_SECONDS + pause / 2, TTL_SECONDS + pause / 2)
        assert len(gate.received) == 1
        assert [letter.reason for letter in bus.dead_letters()] == [DeadLetterReason.EXPIRED]


async def test_a_message_created_well_before_it_is_published_expires_on_time() -> None:
    clocks = TwoClocks()
    async with MessageBus(config(), clock=clocks) as bus:
        gate = Gate()
        await bus.subscribe(Topic.TA_SIGNALS, gate, name="held")
        await bus.publish(bus.message(Topic.TA_SIGNALS, {"n": 0}, source="t"))
        await gate.entered.wait()
        early = bus.message(Topic.TA_SIGNALS, {"n": 1}, source="t")
        clocks.advance(100, 100)  # more than the drift allowance: its deadline is 100 s nearer than its TTL
        await bus.publish(early)
        clocks.advance(TTL_SECONDS - 100, TTL_SECONDS - 100)  # exactly its deadline
        gate.open()
        await bus.drain()
        assert len(gate.received) == 1
        assert [letter.reason for letter in bus.dead_letters()] == [DeadLetterReason.EXPIRED]
