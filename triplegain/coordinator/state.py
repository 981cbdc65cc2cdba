"""The coordinator's state machine: RUNNING, PAUSED, HALTED, and the operator commands that move it.

Pure functions over immutable values (``triplegain.model.control``); persistence is
``triplegain.store.coordinator_state``.

- ``pause``: RUNNING → PAUSED (no new entries; exits and stops still run). Already PAUSED: applied, no change.
  From HALTED: refused (pausing would loosen a halt).
- ``resume``: PAUSED → RUNNING. From HALTED only with ``force`` (``resume --force``), else refused.
  Already RUNNING: applied, no change.
- ``halt``: from any state → HALTED (no orders except optional flattening). Already HALTED: applied, no change.
"""

from __future__ import annotations

from datetime import datetime

from triplegain.model import Applied, Command, CoordinatorState, Outcome, Refused, StateRecord, Verb


def allows_new_entries(state: CoordinatorState) -> bool:
    """Only RUNNING opens new positions."""
    return state is CoordinatorState.RUNNING


def allows_exits(state: CoordinatorState) -> bool:
    """RUNNING and PAUSED run exits and stops; HALTED sends no orders except an optional flattening."""
    return state in (CoordinatorState.RUNNING, CoordinatorState.PAUSED)


_TARGET = {
    Verb.PAUSE: CoordinatorState.PAUSED,
    Verb.RESUME: CoordinatorState.RUNNING,
    Verb.HALT: CoordinatorState.HALTED,
}


def apply_command(record: StateRecord, command: Command, now: datetime) -> Outcome:
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
