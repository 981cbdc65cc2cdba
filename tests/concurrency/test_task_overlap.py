"""Issue 4: a scheduled task slower than its interval never overlaps itself.

The task function blocks on an event while fires keep coming, first from many concurrent ``run_task`` calls, then
from APScheduler at a 50 ms interval. Per (task, symbol) at most one run is ever active; different symbols do run
at the same time; every fire that found its key busy is on record as skipped.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterable

import pytest

from triplegain.clock import FakeClock, WallClock
from triplegain.coordinator.live import LiveSchedule
from triplegain.coordinator.runner import TaskFn, TaskRun, TaskRunner
from triplegain.coordinator.schedule import ScheduleSettings, TaskName, TaskSpec
from triplegain.model import TaskStatus

pytestmark = pytest.mark.timeout(30)

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


class Tracker:
    """A task function that tracks how many runs are active per symbol and in all, blocking ``held`` symbols."""

    def __init__(self, held: Iterable[str] = SYMBOLS) -> None:
        self.held = set(held)
        self.release = asyncio.Event()
        self.active: Counter[str | None] = Counter()
        self.max_active: Counter[str | None] = Counter()
        self.max_total = 0
        self.calls: Counter[str | None] = Counter()
        self._all_held = asyncio.Event()
        self._targets: dict[tuple[str | None, int], asyncio.Event] = {}

    async def __call__(self, symbol: str | None, _now: object) -> None:
        self.active[symbol] += 1
        self.calls[symbol] += 1
        self.max_active[symbol] = max(self.max_active[symbol], self.active[symbol])
        self.max_total = max(self.max_total, self.active.total())
        if all(self.active[s] for s in self.held):
            self._all_held.set()
        for (wanted, count), target in self._targets.items():
            if symbol == wanted and self.calls[symbol] >= count:
                target.set()
        try:
            if symbol in self.held:
                await self.release.wait()
        finally:
            self.active[symbol] -= 1

    def hold(self) -> None:
        """Block the held symbols' next runs again."""
        self.release.clear()
        self._all_held.clear()

    async def all_held(self) -> None:
        """Until every held symbol has a run blocked."""
        await self._all_held.wait()

    async def calls_reach(self, symbol: str, count: int) -> None:
        if self.calls[symbol] < count:
            await self._targets.setdefault((symbol, count), asyncio.Event()).wait()


class Reports:
    """An ``on_finished`` keeping every run, with a wait for a number of skips of one symbol."""

    def __init__(self) -> None:
        self.runs: list[TaskRun] = []
        self._targets: dict[tuple[str | None, int], asyncio.Event] = {}

    async def __call__(self, run: TaskRun) -> None:
        self.runs.append(run)
        for (symbol, count), target in self._targets.items():
            if symbol == run.symbol and self.count(TaskStatus.SKIPPED, symbol) >= count:
                target.set()

    def count(self, status: TaskStatus, symbol: str | None) -> int:
        return sum(run.status is status and run.symbol == symbol for run in self.runs)

    async def skips_reach(self, symbol: str, count: int) -> None:
        if self.count(TaskStatus.SKIPPED, symbol) < count:
            await self._targets.setdefault((symbol, count), asyncio.Event()).wait()


def settings(interval: float, **changes: float) -> ScheduleSettings:
    """Only the technical task, per symbol, at ``interval``, with a generous timeout."""
    tasks = {
        name.value: TaskSpec(interval_seconds=3600, timeout_seconds=5, per_symbol=False, enabled=False)
        for name in TaskName
    }
    tasks[TaskName.TECHNICAL.value] = TaskSpec(interval_seconds=interval, timeout_seconds=20, per_symbol=True)
    return ScheduleSettings.model_validate({**tasks, "jitter_seconds": 0, **changes})


def runner(tracker: TaskFn, reports: Reports, clock: FakeClock | WallClock) -> TaskRunner:
    return TaskRunner(settings(300), {TaskName.TECHNICAL: tracker}, SYMBOLS, clock=clock, on_finished=reports)


