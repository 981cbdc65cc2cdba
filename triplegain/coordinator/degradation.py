"""The degradation level as pure functions over immutable models.

Levels, healthiest first: NORMAL, REDUCED, LIMITED, EMERGENCY. The caller measures the system over a sliding
window (``record``/``summarize`` help with that) and hands the figures in as ``Observations``; ``assess`` maps
every signal that reached its threshold to the level its rule names, and the worst of them is the target level.
``step`` moves the state: to a worse target at once; towards a better one a single level at a time, each step
only after the target stayed better than the current level for ``recovery_hold_seconds``. A signal going bad
again in between restarts that wait, so flapping input never recovers. Each level's effect on trading is
``effects(level, settings)``; every change of level comes back as a ``Transition`` naming its causes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from triplegain.model import DegradationLevel
from triplegain.section import Section


class Threshold(Section):
    """A signal's rule: when its figure reaches ``at``, the system is at least at ``level``."""

    model_config = ConfigDict(allow_inf_nan=False)

    at: float = Field(gt=0, description="the figure that trips the rule (reached means ≥)")
    level: DegradationLevel = Field(description="the level the rule asks for; normal switches the rule off")


class LevelEffects(Section):
    """What trading may still do at one level; enforced where trade intents are made and sized."""

    model_config = ConfigDict(allow_inf_nan=False)

    allow_llm_refinement: bool = Field(description="agents may ask an LLM to refine their deterministic baseline")
    allow_sentiment: bool = Field(description="the sentiment agent runs and its view counts")
    size_multiplier: float = Field(ge=0, le=1, description="factor on every new position's size")
    min_confidence: float = Field(ge=0, le=1, description="intents below this confidence are dropped")
    allow_conflicted: bool = Field(description="intents with a detected conflict may still go to the resolver")
    allow_new_exposure: bool = Field(description="new or larger positions may be opened; exits and stops always run")

    def allows_at_most(self, other: LevelEffects) -> bool:
        """Whether these effects allow nothing that ``other`` forbids."""
        return (
            (other.allow_llm_refinement or not self.allow_llm_refinement)
            and (other.allow_sentiment or not self.allow_sentiment)
            and self.size_multiplier <= other.size_multiplier
            and self.min_confidence >= other.min_confidence
            and (other.allow_conflicted or not self.allow_conflicted)
            and (other.allow_new_exposure or not self.allow_new_exposure)
        )


