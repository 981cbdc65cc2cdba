from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from triplegain.coordinator.breaker import (
    PortfolioBreakerSettings,
    PortfolioBreakerState,
    Trip,
    blocks_new_exposure,
    on_equity,
    on_trade_closed,
    reset,
    status,
)
from triplegain.model import BreakerAction, BreakerRule

SETTINGS = PortfolioBreakerSettings()
ONLY_DRAWDOWN = PortfolioBreakerSettings(daily_loss_pct=100, weekly_loss_pct=100)
WEDNESDAY = datetime(2024, 3, 6, 12, tzinfo=UTC)


def hours(n: float) -> datetime:
    return WEDNESDAY + timedelta(hours=n)


def equities(
    values: list[tuple[datetime, float]], settings: PortfolioBreakerSettings = SETTINGS
) -> tuple[PortfolioBreakerState, list[Trip]]:
    state, trips = PortfolioBreakerState(), []
    for now, equity in values:
        state, new = on_equity(state, equity, now, settings)
        trips += new
    return state, trips


def test_the_first_update_sets_every_baseline() -> None:
    state, trips = equities([(WEDNESDAY, 10_000.0)])
    assert trips == []
    assert (state.day_start_equity, state.week_start_equity, state.peak_equity) == (10_000, 10_000, 10_000)
    assert state.week_start == WEDNESDAY.date() - timedelta(days=2)


def test_the_daily_loss_trips_exactly_at_its_threshold_and_pauses_until_the_next_day() -> None:
    _, trips = equities([(hours(0), 10_000.0), (hours(1), 9_700.01)])
    assert trips == []
    state, trips = equities([(hours(0), 10_000.0), (hours(1), 9_700.0)])
    (trip,) = trips
    assert (trip.rule, trip.action, trip.at) == (BreakerRule.DAILY_LOSS, BreakerAction.PAUSE, hours(1))
    assert trip.until == datetime(2024, 3, 7, tzinfo=UTC)
    assert trip.measured == pytest.approx(3.0)
    assert trip.threshold == 3.0
    assert (trip.equity, trip.reference_equity) == (9_700.0, 10_000.0)
    assert "9700.00" in trip.reason
    assert "10000.00" in trip.reason
    assert state.trips == (trip,)


def test_an_active_rule_does_not_trip_again() -> None:
    state, trips = equities([(hours(0), 10_000.0), (hours(1), 9_700.0), (hours(2), 9_650.0)])
    assert [t.rule for t in trips] == [BreakerRule.DAILY_LOSS]
    assert len(state.trips) == 1


def test_the_weekly_loss_halts_at_its_threshold() -> None:
    monday = datetime(2024, 3, 4, tzinfo=UTC)
    values = [(monday, 10_000.0), (monday + timedelta(days=1), 9_800.0), (monday + timedelta(days=2), 9_200.0)]
    _, trips = equities(values)
    weekly = [t for t in trips if t.rule is BreakerRule.WEEKLY_LOSS]
    assert [(t.action, t.until, t.reference_equity) for t in weekly] == [(BreakerAction.HALT, None, 10_000.0)]
    assert weekly[0].measured == pytest.approx(8.0)


def test_the_drawdown_is_measured_from_the_peak() -> None:
    state, trips = equities([(hours(0), 10_000.0), (hours(1), 12_000.0), (hours(2), 10_200.01)], ONLY_DRAWDOWN)
    assert trips == []
    state, trips = on_equity(state, 10_200.0, hours(3), ONLY_DRAWDOWN)
    (trip,) = trips
    assert (trip.rule, trip.action, trip.until) == (BreakerRule.MAX_DRAWDOWN, BreakerAction.HALT, None)
    assert (trip.equity, trip.reference_equity) == (10_200.0, 12_000.0)
    assert trip.measured == pytest.approx(15.0)