@pytest.mark.parametrize("round_trips", [1, 20])
async def test_fires_while_a_run_is_in_flight_are_skipped(clock: FakeClock, round_trips: int) -> None:
    """Each round, 50 fires arrive at once and later, one interval apart, while the first runs are blocked."""
    tracker, reports = Tracker(), Reports()
    r = runner(tracker, reports, clock)
    for _ in range(round_trips):
        tracker.hold()
        first = clock.now()
        fires = [asyncio.create_task(r.run_task(TaskName.TECHNICAL, first))]
        await tracker.all_held()
        for _ in range(49):
            fires.append(asyncio.create_task(r.run_task(TaskName.TECHNICAL, clock.advance(300))))
        skipped = await asyncio.gather(*fires[1:])
        assert all(
            (run.status, run.error) == (TaskStatus.SKIPPED, f"still running since {first.isoformat()}")
            for runs in skipped
            for run in runs
        )
        tracker.release.set()
        assert [run.status for run in await fires[0]] == [TaskStatus.SUCCEEDED] * len(SYMBOLS)
        clock.advance(300)

    assert all(tracker.max_active[symbol] == 1 for symbol in SYMBOLS)
    assert tracker.max_total == len(SYMBOLS)
    assert tracker.calls == {symbol: round_trips for symbol in SYMBOLS}
    for symbol in SYMBOLS:
        assert reports.count(TaskStatus.SKIPPED, symbol) == 49 * round_trips
        assert reports.count(TaskStatus.SUCCEEDED, symbol) == round_trips
    assert r.running == frozenset()


async def test_concurrent_fires_at_the_same_moment_start_one_run_per_symbol(clock: FakeClock) -> None:
    tracker, reports = Tracker(), Reports()
    r = runner(tracker, reports, clock)
    fires = [asyncio.create_task(r.run_task(TaskName.TECHNICAL, clock.now())) for _ in range(100)]
    await tracker.all_held()
    tracker.release.set()
    outcomes = [run.status for runs in await asyncio.gather(*fires) for run in runs]
    assert Counter(outcomes) == {TaskStatus.SUCCEEDED: len(SYMBOLS), TaskStatus.SKIPPED: 99 * len(SYMBOLS)}
    assert tracker.max_active == {symbol: 1 for symbol in SYMBOLS}


async def test_live_a_task_slower_than_its_interval_never_overlaps_itself() -> None:
    """BTC's run blocks across many 50 ms fires; ETH and SOL keep running on schedule meanwhile."""
    tracker, reports = Tracker(held=["BTC/USDT"]), Reports()
    clock = WallClock()
    schedule_settings = settings(0.05, shutdown_timeout_seconds=5)
    r = TaskRunner(schedule_settings, {TaskName.TECHNICAL: tracker}, SYMBOLS, clock=clock, on_finished=reports)
    live = LiveSchedule(schedule_settings, r, clock=clock, started_at=clock.now())
    live.start()
    try:
        await reports.skips_reach("BTC/USDT", 5)
        await tracker.calls_reach("ETH/USDT", 4)
        assert tracker.calls["BTC/USDT"] == 1
        assert tracker.max_total >= 2
        tracker.release.set()
        await tracker.calls_reach("BTC/USDT", 3)
    finally:
        cancelled = await live.aclose()

    assert cancelled == []
    assert all(count == 1 for count in tracker.max_active.values())
    assert reports.count(TaskStatus.FAILED, "BTC/USDT") == 0
    for symbol in SYMBOLS:
        runs = [run for run in reports.runs if run.symbol == symbol and run.status is not TaskStatus.SKIPPED]
        assert all(a.finished_at <= b.started_at for a, b in itertools.pairwise(runs))
    assert all(
        run.error is not None and run.error.startswith("still running since ")
        for run in reports.runs
        if run.status is TaskStatus.SKIPPED
    )
    assert r.running == frozenset()
