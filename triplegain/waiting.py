"""Waiting for one thing unless a stop comes first.

taken = await unless_set(queue.get(), stop, give_up_after=5)
item = None if taken.cancelled() else taken.result()
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def unless_set(
    awaitable: Awaitable[T], stop: asyncio.Event, *, give_up_after: float | None = None
) -> asyncio.Future[T]:
    """Wait for ``awaitable`` until ``stop`` is set or ``give_up_after`` seconds pass, whichever comes first. Its
    future, always settled: with its result (or error) when it finished, even at the same moment as the stop;
    cancelled, and its cancellation awaited, when it did not."""
    waiting = asyncio.ensure_future(awaitable)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiting, stopping}, timeout=give_up_after, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not waiting.done():
            waiting.cancel()
        await asyncio.gather(waiting, stopping, return_exceptions=True)
    return waiting
