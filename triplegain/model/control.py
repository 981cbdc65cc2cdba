"""What operator commands and the coordinator's state are: validated values, shared by the CLI that submits a
command, the store that queues it and the coordinator that applies it (``coordinator.state.apply_command``).

A command arrives as a verb and a JSON object of arguments (a ``coordinator_commands`` row); ``Command.parse``
accepts only the documented ones: ``force`` (a boolean, ``resume`` only), ``flatten`` (a boolean, ``halt`` only:
close every position as the coordinator halts) and ``reason`` (a string).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from triplegain.errors import UserError
from triplegain.model.names import CoordinatorState, Verb

ARGUMENTS = ("force", "flatten", "reason")
"""The arguments a command row may carry."""


class CommandError(UserError):
    """A command's verb or arguments are not the documented ones."""


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
