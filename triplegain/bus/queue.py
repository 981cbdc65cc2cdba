"""One subscription's bounded priority queue: four FIFO lanes, one per ``Priority``.

With only four priorities, a deque per priority gives O(1) put, get and drop, and FIFO within a priority for
free. One worker consumes the queue; any number of publishers may wait for room, and they are served in the
order they started waiting (a publisher arriving later cannot take a slot freed for an earlier one).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from contextlib import suppress
from datetime import datetime

from triplegain.bus.message import Message, Priority


class Envelope:
    """A published message with what delivery needs; shared by every queue the message is put in.

    ``check_expiry_at`` is on the bus clock's ``monotonic()`` scale: before it, the message is certainly still
    deliverable, so the worker need not read the (dearer) wall clock; from it on, the worker compares
    ``clock.now()`` with ``expires_at``. The default (-inf) always compares.
    """

    __slots__ = ("check_expiry_at", "expires_at", "message", "priority", "published_at")

    def __init__(
        self, message: Message, expires_at: datetime, published_at: float, check_expiry_at: float = -math.inf
    ) -> None:
        self.message = message
        self.priority = message.priority
        self.expires_at = expires_at
        self.published_at = published_at
        self.check_expiry_at = check_expiry_at


class SubscriptionQueue:
    """Highest priority first, FIFO within a priority; ``maxsize`` bounds what publishers may add."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.high_water = 0
        self.closed = False
        # What offer() lets a new publisher fill: maxsize, and 0 once closed (no separate check on the fast path).
        self._limit = maxsize
        self._lanes: tuple[deque[Envelope], ...] = tuple(deque() for _ in Priority)
        # The lanes by name too, so pop() tests them highest first without a loop.
        self._low, self._normal, self._high, self._urgent = self._lanes
        self._size = 0
        self._consumer: asyncio.Future[None] | None = None
        # Publishers waiting for room, oldest first; each future resolves True (a slot is held for it) or
        # False (stop waiting). ``_held`` counts slots handed to woken publishers that have not used them yet.
        self._waiting: deque[asyncio.Future[bool]] = deque()
        self._held = 0

    def __len__(self) -> int:
        return self._size

    def offer(self, envelope: Envelope) -> bool:
        """Put ``envelope`` if a new publisher may, without overtaking one already waiting; False if not."""
        size = self._size
        if size + self._held >= self._limit or self._waiting:
            return False
        # put(), inlined: this is the publisher's path for every (message, subscription) pair.
        self._lanes[envelope.priority].append(envelope)
        self._size = size = size + 1
        if size > self.high_water:
            self.high_water = size
        if self._consumer is not None:
            self._wake_consumer()
        return True

    def put(self, envelope: Envelope) -> None:
        """Append regardless of the bound (callers decide what the bound means)."""
        self._lanes[envelope.priority].append(envelope)
        self._size += 1
        if self._size > self.high_water:
            self.high_water = self._size
        if self._consumer is not None:
            self._wake_consumer()

    def pop(self) -> Envelope | None:
        """The next envelope to deliver, or None when the queue is empty."""
        if not self._size:
            return None
        lane = self._urgent or self._high or self._normal or self._low
        self._size -= 1
        if self._waiting:
            self._hand_out_room()
        return lane.popleft()

    def drop_oldest_lowest(self, incoming: Envelope) -> Envelope:
        """Admit ``incoming`` to a full queue by dropping the oldest of the lowest priority, counting
        ``incoming`` itself; returns the dropped envelope (``incoming`` when nothing queued is lower)."""
        for priority, lane in enumerate(self._lanes):
            if lane:
                if incoming.priority < priority:
                    return incoming
                self._lanes[incoming.priority].append(incoming)
                return lane.popleft()
        raise RuntimeError("drop_oldest_lowest called on an empty queue")

    async def wait_for_item(self) -> None:
        """Return once the queue holds something or is closed (the one consumer calls this)."""
        if self._size or self.closed:
            return
        consumer = self._consumer = asyncio.get_running_loop().create_future()
        try:
            await consumer
        finally:
            self._consumer = None

    async def wait_for_room(self) -> bool:
        """Wait in line for room; True means the caller may ``put`` now, False that it should stop
        (the queue was closed or ``release_waiting`` was called)."""
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        self._waiting.append(turn)
        while True:
            try:
                granted = await turn
            except asyncio.CancelledError:
                self._give_up(turn)
                raise
            if not granted:
                return False
            self._held -= 1
            if self.closed:
                return False
            if self._size < self.maxsize:
                return True
            # Messages admitted over the bound (published from handlers) took the room: wait again, first in line.
            turn = loop.create_future()
            self._waiting.appendleft(turn)

    def release_waiting(self) -> None:
        """Tell every waiting publisher to stop waiting."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(False)

    def close(self) -> list[Envelope]:
        """Refuse further offers and waiting, wake the consumer and the publishers, and hand back what was queued."""
        self.closed = True
        self._limit = 0
        self.release_waiting()
        left: list[Envelope] = []
        for lane in reversed(self._lanes):
            left.extend(lane)
            lane.clear()
        self._size = 0
        if self._consumer is not None:
            self._wake_consumer()
        return left

    def _wake_consumer(self) -> None:
        """Wake the waiting consumer, once: the puts that follow before it runs find no one to wake."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None and not consumer.done():
            consumer.set_result(None)

    def _hand_out_room(self) -> None:
        while self._waiting and self._size + self._held < self.maxsize:
            turn = self._waiting.popleft()
            if not turn.done():
                self._held += 1
                turn.set_result(True)

    def _give_up(self, turn: asyncio.Future[bool]) -> None:
        if turn.done() and not turn.cancelled() and turn.result():
            # Cancelled after being handed a slot: pass the slot on.
            self._held -= 1
            self._hand_out_room()
        else:
            with suppress(ValueError):
                self._waiting.remove(turn)
