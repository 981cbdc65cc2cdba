from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from triplegain.llm import BreakerPhase, BreakerSettings, BreakerState
from triplegain.llm.breaker import admit, after_abandon, after_failure, after_success, seconds_until_trial

SETTINGS = BreakerSettings(consecutive_failures=3, failure_rate=0.5, window_calls=6, min_calls=6, cooldown_seconds=60)


def fail(state: BreakerState, times: int = 1, now: float = 0.0) -> BreakerState:
    for _ in range(times):
        state = after_failure(state, SETTINGS, now)
    return state


def succeed(state: BreakerState, times: int = 1) -> BreakerState:
    for _ in range(times):
        state = after_success(state, SETTINGS)
    return state


def test_a_closed_breaker_admits_calls() -> None:
    state, admitted = admit(BreakerState(), SETTINGS, now=0.0)
    assert admitted
    assert state == BreakerState()


def test_consecutive_failures_open_it() -> None:
    state = fail(BreakerState(), 2)
    assert state.phase is BreakerPhase.CLOSED
    state = fail(state, 1, now=10.0)
    assert state.phase is BreakerPhase.OPEN
    assert state.opened_at == 10.0


def test_a_success_resets_the_consecutive_count() -> None:
    state = fail(succeed(fail(BreakerState(), 2)), 2)
    assert state.phase is BreakerPhase.CLOSED
    assert state.consecutive_failures == 2


def test_a_failure_rate_over_the_window_opens_it() -> None:
    # ok, fail three times: never 3 failures in a row, but with the 6th call (the minimum) half have failed.
    state = BreakerState()
    for _ in range(3):
        assert state.phase is BreakerPhase.CLOSED
        state = fail(succeed(state))
    assert state.phase is BreakerPhase.OPEN


def test_a_success_never_opens_it() -> None:
    state = succeed(fail(succeed(fail(succeed(fail(BreakerState()))))))
    assert state.recent_failures == (True, False) * 3
    assert state.phase is BreakerPhase.CLOSED


def test_the_rate_needs_min_calls() -> None:
    state = succeed(fail(BreakerState()))
    assert state.recent_failures == (True, False)
    assert state.phase is BreakerPhase.CLOSED


def test_the_window_forgets_old_calls() -> None:
    state = succeed(fail(BreakerState()), 6)
    assert state.recent_failures == (False,) * 6
    assert state.phase is BreakerPhase.CLOSED


def test_an_open_breaker_refuses_until_the_cooldown_then_admits_one_trial() -> None:
    state = fail(BreakerState(), 3, now=100.0)
    state, admitted = admit(state, SETTINGS, now=159.9)
    assert not admitted
    assert state.phase is BreakerPhase.OPEN
    assert seconds_until_trial(state, SETTINGS, now=130.0) == 30.0

    state, admitted = admit(state, SETTINGS, now=160.0)
    assert admitted
    assert state.phase is BreakerPhase.HALF_OPEN
    assert state.trial_running

    state, admitted = admit(state, SETTINGS, now=161.0)
    assert not admitted, "only one trial at a time"
    assert seconds_until_trial(state, SETTINGS, now=161.0) == 0.0


def test_a_successful_trial_closes_it_with_a_clean_history() -> None:
    state, _ = admit(fail(BreakerState(), 3), SETTINGS, now=60.0)
    assert succeed(state) == BreakerState()


def test_a_failed_trial_opens_it_for_another_cooldown() -> None:
    steady = SETTINGS.model_copy(update={"cooldown_growth": 1.0})
    state, _ = admit(fail(BreakerState(), 3), steady, now=60.0)
    state = after_failure(state, steady, 61.0)
    assert state.phase is BreakerPhase.OPEN
    assert state.opened_at == 61.0
    assert not state.trial_running
    assert not admit(state, steady, now=120.0)[1]
    assert admit(state, steady, now=121.0)[1]


def test_the_cooldown_doubles_while_trials_fail_up_to_its_maximum_and_a_success_resets_it() -> None:
    """A dead provider is tried after 60 s, then 120 s, 240 s … at most every 300 s; once it answers, 60 s again."""
    settings = SETTINGS.model_copy(update={"cooldown_growth": 2.0, "cooldown_max_seconds": 300.0})
    state = BreakerState()
    for _ in range(3):
        state = after_failure(state, settings, 0.0)
    now, waits = 0.0, []
    for _ in range(5):
        wait = seconds_until_trial(state, settings, now)
        waits.append(wait)
        assert not admit(state, settings, now + wait - 0.001)[1]
        now += wait
        state, admitted = admit(state, settings, now)
        assert admitted
        state = after_failure(state, settings, now)
    assert waits == [60.0, 120.0, 240.0, 300.0, 300.0]

    now += seconds_until_trial(state, settings, now)
    state, _ = admit(state, settings, now)
    state = after_success(state, settings)
    for _ in range(3):
        state = after_failure(state, settings, now)
    assert seconds_until_trial(state, settings, now) == 60.0


def test_the_cooldown_may_not_start_above_its_maximum() -> None:
    with pytest.raises(ValidationError, match=r"cooldown_max_seconds \(30\) must be at least cooldown_seconds \(60\)"):
        BreakerSettings(cooldown_seconds=60, cooldown_max_seconds=30)


def test_an_abandoned_trial_lets_the_next_call_try() -> None:
    state, _ = admit(fail(BreakerState(), 3), SETTINGS, now=60.0)
    state = after_abandon(state)
    state, admitted = admit(state, SETTINGS, now=60.0)
    assert admitted
    assert state.phase is BreakerPhase.HALF_OPEN


@given(st.lists(st.booleans(), max_size=40))
def test_it_opens_exactly_when_a_rule_says_so(outcomes: list[bool]) -> None:
    """Feed calls while closed: it opens exactly on a failure that makes the run of failures or the rate too high."""
    state = BreakerState()
    history: list[bool] = []
    for failed in outcomes:
        if state.phase is not BreakerPhase.CLOSED:
            break
        history.append(failed)
        state = fail(state) if failed else succeed(state)
        window = history[-SETTINGS.window_calls :]
        run = len(history) - max((i + 1 for i, f in enumerate(history) if not f), default=0)
        rate_trips = len(window) >= SETTINGS.min_calls and sum(window) / len(window) >= SETTINGS.failure_rate
        expected_open = failed and (run >= SETTINGS.consecutive_failures or rate_trips)
        assert (state.phase is BreakerPhase.OPEN) == expected_open
