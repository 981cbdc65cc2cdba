from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triplegain.coordinator.state import allows_exits, allows_new_entries, apply_command
from triplegain.model import Applied, Command, CommandError, CoordinatorState, Refused, StateRecord, Verb

RUNNING, PAUSED, HALTED = CoordinatorState.RUNNING, CoordinatorState.PAUSED, CoordinatorState.HALTED
T0 = datetime(2024, 3, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def record(state: CoordinatorState) -> StateRecord:
    return StateRecord(state=state, changed_at=T0, changed_by="test", reason="set up")


PAUSE, RESUME, HALT = Command(Verb.PAUSE), Command(Verb.RESUME), Command(Verb.HALT)
FORCE_RESUME = Command(Verb.RESUME, force=True)


def test_state_values_match_the_table_check() -> None:
    assert [s.value for s in CoordinatorState] == ["RUNNING", "PAUSED", "HALTED"]


@pytest.mark.parametrize(
    ("start", "command", "end"),
    [
        (RUNNING, PAUSE, PAUSED),
        (PAUSED, RESUME, RUNNING),
        (PAUSED, FORCE_RESUME, RUNNING),
        (HALTED, FORCE_RESUME, RUNNING),
        (RUNNING, HALT, HALTED),
        (PAUSED, HALT, HALTED),
    ],
)
def test_transitions_change_the_record(start: CoordinatorState, command: Command, end: CoordinatorState) -> None:
    cmd = Command(command.verb, force=command.force, reason="because", requested_by="alice")
    outcome = apply_command(record(start), cmd, T1)
    assert outcome == Applied(
        record=StateRecord(state=end, changed_at=T1, changed_by="alice", reason="because"),
        changed=True,
        message=f"{start.value} → {end.value}",
    )


@pytest.mark.parametrize(
    ("state", "command"), [(PAUSED, PAUSE), (RUNNING, RESUME), (RUNNING, FORCE_RESUME), (HALTED, HALT)]
)
def test_commands_for_the_current_state_apply_without_change(state: CoordinatorState, command: Command) -> None:
    before = record(state)
    outcome = apply_command(before, command, T1)
    assert isinstance(outcome, Applied)
    assert outcome.record is before
    assert not outcome.changed


def test_resume_from_halted_needs_force() -> None:
    assert apply_command(record(HALTED), RESUME, T1) == Refused(reason="resume from HALTED needs --force")


def test_pause_does_not_loosen_a_halt() -> None:
    outcome = apply_command(record(HALTED), PAUSE, T1)
    assert isinstance(outcome, Refused)
    assert "HALTED" in outcome.message


def test_an_unexplained_command_records_its_verb_as_the_reason() -> None:
    outcome = apply_command(record(RUNNING), PAUSE, T1)
    assert isinstance(outcome, Applied)
    assert outcome.record.reason == "pause requested"
    assert outcome.record.changed_by == "operator"


def test_what_each_state_allows() -> None:
    assert [allows_new_entries(s) for s in CoordinatorState] == [True, False, False]
    assert [allows_exits(s) for s in CoordinatorState] == [True, True, False]


def test_parse_accepts_the_documented_arguments() -> None:
    assert Command.parse("pause", {}) == Command(Verb.PAUSE)
    assert Command.parse("resume", {"force": True, "reason": "checked"}, requested_by="bob") == Command(
        Verb.RESUME, force=True, reason="checked", requested_by="bob"
    )
    assert Command.parse("halt", {"force": False}) == Command(Verb.HALT)


@pytest.mark.parametrize(
    ("verb", "args", "message"),
    [
        ("stop", {}, "unknown verb 'stop'"),
        ("RESUME", {}, "unknown verb"),
        ("resume", {"force": "yes please"}, "force must be true or false"),
        ("resume", {"force": 1}, "force must be true or false"),
        ("pause", {"force": True}, "force applies only to resume"),
        ("halt", {"reason": 42}, "reason must be a string"),
        ("halt", {"flatten": True, "when": "now"}, "unknown argument(s) when"),
        ("pause", {"flatten": True}, "flatten applies only to halt"),
    ],
)
def test_parse_refuses_anything_else(verb: str, args: dict[str, object], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Command.parse(verb, args)


def test_parse_refuses_arguments_that_are_not_an_object() -> None:
    with pytest.raises(CommandError, match="JSON object"):
        Command.parse("pause", ["force"])  # type: ignore[arg-type]


def test_command_needs_a_requester_and_args_round_trip() -> None:
    with pytest.raises(CommandError, match="requested_by"):
        Command(Verb.PAUSE, requested_by=" ")
    command = Command(Verb.RESUME, force=True, reason="ok")
    assert Command.parse(command.verb.value, command.args()) == command
    assert Command(Verb.HALT).args() == {}


def test_record_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        StateRecord(state=RUNNING, changed_at=datetime(2024, 1, 1), changed_by="x", reason="y")


def reference(state: str, verb: str, force: bool) -> str:
    """The rules in their simplest form."""
    if verb == "halt":
        return "HALTED"
    if state == "HALTED":
        return "RUNNING" if verb == "resume" and force else "HALTED"
    return "PAUSED" if verb == "pause" else "RUNNING"


commands = st.one_of(
    st.sampled_from([PAUSE, HALT]),
    st.builds(Command, verb=st.just(Verb.RESUME), force=st.booleans()),
)


@given(start=st.sampled_from(CoordinatorState), sequence=st.lists(commands, max_size=30))
def test_any_sequence_matches_the_reference_model(start: CoordinatorState, sequence: list[Command]) -> None:
    current, expected = record(start), start.value
    for i, command in enumerate(sequence):
        outcome = apply_command(current, command, T0 + timedelta(seconds=i + 1))
        expected = reference(expected, command.verb.value, command.force)
        after = outcome.record if isinstance(outcome, Applied) else current
        if current.state is HALTED and after.state is not HALTED:
            assert command.verb is Verb.RESUME
            assert command.force
        if isinstance(outcome, Applied) and not outcome.changed:
            assert outcome.record == current
        current = after
        assert current.state.value == expected
