"""``run_task``: the one way a scheduled task runs, live and in replay.

Every run of a task for a symbol is an asyncio task of its own, owned by the runner rather than by the caller:
the caller (an APScheduler job, the replay loop) may be cancelled without cancelling the run, and shutdown can
find every run still in flight, give it a grace period and then cancel it. A (task, symbol) key already in
flight is not waited for: the new run is recorded as skipped, so a task slower than its interval never overlaps
itself and never piles up. Every outcome, skips included, is a ``TaskRun`` handed to ``on_finished`` (which
stores it and feeds degradation); nothing a task does is raised to the caller.

In a replay (``inline``) the runs are awaited in the caller instead, one symbol after another, with no task and
no timeout of their own: the replay loop waits for every run of a tick before the next candle anyway, so a task
per run bought nothing but its cost (a task, a timeout and several event-loop iterations per run, about a tenth
of a replay's time). What can block inside a run is bounded where it blocks: an LLM call by its provider's
timeout, a database statement by ``database.command_timeout_seconds``. A symbol's run reads nothing another
symbol's run of the same tick changes (the trade decisions of a tick share one reading of the account,
``Coordinator._account_at``), so one after another they do what they did side by side: the same outcomes, the
same rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

import structlog

from triplegain.clock import Clock
from triplegain.coordinator.schedule import ScheduleSettings, TaskName, TaskSpec
from triplegain.model import TaskStatus

_log = structlog.get_logger("triplegain.coordinator")

TaskFn = Callable[[str | None, datetime], Awaitable[None]]
"""A task's body: called with the symbol (None for a task that does not fan out) and the scheduled time."""

TaskKey = tuple[TaskName, str | None]
"""A task and the symbol it runs for (None for a task that does not fan out)."""


@dataclass(frozen=True)
class TaskRun:
    """One run of a task for one symbol; ``error`` says why it failed or was skipped."""

    task: TaskName
    symbol: str | None
    started_at: datetime
    finished_at: datetime
    status: TaskStatus
    error: str | None
    timed_out: bool = False

    @property
    def key(self) -> TaskKey:
        return (self.task, self.symbol)


@dataclass
class _Flight:
    """One attempt to run a task for a symbol and, once launched, its asyncio task.

    ``finished`` is set once the run's outcome is known and it is being reported; ``cancelled_at_shutdown`` is
    the record shutdown makes before cancelling a run that had not finished.
    """

    name: TaskName
    symbol: str | None
    started_at: datetime
    task: asyncio.Task[TaskRun] = field(init=False)
    finished: TaskRun | None = None
    cancelled_at_shutdown: TaskRun | None = None


