"""What the bus is measured against: the design it replaces, and the floor of what asyncio can do.

Both offer the slice of ``MessageBus``'s interface the benchmark drives (``FanOut``). ``SeedMessage`` is the
message of the design the bus replaces: a plain frozen dataclass with ``Message``'s fields, built without checks
and with its payload as given.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from triplegain.bus import Handler, Message, Priority, Topic


@dataclass(frozen=True)
class SeedMessage:
    topic: Topic
    source: str
    payload: Mapping[str, Any]
    created_at: datetime
    priority: Priority = Priority.NORMAL
    ttl: timedelta | None = None
    correlation_id: UUID | None = None
    symbol: str | None = None
    id: UUID = field(default_factory=uuid4)


class FanOut(Protocol):
    async def subscribe(self, topic: Topic, handler: Handler, *, name: str) -> object: ...

    async def publish(self, message: Message) -> None: ...

    async def drain(self) -> None: ...

    async def aclose(self) -> None: ...


class InlineBus:
    """The design the bus replaces: ``publish()`` awaits every subscriber's handler in turn."""

    def __init__(self) -> None:
        self._handlers: dict[Topic, list[Callable[[Any], Awaitable[None]]]] = defaultdict(list)

    async def subscribe(self, topic: Topic, handler: Callable[[Any], Awaitable[None]], *, name: str) -> object:
        self._handlers[topic].append(handler)
        return name

    async def publish(self, message: Message | SeedMessage) -> None:
        for handler in self._handlers[message.topic]:
            await handler(message)

    async def drain(self) -> None:
        """Nothing to wait for: every handler has returned by the time publish() does."""

    async def aclose(self) -> None:
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

    async def aclose(self) -> None:
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
