"""What travels between a sweep and its workers, and the ``WorkSource`` that hands runs to them.

A ``SweepRun`` is self-contained and plain data (its settings as JSON-ready values, its candle file as a path),
so it can be pickled to a local process or sent as JSON to a worker on another machine. A worker answers with a
``RunOutcome``: the run's summary (``daemon.summary.RunSummary``, results included) or why it has none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from triplegain.daemon.summary import RunSummary

Status = Literal["finished", "interrupted", "failed", "not started"]
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class SweepRun(BaseModel):
    """One grid point to replay, on an account of its own."""

    model_config = _FROZEN

    index: int = Field(description="the point's number in the grid, from 1")
    label: str = Field(description="what the point varies, in a line")
    account: str
    settings: dict[str, Any] = Field(description="the run's whole settings (``Settings.model_dump(mode='json')``)")
    source: Literal["replay", "synthetic"]
    replay_file: Path | None = Field(description="the candle file; None: the settings' (market.replay.files)")
    seed: int | None
    answers_from: int | None = None
    on_missing: Literal["conservative", "ask"] = "conservative"
    max_llm_usd: float | None = None


class RunOutcome(BaseModel):
    """How a run ended: ``finished`` (the replay ended), ``interrupted`` (a stop before the end), ``failed`` (an
    error, or its worker died) or ``not started`` (the sweep stopped first)."""

    model_config = _FROZEN

    index: int
    status: Status
    summary: RunSummary | None = None
    error: str | None = None
    worker: str | None = Field(default=None, description="the worker that ran it (pid, or host:pid)")


class RunStarted(BaseModel):
    """A run was handed to a worker (``pid``: its process, when local)."""

    model_config = _FROZEN

    index: int
    worker: str
    pid: int | None = None


WorkEvent = RunStarted | RunOutcome
Listener = Callable[[WorkEvent], None]


class WorkSource(Protocol):
    """Hands a sweep's runs to workers and collects one outcome per run.

    ``run`` returns when every run has an outcome, calling ``listener`` (from any thread) as runs start and end.
    ``stop`` (safe from a signal handler or another thread) asks for the end: no further run starts, runs in
    progress stop as the daemon does on a signal (``interrupted``); a second ``stop`` stops them at once.
    """

    async def run(self, runs: Sequence[SweepRun], listener: Listener) -> list[RunOutcome]: ...

    def stop(self) -> None: ...
