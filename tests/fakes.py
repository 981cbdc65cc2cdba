"""Test doubles at the process boundary that several test modules share."""

from __future__ import annotations

import asyncio

from triplegain.clock import FakeClock
from triplegain.llm.models import LLMCallRecord


class ClockSleep:
    """An injected sleep that moves the fake clock instead of waiting, and remembers each wait."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)


class InMemoryCallLog:
    """An LLM ``CallLog`` keeping the records in a list, in the order they were written."""

    def __init__(self) -> None:
        self.records: list[LLMCallRecord] = []

    async def record(self, call: LLMCallRecord) -> None:
        self.records.append(call)
