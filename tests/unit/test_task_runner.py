"""``TaskRunner.run_task``: fan-out, timeouts, failures, skips, dependencies, last runs and shutdown."""

from __future__ import annotations

import asyncio
import gc
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from triplegain.clock import FakeClock
from triplegain.coordinator.runner import TaskFn, TaskRun, TaskRunner
from triplegain.coordinator.schedule import ScheduleSettings, TaskName, TaskSpec
from triplegain.model import TaskStatus

pytestmark = pytest.mark.timeout(20)

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT")


class Probe:
    """A task function that records its calls and, while its gate is closed, blocks (only ``blocking`` symbols)."""

    def __init__(
        self, *, open_gate: bool = True, error: BaseException | None = None, blocking: set[str] | None = None
    ) -> None:
        self.gate = asyncio.Event()
        if open_gate:
            self.gate.set()
        self.error = error
        self.blocking = blocking
        self.calls: list[tuple[str | None, datetime]] = []
        self.entered: defaultdict[str | None, asyncio.Event] = defaultdict(asyncio.Event)
        self.done: defaultdict[str | None, asyncio.Event] = defaultdict(asyncio.Event)

    async def __call__(self, symbol: str | None, now: datetime) -> None:
        self.calls.append((symbol, now))
        self.entered[symbol].set()
        try:
            if self.blocking is None or symbol in self.blocking:
                await self.gate.wait()
            if self.error is not None:
                raise self.error
        finally:
            self.done[symbol].set()


class Reports:
    """An ``on_finished`` that keeps every run it is handed."""

    def __init__(self) -> None:
        self.runs: list[TaskRun] = []

    async def __call__(self, run: TaskRun) -> None:
        self.runs.append(run)


def task(interval: float = 300, timeout: float = 5, *, per_symbol: bool = True, **changes: Any) -> TaskSpec:
    return TaskSpec(interval_seconds=interval, timeout_seconds=timeout, per_symbol=per_symbol, **changes)


def schedule(**tasks: TaskSpec | float) -> ScheduleSettings:
    return ScheduleSettings.model_validate({**ScheduleSettings().model_dump(), "jitter_seconds": 0, **tasks})


def runner(
    settings: ScheduleSettings,
    clock: FakeClock,
    reports: Reports | None = None,
    symbols: tuple[str, ...] = SYMBOLS,
    **fns: TaskFn,
) -> TaskRunner:
    tasks: dict[TaskName, TaskFn] = {name: Probe() for name in TaskName}
    tasks.update({TaskName(name): fn for name, fn in fns.items()})
    return TaskRunner(settings, tasks, symbols, clock=clock, on_finished=reports)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


# ------------------------------------------------------------------------------------------------ running


async def test_a_per_symbol_task_runs_once_per_symbol_in_symbol_order(clock: FakeClock) -> None:
    probe, reports = Probe(), Reports()
    r = runner(schedule(), clock, reports, technical=probe)
    clock.advance(3)
    runs = await r.run_task(TaskName.TECHNICAL, T0)
    assert [(run.symbol, run.status, run.error, run.timed_out) for run in runs] == [
        ("BTC/USDT", TaskStatus.SUCCEEDED, None, False),
        ("ETH/USDT", TaskStatus.SUCCEEDED, None, False),
    ]
    assert all(
        (run.task, run.started_at, run.finished_at) == (TaskName.TECHNICAL, T0, T0 + timedelta(seconds=3))
        for run in runs
    )
    assert sorted(probe.calls, key=str) == [("BTC/USDT", T0), ("ETH/USDT", T0)]
    assert sorted(reports.runs, key=lambda run: str(run.symbol)) == runs
    assert r.running == frozenset()


async def test_a_task_that_does_not_fan_out_runs_once_with_no_symbol(clock: FakeClock) -> None:
    probe = Probe()
    r = runner(schedule(), clock, housekeeping=probe)
    runs = await r.run_task(TaskName.HOUSEKEEPING, T0)
    assert [(run.symbol, run.status) for run in runs] == [(None, TaskStatus.SUCCEEDED)]
    assert probe.calls == [(None, T0)]


async def test_symbols_run_concurrently(clock: FakeClock) -> None:
    probe = Probe(open_gate=False)
    r = runner(schedule(), clock, technical=probe)
    running = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))
    await probe.entered["BTC/USDT"].wait()
    await probe.entered["ETH/USDT"].wait()
    assert r.running == {(TaskName.TECHNICAL, "BTC/USDT"), (TaskName.TECHNICAL, "ETH/USDT")}
    probe.gate.set()
    assert [run.status for run in await running] == [TaskStatus.SUCCEEDED, TaskStatus.SUCCEEDED]


