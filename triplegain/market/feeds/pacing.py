"""Replaying candles at a speed relative to candle time.

At speed 60 an hour of candles takes a minute. The pacer anchors candle time to the clock at the first candle and
waits until each later candle is due, so time spent by the consumer is not added on top of the waits (a slow
consumer catches up instead of falling further behind). With no speed, candles go out as fast as the consumer
takes them; the pacer still hands control back to the event loop once per candle so other tasks keep running.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from triplegain.clock import Clock
from triplegain.market.feeds import Sleep


class Pacer:
    def __init__(self, speed: float | None, clock: Clock, sleep: Sleep) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 or None (as fast as possible), got {speed!r}")
        self._speed = speed
        self._clock = clock
        self._sleep = sleep
        self._anchor: tuple[datetime, float] | None = None

    async def wait_for(self, candle_time: datetime) -> None:
        """Return when the candle that opens at ``candle_time`` is due."""
        if self._speed is None:
            await asyncio.sleep(0)
            return
        if self._anchor is None:
            self._anchor = (candle_time, self._clock.monotonic())
            return
        first_time, first_monotonic = self._anchor
        due = first_monotonic + (candle_time - first_time).total_seconds() / self._speed
        delay = due - self._clock.monotonic()
        if delay > 0:
            await self._sleep(delay)
