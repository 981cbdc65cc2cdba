"""The coordinator's tasks, declared once, and when each is due.

Live (APScheduler against the wall clock) and replay (a simulated clock at candle time) share this declaration
and the pure rules here, so both run the same tasks at the same boundaries. Boundaries are multiples of a task's
interval counted from the Unix epoch: a 300 s task runs at :00, :05, … whenever the process started, so its runs
line up with candle closes. A task that never ran runs at the first boundary after start (or at start when
``run_at_start``), never "never"; missed boundaries coalesce into one run. Arithmetic is in whole microseconds,
the resolution of ``datetime``, so boundaries are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Self

from pydantic import ConfigDict, Field, model_validator

from triplegain.section import Section

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class TaskName(StrEnum):
    """The coordinator's scheduled tasks, in declaration order (the tie-break of ``ScheduleSettings.ordered``)."""

    TECHNICAL = "technical"
    REGIME = "regime"
    SENTIMENT = "sentiment"
    PORTFOLIO = "portfolio"
    TRADE_DECISION = "trade_decision"
    HOUSEKEEPING = "housekeeping"


_FIELD_OF_TASK = {name: name.value for name in TaskName}
"""Each task's field in ``ScheduleSettings``."""


class TaskSpec(Section):
    """When and how one task runs."""

    model_config = ConfigDict(allow_inf_nan=False)

    enabled: bool = Field(default=True, description="whether the task runs at all")
    interval_seconds: float = Field(
        gt=0, description="seconds between runs; runs fall on multiples of this counted from the Unix epoch (UTC)"
    )
    timeout_seconds: float = Field(
        gt=0,
        description="a run longer than this is cancelled and recorded as timed out; must allow the worst case of "
        "its LLM calls (the resolver chain, an agent's review) and 5 s more, or the settings are refused",
    )
    per_symbol: bool = Field(description="one run per configured symbol (concurrently), else a single run")
    depends_on: list[TaskName] = Field(
        default_factory=list,
        description="tasks that run first: in replay earlier in the same tick; live, a run first waits for "
        "in-flight runs of these for the same symbol (up to its own timeout)",
    )
    run_at_start: bool = Field(
        default=False, description="first run at start instead of at the first interval boundary"
    )
    offset_seconds: float = Field(
        default=0.0,
        ge=0,
        description="live only: fire this long after each boundary, so the candle that closed at it has arrived",
    )


