"""A sweep from its grid to its table: each point's settings checked up front, the runs handed to a
``WorkSource``, and their results (``RunSummary.results``, the figures ``triplegain results`` prints) in rows.

    runs = plan_runs(settings, build_grid(overrides, files, seeds), SweepOptions(...), environ)
    outcomes = await run_sweep(settings, runs, LocalProcesses(2), listener)
    table = sweep_table(sweep_id, runs, outcomes)

Every run has an account of its own (``sweep-<id>-<n>``) in one database, the one ``triplegain run`` would use.
The sweep opens it (and so keeps an embedded server up) and migrates it before any worker starts, and after the
runs records the end of any run whose worker died before it could (``store.runs.end_open_runs``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from triplegain.clock import WallClock
from triplegain.config import Settings, with_overrides
from triplegain.daemon.llm_plan import plan_llm
from triplegain.errors import ConfigError, UserError
from triplegain.store import migrate, open_database
from triplegain.store.runs import end_open_runs
from triplegain.sweep.grid import GridPoint, Override
from triplegain.sweep.work import Listener, RunOutcome, Status, SweepRun, WorkSource

RANKED_BY = "pnl"
"""The best runs are those with the highest P&L (final equity less starting equity, after every fee)."""
RANKED_BY_TEXT = "P&L (final equity less starting equity, after fees)"


@dataclass(frozen=True)
class SweepOptions:
    """What every run of the sweep is given besides its grid point."""

    sweep_id: str
    source: Literal["replay", "synthetic"]
    answers_from: int | None = None
    on_missing: Literal["conservative", "ask"] = "conservative"
    max_llm_usd: float | None = None


def new_sweep_id() -> str:
    """A short random id naming the sweep's accounts."""
    return secrets.token_hex(3)


def account_of(sweep_id: str, index: int) -> str:
    return f"sweep-{sweep_id}-{index}"


def plan_runs(
    settings: Settings,
    overrides: Sequence[Override],
    points: Sequence[GridPoint],
    options: SweepOptions,
    environ: Mapping[str, str],
) -> list[SweepRun]:
    """One ``SweepRun`` a point, its settings validated; ``ConfigError`` listing every bad override (each value
    alone first, naming the ``--set`` it came from, then each point's combination), or ``UserError`` for a run
    that could call a paid LLM provider without ``--max-llm-usd`` or ``--answers-from``."""
    problems: list[str] = []
    for override in overrides:
        for position, value in enumerate(override.values):
            try:
                with_overrides(settings, {override.key: value}, {override.key: override.origin(position)})
            except ConfigError as error:
                problems.extend(problem for problem in error.problems if problem not in problems)
    if problems:
        raise ConfigError("--set", problems)
    runs = []
    for point in points:
        values = dict(point.overrides)
        account = account_of(options.sweep_id, point.index)
        values["coordinator.account"] = account
        origins = {key: f"--set {key} in run {point.index} ({point.label})" for key in values}
        try:
            chosen = with_overrides(settings, values, origins)
        except ConfigError as error:
            problems.extend(problem for problem in error.problems if problem not in problems)
            continue
        if options.answers_from is None:
            plan_llm(chosen, replaying=True, environ=environ, max_llm_usd=options.max_llm_usd, answers=None)
        runs.append(
            SweepRun(
                index=point.index,
                label=point.label,
                account=account,
                settings=chosen.model_dump(mode="json"),
                source=options.source,
                replay_file=point.candles,
                seed=point.seed,
                answers_from=options.answers_from,
                on_missing=options.on_missing,
                max_llm_usd=options.max_llm_usd,
            )
        )
    if problems:
        raise ConfigError("--set", problems)
    if not runs:
        raise UserError("sweep: the grid has no runs")
    return runs


async def run_sweep(
    settings: Settings, runs: Sequence[SweepRun], source: WorkSource, listener: Listener
) -> list[RunOutcome]:
    """Every run's outcome, in the grid's order (see the module docstring)."""
    async with open_database(settings.database) as db:
        await migrate(db)
        outcomes = await source.run(runs, listener)
        wall = WallClock()
        by_index = {run.index: run for run in runs}
        for outcome in outcomes:
            if outcome.status in ("failed", "interrupted") and outcome.summary is None and outcome.error:
                await end_open_runs(db, by_index[outcome.index].account, wall.now(), outcome.error)
    return outcomes


class SweepRow(BaseModel):
    """One run of the sweep in figures (None where the run has no results)."""

    model_config = ConfigDict(frozen=True)

    index: int
    label: str
    account: str
    status: Status
    error: str | None
    run_id: int | None
    candles: int | None
    pnl: float | None = Field(description="final equity less starting equity, after every fee")
    pnl_pct: float | None = Field(description="P&L in % of the starting equity")
    max_drawdown_pct: float | None
    win_rate: float | None = Field(description="share of closed round trips with a P&L > 0")
    fees: float | None
    trades: int | None = Field(description="closed round trips")
    final_equity: float | None
    llm_calls: int | None = Field(description="LLM calls the run made (not those served from --answers-from)")
    answers_served: int | None = Field(description="with --answers-from: answers served from that run's calls")


class SweepTable(BaseModel):
    """What ``triplegain sweep`` prints: every run, and the best ones by ``ranked_by``."""

    model_config = ConfigDict(frozen=True)

    sweep_id: str
    ranked_by: str = RANKED_BY
    runs: list[SweepRow]
    best: list[int] = Field(description="the indexes of the best finished runs, best first")


def sweep_table(sweep_id: str, runs: Sequence[SweepRun], outcomes: Sequence[RunOutcome], top: int) -> SweepTable:
    by_index = {outcome.index: outcome for outcome in outcomes}
    rows = [_row(run, by_index[run.index]) for run in runs]
    ranked = sorted(
        (row for row in rows if row.status == "finished" and row.pnl is not None),
        key=lambda row: (-(row.pnl or 0.0), row.index),
    )
    return SweepTable(sweep_id=sweep_id, runs=rows, best=[row.index for row in ranked[:top]])


def _row(run: SweepRun, outcome: RunOutcome) -> SweepRow:
    summary = outcome.summary
    results = summary.results if summary is not None else None
    pnl = pnl_pct = None
    if results is not None and results.final_equity is not None:
        pnl = results.final_equity - results.starting_equity
        pnl_pct = 100 * pnl / results.starting_equity if results.starting_equity > 0 else None
    return SweepRow(
        index=run.index,
        label=run.label,
        account=run.account,
        status=outcome.status,
        error=outcome.error,
        run_id=summary.run_id if summary is not None else None,
        candles=summary.candles if summary is not None else None,
        pnl=pnl,
        pnl_pct=pnl_pct,
        max_drawdown_pct=results.drawdown.max_pct if results is not None else None,
        win_rate=results.total.win_rate if results is not None else None,
        fees=results.total.fees if results is not None else None,
        trades=results.total.closed if results is not None else None,
        final_equity=results.final_equity if results is not None else None,
        llm_calls=sum(use.calls for use in summary.llm_calls.values()) if summary is not None else None,
        answers_served=summary.answers.served if summary is not None and summary.answers is not None else None,
    )