async def test_an_exception_is_recorded_logged_and_not_raised(clock: FakeClock) -> None:
    reports = Reports()
    r = runner(schedule(), clock, reports, technical=Probe(error=ValueError("no candles")))
    with capture_logs() as logs:
        runs = await r.run_task(TaskName.TECHNICAL, T0)
    assert [(run.status, run.error, run.timed_out) for run in runs] == [
        (TaskStatus.FAILED, "ValueError: no candles", False)
    ] * 2
    assert (r.failures, r.timeouts) == (2, 0)
    assert len(reports.runs) == 2
    failed = [entry for entry in logs if entry["event"] == "task failed"]
    assert sorted(entry["symbol"] for entry in failed) == list(SYMBOLS)
    assert all(entry["log_level"] == "warning" and entry["task"] == "technical" for entry in failed)


async def test_a_run_longer_than_its_timeout_is_cancelled_and_recorded(clock: FakeClock) -> None:
    probe = Probe(open_gate=False)
    reports = Reports()
    r = runner(schedule(technical=task(timeout=0.05)), clock, reports, technical=probe)
    with capture_logs() as logs:
        runs = await r.run_task(TaskName.TECHNICAL, T0)
    assert [(run.status, run.error, run.timed_out) for run in runs] == [
        (TaskStatus.FAILED, "TimeoutError: timed out after 0.05s", True)
    ] * 2
    assert all(event.is_set() for event in probe.done.values())
    assert (r.timeouts, r.failures) == (2, 2)
    assert [run.timed_out for run in reports.runs] == [True, True]
    assert [entry["event"] for entry in logs].count("task timed out") == 2


async def test_a_timeout_error_raised_by_the_task_itself_is_a_plain_failure(clock: FakeClock) -> None:
    r = runner(schedule(), clock, technical=Probe(error=TimeoutError("exchange too slow")))
    runs = await r.run_task(TaskName.TECHNICAL, T0)
    assert [(run.status, run.error, run.timed_out) for run in runs] == [
        (TaskStatus.FAILED, "TimeoutError: exchange too slow", False)
    ] * 2
    assert (r.timeouts, r.failures) == (0, 2)


async def test_a_run_of_a_key_in_flight_is_skipped_not_waited_for(clock: FakeClock) -> None:
    probe, reports = Probe(open_gate=False), Reports()
    r = runner(schedule(), clock, reports, technical=probe)
    first = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))
    await probe.entered["BTC/USDT"].wait()
    await probe.entered["ETH/USDT"].wait()
    later = T0 + timedelta(seconds=300)
    skipped = await r.run_task(TaskName.TECHNICAL, later)
    assert [(run.symbol, run.status, run.error, run.started_at) for run in skipped] == [
        (symbol, TaskStatus.SKIPPED, f"still running since {T0.isoformat()}", later) for symbol in SYMBOLS
    ]
    assert len(probe.calls) == 2
    assert reports.runs == skipped
    probe.gate.set()
    await first
    assert r.last_runs == {(TaskName.TECHNICAL, symbol): T0 for symbol in SYMBOLS}
    assert r.failures == 0


async def test_a_disabled_task_is_skipped(clock: FakeClock) -> None:
    probe = Probe()
    settings = schedule(portfolio=task(3600, enabled=False))
    r = runner(settings, clock, portfolio=probe)
    assert [(run.status, run.error) for run in await r.run_task(TaskName.PORTFOLIO, T0)] == [
        (TaskStatus.SKIPPED, "task disabled")
    ] * 2
    assert probe.calls == []
    assert r.last_runs == {}


def test_every_enabled_task_needs_a_function(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="no function for enabled task"):
        TaskRunner(ScheduleSettings(), {TaskName.TECHNICAL: Probe()}, SYMBOLS, clock=clock)
    without_portfolio = {name: Probe() for name in TaskName if name is not TaskName.PORTFOLIO}
    TaskRunner(schedule(portfolio=task(3600, enabled=False)), without_portfolio, SYMBOLS, clock=clock)


async def test_a_failing_report_is_logged_and_counted(clock: FakeClock) -> None:
    async def broken(run: TaskRun) -> None:
        raise RuntimeError("database down")

    r = TaskRunner(schedule(), {n: Probe() for n in TaskName}, SYMBOLS, clock=clock, on_finished=broken)
    with capture_logs() as logs:
        runs = await r.run_task(TaskName.TECHNICAL, T0)
    assert [run.status for run in runs] == [TaskStatus.SUCCEEDED] * 2
    assert r.report_failures == 2
    assert [entry["event"] for entry in logs].count("task run report failed") == 2