def test_a_day_rollover_restarts_the_daily_baseline() -> None:
    evening, morning = datetime(2024, 3, 6, 23, tzinfo=UTC), datetime(2024, 3, 7, 1, tzinfo=UTC)
    state, trips = equities([(evening, 10_000.0), (evening, 9_800.0), (morning, 9_800.0), (morning, 9_600.0)])
    assert trips == []
    assert (state.day, state.day_start_equity) == (morning.date(), 9_800.0)
    assert state.week_start_equity == 10_000.0


def test_a_week_rollover_restarts_the_weekly_baseline() -> None:
    sunday, monday = datetime(2024, 3, 10, 23, tzinfo=UTC), datetime(2024, 3, 11, 1, tzinfo=UTC)
    state, _ = equities([(sunday, 10_000.0), (monday, 9_900.0)])
    assert (state.week_start, state.week_start_equity) == (monday.date(), 9_900.0)


def test_consecutive_losses_trip_at_the_threshold_and_a_win_ends_the_streak() -> None:
    state = PortfolioBreakerState()
    for i in range(4):
        state, trips = on_trade_closed(state, -10.0, hours(i), SETTINGS)
        assert trips == []
    state, _ = on_trade_closed(state, 0.0, hours(4), SETTINGS)
    assert state.consecutive_losses == 0
    for i in range(5):
        state, trips = on_trade_closed(state, -10.0, hours(5 + i), SETTINGS)
    (trip,) = trips
    assert (trip.rule, trip.action, trip.measured, trip.threshold) == (
        BreakerRule.CONSECUTIVE_LOSSES,
        BreakerAction.PAUSE,
        5,
        5,
    )
    assert trip.until == hours(9) + timedelta(minutes=60)


def test_a_scripted_losing_sequence_trips_consecutive_losses_then_drawdown() -> None:
    state, _ = on_equity(PortfolioBreakerState(), 10_000.0, hours(0), ONLY_DRAWDOWN)
    tripped: list[tuple[int, BreakerRule]] = []
    for n in range(1, 8):
        now = hours(0.5 * n)
        state, by_trade = on_trade_closed(state, -250.0, now, ONLY_DRAWDOWN)
        state, by_equity = on_equity(state, 10_000.0 - 250.0 * n, now, ONLY_DRAWDOWN)
        tripped += [(n, t.rule) for t in by_trade + by_equity]
    assert tripped == [(5, BreakerRule.CONSECUTIVE_LOSSES), (6, BreakerRule.MAX_DRAWDOWN)]
    assert status(state, hours(3)) is BreakerAction.HALT


def test_a_halt_stays_until_a_person_resets_it() -> None:
    state, _ = equities([(hours(0), 10_000.0), (hours(1), 8_000.0)], ONLY_DRAWDOWN)
    state, _ = on_equity(state, 8_000.0, hours(24 * 30), ONLY_DRAWDOWN)
    assert blocks_new_exposure(state, hours(24 * 30))
    state = reset(state, BreakerRule.DAILY_LOSS)
    assert status(state, hours(24 * 30)) is BreakerAction.HALT
    state = reset(state, BreakerRule.MAX_DRAWDOWN)
    assert not blocks_new_exposure(state, hours(24 * 30))
    assert state.peak_equity == 8_000.0
    state, trips = on_equity(state, 7_900.0, hours(24 * 30 + 1), ONLY_DRAWDOWN)
    assert trips == []


def test_reset_leaves_pauses_to_expire() -> None:
    state, _ = equities([(hours(0), 10_000.0), (hours(1), 9_000.0)], PortfolioBreakerSettings(weekly_loss_pct=5))
    assert {(t.rule, t.action) for t in state.trips} == {
        (BreakerRule.DAILY_LOSS, BreakerAction.PAUSE),
        (BreakerRule.WEEKLY_LOSS, BreakerAction.HALT),
    }
    state = reset(state)
    assert [t.rule for t in state.trips] == [BreakerRule.DAILY_LOSS]
    assert status(state, hours(2)) is BreakerAction.PAUSE