class ScheduleSettings(Section):
    """The coordinator's schedule: every task with its interval, timeout, fan-out and dependencies."""

    model_config = ConfigDict(allow_inf_nan=False)

    technical: TaskSpec = Field(
        default=TaskSpec(interval_seconds=300, timeout_seconds=90, per_symbol=True, offset_seconds=2),
        description="technical analysis of each symbol's latest candles",
    )
    regime: TaskSpec = Field(
        default=TaskSpec(
            interval_seconds=900,
            timeout_seconds=90,
            per_symbol=True,
            depends_on=[TaskName.TECHNICAL],
            offset_seconds=2,
        ),
        description="market regime of each symbol, from the technical view (every close of agents.regime.timeframe)",
    )
    sentiment: TaskSpec = Field(
        default=TaskSpec(interval_seconds=1800, timeout_seconds=90, per_symbol=True, offset_seconds=2),
        description="news and social sentiment of each symbol",
    )
    portfolio: TaskSpec = Field(
        default=TaskSpec(interval_seconds=3600, timeout_seconds=30, per_symbol=True, offset_seconds=2),
        description="portfolio review (allocation, rebalancing) per symbol",
    )
    trade_decision: TaskSpec = Field(
        default=TaskSpec(
            interval_seconds=300,
            timeout_seconds=120,
            per_symbol=True,
            depends_on=[TaskName.TECHNICAL, TaskName.REGIME, TaskName.SENTIMENT],
            offset_seconds=4,
        ),
        description="consensus, conflict resolution, risk checks and orders for each symbol",
    )
    housekeeping: TaskSpec = Field(
        default=TaskSpec(interval_seconds=10, timeout_seconds=30, per_symbol=False, run_at_start=True),
        description="stops and take-profits, persisted state, degradation and breaker checks",
    )
    jitter_seconds: float = Field(
        default=1.0,
        ge=0,
        description="live only: each fire is delayed by a random 0 to this many seconds; less than every interval",
    )
    misfire_grace_seconds: float = Field(
        default=60.0, gt=0, description="live only: a fire later than this (event loop blocked, suspend) is dropped"
    )
    shutdown_timeout_seconds: float = Field(
        default=10.0, gt=0, description="at shutdown, running tasks get this long to finish before they are cancelled"
    )

    def spec(self, name: TaskName) -> TaskSpec:
        """The declaration of task ``name``."""
        # The field's name from a dict, not ``name.value`` (a Python-level enum property): read for every run.
        spec: TaskSpec = getattr(self, _FIELD_OF_TASK[name])
        return spec

    def ordered(self) -> list[TaskName]:
        """The enabled tasks, each after its dependencies, otherwise in declaration order."""
        remaining = [name for name in TaskName if self.spec(name).enabled]
        placed: list[TaskName] = []
        while remaining:
            ready = next(n for n in remaining if all(d in placed for d in self.spec(n).depends_on))
            placed.append(ready)
            remaining.remove(ready)
        return placed

    def restricted_to(self, names: Iterable[TaskName]) -> ScheduleSettings:
        """The same schedule with only ``names`` enabled (those already enabled), and no dependency on a task that
        runs elsewhere: the schedule of a process that runs part of the tasks (``triplegain agents``, a coordinator
        taking its views from NATS), whose other tasks' results arrive from another process."""
        kept = set(names)
        update = {
            name.value: self.spec(name).model_copy(
                update={
                    "enabled": self.spec(name).enabled and name in kept,
                    "depends_on": [dependency for dependency in self.spec(name).depends_on if dependency in kept],
                }
            )
            for name in TaskName
        }
        return self.model_copy(update=update)

    @model_validator(mode="after")
    def _check(self) -> Self:
        for name in TaskName:
            spec = self.spec(name)
            if name in spec.depends_on:
                raise ValueError(f"schedule: task {name.value} depends on itself")
            if not spec.enabled:
                continue
            for dependency in spec.depends_on:
                if not self.spec(dependency).enabled:
                    raise ValueError(
                        f"schedule: task {name.value} depends on {dependency.value}, which is disabled "
                        f"(disable {name.value} too or drop the dependency)"
                    )
            if self.jitter_seconds >= spec.interval_seconds:
                raise ValueError(
                    f"schedule: jitter_seconds ({self.jitter_seconds:g}) must be less than the interval of task "
                    f"{name.value} ({spec.interval_seconds:g}), or a fire could reach the next boundary"
                )
        self._check_cycles()
        return self

    def _check_cycles(self) -> None:
        done: set[TaskName] = set()

        def visit(name: TaskName, path: list[TaskName]) -> None:
            if name in path:
                cycle = [*path[path.index(name) :], name]
                raise ValueError(f"schedule: dependency cycle {' → '.join(n.value for n in cycle)}")
            if name in done:
                return
            for dependency in self.spec(name).depends_on:
                visit(dependency, [*path, name])
            done.add(name)

        for name in TaskName:
            visit(name, [])


def next_boundary(interval_seconds: float, moment: datetime, *, inclusive: bool) -> datetime:
    """The first multiple of ``interval_seconds`` since the Unix epoch at (if ``inclusive``) or after ``moment``."""
    step = max(1, round(interval_seconds * 1_000_000))
    elapsed = (moment - _EPOCH) // _MICROSECOND
    index = -(-elapsed // step) if inclusive else elapsed // step + 1
    return _EPOCH + index * step * _MICROSECOND


def next_run(spec: TaskSpec, last_run: datetime | None, started_at: datetime) -> datetime:
    """When a task runs next: after ``last_run`` at the next boundary; if it never ran, at or after start."""
    if last_run is not None:
        return next_boundary(spec.interval_seconds, last_run, inclusive=False)
    if spec.run_at_start:
        return started_at
    return next_boundary(spec.interval_seconds, started_at, inclusive=True)


def due(
    settings: ScheduleSettings, last_runs: Mapping[TaskName, datetime], started_at: datetime, now: datetime
) -> list[TaskName]:
    """The enabled tasks to run at ``now``, dependencies first; however many boundaries passed, one run each."""
    return [
        name for name in settings.ordered() if next_run(settings.spec(name), last_runs.get(name), started_at) <= now
    ]
