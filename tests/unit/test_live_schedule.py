"""``LiveSchedule`` on a real APScheduler with tiny intervals: fires, first runs, boundaries and shutdown.

APScheduler reads the wall clock, so these tests use ``WallClock`` and let real time pass (tens of milliseconds);
every wait is on an event a task function sets, bounded by the module's timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from triplegain.clock import WallClock
from triplegain.coordinator.live import LiveSchedule, _BoundaryTrigger
from triplegain.coordinator.runner import TaskFn, TaskRun, TaskRunner
from triplegain.coordinator.schedule import ScheduleSettings, TaskName, TaskSpec, next_boundary
from triplegain.model import TaskStatus

pytestmark = pytest.mark.timeout(20)

SYMBOLS = ("BTC/USDT", "ETH/USDT")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Probe:
    """A task function that counts its calls (``reached(n)``) and blocks while its gate is closed."""

    def __init__(self, *, open_gate: bool = True) -> None:
        self.gate = asyncio.Event()
        if open_gate:
            self.gate.set()
        self.calls: list[tuple[str | None, datetime]] = []
        self._targets: dict[int, asyncio.Event] = {}

    async def __call__(self, symbol: str | None, now: datetime) -> None:
        self.calls.append((symbol, now))
        for count, target in self._targets.items():
            if len(self.calls) >= count:
                target.set()
        await self.gate.wait()

    async def reached(self, count: int) -> None:
        if len(self.calls) < count:
            await self._targets.setdefault(count, asyncio.Event()).wait()


class Reports:
    def __init__(self) -> None:
        self.runs: list[TaskRun] = []

    async def __call__(self, run: TaskRun) -> None:
        self.runs.append(run)


def only(name: TaskName, spec: TaskSpec, **settings: Any) -> ScheduleSettings:
    """A schedule that runs just ``name`` (every other task disabled)."""
    disabled = {
        other.value: TaskSpec(interval_seconds=3600, timeout_seconds=5, per_symbol=False, enabled=False)
        for other in TaskName
    }
    return ScheduleSettings.model_validate({**disabled, name.value: spec, "jitter_seconds": 0, **settings})


def spec(interval: float, *, timeout: float = 5, per_symbol: bool = True, **changes: Any) -> TaskSpec:
    return TaskSpec(interval_seconds=interval, timeout_seconds=timeout, per_symbol=per_symbol, **changes)


class Live:
    """A runner and its live schedule, built for one task."""

    def __init__(self, settings: ScheduleSettings, name: TaskName, fn: TaskFn, **restore: datetime) -> None:
        self.clock = WallClock()
        self.reports = Reports()
        tasks: dict[TaskName, TaskFn] = {name: fn}
        self.runner = TaskRunner(settings, tasks, SYMBOLS, clock=self.clock, on_finished=self.reports)
        self.runner.restore({(name, symbol): at for symbol, at in restore.items()})
        self.started_at = self.clock.now()
        self.schedule = LiveSchedule(settings, self.runner, clock=self.clock, started_at=self.started_at)


@pytest.fixture
async def stopped() -> AsyncIterator[list[LiveSchedule]]:
    """Schedules a test started; any still running at the end is shut down."""
    schedules: list[LiveSchedule] = []
    yield schedules
    for schedule in schedules:
        await schedule.aclose()


def start(live: Live, stopped: list[LiveSchedule]) -> None:
    live.schedule.start()
    stopped.append(live.schedule)


def on_grid(moment: datetime, interval: float, offset: float = 0.0) -> bool:
    """Whether ``moment`` is a boundary of ``interval`` plus ``offset``, to the microsecond float rounding allows."""
    step = round(interval * 1_000_000)
    remainder = ((moment - EPOCH) // timedelta(microseconds=1) - round(offset * 1_000_000)) % step
    return min(remainder, step - remainder) <= 2


async def test_jobs_fire_on_their_boundaries_and_call_run_task(stopped: list[LiveSchedule]) -> None:
    probe = Probe()
    live = Live(only(TaskName.TECHNICAL, spec(0.05, offset_seconds=0.01)), TaskName.TECHNICAL, probe)
    before = live.clock.now()
    start(live, stopped)
    after = live.clock.now()
    fire = live.schedule.next_fire_times()[TaskName.TECHNICAL]
    assert fire is not None
    assert on_grid(fire, 0.05, 0.01)
    assert before <= fire < after + timedelta(seconds=0.05)
    await probe.reached(6)
    assert {symbol for symbol, _ in probe.calls} == set(SYMBOLS)
    assert all(run.status is TaskStatus.SUCCEEDED for run in live.reports.runs)
    assert all(run.started_at >= fire for run in live.reports.runs)
    later = live.schedule.next_fire_times()[TaskName.TECHNICAL]
    assert later is not None
    assert on_grid(later, 0.05, 0.01)


async def test_next_fire_times_cover_every_enabled_task_and_none_before_start() -> None:
    live = Live(only(TaskName.HOUSEKEEPING, spec(60, per_symbol=False)), TaskName.HOUSEKEEPING, Probe())
    assert live.schedule.next_fire_times() == {TaskName.HOUSEKEEPING: None}


async def test_a_new_task_first_runs_at_its_first_boundary_not_never(stopped: list[LiveSchedule]) -> None:
    live = Live(only(TaskName.PORTFOLIO, spec(3600, offset_seconds=2)), TaskName.PORTFOLIO, Probe())
    offset = timedelta(seconds=2)
    before = live.clock.now()
    start(live, stopped)
    after = live.clock.now()
    [fire] = live.schedule.next_fire_times().values()
    # start() read the clock between ``before`` and ``after``; an hour boundary may lie in between
    assert fire in {next_boundary(3600, moment - offset, inclusive=True) + offset for moment in (before, after)}


async def test_run_at_start_fires_at_once_then_stays_on_the_boundaries(stopped: list[LiveSchedule]) -> None:
    probe = Probe()
    settings = only(TaskName.HOUSEKEEPING, spec(3600, per_symbol=False, run_at_start=True))
    live = Live(settings, TaskName.HOUSEKEEPING, probe)
    before = live.clock.now()
    start(live, stopped)
    await probe.reached(1)
    assert probe.calls[0][0] is None
    [run] = live.reports.runs
    assert run.status is TaskStatus.SUCCEEDED
    [fire] = live.schedule.next_fire_times().values()
    # the next fire is the boundary after the one at start, which happened between ``before`` and the run
    assert fire in {next_boundary(3600, moment, inclusive=False) for moment in (before, run.started_at)}


async def test_an_overdue_task_fires_at_once(stopped: list[LiveSchedule]) -> None:
    probe = Probe()
    long_ago = WallClock().now() - timedelta(hours=5)
    live = Live(only(TaskName.PORTFOLIO, spec(3600)), TaskName.PORTFOLIO, probe, **{s: long_ago for s in SYMBOLS})
    start(live, stopped)
    await probe.reached(2)
    assert {symbol for symbol, _ in probe.calls} == set(SYMBOLS)


async def test_a_task_that_ran_this_interval_waits_for_the_next_boundary(stopped: list[LiveSchedule]) -> None:
    week = 7 * 86400.0  # long enough that no boundary passes while the test runs
    just_ran = WallClock().now()
    live = Live(only(TaskName.PORTFOLIO, spec(week)), TaskName.PORTFOLIO, Probe(), **{s: just_ran for s in SYMBOLS})
    start(live, stopped)
    assert live.schedule.next_fire_times() == {TaskName.PORTFOLIO: next_boundary(week, just_ran, inclusive=False)}


async def test_shutdown_waits_for_a_run_that_finishes_in_time(stopped: list[LiveSchedule]) -> None:
    probe = Probe(open_gate=False)
    settings = only(TaskName.HOUSEKEEPING, spec(3600, per_symbol=False, run_at_start=True))
    live = Live(settings, TaskName.HOUSEKEEPING, probe)
    start(live, stopped)
    await probe.reached(1)
    asyncio.get_running_loop().call_soon(probe.gate.set)  # runs once shutdown is waiting
    assert await live.schedule.aclose() == []
    assert [run.status for run in live.reports.runs] == [TaskStatus.SUCCEEDED]
    assert live.schedule.next_fire_times() == {TaskName.HOUSEKEEPING: None}


async def test_shutdown_cancels_a_hung_run_and_records_it(
    stopped: list[LiveSchedule], caplog: pytest.LogCaptureFixture
) -> None:
    probe = Probe(open_gate=False)
    settings = only(
        TaskName.HOUSEKEEPING,
        spec(3600, timeout=60, per_symbol=False, run_at_start=True),
        shutdown_timeout_seconds=0.05,
    )
    live = Live(settings, TaskName.HOUSEKEEPING, probe)
    start(live, stopped)
    await probe.reached(1)
    with caplog.at_level(logging.INFO, logger="apscheduler"):
        cancelled = await live.schedule.aclose()
    assert [(run.task, run.symbol, run.status, run.error) for run in cancelled] == [
        (TaskName.HOUSEKEEPING, None, TaskStatus.FAILED, "cancelled at shutdown after 0.05s")
    ]
    assert live.reports.runs == cancelled
    assert live.runner.running == frozenset()
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert "Scheduler has been shut down" in caplog.messages
    after = await live.runner.run_task(TaskName.HOUSEKEEPING, live.clock.now())
    assert [run.error for run in after] == ["shutting down"]


async def test_shutdown_before_start_only_shuts_the_runner() -> None:
    live = Live(only(TaskName.HOUSEKEEPING, spec(60, per_symbol=False)), TaskName.HOUSEKEEPING, Probe())
    assert await live.schedule.aclose() == []


def test_the_boundary_trigger_does_not_let_jitter_accumulate() -> None:
    start_date = datetime(2024, 1, 1, 0, 0, 2, tzinfo=UTC)
    trigger = _BoundaryTrigger(seconds=10, start_date=start_date, jitter=9.9, timezone=UTC)
    fire = trigger.get_next_fire_time(None, start_date - timedelta(seconds=1))
    for index in range(1, 2000):
        previous, fire = fire, trigger.get_next_fire_time(fire, fire)
        assert previous < fire
        nominal = start_date + timedelta(seconds=10 * index)
        assert nominal <= fire <= nominal + timedelta(seconds=9.9)


def test_the_boundary_trigger_returns_to_the_grid_after_an_off_grid_fire() -> None:
    start_date = datetime(2024, 1, 1, tzinfo=UTC)
    trigger = _BoundaryTrigger(seconds=300, start_date=start_date, timezone=UTC)
    off_grid = start_date + timedelta(seconds=1234.5)
    assert trigger.get_next_fire_time(off_grid, off_grid) == start_date + timedelta(seconds=1500)
    assert trigger.get_next_fire_time(None, off_grid) == start_date + timedelta(seconds=1500)
