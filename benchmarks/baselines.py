"""What the bus is measured against: the design it replaces, and the floor of what asyncio can do.

Both offer the slice of ``MessageBus``'s interface the benchmark drives (``FanOut``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Protocol

from triplegain.bus import Handler, Message, Topic


class FanOut(Protocol):
    async def subscribe(self, topic: Topic, handler: Handler, *, name: str) -> object: ...

    async def publish(self, message: Message) -> None: ...

    async def drain(self) -> None: ...

    async def close(self) -> None: ...


class InlineBus:
    """The design the bus replaces: ``publish()`` awaits every subscriber's handler in turn."""

    def __init__(self) -> None:
        self._handlers: dict[Topic, list[Handler]] = defaultdict(list)

    async def subscribe(self, topic: Topic, handler: Handler, *, name: str) -> object:
        self._handlers[topic].append(handler)
        return name

    async def publish(self, message: Message) -> None:
        for handler in self._handlers[message.topic]:
            await handler(message)

    async def drain(self) -> None:
        """Nothing to wait for: every handler has returned by the time publish() does."""

    async def close(self) -> None:
        self._handlers.clear()


class QueueFanOut:
    """The floor: one bounded ``asyncio.Queue`` and one consumer task per subscriber, and nothing else
    (no priorities, TTLs, filters, counts or dead letters)."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._queues: dict[Topic, list[asyncio.Queue[Message]]] = defaultdict(list)
        self._consumers: list[asyncio.Task[None]] = []

    async def subscribe(self, topic: Topic, handler: Handler, *, name: str) -> object:
        queue: asyncio.Queue[Message] = asyncio.Queue(self._maxsize)
        self._queues[topic].append(queue)
        self._consumers.append(asyncio.create_task(self._consume(queue, handler), name=name))
        return name

    async def publish(self, message: Message) -> None:
        for queue in self._queues[message.topic]:
            await queue.put(message)

    async def drain(self) -> None:
        for queues in self._queues.values():
            for queue in queues:
                await queue.join()

    async def close(self) -> None:
        for consumer in self._consumers:
            consumer.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._queues.clear()

    @staticmethod
    async def _consume(queue: asyncio.Queue[Message], handler: Handler) -> None:
        while True:
            message = await queue.get()
            try:
                await handler(message)
            finally:
                queue.task_done()