async def test_a_cancelled_caller_does_not_cancel_the_run(clock: FakeClock) -> None:
    probe, reports = Probe(open_gate=False), Reports()
    r = runner(schedule(), clock, reports, technical=probe)
    caller = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))
    await probe.entered["ETH/USDT"].wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert len(r.running) == 2
    probe.gate.set()
    await r.aclose()
    assert [run.status for run in reports.runs] == [TaskStatus.SUCCEEDED] * 2
    assert len(r.last_runs) == 2


# ------------------------------------------------------------------------------------------------ dependencies


async def test_a_run_first_waits_for_its_dependency_in_flight_for_the_same_symbol(clock: FakeClock) -> None:
    technical, regime = Probe(open_gate=False, blocking={"BTC/USDT"}), Probe()
    r = runner(schedule(), clock, technical=technical, regime=regime)
    held = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))
    await technical.done["ETH/USDT"].wait()
    await technical.entered["BTC/USDT"].wait()
    regime_runs = asyncio.create_task(r.run_task(TaskName.REGIME, T0))
    await regime.done["ETH/USDT"].wait()
    assert regime.calls == [("ETH/USDT", T0)]
    technical.gate.set()
    await held
    assert [run.status for run in await regime_runs] == [TaskStatus.SUCCEEDED] * 2
    assert regime.calls == [("ETH/USDT", T0), ("BTC/USDT", T0)]


async def test_the_dependency_wait_is_bounded_by_the_tasks_own_timeout(clock: FakeClock) -> None:
    technical, regime = Probe(open_gate=False), Probe()
    r = runner(
        schedule(regime=task(timeout=0.05, depends_on=[TaskName.TECHNICAL])), clock, technical=technical, regime=regime
    )
    held = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))
    await technical.entered["ETH/USDT"].wait()
    with capture_logs() as logs:
        runs = await r.run_task(TaskName.REGIME, T0)
    assert [run.status for run in runs] == [TaskStatus.SUCCEEDED] * 2
    assert [entry["event"] for entry in logs].count("task runs without its dependencies finished") == 2
    assert r.running == {(TaskName.TECHNICAL, symbol) for symbol in SYMBOLS}
    technical.gate.set()
    await held


async def test_a_task_without_fan_out_waits_for_its_dependency_on_every_symbol(clock: FakeClock) -> None:
    technical, housekeeping = Probe(open_gate=False, blocking={"ETH/USDT"}), Probe()
    settings = schedule(housekeeping=task(10, per_symbol=False, depends_on=[TaskName.TECHNICAL]))
    r = runner(settings, clock, technical=technical, housekeeping=housekeeping)
    held = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))
    await technical.entered["ETH/USDT"].wait()
    waiting = asyncio.create_task(r.run_task(TaskName.HOUSEKEEPING, T0))
    await technical.done["BTC/USDT"].wait()
    assert housekeeping.calls == []
    technical.gate.set()
    await held
    assert [run.status for run in await waiting] == [TaskStatus.SUCCEEDED]


# ------------------------------------------------------------------------------------------------ last runs


async def test_last_runs_keep_the_latest_start_of_finished_runs(clock: FakeClock) -> None:
    r = runner(schedule(), clock, technical=Probe(error=ValueError("x")))
    later = T0 + timedelta(seconds=300)
    await r.run_task(TaskName.TECHNICAL, later)
    await r.run_task(TaskName.TECHNICAL, T0)
    await r.run_task(TaskName.HOUSEKEEPING, T0)
    assert r.last_runs == {
        (TaskName.TECHNICAL, "BTC/USDT"): later,
        (TaskName.TECHNICAL, "ETH/USDT"): later,
        (TaskName.HOUSEKEEPING, None): T0,
    }


async def test_last_run_is_the_oldest_symbol_and_none_until_every_symbol_ran(clock: FakeClock) -> None:
    r = runner(schedule(), clock)
    assert r.last_run(TaskName.TECHNICAL) is None
    r.restore({(TaskName.TECHNICAL, "BTC/USDT"): T0})
    assert r.last_run(TaskName.TECHNICAL) is None
    r.restore({(TaskName.TECHNICAL, "ETH/USDT"): T0 - timedelta(seconds=300), (TaskName.HOUSEKEEPING, None): T0})
    assert r.last_run(TaskName.TECHNICAL) == T0 - timedelta(seconds=300)
    assert r.last_run(TaskName.HOUSEKEEPING) == T0
    await r.run_task(TaskName.TECHNICAL, T0 + timedelta(seconds=300))
    assert r.last_run(TaskName.TECHNICAL) == T0 + timedelta(seconds=300)


