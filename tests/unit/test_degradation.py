from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from triplegain.coordinator.degradation import (
    DegradationSettings,
    DegradationState,
    LevelEffects,
    Observations,
    SlidingWindow,
    Threshold,
    WindowEvent,
    WindowFigures,
    assess,
    effects,
    record,
    step,
    summarize,
    summarize_events,
)
from triplegain.model import DegradationLevel

NORMAL, REDUCED, LIMITED, EMERGENCY = tuple(DegradationLevel)
T0 = datetime(2024, 3, 1, tzinfo=UTC)
SETTINGS = DegradationSettings(recovery_hold_seconds=60)
HOLD = timedelta(seconds=SETTINGS.recovery_hold_seconds)

CALM = Observations()
OBSERVATIONS_AT = {
    NORMAL: CALM,
    REDUCED: Observations(llm={"deepseek": WindowFigures(events=10, failures=5)}),
    LIMITED: Observations(task_timeouts=3),
    EMERGENCY: Observations(db_consecutive_write_failures=3),
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def walk(
    state: DegradationState, steps: list[tuple[float, Observations]]
) -> tuple[DegradationState, list[DegradationLevel]]:
    """Step through (seconds after T0, observations); return the final state and the level after each step."""
    levels = []
    for seconds, observations in steps:
        state, _ = step(state, observations, at(seconds), SETTINGS)
        levels.append(state.level)
    return state, levels


@pytest.mark.parametrize(
    ("observations", "signal", "level", "value"),
    [
        (Observations(llm={"claude": WindowFigures(events=6, failures=3)}), "llm_error_rate", REDUCED, 0.5),
        (
            Observations(llm={"claude": WindowFigures(events=5, latency_p95_seconds=30.0)}),
            "llm_latency_p95_seconds",
            REDUCED,
            30.0,
        ),
        (Observations(market_data_stale_intervals=3.0), "market_data_stale_intervals", EMERGENCY, 3.0),
        (Observations(market_data_errors=5), "market_data_errors", LIMITED, 5),
        (Observations(db_consecutive_write_failures=3), "db_consecutive_write_failures", EMERGENCY, 3),
        (Observations(task_timeouts=3), "task_timeouts", LIMITED, 3),
    ],
)
def test_each_signal_at_its_threshold_asks_for_its_level(
    observations: Observations, signal: str, level: DegradationLevel, value: float
) -> None:
    target, causes = assess(observations, SETTINGS)
    assert target is level
    assert [(c.signal, c.value, c.level) for c in causes] == [(signal, value, level)]


def test_below_thresholds_or_too_few_calls_is_normal() -> None:
    observations = Observations(
        llm={"claude": WindowFigures(events=4, failures=4, latency_p95_seconds=99.0)},
        market_data_stale_intervals=2.9,
        market_data_errors=4,
        db_consecutive_write_failures=2,
        task_timeouts=2,
    )
    assert assess(observations, SETTINGS) == (NORMAL, ())


def test_the_worst_signal_sets_the_target_and_every_cause_is_named() -> None:
    observations = Observations(
        llm={"deepseek": WindowFigures(events=10, failures=8)}, market_data_stale_intervals=4.5, task_timeouts=3
    )
    target, causes = assess(observations, SETTINGS)
    assert target is EMERGENCY
    assert [(c.signal, c.subject, c.value, c.threshold) for c in causes] == [
        ("llm_error_rate", "deepseek", 0.8, 0.5),
        ("market_data_stale_intervals", None, 4.5, 3.0),
        ("task_timeouts", None, 3, 3.0),
    ]


def test_a_rule_at_normal_is_switched_off() -> None:
    settings = DegradationSettings(task_timeouts=Threshold(at=1, level=NORMAL))
    assert assess(Observations(task_timeouts=10), settings) == (NORMAL, ())


def test_escalation_jumps_straight_to_the_target() -> None:
    state, transition = step(DegradationState(since=T0), OBSERVATIONS_AT[EMERGENCY], at(5), SETTINGS)
    assert state.level is EMERGENCY
    assert state.since == at(5)
    assert transition is not None
    assert (transition.from_level, transition.to_level, transition.at) == (NORMAL, EMERGENCY, at(5))
    assert [c.signal for c in transition.causes] == ["db_consecutive_write_failures"]
    assert state.causes == transition.causes


def test_recovery_goes_one_level_at_a_time_each_after_the_hold() -> None:
    start = DegradationState(level=EMERGENCY, since=T0)
    hold = HOLD.total_seconds()
    _, levels = walk(start, [(0, CALM), (hold - 1, CALM), (hold, CALM), (2 * hold - 1, CALM), (2 * hold, CALM)])
    assert levels == [EMERGENCY, EMERGENCY, LIMITED, LIMITED, REDUCED]


def test_the_recovery_transition_names_the_hold_it_waited() -> None:
    state, _ = step(DegradationState(level=LIMITED, since=T0), CALM, at(10), SETTINGS)
    state, transition = step(state, OBSERVATIONS_AT[REDUCED], at(70), SETTINGS)
    assert transition is not None
    assert (transition.from_level, transition.to_level) == (LIMITED, REDUCED)
    assert [(c.signal, c.value, c.threshold) for c in transition.causes] == [
        ("recovery_hold", 60.0, 60.0),
        ("llm_error_rate", 0.5, 0.5),
    ]
    assert state.pending_recovery_since is None


def test_a_relapse_during_the_hold_restarts_it() -> None:
    start = DegradationState(level=LIMITED, since=T0)
    _, levels = walk(start, [(0, CALM), (50, OBSERVATIONS_AT[LIMITED]), (60, CALM), (110, CALM), (120, CALM)])
    assert levels == [LIMITED, LIMITED, LIMITED, LIMITED, REDUCED]


def test_a_better_target_that_varies_keeps_the_hold_running() -> None:
    start = DegradationState(level=EMERGENCY, since=T0)
    _, levels = walk(start, [(0, CALM), (30, OBSERVATIONS_AT[LIMITED]), (60, CALM)])
    assert levels == [EMERGENCY, EMERGENCY, LIMITED]


def test_recovery_stops_at_the_target() -> None:
    start = DegradationState(level=EMERGENCY, since=T0)
    steps = [(60.0 * i, OBSERVATIONS_AT[LIMITED]) for i in range(5)]
    state, levels = walk(start, steps)
    assert levels == [EMERGENCY, LIMITED, LIMITED, LIMITED, LIMITED]
    assert state.pending_recovery_since is None


def test_default_effects_match_the_design() -> None:
    assert effects(NORMAL, SETTINGS).allow_new_exposure
    assert not effects(REDUCED, SETTINGS).allow_sentiment
    assert not effects(REDUCED, SETTINGS).allow_llm_refinement
    limited = effects(LIMITED, SETTINGS)
    assert (limited.size_multiplier, limited.allow_conflicted) == (0.5, False)
    assert limited.min_confidence > effects(REDUCED, SETTINGS).min_confidence
    assert not effects(EMERGENCY, SETTINGS).allow_new_exposure


def test_settings_reject_effects_that_allow_more_at_a_worse_level() -> None:
    generous = effects(NORMAL, SETTINGS)
    with pytest.raises(ValidationError, match="effects of emergency must allow nothing that limited forbids"):
        DegradationSettings(emergency=generous)


def test_settings_reject_an_error_rate_above_one_and_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="llm_error_rate"):
        DegradationSettings(llm_error_rate=Threshold(at=1.5, level=REDUCED))
    with pytest.raises(ValidationError, match="extra"):
        DegradationSettings.model_validate({"windows_seconds": 10})
    with pytest.raises(ValidationError):
        DegradationSettings(window_seconds=float("nan"))