class TaskRunner:
    """Runs the declared tasks, at most one run per (task, symbol) at a time, each bounded by its timeout."""

    def __init__(
        self,
        settings: ScheduleSettings,
        tasks: Mapping[TaskName, TaskFn],
        symbols: Sequence[str],
        *,
        clock: Clock,
        on_finished: Callable[[TaskRun], Awaitable[None]] | None = None,
        inline: bool = False,
    ) -> None:
        missing = [name.value for name in settings.ordered() if name not in tasks]
        if missing:
            raise ValueError(f"no function for enabled task(s): {', '.join(missing)}")
        self._settings = settings
        self._tasks = dict(tasks)
        self._symbols = tuple(symbols)
        self._clock = clock
        self._on_finished = on_finished
        self._inline = inline
        self._in_flight: dict[TaskKey, _Flight] = {}
        self._last_runs: dict[TaskKey, datetime] = {}
        self._closing = False
        self._timeouts = 0
        self._failures = 0
        self._report_failures = 0

    @property
    def last_runs(self) -> Mapping[TaskKey, datetime]:
        """The latest start of a finished (not skipped) run of each (task, symbol)."""
        return dict(self._last_runs)

    @property
    def running(self) -> frozenset[TaskKey]:
        """The (task, symbol) keys with a run in flight."""
        return frozenset(self._in_flight)

    @property
    def timeouts(self) -> int:
        """Runs cancelled because they exceeded their task's timeout."""
        return self._timeouts

    @property
    def failures(self) -> int:
        """Failed runs: exceptions, timeouts and runs cancelled at shutdown."""
        return self._failures

    @property
    def report_failures(self) -> int:
        """Calls of ``on_finished`` that raised."""
        return self._report_failures

    def restore(self, last_runs: Mapping[TaskKey, datetime]) -> None:
        """Take over the last runs stored by a previous process (at start, before any run)."""
        self._last_runs.update(last_runs)

    def last_run(self, name: TaskName) -> datetime | None:
        """The oldest last run over the task's symbols, so a fan-out cut short re-runs; None if one never ran."""
        runs = [self._last_runs.get((name, symbol)) for symbol in self._symbols_of(self._settings.spec(name))]
        if not runs or any(run is None for run in runs):
            return None
        return min(run for run in runs if run is not None)

    async def run_task(self, name: TaskName, now: datetime) -> list[TaskRun]:
        """Run task ``name`` as scheduled at ``now`` for each of its symbols; the runs in symbol order."""
        spec = self._settings.spec(name)
        if self._inline:
            return [await self._run_inline(name, spec, symbol, now) for symbol in self._symbols_of(spec)]
        outcomes = [self._launch(name, spec, symbol, now) for symbol in self._symbols_of(spec)]
        for outcome in outcomes:
            if isinstance(outcome, TaskRun):
                await self._report(outcome)
        launched = [outcome.task for outcome in outcomes if isinstance(outcome, _Flight)]
        if launched:
            await asyncio.wait(launched)
        return [outcome if isinstance(outcome, TaskRun) else _outcome(outcome) for outcome in outcomes]

    async def __aenter__(self) -> TaskRunner:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> list[TaskRun]:
        """Refuse new runs, give those in flight ``shutdown_timeout_seconds``, cancel the rest; the cancelled runs."""
        timeout = self._settings.shutdown_timeout_seconds
        self._closing = True
        flights = list(self._in_flight.values())
        if not flights:
            return []
        _, pending = await asyncio.wait([flight.task for flight in flights], timeout=timeout)
        stuck = [flight for flight in flights if flight.task in pending]
        for flight in stuck:
            if flight.finished is None:
                flight.cancelled_at_shutdown = self._run(
                    flight, TaskStatus.FAILED, f"cancelled at shutdown after {timeout:g}s"
                )
            flight.task.cancel()
        if pending:
            await asyncio.wait(pending)
        cancelled: list[TaskRun] = []
        for flight in stuck:
            if not flight.task.cancelled():
                continue
            if flight.cancelled_at_shutdown is None:
                _log.warning("task run report interrupted at shutdown", task=flight.name.value, symbol=flight.symbol)
                continue
            run = flight.cancelled_at_shutdown
            _log.warning("task cancelled at shutdown", task=run.task.value, symbol=run.symbol, timeout=timeout)
            self._record(run)
            await self._report(run)
            cancelled.append(run)
        return cancelled

    async def _run_inline(self, name: TaskName, spec: TaskSpec, symbol: str | None, now: datetime) -> TaskRun:
        """A replay's run, awaited here: nothing else is in flight, so only a closing runner or a disabled task
        skips it."""
        flight = _Flight(name, symbol, now)
        reason = "shutting down" if self._closing else None if spec.enabled else "task disabled"
        if reason is not None:
            _log.info("task run skipped", task=name.value, symbol=symbol, reason=reason)
            run = self._run(flight, TaskStatus.SKIPPED, reason)
        else:
            try:
                await self._tasks[name](symbol, now)
            except Exception as error:
                run = self._failed(flight, error)
            else:
                run = self._run(flight, TaskStatus.SUCCEEDED, None)
            self._record(run)
        await self._report(run)
        return run

    def _symbols_of(self, spec: TaskSpec) -> tuple[str | None, ...]:
        return self._symbols if spec.per_symbol else (None,)

    def _launch(self, name: TaskName, spec: TaskSpec, symbol: str | None, now: datetime) -> TaskRun | _Flight:
        """A skipped run, or the flight of a run just started; never awaits, so the check and claim are atomic."""
        flight = _Flight(name, symbol, now)
        busy = self._in_flight.get((name, symbol))
        if self._closing:
            reason = "shutting down"
        elif busy is not None:
            reason = f"still running since {busy.started_at.isoformat()}"
        elif not spec.enabled:
            reason = "task disabled"
        else:
            self._in_flight[(name, symbol)] = flight
            flight.task = asyncio.get_running_loop().create_task(
                self._execute(flight, spec), name=f"task:{name.value}:{symbol or '-'}"
            )
            flight.task.add_done_callback(lambda _: self._in_flight.pop((name, symbol), None))
            return flight
        _log.info("task run skipped", task=name.value, symbol=symbol, reason=reason)
        return self._run(flight, TaskStatus.SKIPPED, reason)

    async def _execute(self, flight: _Flight, spec: TaskSpec) -> TaskRun:
        await self._await_dependencies(flight, spec)
        run = await self._call(flight, spec)
        flight.finished = run
        self._record(run)
        await self._report(run)
        return run

    async def _await_dependencies(self, flight: _Flight, spec: TaskSpec) -> None:
        """Wait, up to the task's timeout, for in-flight runs of its dependencies on the same symbol."""
        dependencies = [
            other.task
            for other in self._in_flight.values()
            if other.name in spec.depends_on
            and (other.symbol == flight.symbol or None in (other.symbol, flight.symbol))
        ]
        if not dependencies:
            return
        _, pending = await asyncio.wait(dependencies, timeout=spec.timeout_seconds)
        if pending:
            _log.warning(
                "task runs without its dependencies finished",
                task=flight.name.value,
                symbol=flight.symbol,
                waited_seconds=spec.timeout_seconds,
            )

    async def _call(self, flight: _Flight, spec: TaskSpec) -> TaskRun:
        fn = self._tasks[flight.name]
        deadline = asyncio.timeout(spec.timeout_seconds)
        try:
            async with deadline:
                await fn(flight.symbol, flight.started_at)
        except TimeoutError as error:
            if not deadline.expired():
                return self._failed(flight, error)
            _log.warning("task timed out", task=flight.name.value, symbol=flight.symbol, timeout=spec.timeout_seconds)
            return self._run(
                flight, TaskStatus.FAILED, f"TimeoutError: timed out after {spec.timeout_seconds:g}s", timed_out=True
            )
        except Exception as error:
            return self._failed(flight, error)
        return self._run(flight, TaskStatus.SUCCEEDED, None)

    def _failed(self, flight: _Flight, error: Exception) -> TaskRun:
        _log.warning("task failed", task=flight.name.value, symbol=flight.symbol, exc_info=error)
        return self._run(flight, TaskStatus.FAILED, f"{type(error).__name__}: {error}")

    def _run(self, flight: _Flight, status: TaskStatus, error: str | None, *, timed_out: bool = False) -> TaskRun:
        return TaskRun(
            task=flight.name,
            symbol=flight.symbol,
            started_at=flight.started_at,
            finished_at=self._clock.now(),
            status=status,
            error=error,
            timed_out=timed_out,
        )

    def _record(self, run: TaskRun) -> None:
        if run.status is TaskStatus.FAILED:
            self._failures += 1
        if run.timed_out:
            self._timeouts += 1
        previous = self._last_runs.get(run.key)
        if previous is None or run.started_at > previous:
            self._last_runs[run.key] = run.started_at

    async def _report(self, run: TaskRun) -> None:
        if self._on_finished is None:
            return
        try:
            await self._on_finished(run)
        except Exception as error:
            self._report_failures += 1
            _log.error("task run report failed", task=run.task.value, symbol=run.symbol, exc_info=error)


def _outcome(flight: _Flight) -> TaskRun:
    """What became of a launched run: its own result, or the record shutdown made when it cancelled it."""
    if not flight.task.cancelled():
        return flight.task.result()
    run = flight.finished or flight.cancelled_at_shutdown
    if run is None:
        raise asyncio.CancelledError
    return run
