"""The degradation manager's shell: what it measures from each input, how the level moves, and its bounds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import InMemoryCallLog
from triplegain.clock import FakeClock
from triplegain.coordinator.degradation import DegradationSettings, DegradationState, Threshold, WindowFigures
from triplegain.coordinator.health import MAX_WINDOW_EVENTS, HealthMonitor, ObservingCallLog
from triplegain.llm import BreakerOpen, BudgetExceeded, CallLog, ProviderTimeout
from triplegain.llm.models import LLMCallRecord
from triplegain.model import DegradationLevel

pytestmark = pytest.mark.timeout(30)

NORMAL, REDUCED, LIMITED, EMERGENCY = tuple(DegradationLevel)
T0 = datetime(2024, 3, 1, tzinfo=UTC)
SETTINGS = DegradationSettings(window_seconds=300, recovery_hold_seconds=60)
WINDOW = timedelta(seconds=SETTINGS.window_seconds)
HOLD = timedelta(seconds=SETTINGS.recovery_hold_seconds)
MINUTE = timedelta(minutes=1)
BTC, ETH = "BTC/USDT", "ETH/USDT"


def call(
    at: datetime,
    *,
    provider: str = "deepseek",
    error: type[BaseException] | None = None,
    latency_seconds: float = 1.0,
    cached: bool = False,
) -> LLMCallRecord:
    return LLMCallRecord(
        id=uuid4(),
        request_id=uuid4(),
        served_id=None,
        provider=provider,
        model="model",
        purpose="test",
        answer_model="Answer",
        prompt_digest="digest",
        system_prompt="system",
        user_prompt="user",
        raw_response=None,
        parsed=None,
        validation_error=None,
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
        latency_ms=latency_seconds * 1000,
        attempt=1,
        step=1,
        cached=cached,
        error_class=None if error is None else error.__name__,
        error_message=None,
        started_at=at,
        wall_started_at=at,
    )


# --- LLM providers ---------------------------------------------------------------------------------------------


def test_failed_llm_calls_escalate_at_once() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    for _ in range(4):
        monitor.llm_call(call(clock.now(), error=ProviderTimeout))
    assert monitor.refresh(clock.now()) is None  # fewer than llm_min_calls: not measured yet

    monitor.llm_call(call(clock.now(), error=ProviderTimeout))
    transition = monitor.refresh(clock.now())

    assert transition is not None
    assert (transition.from_level, transition.to_level, transition.at) == (NORMAL, REDUCED, T0)
    [cause] = transition.causes
    assert (cause.signal, cause.subject, cause.value) == ("llm_error_rate", "deepseek", 1.0)
    assert monitor.level is REDUCED
    assert monitor.state.since == T0


def test_slow_llm_calls_escalate_on_p95_latency() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    for _ in range(5):
        monitor.llm_call(call(clock.now(), provider="claude", latency_seconds=45.0))

    assert monitor.observations(clock.now()).llm == {
        "claude": WindowFigures(events=5, failures=0, latency_p95_seconds=45.0)
    }
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert [(c.signal, c.subject) for c in transition.causes] == [("llm_latency_p95_seconds", "claude")]


def test_providers_are_measured_apart() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    for _ in range(5):
        monitor.llm_call(call(clock.now(), provider="deepseek", error=ProviderTimeout))
        monitor.llm_call(call(clock.now(), provider="claude"))

    figures = monitor.observations(clock.now()).llm
    assert figures["deepseek"].failures == 5
    assert figures["claude"].failures == 0


def test_cached_answers_budget_skips_and_cancelled_attempts_do_not_count() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    for _ in range(50):
        monitor.llm_call(call(clock.now(), cached=True, latency_seconds=0.0))
        monitor.llm_call(call(clock.now(), error=BudgetExceeded, latency_seconds=0.0))
        monitor.llm_call(call(clock.now(), error=asyncio.CancelledError))

    assert monitor.observations(clock.now()).llm == {}
    assert monitor.refresh(clock.now()) is None


def test_breaker_skips_count_as_failures_without_latency() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    for _ in range(5):
        monitor.llm_call(call(clock.now(), error=BreakerOpen, latency_seconds=0.0))

    assert monitor.observations(clock.now()).llm == {"deepseek": WindowFigures(events=5, failures=5)}
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert transition.to_level is REDUCED


def test_recovery_waits_the_hold_and_steps_one_level_at_a_time() -> None:
    settings = SETTINGS.model_copy(update={"llm_error_rate": Threshold(at=0.5, level=EMERGENCY)})
    clock = FakeClock(T0)
    monitor = HealthMonitor(settings, clock=clock)
    for _ in range(5):
        monitor.llm_call(call(clock.now(), error=ProviderTimeout))
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert transition.to_level is EMERGENCY

    clock.advance(WINDOW - timedelta(seconds=1))
    assert monitor.refresh(clock.now()) is None
    assert monitor.state.pending_recovery_since is None  # the failures are still in window

    clock.advance(timedelta(seconds=1))  # they aged out: the hold starts now
    calm_since = clock.now()
    assert monitor.refresh(clock.now()) is None
    assert monitor.state.pending_recovery_since == calm_since

    for from_level, to_level in [(EMERGENCY, LIMITED), (LIMITED, REDUCED), (REDUCED, NORMAL)]:
        clock.advance(HOLD - timedelta(seconds=1))
        assert monitor.refresh(clock.now()) is None
        assert monitor.level is from_level
        clock.advance(timedelta(seconds=1))
        transition = monitor.refresh(clock.now())
        assert transition is not None
        assert (transition.from_level, transition.to_level) == (from_level, to_level)
        assert transition.causes[0].signal == "recovery_hold"

    assert monitor.state.pending_recovery_since is None
    assert clock.now() == calm_since + 3 * HOLD


def test_a_new_failure_during_the_hold_restarts_it() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    for _ in range(3):
        monitor.db_write(ok=False)
    monitor.refresh(clock.now())
    monitor.db_write(ok=True)
    monitor.refresh(clock.now())

    clock.advance(HOLD / 2)
    monitor.db_write(ok=False)
    monitor.db_write(ok=False)
    monitor.db_write(ok=False)
    assert monitor.refresh(clock.now()) is None  # back at the target: the wait is over
    monitor.db_write(ok=True)
    monitor.refresh(clock.now())

    clock.advance(HOLD / 2)
    assert monitor.refresh(clock.now()) is None
    clock.advance(HOLD / 2)
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert transition.to_level is LIMITED


# --- market data -----------------------------------------------------------------------------------------------


def test_stale_market_data_escalates_and_a_new_candle_recovers_after_the_hold() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock, symbols=[BTC])
    monitor.candle(BTC, T0, MINUTE)

    clock.advance(3 * MINUTE - timedelta(seconds=1))
    assert monitor.refresh(clock.now()) is None
    clock.advance(timedelta(seconds=1))
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert transition.to_level is EMERGENCY
    [cause] = transition.causes
    assert (cause.signal, cause.value, cause.threshold) == ("market_data_stale_intervals", 3.0, 3.0)

    monitor.candle(BTC, clock.now(), MINUTE)
    assert monitor.observations(clock.now()).market_data_stale_intervals == 0.0
    assert monitor.refresh(clock.now()) is None
    clock.advance(HOLD)
    monitor.candle(BTC, clock.now(), MINUTE)
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert (transition.from_level, transition.to_level) == (EMERGENCY, LIMITED)


def test_staleness_is_the_worst_configured_symbol() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock, symbols=[BTC, ETH])
    monitor.candle(BTC, T0, MINUTE)
    monitor.candle(ETH, T0 - 2 * MINUTE, MINUTE)
    monitor.candle("DOGE/USDT", T0 - 100 * MINUTE, MINUTE)  # not configured: ignored

    assert monitor.observations(T0 + MINUTE).market_data_stale_intervals == 3.0


def test_an_older_candle_does_not_refresh_the_symbol() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock, symbols=[BTC])
    monitor.candle(BTC, T0, MINUTE)
    monitor.candle(BTC, T0 - 10 * MINUTE, timedelta(hours=1))

    assert monitor.observations(T0 + 2 * MINUTE).market_data_stale_intervals == 2.0


def test_a_symbol_without_candles_waits_from_start_in_the_latest_interval() -> None:
    clock = FakeClock(T0)
    started_at = T0 - MINUTE
    monitor = HealthMonitor(SETTINGS, clock=clock, symbols=[BTC, ETH], started_at=started_at)
    assert monitor.observations(T0 + 10 * MINUTE).market_data_stale_intervals == 0.0  # no interval known yet

    monitor.candle(BTC, T0, MINUTE)
    assert monitor.observations(T0 + 2 * MINUTE).market_data_stale_intervals == 3.0  # ETH: since started_at


def test_started_at_defaults_to_the_clock() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock, symbols=[BTC, ETH])
    monitor.candle(BTC, T0 + MINUTE, MINUTE)

    assert monitor.observations(T0 + MINUTE).market_data_stale_intervals == 1.0


def test_no_symbols_means_no_staleness() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    monitor.candle(BTC, T0, MINUTE)

    assert monitor.observations(T0 + 100 * MINUTE).market_data_stale_intervals == 0.0


def test_a_candle_interval_must_be_positive() -> None:
    monitor = HealthMonitor(SETTINGS, clock=FakeClock(T0), symbols=[BTC])
    with pytest.raises(ValueError, match="interval must be positive"):
        monitor.candle(BTC, T0, timedelta(0))


def test_market_data_errors_count_in_window() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    for _ in range(4):
        monitor.market_data_error(clock.now())
    assert monitor.refresh(clock.now()) is None

    clock.advance(WINDOW - timedelta(seconds=1))
    monitor.market_data_error(clock.now())
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert (transition.to_level, transition.causes[0].signal) == (LIMITED, "market_data_errors")

    clock.advance(timedelta(seconds=1))
    assert monitor.observations(clock.now()).market_data_errors == 1


# --- database and tasks ----------------------------------------------------------------------------------------


def test_database_write_failures_in_a_row_escalate_and_a_success_resets_them() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    monitor.db_write(ok=False)
    monitor.db_write(ok=False)
    monitor.db_write(ok=True)
    monitor.db_write(ok=False)
    monitor.db_write(ok=False)
    assert monitor.observations(clock.now()).db_consecutive_write_failures == 2
    assert monitor.refresh(clock.now()) is None

    monitor.db_write(ok=False)
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert (transition.to_level, transition.causes[0].signal) == (EMERGENCY, "db_consecutive_write_failures")

    monitor.db_write(ok=True)
    assert monitor.observations(clock.now()).db_consecutive_write_failures == 0


def test_the_writer_failures_hook_counts_with_the_awaited_writes() -> None:
    clock = FakeClock(T0)
    writer_failures = [0]
    monitor = HealthMonitor(SETTINGS, clock=clock, writer_failures=lambda: writer_failures[0])
    monitor.db_write(ok=False)
    assert monitor.observations(clock.now()).db_consecutive_write_failures == 1

    writer_failures[0] = 4
    assert monitor.observations(clock.now()).db_consecutive_write_failures == 4
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert transition.to_level is EMERGENCY

    writer_failures[0] = 0
    assert monitor.observations(clock.now()).db_consecutive_write_failures == 1


def test_task_timeouts_count_in_window() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    monitor.task_timed_out(clock.now())
    clock.advance(WINDOW)
    monitor.task_timed_out(clock.now() - WINDOW)  # already out of the window: dropped
    monitor.task_timed_out(clock.now())
    monitor.task_timed_out(clock.now())
    assert monitor.observations(clock.now()).task_timeouts == 2
    assert monitor.refresh(clock.now()) is None

    monitor.task_timed_out(clock.now())
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert (transition.to_level, transition.causes[0].signal) == (LIMITED, "task_timeouts")


# --- restored state --------------------------------------------------------------------------------------------


def test_the_state_defaults_to_normal_since_the_clock() -> None:
    monitor = HealthMonitor(SETTINGS, clock=FakeClock(T0))
    assert monitor.state == DegradationState(since=T0)
    assert monitor.level is NORMAL


def test_a_restored_state_keeps_its_hold_timer() -> None:
    clock = FakeClock(T0)
    waiting_since = T0 - HOLD + timedelta(seconds=10)
    restored = DegradationState(level=LIMITED, since=T0 - timedelta(hours=1), pending_recovery_since=waiting_since)
    monitor = HealthMonitor(SETTINGS, clock=clock, state=restored)

    assert monitor.refresh(clock.now()) is None
    assert monitor.state.pending_recovery_since == waiting_since
    clock.advance(timedelta(seconds=10))
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert (transition.from_level, transition.to_level) == (LIMITED, REDUCED)


def test_a_restored_level_stays_while_its_cause_persists() -> None:
    clock = FakeClock(T0)
    restored = DegradationState(level=EMERGENCY, since=T0 - timedelta(hours=1))
    monitor = HealthMonitor(SETTINGS, clock=clock, state=restored, writer_failures=lambda: 3)

    clock.advance(10 * HOLD)
    assert monitor.refresh(clock.now()) is None
    assert monitor.level is EMERGENCY


# --- bounds ----------------------------------------------------------------------------------------------------


def test_a_flood_inside_one_window_is_capped() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    failed = call(clock.now(), error=ProviderTimeout)
    for _ in range(1_000_000):
        monitor.llm_call(failed)
        monitor.market_data_error(T0)

    observations = monitor.observations(clock.now())
    assert observations.llm["deepseek"].events == MAX_WINDOW_EVENTS
    assert observations.market_data_errors == MAX_WINDOW_EVENTS


def test_events_that_left_the_window_are_dropped_on_insert() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    for _ in range(3 * MAX_WINDOW_EVENTS):
        clock.advance(timedelta(seconds=0.1))
        monitor.task_timed_out(clock.now())

    in_window = int(SETTINGS.window_seconds / 0.1)
    assert in_window < MAX_WINDOW_EVENTS
    assert monitor.observations(clock.now()).task_timeouts == pytest.approx(in_window, abs=1)


# --- the call log ----------------------------------------------------------------------------------------------


async def test_the_observing_call_log_forwards_every_record_and_feeds_the_monitor() -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(SETTINGS, clock=clock)
    inner = InMemoryCallLog()
    log: CallLog = ObservingCallLog(inner, monitor)
    records = [call(clock.now(), error=ProviderTimeout) for _ in range(4)]
    records += [call(clock.now(), cached=True), call(clock.now(), error=ProviderTimeout)]

    for record in records:
        await log.record(record)

    assert inner.records == records
    assert monitor.observations(clock.now()).llm["deepseek"].events == 5
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert transition.to_level is REDUCED


# --- properties ------------------------------------------------------------------------------------------------

PROPERTY_SETTINGS = DegradationSettings(window_seconds=60, recovery_hold_seconds=30, llm_min_calls=2)
# Bad news of every kind, and calm stretches (candles, successes, nothing) long enough to see every recovery.
ACTIONS = ("llm_failed", "llm_slow", "db_failed", "timeout", "market_error", *3 * ("llm_ok", "db_ok", "candle", "idle"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=30), st.sampled_from(ACTIONS)), min_size=30, max_size=100))
def test_the_level_drops_one_step_at_a_time_and_only_after_the_hold(steps: list[tuple[int, str]]) -> None:
    clock = FakeClock(T0)
    monitor = HealthMonitor(PROPERTY_SETTINGS, clock=clock, symbols=[BTC])
    hold = timedelta(seconds=PROPERTY_SETTINGS.recovery_hold_seconds)
    last_change = clock.now()
    for seconds, action in steps:
        clock.advance(seconds)
        now = clock.now()
        if action == "llm_failed":
            monitor.llm_call(call(now, error=ProviderTimeout))
        elif action == "llm_ok":
            monitor.llm_call(call(now))
        elif action == "llm_slow":
            monitor.llm_call(call(now, latency_seconds=60.0))
        elif action in ("db_failed", "db_ok"):
            monitor.db_write(ok=action == "db_ok")
        elif action == "timeout":
            monitor.task_timed_out(now)
        elif action == "market_error":
            monitor.market_data_error(now)
        elif action == "candle":
            monitor.candle(BTC, now, MINUTE)

        before = monitor.level
        transition = monitor.refresh(now)
        after = monitor.level

        if after is before:
            assert transition is None
            continue
        assert transition is not None
        assert (transition.from_level, transition.to_level, transition.at) == (before, after, now)
        if after.rank < before.rank:
            assert before.rank - after.rank == 1
            assert now - last_change >= hold
        last_change = now
