"""Replay: a simulated clock runs the schedule at candle time, as fast as the machine allows.

Candles arrive merged in time order. Every candle that closes at one moment is taken in first (all symbols'),
then the clock stands at that moment and the tasks ``schedule.due`` names run through the same
``TaskRunner.run_task`` the live schedule uses, dependencies first. A candle older than the clock is still taken
in; the clock never goes back.

After each tick the replay awaits ``settle`` (the bus drained): every message published at a time is delivered
at that time, before the clock moves past its TTL, however few times the runs let the event loop turn (in a
replay they run inline, see ``coordinator.runner``). A view is recorded whatever the database's latency.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from triplegain.clock import Clock, FakeClock
from triplegain.coordinator.runner import TaskRunner
from triplegain.coordinator.schedule import ScheduleSettings, TaskName, due
from triplegain.market import Candle


@dataclass
class ReplayProgress:
    """What a replay has done so far."""

    candles: int = 0
    ticks: int = 0
    runs: Counter[TaskName] = field(default_factory=Counter)
    first_close: datetime | None = None
    last_close: datetime | None = None


class CandleReplay:
    """Drives ``runner`` from candles; ``ingest`` takes each candle in (frames, prices, freshness, fills)."""

    def __init__(
        self,
        schedule: ScheduleSettings,
        runner: TaskRunner,
        *,
        clock: FakeClock,
        ingest: Callable[[Candle], Awaitable[None]],
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._schedule = schedule
        self._runner = runner
        self._clock = clock
        self._ingest = ingest
        self._settle = settle
        self._started_at: datetime | None = None
        self.progress = ReplayProgress()

    async def run(self, candles: AsyncIterable[Candle]) -> ReplayProgress:
        """Replay ``candles`` to their end; the progress, also readable while it runs."""
        pending: datetime | None = None
        async for candle in candles:
            close = candle.close_time
            if pending is not None and close > pending:
                await self._tick(pending)
            if close > self._clock.now():
                self._clock.advance(close - self._clock.now())
            await self._ingest(candle)
            self._count(candle)
            pending = close if pending is None else max(pending, close)
        if pending is not None:
            await self._tick(pending)
        return self.progress

    async def _tick(self, now: datetime) -> None:
        if self._started_at is None:
            self._started_at = now
        last_runs = {name: run for name in TaskName if (run := self._runner.last_run(name)) is not None}
        for name in due(self._schedule, last_runs, self._started_at, now):
            await self._runner.run_task(name, now)
            self.progress.runs[name] += 1
        if self._settle is not None:
            await self._settle()
        self.progress.ticks += 1

    def _count(self, candle: Candle) -> None:
        progress = self.progress
        progress.candles += 1
        if progress.first_close is None:
            progress.first_close = candle.close_time
        progress.last_close = candle.close_time


async def replay_candles(
    schedule: ScheduleSettings,
    runner: TaskRunner,
    clock: Clock,
    ingest: Callable[[Candle], Awaitable[None]],
    settle: Callable[[], Awaitable[None]],
    candles: AsyncIterable[Candle],
) -> ReplayProgress:
    """Run ``schedule`` at candle time over ``candles`` (``clock`` must be a ``FakeClock``: ``TypeError``)."""
    if not isinstance(clock, FakeClock):
        raise TypeError("a replay runs on a simulated clock (FakeClock)")
    return await CandleReplay(schedule, runner, clock=clock, ingest=ingest, settle=settle).run(candles)