def test_the_sliding_window_keeps_only_recent_events() -> None:
    window = SlidingWindow()
    for second, failed in [(0, True), (100, False), (200, True), (300, False)]:
        event = WindowEvent(at=at(second), failed=failed, latency_seconds=float(second))
        window = record(window, event, now=at(second), window_seconds=250)
    assert [e.at for e in window.events] == [at(100), at(200), at(300)]
    figures = summarize(window, now=at(360), window_seconds=250)
    assert (figures.events, figures.failures, figures.failure_rate) == (2, 1, 0.5)
    assert figures.latency_p95_seconds == 300.0


def test_p95_is_the_nearest_rank() -> None:
    window = SlidingWindow(events=tuple(WindowEvent(at=T0, latency_seconds=float(i)) for i in range(1, 101)))
    assert summarize(window, now=T0, window_seconds=1).latency_p95_seconds == 95.0
    assert summarize(SlidingWindow(), now=T0, window_seconds=1) == WindowFigures()


def test_events_out_of_order_or_after_now_are_counted_only_inside_the_window() -> None:
    events = [
        WindowEvent(at=at(300), failed=True, latency_seconds=3.0),
        WindowEvent(at=at(100)),  # before the window
        WindowEvent(at=at(200), latency_seconds=1.0),
        WindowEvent(at=at(400), failed=True),  # after now
    ]
    figures = summarize_events(events, now=at(360), window_seconds=250)
    assert figures == WindowFigures(events=2, failures=1, latency_p95_seconds=3.0)
    assert summarize_events(events[1:2], now=at(360), window_seconds=250) == WindowFigures()


