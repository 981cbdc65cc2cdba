"""The coordinator's state machine: RUNNING, PAUSED, HALTED, and the operator commands that move it.

Pure functions over immutable values; persistence is ``triplegain.store.coordinator_state``.

- ``pause``: RUNNING → PAUSED (no new entries; exits and stops still run). Already PAUSED: applied, no change.
  From HALTED: refused (pausing would loosen a halt).
- ``resume``: PAUSED → RUNNING. From HALTED only with ``force`` (``resume --force``), else refused.
  Already RUNNING: applied, no change.
- ``halt``: from any state → HALTED (no orders except optional flattening). Already HALTED: applied, no change.

A command arrives as a verb and a JSON object of arguments (a ``coordinator_commands`` row); ``Command.parse``
accepts only the documented ones: ``force`` (a boolean, ``resume`` only), ``flatten`` (a boolean, ``halt`` only:
close every position as the coordinator halts) and ``reason`` (a string).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class CoordinatorState(StrEnum):
    """What the coordinator may do; the values are those of ``coordinator_state.state``."""

    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    HALTED = "HALTED"


class Verb(StrEnum):
    """An operator command; the values are those of ``coordinator_commands.verb``."""

    PAUSE = "pause"
    RESUME = "resume"
    HALT = "halt"


ARGUMENTS = ("force", "flatten", "reason")
"""The arguments a command row may carry."""


class CommandError(ValueError):
    """A command's verb or arguments are not the documented ones."""


def allows_new_entries(state: CoordinatorState) -> bool:
    """Only RUNNING opens new positions."""
    return state is CoordinatorState.RUNNING


def allows_exits(state: CoordinatorState) -> bool:
    """RUNNING and PAUSED run exits and stops; HALTED sends no orders except an optional flattening."""
    return state in (CoordinatorState.RUNNING, CoordinatorState.PAUSED)


@dataclass(frozen=True)
class StateRecord:
    """The current state, when it last changed, who changed it and why."""

    state: CoordinatorState
    changed_at: datetime
    changed_by: str
    reason: str

    def __post_init__(self) -> None:
        if self.changed_at.tzinfo is None:
            raise ValueError("StateRecord.changed_at must be timezone-aware")


@dataclass(frozen=True)
class Command:
    """A validated operator command."""

    verb: Verb
    force: bool = False
    flatten: bool = False
    reason: str = ""
    requested_by: str = "operator"

    def __post_init__(self) -> None:
        if not isinstance(self.verb, Verb):
            raise CommandError(f"unknown verb {self.verb!r}: pause, resume and halt are allowed")
        if not isinstance(self.force, bool):
            raise CommandError(f"force must be true or false, got {self.force!r}")
        if self.force and self.verb is not Verb.RESUME:
            raise CommandError(f"force applies only to resume, not to {self.verb.value}")
        if not isinstance(self.flatten, bool):
            raise CommandError(f"flatten must be true or false, got {self.flatten!r}")
        if self.flatten and self.verb is not Verb.HALT:
            raise CommandError(f"flatten applies only to halt, not to {self.verb.value}")
        if not isinstance(self.reason, str):
            raise CommandError(f"reason must be a string, got {self.reason!r}")
        if not isinstance(self.requested_by, str) or not self.requested_by.strip():
            raise CommandError("requested_by must name who asked")

    @classmethod
    def parse(cls, verb: str, args: Mapping[str, object], *, requested_by: str = "operator") -> Command:
        """The command a verb and its arguments describe; ``CommandError`` for anything undocumented."""
        try:
            known_verb = Verb(verb)
        except ValueError:
            raise CommandError(f"unknown verb {verb!r}: pause, resume and halt are allowed") from None
        if not isinstance(args, Mapping):
            raise CommandError(f"arguments must be a JSON object, got {args!r}")
        unknown = sorted(str(key) for key in args if key not in ARGUMENTS)
        if unknown:
            raise CommandError(f"unknown argument(s) {', '.join(unknown)}: only force, flatten and reason are allowed")
        force = args.get("force", False)
        flatten = args.get("flatten", False)
        reason = args.get("reason", "")
        if not isinstance(force, bool):
            raise CommandError(f"force must be true or false, got {force!r}")
        if not isinstance(flatten, bool):
            raise CommandError(f"flatten must be true or false, got {flatten!r}")
        if not isinstance(reason, str):
            raise CommandError(f"reason must be a string, got {reason!r}")
        return cls(verb=known_verb, force=force, flatten=flatten, reason=reason, requested_by=requested_by)

    def args(self) -> dict[str, object]:
        """The arguments as stored in a command row (only those that differ from the defaults)."""
        args: dict[str, object] = {}
        if self.force:
            args["force"] = True
        if self.flatten:
            args["flatten"] = True
        if self.reason:
            args["reason"] = self.reason
        return args


@dataclass(frozen=True)
class Applied:
    """The command was carried out; ``changed`` is False when the state already was what it asked for."""

    record: StateRecord
    changed: bool
    message: str


@dataclass(frozen=True)
class Refused:
    """The command was not carried out, and why."""

    reason: str

    @property
    def message(self) -> str:
        return self.reason


Outcome = Applied | Refused

_TARGET = {
    Verb.PAUSE: CoordinatorState.PAUSED,
    Verb.RESUME: CoordinatorState.RUNNING,
    Verb.HALT: CoordinatorState.HALTED,
}


def apply(record: StateRecord, command: Command, now: datetime) -> Outcome:
    """The outcome of ``command`` on ``record`` at ``now``."""
    current, target = record.state, _TARGET[command.verb]
    if current is target:
        return Applied(record=record, changed=False, message=f"already {current.value}; no change")
    if current is CoordinatorState.HALTED:
        if command.verb is Verb.PAUSE:
            return Refused(reason="pause from HALTED is not allowed; resume --force first")
        if not command.force:
            return Refused(reason="resume from HALTED needs --force")
    reason = command.reason or f"{command.verb.value} requested"
    new = StateRecord(state=target, changed_at=now, changed_by=command.requested_by, reason=reason)
    return Applied(record=new, changed=True, message=f"{current.value} → {target.value}")
