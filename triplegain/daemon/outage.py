"""The daemon's view of a database outage: how long writes have failed, what waits in memory, when to stop.

Three places hold rows while PostgreSQL is out of reach, each up to its own bound: the batching writer (agent
views, LLM calls, dead letters: ``database.writer.max_buffered_rows``), the paper broker (candles' writes:
``execution.max_unstored_candles``) and the coordinator (task runs, holds, degradation and breaker events:
``coordinator.max_unsaved_rows``). The first bound passed stops the daemon like a clean stop, without dropping
anything: what is still held when it exits is lost, which is why it exits with ``OUTAGE_EXIT_CODE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from triplegain.clock import Clock
from triplegain.coordinator.coordinator import Coordinator
from triplegain.errors import TriplegainError
from triplegain.execution.broker import PaperBroker
from triplegain.model import DatabaseOutage
from triplegain.store import BatchWriter

OUTAGE_EXIT_CODE = 75
"""Exit code of a run stopped by a database outage (EX_TEMPFAIL: run again once the database is back)."""


class DatabaseOutageStop(TriplegainError):
    """The run stopped (or ended) with rows the database did not take; the message says how many and why."""

    exit_code = OUTAGE_EXIT_CODE


@dataclass(frozen=True)
class Bound:
    """A bound on rows held in memory: the setting that sets it and how many rows it allows."""

    setting: str
    rows: int


@dataclass
class StoreWatch:
    """Watches the three holders of unwritten rows; ``observe`` at every candle, ``full`` when a bound is passed."""

    writer: BatchWriter
    broker: PaperBroker
    coordinator: Coordinator
    wall: Clock
    writer_bound: int
    coordinator_bound: int
    failing_since: float | None = None
    """Wall-clock monotonic time of the first failed write of the current outage."""
    passed: Bound | None = None
    """The first bound passed; None while none was."""
    held_at_stop: int = 0
    on_outage: Callable[[DatabaseOutage], None] | None = None
    """Told when an outage starts (the first failed write) and when it ends (the alerts)."""

    def held(self) -> int:
        """Rows in memory that the database has not taken yet."""
        return self.writer.stats().buffered + self.broker.unstored + self.coordinator.unsaved_rows

    def failing(self) -> bool:
        """The last write of any of the three failed."""
        return bool(
            self.writer.consecutive_failures or self.broker.write_failures or self.coordinator.save_failures
        )

    def observe(self) -> Bound | None:
        """Note whether writes fail now; the bound just passed (once), if any."""
        if self.failing():
            if self.failing_since is None:
                self._begin()
        elif self.failing_since is not None:
            self._tell(started=False)
            self.failing_since = None
        if self.passed is not None:
            return None
        if self.writer.overflowed.is_set():
            return self.full(Bound("database.writer.max_buffered_rows", self.writer_bound))
        if self.coordinator.overflowed.is_set():
            return self.full(Bound("coordinator.max_unsaved_rows", self.coordinator_bound))
        return None

    def full(self, bound: Bound) -> Bound:
        """A bound was passed: remember it (the first one) and the rows held then."""
        if self.passed is None:
            self.passed = bound
            self.held_at_stop = self.held()
            if self.failing_since is None:
                self._begin()
        return self.passed

    def _begin(self) -> None:
        self.failing_since = self.wall.monotonic()
        self._tell(started=True)

    def _tell(self, *, started: bool) -> None:
        if self.on_outage is not None:
            self.on_outage(
                DatabaseOutage(
                    started=started,
                    at=self.wall.now(),
                    unreachable_seconds=self.unreachable_seconds(),
                    rows_held=self.held(),
                )
            )

    def unreachable_seconds(self) -> float:
        return 0.0 if self.failing_since is None else self.wall.monotonic() - self.failing_since

    def status(self) -> str:
        """The database's part of the status line."""
        if self.failing_since is None and not self.failing():
            return "ok"
        return f"unreachable for {self.unreachable_seconds():.0f} s, {self.held():,} rows held"

    def stop_line(self) -> str:
        """The line printed when a bound stops the daemon."""
        bound = self.passed
        assert bound is not None
        return (
            f"database unreachable for {self.unreachable_seconds():.0f} s; {self.held_at_stop:,} rows held in memory, "
            f"the bound {bound.setting} = {bound.rows:,} reached; stopping without dropping them — they are written "
            "if the database comes back before the daemon exits, and lost only if it does not"
        )

    def exit_error(self, left: int) -> DatabaseOutageStop:
        """What the run ends with when a bound stopped it or rows are left unwritten (``left`` of them)."""
        resume = "nothing unwritten was reported stored: run again once the database is back to resume from it"
        if self.passed is not None:
            fate = f"{left:,} of them could not be written and are lost" if left else "all of them were written since"
            return DatabaseOutageStop(f"{self.stop_line()}; stopped: {fate}; {resume}")
        return DatabaseOutageStop(
            f"the run ended with the database unreachable for {self.unreachable_seconds():.0f} s: {left:,} rows "
            f"held in memory could not be written and are lost; {resume}"
        )
