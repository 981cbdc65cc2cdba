"""What waits for the coordinator's next snapshot: rows kept in order until one transaction stores them all.

A failed save puts what it took back in front, so nothing is lost or reordered while the database is away.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from triplegain.coordinator.degradation import Transition
from triplegain.store.coordinator_snapshot import BreakerEventRow, TaskRunRow
from triplegain.store.decisions import DecisionWrite


@dataclass
class UnsavedRows:
    """Finished task runs, hold decisions, degradation transitions and breaker events not stored yet."""

    task_runs: list[TaskRunRow] = field(default_factory=list)
    holds: list[DecisionWrite] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    breaker_events: list[BreakerEventRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.task_runs) + len(self.holds) + len(self.transitions) + len(self.breaker_events)

    def take(self) -> UnsavedRows:
        """Everything waiting, in order; this is left empty."""
        taken = UnsavedRows(self.task_runs, self.holds, self.transitions, self.breaker_events)
        self.task_runs, self.holds, self.transitions, self.breaker_events = [], [], [], []
        return taken

    def put_back(self, taken: UnsavedRows) -> None:
        """Rows a failed save took, back in front of what arrived meanwhile."""
        self.task_runs[:0] = taken.task_runs
        self.holds[:0] = taken.holds
        self.transitions[:0] = taken.transitions
        self.breaker_events[:0] = taken.breaker_events
