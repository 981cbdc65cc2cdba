"""The degradation manager's imperative shell: it measures what ``degradation.step`` needs and steps the level.

The rules are pure functions in ``degradation``; this module holds the mutable part they need — sliding windows
of LLM calls, market-data errors and task timeouts, the latest candle per symbol, database writes failed in a
row — and turns it into ``Observations`` on every ``refresh``. It does no I/O and reads time only from the
injected clock or the ``now`` it is given: the coordinator publishes, stores and logs the ``Transition`` that
``refresh`` returns, and persists ``state`` so that it can be handed back here after a restart.

The inputs sit on hot paths (every LLM call, every candle), so they only append to a deque. Memory is bounded
twice: each insert first drops the events that have left the window (measured by the clock), and each deque
holds at most ``MAX_WINDOW_EVENTS``, so a flood inside one window drops its oldest events and its counts
saturate at that cap — far above any sensible threshold. Events that arrive out of order (a long LLM call is
recorded after a short one started later) may linger behind a newer one until that one is dropped; the cap
bounds them too, and ``summarize_events`` never counts them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from triplegain.clock import Clock
from triplegain.coordinator.degradation import (
    DegradationSettings,
    DegradationState,
    Observations,
    Transition,
    WindowEvent,
    WindowFigures,
    step,
    summarize_events,
)
from triplegain.llm.calllog import CallLog
from triplegain.llm.errors import AnswerNotRecorded, BreakerOpen, BudgetExceeded
from triplegain.llm.models import LLMCallRecord
from triplegain.llm.tally import CallTally
from triplegain.model import DegradationLevel

MAX_WINDOW_EVENTS = 10_000
"""The most events one sliding window (one LLM provider, market-data errors, task timeouts) keeps."""

# Records that say nothing about a provider's health: a spent budget is our policy, not the provider's failure,
# and a cancelled attempt was given up by our side (the LLM circuit breaker does not count it either).
_NOT_PROVIDER_HEALTH = frozenset(
    {BudgetExceeded.__name__, asyncio.CancelledError.__name__, AnswerNotRecorded.__name__}
)


class HealthMonitor:
    """Measures the degradation inputs over sliding windows and steps the level (``degradation.step``)."""

    def __init__(
        self,
        settings: DegradationSettings,
        *,
        clock: Clock,
        state: DegradationState | None = None,
        symbols: Sequence[str] = (),
        started_at: datetime | None = None,
        interval: timedelta | None = None,
        writer_failures: Callable[[], int] | None = None,
    ) -> None:
        """``state`` is the one restored from the database at start; None means NORMAL since ``clock.now()``.

        ``symbols`` are the markets whose data must stay fresh; candles of any other symbol are ignored.
        ``started_at`` (default ``clock.now()``) is when a symbol without any candle yet started to wait for one.
        ``interval`` is the feed's candle interval (its timeframe): what a symbol without any candle yet is
        measured in, so that a feed that never delivers is stale too. Without it, the interval of the latest
        candle seen stands in, and before any candle the wait is not measured.
        ``writer_failures`` reports the batch writer's failures in a row (e.g.
        ``lambda: writer.stats().consecutive_failures``); the worse of it and ``db_write``'s count is observed.
        """
        now = clock.now()
        self._settings = settings
        self._clock = clock
        self._state = state if state is not None else DegradationState(since=now)
        self._started_at = started_at if started_at is not None else now
        self._writer_failures = writer_failures
        self._window = timedelta(seconds=settings.window_seconds)
        # Providers come from configuration (the gateway's name), so this dict stays small.
        self._llm: dict[str, deque[WindowEvent]] = {}
        self._market_data_errors: deque[WindowEvent] = deque(maxlen=MAX_WINDOW_EVENTS)
        self._task_timeouts: deque[WindowEvent] = deque(maxlen=MAX_WINDOW_EVENTS)
        self._latest_candle: dict[str, tuple[datetime, timedelta] | None] = dict.fromkeys(symbols)
        if interval is not None and interval <= timedelta(0):
            raise ValueError(f"a candle interval must be positive, got {interval}")
        self._interval = interval
        self._last_interval: timedelta | None = None
        self._db_failures = 0
        self.calls = CallTally()
        """Every LLM attempt seen, per provider (the daemon's metrics)."""

    @property
    def state(self) -> DegradationState:
        return self._state

    @property
    def level(self) -> DegradationLevel:
        return self._state.level

    def llm_call(self, record: LLMCallRecord) -> None:
        """Count one attempt at a provider: failed when it has an ``error_class``, latency from ``latency_ms``.

        Not counted: cached answers (no provider was asked, and their near-zero latency would hide a slow one),
        budget skips (``BudgetExceeded``: our spending policy, the provider may be fine), questions an earlier
        run never asked and that were not asked (``AnswerNotRecorded``) and cancelled attempts
        (our side gave up; the outcome is unknown). A circuit-breaker skip (``BreakerOpen``) counts as a failure
        without latency: the provider is unusable while its breaker refuses calls, and without these the window
        would empty and the level recover while the breaker is still open. An attempt served from an earlier
        run's record (``--answers-from``) carries that record's outcome, latency and ``cached``: it counts as it
        counted then, so a re-run steps the level as the run did.
        """
        self.calls.add(record)
        if record.cached or record.error_class in _NOT_PROVIDER_HEALTH:
            return
        skipped = record.error_class == BreakerOpen.__name__
        event = WindowEvent(
            at=record.started_at,
            failed=record.error_class is not None,
            latency_seconds=None if skipped else record.latency_ms / 1000,
        )
        events = self._llm.get(record.provider)
        if events is None:
            events = self._llm[record.provider] = deque(maxlen=MAX_WINDOW_EVENTS)
        self._add(events, event)

    def candle(self, symbol: str, close_time: datetime, interval: timedelta) -> None:
        """A candle of ``symbol`` closed at ``close_time``; one no newer than the latest changes nothing."""
        if interval <= timedelta(0):
            raise ValueError(f"a candle interval must be positive, got {interval}")
        if symbol not in self._latest_candle:
            return
        self._last_interval = interval
        latest = self._latest_candle[symbol]
        if latest is None or close_time > latest[0]:
            self._latest_candle[symbol] = (close_time, interval)

    def market_data_error(self, at: datetime) -> None:
        """A market-data fetch failed or a candle was rejected at ``at``."""
        self._add(self._market_data_errors, WindowEvent(at=at, failed=True))

    def task_timed_out(self, at: datetime) -> None:
        """A scheduled task run timed out at ``at``."""
        self._add(self._task_timeouts, WindowEvent(at=at, failed=True))

    def db_write(self, ok: bool) -> None:
        """An awaited database write ended: a success resets the failures in a row, a failure adds one."""
        self._db_failures = 0 if ok else self._db_failures + 1

    def observations(self, now: datetime) -> Observations:
        """The figures of the window ending at ``now``.

        ``market_data_stale_intervals`` is the worst configured symbol's ``market_data_age``.
        """
        db_failures = self._db_failures
        if self._writer_failures is not None:
            db_failures = max(db_failures, self._writer_failures())
        # model_construct: every figure is counted here from validated events (and ages are ≥ 0), and
        # observations are made at every refresh: each decision and housekeeping run.
        return Observations.model_construct(
            llm={provider: self._figures(events, now) for provider, events in self._llm.items()},
            market_data_stale_intervals=self._stale_intervals(now),
            market_data_errors=self._figures(self._market_data_errors, now).events,
            db_consecutive_write_failures=db_failures,
            task_timeouts=self._figures(self._task_timeouts, now).events,
        )

    def market_data_age(self, symbol: str, now: datetime) -> float | None:
        """Candle intervals from the close of ``symbol``'s newest candle to ``now``; None when not measured.

        A symbol without any candle yet has waited since ``started_at``, in the feed's ``interval`` (else in the
        interval of the most recent candle seen of any configured symbol). Not measured: a symbol that is not
        configured, or one without a candle while no interval is known.
        """
        if symbol not in self._latest_candle:
            return None
        latest = self._latest_candle[symbol]
        if latest is not None:
            since, interval = latest
        else:
            known = self._interval or self._last_interval
            if known is None:
                return None
            since, interval = self._started_at, known
        return max(0.0, (now - since) / interval)

    def refresh(self, now: datetime) -> Transition | None:
        """Step the state with what is observed at ``now``; the transition when the level changed."""
        self._state, transition = step(self._state, self.observations(now), now, self._settings)
        return transition

    def _add(self, events: deque[WindowEvent], event: WindowEvent) -> None:
        cutoff = self._clock.now() - self._window
        while events and events[0].at <= cutoff:
            events.popleft()
        if event.at > cutoff:
            events.append(event)

    def _figures(self, events: deque[WindowEvent], now: datetime) -> WindowFigures:
        # Straight from the deque: copying up to MAX_WINDOW_EVENTS into a SlidingWindow (let alone validating them
        # again) at every refresh was most of a replay's time spent deciding.
        return summarize_events(events, now=now, window_seconds=self._settings.window_seconds)

    def _stale_intervals(self, now: datetime) -> float:
        ages = (self.market_data_age(symbol, now) for symbol in self._latest_candle)
        return max((age for age in ages if age is not None), default=0.0)


class ObservingCallLog:
    """A ``CallLog`` that tells the monitor about every LLM call record, then hands it to the wrapped log."""

    def __init__(self, inner: CallLog, monitor: HealthMonitor) -> None:
        self._inner = inner
        self._monitor = monitor

    async def record(self, call: LLMCallRecord) -> None:
        self._monitor.llm_call(call)
        await self._inner.record(call)
