"""The schedule's declaration and its pure due-time rules (issue 4, "Schedule")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from triplegain.coordinator.schedule import ScheduleSettings, TaskName, TaskSpec, due, next_boundary, next_run

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)  # a multiple of every default interval


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def spec(interval: float = 300, **changes: Any) -> TaskSpec:
    return TaskSpec(interval_seconds=interval, timeout_seconds=30, per_symbol=True, **changes)


def settings(**changes: Any) -> ScheduleSettings:
    return ScheduleSettings.model_validate({**ScheduleSettings().model_dump(), **changes})


# ------------------------------------------------------------------------------------------------ declaration


def test_defaults() -> None:
    s = ScheduleSettings()
    assert [(n, s.spec(n).interval_seconds, s.spec(n).timeout_seconds) for n in TaskName] == [
        (TaskName.TECHNICAL, 300, 90),  # room for any default provider's review (tests/unit/test_time_limits.py)
        (TaskName.REGIME, 900, 90),  # one close of the regime agent's 15-minute timeframe
        (TaskName.SENTIMENT, 1800, 90),
        (TaskName.PORTFOLIO, 3600, 30),
        (TaskName.TRADE_DECISION, 300, 120),  # room for a chain of two default providers
        (TaskName.HOUSEKEEPING, 10, 30),
    ]
    assert s.regime.depends_on == [TaskName.TECHNICAL]
    assert s.trade_decision.depends_on == [TaskName.TECHNICAL, TaskName.REGIME, TaskName.SENTIMENT]
    assert s.housekeeping.run_at_start
    assert not s.housekeeping.per_symbol
    assert (s.technical.offset_seconds, s.trade_decision.offset_seconds, s.housekeeping.offset_seconds) == (2, 4, 0)
    assert (s.jitter_seconds, s.misfire_grace_seconds, s.shutdown_timeout_seconds) == (1.0, 60.0, 10.0)


def test_every_field_has_a_description_for_the_rendered_config() -> None:
    for model in (TaskSpec, ScheduleSettings):
        assert all(field.description for field in model.model_fields.values()), model.__name__


def test_spec_returns_the_field_named_by_the_task() -> None:
    s = ScheduleSettings()
    assert all(s.spec(name) is getattr(s, name.value) for name in TaskName)


def test_sections_are_frozen_and_reject_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="extra"):
        ScheduleSettings.model_validate({"technicl": {}})
    with pytest.raises(ValidationError, match="frozen"):
        ScheduleSettings().technical.enabled = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [("interval_seconds", 0), ("timeout_seconds", 0), ("offset_seconds", -1), ("interval_seconds", float("inf"))],
)
def test_task_spec_bounds(field: str, value: float) -> None:
    valid = {"interval_seconds": 300, "timeout_seconds": 30, "per_symbol": True}
    with pytest.raises(ValidationError, match=field):
        TaskSpec.model_validate({**valid, field: value})


def test_ordered_puts_dependencies_first_then_declaration_order() -> None:
    assert ScheduleSettings().ordered() == list(TaskName)
    reordered = settings(technical=spec(depends_on=[TaskName.PORTFOLIO]))
    assert reordered.ordered() == [
        TaskName.SENTIMENT,
        TaskName.PORTFOLIO,
        TaskName.TECHNICAL,
        TaskName.REGIME,
        TaskName.TRADE_DECISION,
        TaskName.HOUSEKEEPING,
    ]


def test_ordered_leaves_out_disabled_tasks() -> None:
    s = settings(portfolio=spec(3600, enabled=False), housekeeping=spec(10, enabled=False))
    assert s.ordered() == [TaskName.TECHNICAL, TaskName.REGIME, TaskName.SENTIMENT, TaskName.TRADE_DECISION]


def test_a_task_may_not_depend_on_itself() -> None:
    with pytest.raises(ValidationError, match="task regime depends on itself"):
        settings(regime=spec(depends_on=[TaskName.REGIME]))


def test_a_cycle_is_named() -> None:
    with pytest.raises(ValidationError, match="dependency cycle technical → regime → technical"):
        settings(technical=spec(depends_on=[TaskName.REGIME]))


def test_a_longer_cycle_is_named() -> None:
    with pytest.raises(ValidationError, match="dependency cycle technical → portfolio → trade_decision → technical"):
        settings(
            technical=spec(depends_on=[TaskName.PORTFOLIO]),
            portfolio=spec(depends_on=[TaskName.TRADE_DECISION]),
        )


def test_an_enabled_task_may_not_depend_on_a_disabled_one() -> None:
    with pytest.raises(ValidationError, match="task trade_decision depends on sentiment, which is disabled"):
        settings(sentiment=spec(1800, enabled=False))


def test_a_disabled_task_may_keep_its_dependencies() -> None:
    s = settings(
        sentiment=spec(1800, enabled=False), trade_decision=spec(enabled=False, depends_on=[TaskName.SENTIMENT])
    )
    assert TaskName.TRADE_DECISION not in s.ordered()


def test_jitter_must_stay_below_every_interval() -> None:
    with pytest.raises(
        ValidationError, match=r"jitter_seconds \(10\) must be less than the interval of task housekeeping"
    ):
        settings(jitter_seconds=10)
    assert settings(jitter_seconds=10, housekeeping=spec(10, enabled=False)).jitter_seconds == 10


# ------------------------------------------------------------------------------------------------ next_run


def test_boundaries_count_from_the_epoch() -> None:
    assert next_boundary(300, datetime(1970, 1, 1, 0, 7, tzinfo=UTC), inclusive=True) == datetime(
        1970, 1, 1, 0, 10, tzinfo=UTC
    )
    assert next_boundary(300, T0, inclusive=True) == T0
    assert next_boundary(300, T0, inclusive=False) == at(300)
    assert next_boundary(0.05, at(0.01), inclusive=True) == at(0.05)
    assert next_boundary(7, T0, inclusive=True).timestamp() % 7 == 0


def test_a_task_that_never_ran_runs_at_the_first_boundary_at_or_after_start() -> None:
    assert next_run(spec(), None, at(1)) == at(300)
    assert next_run(spec(), None, T0) == T0


def test_run_at_start_runs_at_start() -> None:
    assert next_run(spec(run_at_start=True), None, at(1)) == at(1)


def test_after_a_run_the_next_boundary_strictly_after_it() -> None:
    assert next_run(spec(), T0, at(-1000)) == at(300)
    assert next_run(spec(), at(2.5), at(-1000)) == at(300)
    assert next_run(spec(run_at_start=True), at(299.999999), T0) == at(300)


def test_offset_does_not_move_the_replay_boundary() -> None:
    assert next_run(spec(offset_seconds=4), None, at(1)) == at(300)


# ------------------------------------------------------------------------------------------------ due


def test_at_start_only_run_at_start_tasks_are_due() -> None:
    assert due(ScheduleSettings(), {}, at(1), at(1)) == [TaskName.HOUSEKEEPING]


def test_at_a_boundary_everything_due_runs_dependencies_first() -> None:
    s = ScheduleSettings()
    assert due(s, {}, at(1), at(3600)) == list(TaskName)
    assert due(s, {}, at(1), at(300)) == [TaskName.TECHNICAL, TaskName.TRADE_DECISION, TaskName.HOUSEKEEPING]
    assert due(s, {}, at(1), at(900)) == [
        TaskName.TECHNICAL,
        TaskName.REGIME,
        TaskName.TRADE_DECISION,
        TaskName.HOUSEKEEPING,
    ]


def test_a_task_that_ran_at_this_boundary_is_not_due_again() -> None:
    s = ScheduleSettings()
    last = {name: at(300) for name in TaskName}
    assert due(s, last, T0, at(300)) == []
    assert due(s, last, T0, at(309.999)) == []
    assert due(s, last, T0, at(310)) == [TaskName.HOUSEKEEPING]


def test_missed_boundaries_coalesce_into_one_run() -> None:
    s = ScheduleSettings()
    last = {name: T0 for name in TaskName}
    assert due(s, last, T0, at(10 * 3600)) == list(TaskName)
    last_after = {name: at(10 * 3600) for name in TaskName}
    assert due(s, last_after, T0, at(10 * 3600 + 1)) == []


def test_disabled_tasks_are_never_due() -> None:
    s = settings(housekeeping=spec(10, enabled=False, run_at_start=True))
    assert TaskName.HOUSEKEEPING not in due(s, {}, T0, at(10**6))


# ------------------------------------------------------------------------------------------------ properties

_moments = st.integers(min_value=0, max_value=10**7).map(lambda s: T0 + timedelta(milliseconds=s))


@st.composite
def _settings(draw: st.DrawFn) -> ScheduleSettings:
    """Random valid schedules: dependencies only on tasks earlier in a random order (so acyclic), all enabled."""
    order = draw(st.permutations(list(TaskName)))
    tasks: dict[str, Any] = {"jitter_seconds": 0}
    for index, name in enumerate(order):
        depends_on = draw(st.lists(st.sampled_from(order[:index]), unique=True)) if index else []
        tasks[name.value] = TaskSpec(
            interval_seconds=draw(st.sampled_from([1.5, 10, 60, 300, 1800])),
            timeout_seconds=30,
            per_symbol=draw(st.booleans()),
            depends_on=depends_on,
            run_at_start=draw(st.booleans()),
        )
    return ScheduleSettings.model_validate(tasks)


@given(
    s=_settings(),
    started_at=_moments,
    ago=st.dictionaries(st.sampled_from(list(TaskName)), st.integers(0, 10**7)),
    later=st.integers(0, 10**7),
)
def test_due_is_exactly_the_tasks_whose_next_run_has_come(
    s: ScheduleSettings, started_at: datetime, ago: dict[TaskName, int], later: int
) -> None:
    now = started_at + timedelta(milliseconds=later)
    last_runs = {name: now - timedelta(milliseconds=ms) for name, ms in ago.items()}
    result = due(s, last_runs, started_at, now)
    assert set(result) == {n for n in TaskName if next_run(s.spec(n), last_runs.get(n), started_at) <= now}
    assert result == [n for n in s.ordered() if n in result]


@given(s=_settings())
def test_ordered_respects_every_dependency(s: ScheduleSettings) -> None:
    order = s.ordered()
    assert sorted(order) == sorted(TaskName)
    for name in order:
        assert all(order.index(dependency) < order.index(name) for dependency in s.spec(name).depends_on)


@given(
    interval=st.sampled_from([0.05, 1, 1.5, 7, 300, 3600]),
    moment=_moments,
    last=st.one_of(st.none(), _moments),
)
def test_next_run_is_a_boundary_after_the_last_run(interval: float, moment: datetime, last: datetime | None) -> None:
    result = next_run(spec(interval), last, moment)
    step = timedelta(seconds=interval)
    assert (result - datetime(1970, 1, 1, tzinfo=UTC)) % step == timedelta(0)
    if last is None:
        assert moment <= result < moment + step
    else:
        assert last < result <= last + step
