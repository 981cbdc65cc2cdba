"""Test doubles at the process boundary that several test modules share."""

from __future__ import annotations

import asyncio

from triplegain.clock import FakeClock


class ClockSleep:
    """An injected sleep that moves the fake clock instead of waiting, and remembers each wait."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)
