"""Handlers and builders shared by the concurrency tests; every wait is on an asyncio.Event, never a sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from triplegain.bus import Message, Priority, Topic
from triplegain.bus.settings import BusSettings, Overflow, TopicSettings, TopicsSettings
from triplegain.clock import Clock


def bus_config(
    *,
    close_timeout_seconds: float = 5.0,
    history_size: int = 16,
    **topics: TopicSettings,
) -> BusSettings:
    """A bus config with room for every dead letter a test makes, and the given topic settings."""
    return BusSettings(
        close_timeout_seconds=close_timeout_seconds,
        dead_letter_limit=1_000_000,
        history_size=history_size,
        topics=TopicsSettings(**topics),
    )


def topic_settings(
    *, ttl_seconds: float = 60, overflow: Overflow = Overflow.BLOCK, maxsize: int | None = None
) -> TopicSettings:
    return TopicSettings(ttl_seconds=ttl_seconds, overflow=overflow, maxsize=maxsize)


def make_message(
    clock: Clock,
    label: Any,
    *,
    topic: Topic = Topic.TA_SIGNALS,
    priority: Priority = Priority.NORMAL,
    ttl: timedelta | None = None,
    symbol: str | None = None,
    **payload: Any,
) -> Message:
    """A message whose payload carries ``label`` (and any extra fields), so a test can tell messages apart."""
    return Message.create(
        clock,
        topic=topic,
        source="test",
        payload={"label": label, **payload},
        priority=priority,
        ttl=ttl,
        symbol=symbol,
    )


def fields(message: Message) -> Mapping[str, Any]:
    """The payload of a message built from a mapping."""
    assert isinstance(message.payload, Mapping)
    return message.payload


def label(message: Message) -> Any:
    return fields(message)["label"]


class Recorder:
    """A handler that records what it receives; ``until(n)`` returns once it has received ``n`` messages."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._targets: dict[int, asyncio.Event] = {}

    @property
    def labels(self) -> list[Any]:
        return [label(message) for message in self.messages]

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        reached = self._targets.pop(len(self.messages), None)
        if reached is not None:
            reached.set()

    async def until(self, count: int) -> None:
        if len(self.messages) >= count:
            return
        await self._targets.setdefault(count, asyncio.Event()).wait()


class Gate(Recorder):
    """A recorder that holds every call until ``open()``; ``entered`` is set when a call starts."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self._open = asyncio.Event()

    def open(self) -> None:
        self._open.set()

    async def __call__(self, message: Message) -> None:
        await super().__call__(message)
        self.entered.set()
        await self._open.wait()