async def test_last_run_ignores_symbols_no_longer_configured(clock: FakeClock) -> None:
    r = runner(schedule(), clock, symbols=("BTC/USDT",))
    r.restore({(TaskName.TECHNICAL, "BTC/USDT"): T0, (TaskName.TECHNICAL, "DOGE/USDT"): T0 - timedelta(days=9)})
    assert r.last_run(TaskName.TECHNICAL) == T0


def test_with_no_symbols_a_fan_out_task_never_ran(clock: FakeClock) -> None:
    assert runner(schedule(), clock, symbols=()).last_run(TaskName.TECHNICAL) is None


# ------------------------------------------------------------------------------------------------ shutdown


async def test_aclose_waits_for_runs_that_finish_in_time(clock: FakeClock) -> None:
    probe, reports = Probe(open_gate=False), Reports()
    r = runner(schedule(), clock, reports, technical=probe)
    runs = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))
    await probe.entered["ETH/USDT"].wait()
    asyncio.get_running_loop().call_soon(probe.gate.set)  # runs once shutdown is waiting
    assert await r.aclose() == []
    assert [run.status for run in await runs] == [TaskStatus.SUCCEEDED] * 2
    assert r.running == frozenset()


async def test_aclose_cancels_runs_still_going_after_the_timeout_and_records_them(clock: FakeClock) -> None:
    technical, housekeeping, reports = Probe(open_gate=False, blocking={"ETH/USDT"}), Probe(), Reports()
    settings = schedule(shutdown_timeout_seconds=0.05)
    r = runner(settings, clock, reports, technical=technical, housekeeping=housekeeping)
    runs = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))
    await technical.entered["ETH/USDT"].wait()
    await technical.done["BTC/USDT"].wait()
    clock.advance(7)
    with capture_logs() as logs:
        cancelled = await r.aclose()
    expected = TaskRun(
        task=TaskName.TECHNICAL,
        symbol="ETH/USDT",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=7),
        status=TaskStatus.FAILED,
        error="cancelled at shutdown after 0.05s",
    )
    assert cancelled == [expected]
    assert technical.done["ETH/USDT"].is_set()
    assert reports.runs[-1] == expected
    assert [run.status for run in await runs] == [TaskStatus.SUCCEEDED, TaskStatus.FAILED]
    assert r.failures == 1
    assert r.timeouts == 0
    assert r.last_runs[(TaskName.TECHNICAL, "ETH/USDT")] == T0
    assert r.running == frozenset()
    assert [entry["event"] for entry in logs] == ["task cancelled at shutdown"]

    after = await r.run_task(TaskName.HOUSEKEEPING, T0 + timedelta(seconds=10))
    assert [(run.status, run.error) for run in after] == [(TaskStatus.SKIPPED, "shutting down")]
    assert housekeeping.calls == []
    assert reports.runs[-1] == after[0]


async def test_a_fire_for_a_busy_key_during_shutdown_is_skipped_as_shutting_down(clock: FakeClock) -> None:
    probe = Probe(open_gate=False)
    r = runner(schedule(), clock, technical=probe)
    held = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))
    await probe.entered["ETH/USDT"].wait()
    stopping = asyncio.create_task(r.aclose())
    fire = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))  # tasks start in order: shutdown has begun
    assert [run.error for run in await fire] == ["shutting down"] * 2
    probe.gate.set()
    assert await stopping == []
    assert [run.status for run in await held] == [TaskStatus.SUCCEEDED] * 2


async def test_a_run_cancelled_while_being_reported_keeps_its_outcome(clock: FakeClock) -> None:
    """Shutdown cancels a run whose function finished but whose ``on_finished`` hangs: its own outcome stands."""
    reporting, hang = asyncio.Event(), asyncio.Event()

    async def stuck_report(run: TaskRun) -> None:
        reporting.set()
        await hang.wait()

    settings = schedule(shutdown_timeout_seconds=0.001)
    r = TaskRunner(settings, {n: Probe() for n in TaskName}, SYMBOLS, clock=clock, on_finished=stuck_report)
    runs = asyncio.create_task(r.run_task(TaskName.HOUSEKEEPING, T0))
    await reporting.wait()
    with capture_logs() as logs:
        assert await r.aclose() == []
    assert [(run.status, run.error) for run in await runs] == [(TaskStatus.SUCCEEDED, None)]
    assert r.last_runs == {(TaskName.HOUSEKEEPING, None): T0}
    assert r.failures == 0
    assert [entry["event"] for entry in logs] == ["task run report interrupted at shutdown"]