def test_a_pause_expires_and_restarts_its_measure() -> None:
    state = PortfolioBreakerState()
    for _ in range(5):
        state, _ = on_trade_closed(state, -1.0, hours(0), SETTINGS)
    end = hours(1)
    assert blocks_new_exposure(state, end - timedelta(seconds=1))
    assert not blocks_new_exposure(state, end)
    state, trips = on_trade_closed(state, -1.0, end, SETTINGS)
    assert (state.trips, trips, state.consecutive_losses) == ((), [], 1)


def test_the_daily_pause_ends_with_the_day() -> None:
    settings = PortfolioBreakerSettings(weekly_loss_pct=50)
    state, _ = equities([(hours(0), 10_000.0), (hours(1), 9_000.0)], settings)
    assert blocks_new_exposure(state, hours(11))
    assert not blocks_new_exposure(state, hours(12))
    state, trips = on_equity(state, 9_000.0, hours(12), settings)
    assert (state.trips, trips, state.day_start_equity) == ((), [], 9_000.0)


def test_a_drawdown_pause_lasts_pause_minutes() -> None:
    settings = PortfolioBreakerSettings(
        daily_loss_pct=100, weekly_loss_pct=100, max_drawdown_action=BreakerAction.PAUSE, pause_minutes=30
    )
    _, (trip,) = equities([(hours(0), 100.0), (hours(1), 85.0)], settings)
    assert trip.until == hours(1.5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_equity_must_be_finite_and_not_negative(bad: float) -> None:
    with pytest.raises(ValueError, match="equity must be a finite number"):
        on_equity(PortfolioBreakerState(), bad, WEDNESDAY, SETTINGS)


def test_pnl_must_be_finite_and_times_aware() -> None:
    with pytest.raises(ValueError, match="pnl must be a finite number"):
        on_trade_closed(PortfolioBreakerState(), float("nan"), WEDNESDAY, SETTINGS)
    with pytest.raises(ValueError, match="timezone-aware"):
        on_equity(PortfolioBreakerState(), 1.0, WEDNESDAY.replace(tzinfo=None), SETTINGS)


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValidationError):
        PortfolioBreakerSettings(daily_loss_pct=float("nan"))
    with pytest.raises(ValidationError):
        PortfolioBreakerSettings(max_drawdown_pct=0)
    with pytest.raises(ValidationError):
        PortfolioBreakerSettings.model_validate({"daily_loss_action": "stop"})
    with pytest.raises(ValidationError, match="extra"):
        PortfolioBreakerSettings.model_validate({"daily_loss": 3})


events = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=12),
        st.one_of(
            st.tuples(st.just("equity"), st.floats(min_value=0, max_value=20_000)),
            st.tuples(st.just("trade"), st.floats(min_value=-500, max_value=500)),
            st.tuples(st.just("reset"), st.none()),
        ),
    ),
    max_size=60,
)


@given(script=events)
def test_property_trips_only_at_thresholds_and_halts_stay_until_reset(
    script: list[tuple[float, tuple[str, float | None]]],
) -> None:
    state = PortfolioBreakerState()
    now = WEDNESDAY
    for gap_hours, (kind, value) in script:
        now += timedelta(hours=gap_hours)
        halts_before = {t for t in state.trips if t.action is BreakerAction.HALT}
        if kind == "reset":
            state = reset(state)
            assert not any(t.action is BreakerAction.HALT for t in state.trips)
            continue
        assert value is not None
        if kind == "equity":
            state, trips = on_equity(state, value, now, SETTINGS)
        else:
            state, trips = on_trade_closed(state, value, now, SETTINGS)
        assert halts_before <= set(state.trips)
        for trip in trips:
            assert trip.measured >= trip.threshold - 1e-9
            assert (trip.until is None) == (trip.action is BreakerAction.HALT)
        active = [t.rule for t in state.trips if t.until is None or t.until > now]
        assert len(active) == len(set(active))
        assert blocks_new_exposure(state, now) == bool(active)