class DegradationSettings(Section):
    """Signals, thresholds, hysteresis and the effect of each degradation level."""

    model_config = ConfigDict(allow_inf_nan=False)

    window_seconds: float = Field(
        default=300.0, gt=0, description="the sliding window over which rates, counts and latencies are measured"
    )
    recovery_hold_seconds: float = Field(
        default=300.0,
        ge=0,
        description="how long the target must stay better than the current level before recovering one level",
    )
    llm_min_calls: int = Field(
        default=5, ge=1, description="a provider's error rate and latency count only with this many calls in window"
    )
    llm_error_rate: Threshold = Field(
        default=Threshold(at=0.5, level=DegradationLevel.REDUCED),
        description="share of a provider's calls in window that failed (0 to 1)",
    )
    llm_latency_p95_seconds: Threshold = Field(
        default=Threshold(at=30.0, level=DegradationLevel.REDUCED),
        description="95th percentile of a provider's call latency in window, seconds",
    )
    market_data_stale_intervals: Threshold = Field(
        default=Threshold(at=3.0, level=DegradationLevel.EMERGENCY),
        description="candle intervals passed since the latest market data, worst feed",
    )
    market_data_errors: Threshold = Field(
        default=Threshold(at=5.0, level=DegradationLevel.LIMITED),
        description="market-data errors (fetch failures, rejected candles) in window",
    )
    db_consecutive_write_failures: Threshold = Field(
        default=Threshold(at=3.0, level=DegradationLevel.EMERGENCY),
        description="database writes failed in a row: no new exposure while decisions cannot be stored",
    )
    task_timeouts: Threshold = Field(
        default=Threshold(at=3.0, level=DegradationLevel.LIMITED), description="scheduled task runs timed out in window"
    )
    normal: LevelEffects = Field(
        default=LevelEffects(
            allow_llm_refinement=True,
            allow_sentiment=True,
            size_multiplier=1.0,
            min_confidence=0.0,
            allow_conflicted=True,
            allow_new_exposure=True,
        ),
        description="effects at NORMAL: everything allowed",
    )
    reduced: LevelEffects = Field(
        default=LevelEffects(
            allow_llm_refinement=False,
            allow_sentiment=False,
            size_multiplier=1.0,
            min_confidence=0.0,
            allow_conflicted=True,
            allow_new_exposure=True,
        ),
        description="effects at REDUCED: optional LLM refinement and sentiment are skipped",
    )
    limited: LevelEffects = Field(
        default=LevelEffects(
            allow_llm_refinement=False,
            allow_sentiment=False,
            size_multiplier=0.5,
            min_confidence=0.7,
            allow_conflicted=False,
            allow_new_exposure=True,
        ),
        description="effects at LIMITED: half size, only unconflicted intents of higher confidence",
    )
    emergency: LevelEffects = Field(
        default=LevelEffects(
            allow_llm_refinement=False,
            allow_sentiment=False,
            size_multiplier=0.0,
            min_confidence=1.0,
            allow_conflicted=False,
            allow_new_exposure=False,
        ),
        description="effects at EMERGENCY: no new exposure, only exits and stops",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.llm_error_rate.at > 1:
            raise ValueError(f"llm_error_rate.at must be ≤ 1 (a share of calls), got {self.llm_error_rate.at}")
        for better, worse in pairwise(DegradationLevel):
            if not effects(worse, self).allows_at_most(effects(better, self)):
                raise ValueError(f"effects of {worse.value} must allow nothing that {better.value} forbids")
        return self


class WindowEvent(BaseModel):
    """One timed occurrence in a sliding window: a call, a fetch, a task run."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    at: datetime
    failed: bool = False
    latency_seconds: float | None = Field(default=None, ge=0)


class SlidingWindow(BaseModel):
    """The events of the last ``window_seconds``, oldest first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: tuple[WindowEvent, ...] = ()


class WindowFigures(BaseModel):
    """What a sliding window holds, in numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    events: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)
    latency_p95_seconds: float | None = Field(default=None, ge=0)

    @property
    def failure_rate(self) -> float:
        return self.failures / self.events if self.events else 0.0


def record(window: SlidingWindow, event: WindowEvent, *, now: datetime, window_seconds: float) -> SlidingWindow:
    """The window with ``event`` added and the events older than ``window_seconds`` before ``now`` dropped."""
    events = sorted((*window.events, event), key=lambda e: e.at)
    return SlidingWindow(events=_recent(events, now, window_seconds))


def summarize(window: SlidingWindow, *, now: datetime, window_seconds: float) -> WindowFigures:
    """Counts, failures and the 95th-percentile latency (nearest rank) of the events in window at ``now``."""
    return summarize_events(window.events, now=now, window_seconds=window_seconds)


_NO_EVENTS = WindowFigures(events=0, failures=0, latency_p95_seconds=None)


def summarize_events(events: Iterable[WindowEvent], *, now: datetime, window_seconds: float) -> WindowFigures:
    """``summarize`` of events in any iterable (oldest first or not), in one pass over them.

    The health monitor calls it for every window at every refresh (each decision), so it neither copies the
    events into a ``SlidingWindow`` nor validates the figures it counted (``model_construct``).
    """
    start = now - timedelta(seconds=window_seconds)
    count = failures = 0
    latencies: list[float] = []
    for event in events:
        if start < event.at <= now:
            count += 1
            failures += event.failed
            if event.latency_seconds is not None:
                latencies.append(event.latency_seconds)
    if not count:
        return _NO_EVENTS
    latencies.sort()
    p95 = latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else None
    return WindowFigures.model_construct(events=count, failures=failures, latency_p95_seconds=p95)


def _recent(events: Iterable[WindowEvent], now: datetime, seconds: float) -> tuple[WindowEvent, ...]:
    start = now - timedelta(seconds=seconds)
    return tuple(e for e in events if start < e.at <= now)


class Observations(BaseModel):
    """The figures of the current window, as the caller measured them."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    llm: dict[str, WindowFigures] = Field(default_factory=dict, description="calls by provider name")
    market_data_stale_intervals: float = Field(default=0.0, ge=0)
    market_data_errors: int = Field(default=0, ge=0)
    db_consecutive_write_failures: int = Field(default=0, ge=0)
    task_timeouts: int = Field(default=0, ge=0)


class Cause(BaseModel):
    """A named reason for a level, with its numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    signal: str = Field(description="the settings field of the rule, or recovery_hold")
    subject: str | None = Field(default=None, description="what it is about, e.g. the LLM provider")
    value: float
    threshold: float
    level: DegradationLevel

    def describe(self) -> str:
        """One line: the signal (and what it is about), its value against the threshold, the level it calls for."""
        about = f" ({self.subject})" if self.subject else ""
        return f"{self.signal}{about} {self.value:.4g} ≥ {self.threshold:.4g} → {self.level.name}"


class DegradationState(BaseModel):
    """The current level, since when, why, and since when a recovery has been waiting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    level: DegradationLevel = DegradationLevel.NORMAL
    since: datetime
    pending_recovery_since: datetime | None = None
    causes: tuple[Cause, ...] = ()


class Transition(BaseModel):
    """A change of level; the caller publishes it and stores it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_level: DegradationLevel
    to_level: DegradationLevel
    at: datetime
    causes: tuple[Cause, ...]


def assess(observations: Observations, settings: DegradationSettings) -> tuple[DegradationLevel, tuple[Cause, ...]]:
    """The level the observations call for, and every rule that tripped (in settings order)."""
    causes: list[Cause] = []

    def check(signal: str, rule: Threshold, value: float, subject: str | None = None) -> None:
        if rule.level is not DegradationLevel.NORMAL and value >= rule.at:
            causes.append(Cause(signal=signal, subject=subject, value=value, threshold=rule.at, level=rule.level))

    for provider, figures in sorted(observations.llm.items()):
        if figures.events >= settings.llm_min_calls:
            check("llm_error_rate", settings.llm_error_rate, figures.failure_rate, provider)
            p95 = figures.latency_p95_seconds
            if p95 is not None:
                check("llm_latency_p95_seconds", settings.llm_latency_p95_seconds, p95, provider)
    check("market_data_stale_intervals", settings.market_data_stale_intervals, observations.market_data_stale_intervals)
    check("market_data_errors", settings.market_data_errors, observations.market_data_errors)
    check(
        "db_consecutive_write_failures",
        settings.db_consecutive_write_failures,
        observations.db_consecutive_write_failures,
    )
    check("task_timeouts", settings.task_timeouts, observations.task_timeouts)
    target = max((c.level for c in causes), key=lambda level: level.rank, default=DegradationLevel.NORMAL)
    return target, tuple(causes)


def step(
    state: DegradationState, observations: Observations, now: datetime, settings: DegradationSettings
) -> tuple[DegradationState, Transition | None]:
    """The state after observing at ``now``, and the transition if the level changed."""
    target, causes = assess(observations, settings)
    if target.rank > state.level.rank:
        escalated = DegradationState(level=target, since=now, causes=causes)
        return escalated, Transition(from_level=state.level, to_level=target, at=now, causes=causes)
    if target is state.level:
        if state.pending_recovery_since is None:
            return state, None  # the same frozen state: no copy at every refresh
        return state.model_copy(update={"pending_recovery_since": None}), None
    waiting_since = state.pending_recovery_since or now
    held = (now - waiting_since).total_seconds()
    if held < settings.recovery_hold_seconds:
        return state.model_copy(update={"pending_recovery_since": waiting_since}), None
    recovered = list(DegradationLevel)[state.level.rank - 1]
    hold = Cause(signal="recovery_hold", value=held, threshold=settings.recovery_hold_seconds, level=target)
    recovered_state = DegradationState(
        level=recovered,
        since=now,
        pending_recovery_since=now if target.rank < recovered.rank else None,
        causes=(hold, *causes),
    )
    return recovered_state, Transition(from_level=state.level, to_level=recovered, at=now, causes=(hold, *causes))


def effects(level: DegradationLevel, settings: DegradationSettings) -> LevelEffects:
    """What trading may do at ``level``."""
    by_level = {
        DegradationLevel.NORMAL: settings.normal,
        DegradationLevel.REDUCED: settings.reduced,
        DegradationLevel.LIMITED: settings.limited,
        DegradationLevel.EMERGENCY: settings.emergency,
    }
    return by_level[level]