def test_a_steady_level_keeps_its_state_and_clears_a_pending_recovery() -> None:
    state = DegradationState(level=NORMAL, since=T0)
    assert step(state, CALM, at(10), SETTINGS) == (state, None)
    waiting = DegradationState(level=REDUCED, since=T0, pending_recovery_since=at(5))
    cleared, transition = step(waiting, OBSERVATIONS_AT[REDUCED], at(10), SETTINGS)
    assert (cleared.level, cleared.pending_recovery_since, transition) == (REDUCED, None, None)


levels = st.sampled_from(list(DegradationLevel))
gaps = st.floats(min_value=0, max_value=90)


@given(start=levels, target=levels, pending=st.none() | st.floats(min_value=0, max_value=1000))
def test_property_escalation_is_immediate(
    start: DegradationLevel, target: DegradationLevel, pending: float | None
) -> None:
    state = DegradationState(level=start, since=T0, pending_recovery_since=None if pending is None else at(pending))
    after, transition = step(state, OBSERVATIONS_AT[target], at(2000), SETTINGS)
    if target.rank > start.rank:
        assert after.level is target
        assert transition is not None
        assert transition.to_level is target
    else:
        assert after.level.rank >= start.rank - 1


@given(
    start=st.sampled_from([REDUCED, LIMITED, EMERGENCY]),
    runs=st.lists(st.lists(st.floats(min_value=0, max_value=20), min_size=1, max_size=4), max_size=20),
)
def test_property_flapping_input_never_recovers(start: DegradationLevel, runs: list[list[float]]) -> None:
    """Healthy stretches shorter than the hold, each broken by a bad observation: the level never drops."""
    state = DegradationState(level=start, since=T0)
    now = 0.0
    for run in runs:
        first = now
        for gap in run:
            if at(now + gap) - at(first) >= HOLD:
                break
            now += gap
            state, transition = step(state, CALM, at(now), SETTINGS)
            assert transition is None
        now += 1
        state, _ = step(state, OBSERVATIONS_AT[start], at(now), SETTINGS)
        assert state.level is start


@given(
    start=levels,
    script=st.lists(st.tuples(gaps, levels), max_size=40),
)
def test_property_recovery_is_one_level_and_only_after_the_hold(
    start: DegradationLevel, script: list[tuple[float, DegradationLevel]]
) -> None:
    """Down by exactly one level, exactly when the target stayed below the level for the hold since it changed."""
    state = DegradationState(level=start, since=T0)
    now = 0.0
    history: list[tuple[float, DegradationLevel]] = []
    entered = 0
    for gap, target in script:
        now += gap
        history.append((now, target))
        before = state.level
        state, transition = step(state, OBSERVATIONS_AT[target], at(now), SETTINGS)
        better_since = now
        for seconds, earlier in reversed(history[entered:]):
            if earlier.rank >= before.rank:
                break
            better_since = seconds
        # Measured on the datetimes step() is given (microsecond resolution), as the code measures it.
        waited = target.rank < before.rank and at(now) - at(better_since) >= HOLD
        if target.rank > before.rank:
            assert state.level is target
        elif waited:
            assert transition is not None
            assert state.level.rank == before.rank - 1
        else:
            assert transition is None
            assert state.level is before
        if transition is not None:
            entered = len(history) - 1


effects_models = st.builds(
    LevelEffects,
    allow_llm_refinement=st.booleans(),
    allow_sentiment=st.booleans(),
    size_multiplier=st.sampled_from([0.0, 0.5, 1.0]),
    min_confidence=st.sampled_from([0.0, 0.5, 1.0]),
    allow_conflicted=st.booleans(),
    allow_new_exposure=st.booleans(),
)


@given(chain=st.lists(effects_models, min_size=4, max_size=4))
def test_property_effects_are_monotone_in_any_accepted_settings(chain: list[LevelEffects]) -> None:
    try:
        settings = DegradationSettings(normal=chain[0], reduced=chain[1], limited=chain[2], emergency=chain[3])
    except ValidationError:
        return
    ordered = [effects(level, settings) for level in DegradationLevel]
    for better, worse in pairwise(ordered):
        assert worse.size_multiplier <= better.size_multiplier
        assert worse.min_confidence >= better.min_confidence
        for flag in ("allow_llm_refinement", "allow_sentiment", "allow_conflicted", "allow_new_exposure"):
            assert getattr(better, flag) or not getattr(worse, flag)