async def test_aclose_with_nothing_running_returns_at_once(clock: FakeClock) -> None:
    r = runner(schedule(), clock)
    assert await r.aclose() == []
    assert await r.aclose() == []


async def test_no_runner_task_is_left_with_an_unretrieved_exception(clock: FakeClock) -> None:
    """Failures, timeouts, a cancelled caller and cancellation at shutdown leave nothing for the loop to report."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    technical = Probe(open_gate=False, blocking={"BTC/USDT"})
    settings = schedule(regime=task(timeout=0.05), shutdown_timeout_seconds=0.001)
    r = runner(settings, clock, technical=technical, regime=Probe(error=KeyError("k")))
    caller = asyncio.create_task(r.run_task(TaskName.TECHNICAL, T0))
    await technical.entered["BTC/USDT"].wait()
    caller.cancel()
    await r.run_task(TaskName.REGIME, T0)
    assert [run.error for run in await r.aclose()] == ["cancelled at shutdown after 0.001s"]
    del caller
    gc.collect()
    assert errors == []


# ------------------------------------------------------------------------------------------------ inline (replay)


def inline_runner(settings: ScheduleSettings, clock: FakeClock, reports: Reports, **fns: TaskFn) -> TaskRunner:
    tasks: dict[TaskName, TaskFn] = {name: Probe() for name in TaskName}
    tasks.update({TaskName(name): fn for name, fn in fns.items()})
    return TaskRunner(settings, tasks, SYMBOLS, clock=clock, on_finished=reports, inline=True)


async def test_inline_runs_are_awaited_in_the_caller_one_symbol_after_another(clock: FakeClock) -> None:
    seen: list[tuple[str | None, asyncio.Task[Any] | None, int]] = []
    caller = asyncio.current_task()

    async def body(symbol: str | None, _now: datetime) -> None:
        seen.append((symbol, asyncio.current_task(), len(seen)))
        clock.advance(2)

    reports = Reports()
    r = inline_runner(schedule(), clock, reports, technical=body)
    runs = await r.run_task(TaskName.TECHNICAL, T0)
    assert seen == [("BTC/USDT", caller, 0), ("ETH/USDT", caller, 1)], "no task of their own, in symbol order"
    assert [(run.symbol, run.status, run.finished_at) for run in runs] == [
        ("BTC/USDT", TaskStatus.SUCCEEDED, T0 + timedelta(seconds=2)),
        ("ETH/USDT", TaskStatus.SUCCEEDED, T0 + timedelta(seconds=4)),
    ]
    assert reports.runs == runs
    assert r.last_run(TaskName.TECHNICAL) == T0


async def test_an_inline_run_that_raises_is_recorded_failed_and_the_next_symbol_still_runs(clock: FakeClock) -> None:
    reports = Reports()
    probe = Probe(error=ValueError("no candles"))
    r = inline_runner(schedule(), clock, reports, technical=probe)
    runs = await r.run_task(TaskName.TECHNICAL, T0)
    assert [(run.status, run.error) for run in runs] == [(TaskStatus.FAILED, "ValueError: no candles")] * 2
    assert [symbol for symbol, _ in probe.calls] == list(SYMBOLS)
    assert (r.failures, len(reports.runs)) == (2, 2)


async def test_an_inline_run_of_a_disabled_task_or_a_closing_runner_is_skipped(clock: FakeClock) -> None:
    reports = Reports()
    probe = Probe()
    settings = schedule(portfolio=task(3600, enabled=False))
    r = inline_runner(settings, clock, reports, portfolio=probe, housekeeping=probe)
    runs = await r.run_task(TaskName.PORTFOLIO, T0)
    assert [(run.status, run.error) for run in runs] == [(TaskStatus.SKIPPED, "task disabled")] * 2
    await r.aclose()
    runs = await r.run_task(TaskName.HOUSEKEEPING, T0)
    assert [(run.status, run.error) for run in runs] == [(TaskStatus.SKIPPED, "shutting down")]
    assert probe.calls == []
    assert r.last_runs == {}
    assert len(reports.runs) == 3
