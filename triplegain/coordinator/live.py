"""The schedule against the wall clock, on APScheduler 3.x.

One APScheduler job per enabled task calls ``TaskRunner.run_task``, the same entry replay uses. APScheduler reads
the system clock itself: the one accepted exception to injected time (``triplegain.clock``). The ``clock`` given
here must therefore be the wall clock; it only stamps the runs and decides, at start, which tasks are overdue.

Fires stay on the task's boundaries (multiples of its interval since the epoch) plus its offset, with a random
delay of up to ``jitter_seconds``. APScheduler's own ``IntervalTrigger`` counts the next fire from the previous
one, jitter included, so jitter would add up run after run, and a run at start would shift every later fire off
the boundaries; ``_BoundaryTrigger`` counts from the boundary instead. ``max_instances=1`` stops a job from
overlapping itself; a fire APScheduler drops for that reason still goes to the runner, which records a skip for
every symbol still running and runs the others, so an overrun is on record and one slow symbol does not hold
back the rest.

Shutdown pauses the scheduler first, so no job is cancelled under APScheduler (which would log each as an
error), lets the runner finish or cancel what is in flight, then stops the scheduler.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_SCHEDULER_SHUTDOWN,
    JobSubmissionEvent,
    SchedulerEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from triplegain.clock import Clock
from triplegain.coordinator.runner import TaskRun, TaskRunner
from triplegain.coordinator.schedule import ScheduleSettings, TaskName, next_boundary, next_run

_MICROSECOND = timedelta(microseconds=1)


class _BoundaryTrigger(IntervalTrigger):  # type: ignore[misc]
    """An ``IntervalTrigger`` whose next fire is the first point of its grid after the previous fire, plus jitter.

    Jitter must stay below the interval (``ScheduleSettings`` checks it), so a jittered fire never reaches the
    next grid point.
    """

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = now if previous_fire_time is None else previous_fire_time + _MICROSECOND
        fire: datetime | None = super().get_next_fire_time(None, after)
        return fire


class LiveSchedule:
    """Runs the declared tasks on APScheduler's ``AsyncIOScheduler`` in the running event loop."""

    def __init__(self, settings: ScheduleSettings, runner: TaskRunner, *, clock: Clock, started_at: datetime) -> None:
        self._settings = settings
        self._runner = runner
        self._clock = clock
        self._started_at = started_at
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._fires: set[asyncio.Task[Any]] = set()
        self._stopped = asyncio.Event()

    def start(self) -> None:
        """Start the scheduler (call it from the event loop), one job per enabled task."""
        self._scheduler.add_listener(self._on_overlap, EVENT_JOB_MAX_INSTANCES)
        self._scheduler.add_listener(self._on_stopped, EVENT_SCHEDULER_SHUTDOWN)
        self._scheduler.start()
        now = self._clock.now()
        for name in self._settings.ordered():
            spec = self._settings.spec(name)
            offset = timedelta(seconds=spec.offset_seconds)
            first = next_boundary(spec.interval_seconds, now - offset, inclusive=True) + offset
            overdue = next_run(spec, self._runner.last_run(name), self._started_at) + offset <= now
            self._scheduler.add_job(
                self._job,
                _BoundaryTrigger(
                    seconds=spec.interval_seconds, start_date=first, jitter=self._settings.jitter_seconds, timezone=UTC
                ),
                args=[name],
                id=name.value,
                name=name.value,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, math.ceil(self._settings.misfire_grace_seconds)),
                **({"next_run_time": now} if spec.run_at_start or overdue else {}),
            )

    def next_fire_times(self) -> dict[TaskName, datetime | None]:
        """When each enabled task fires next (None before start or once stopped)."""
        times: dict[TaskName, datetime | None] = {}
        for name in self._settings.ordered():
            job = self._scheduler.get_job(name.value)
            times[name] = job.next_run_time if job is not None and not self._stopped.is_set() else None
        return times

    async def __aenter__(self) -> LiveSchedule:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> list[TaskRun]:
        """Stop firing, give running tasks ``shutdown_timeout_seconds``, cancel the rest; the cancelled runs."""
        running = self._scheduler.running
        if running:
            self._scheduler.pause()
        cancelled = await self._runner.aclose()
        if self._fires:
            await asyncio.wait(self._fires)
        if running:
            self._scheduler.shutdown(wait=False)
            await self._stopped.wait()
        return cancelled

    async def _job(self, name: TaskName) -> None:
        fire = asyncio.current_task()
        assert fire is not None
        self._track(fire)
        await self._runner.run_task(name, self._clock.now())

    def _on_overlap(self, event: JobSubmissionEvent) -> None:
        """APScheduler dropped a fire because the job still runs: hand it to the runner all the same."""
        name = TaskName(event.job_id)
        self._track(asyncio.get_running_loop().create_task(self._job(name), name=f"overlap:{name.value}"))

    def _on_stopped(self, _: SchedulerEvent) -> None:
        self._stopped.set()

    def _track(self, fire: asyncio.Task[Any]) -> None:
        self._fires.add(fire)
        fire.add_done_callback(self._fires.discard)
