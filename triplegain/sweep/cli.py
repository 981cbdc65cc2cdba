"""``triplegain sweep``: a grid of replays in parallel worker processes, and a table of their results."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from triplegain.config import Settings
from triplegain.daemon.cli import AnswersFromOption, OnMissingOption, parse_usd
from triplegain.logs import configure_logging
from triplegain.sweep.grid import build_grid, parse_override, parse_seeds
from triplegain.sweep.local import LocalProcesses
from triplegain.sweep.sweep import (
    RANKED_BY_TEXT,
    SweepOptions,
    SweepRow,
    SweepTable,
    new_sweep_id,
    plan_runs,
    run_sweep,
)
from triplegain.sweep.sweep import sweep_table as table_of
from triplegain.sweep.work import RunOutcome, RunStarted, WorkEvent, WorkSource

INTERRUPTED = 130
"""Exit code after Ctrl-C (as a shell reports an interrupted command)."""


def sweep(
    ctx: typer.Context,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=V1,V2",
            help="A setting (dotted path, e.g. coordinator.consensus.agreement_boost) and the values to sweep, "
            "comma-separated, each read as YAML. Repeatable: the grid has every combination.",
        ),
    ] = None,
    replay: Annotated[
        list[Path] | None,
        typer.Option("--replay", help="A candle file: each is a point of the grid (repeatable).", dir_okay=False),
    ] = None,
    source: Annotated[
        Literal["replay", "synthetic"] | None,
        typer.Option("--source", help="replay or synthetic. Default: replay with --replay, else market.source."),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", metavar="N[,N…]", help="Seeds of --source synthetic: one run each.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, metavar="N", help="Worker processes running at once. Default: one a core."),
    ] = None,
    answers_from: AnswersFromOption = None,
    on_missing: OnMissingOption = None,
    max_llm_usd: Annotated[
        float | None,
        typer.Option("--max-llm-usd", metavar="USD", help="Each run's budget for paid LLM calls."),
    ] = None,
    work: Annotated[
        Literal["local", "nats"],
        typer.Option(
            "--work",
            help="local: worker processes on this machine; nats: runs put on a JetStream work queue for "
            "'triplegain worker' processes anywhere (bus.nats.*, TRIPLEGAIN_NATS_URL), on the same database.",
        ),
    ] = "local",
    worker_timeout: Annotated[
        float | None,
        typer.Option(
            "--worker-timeout",
            min=1,
            metavar="SECONDS",
            help="With --work nats: a run whose worker has not been heard of this long fails. Default: 30.",
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, metavar="N", help="How many best runs to name.")] = 3,
    fmt: Annotated[Literal["text", "json"], typer.Option("--format", "-f", help="Output format.")] = "text",
) -> None:
    """Replay a grid of settings × candle files × seeds, each on its own account, in parallel worker processes;
    print each run's results (P&L, drawdown, win rate, fees, trades) and the best runs by P&L."""
    parsed = [parse_override(text) for text in overrides or []]
    if any(override.key == "coordinator.account" for override in parsed):
        raise typer.BadParameter("each run has an account of its own (sweep-ID-N)", param_hint="--set")
    seed_list = parse_seeds(seeds)
    budget = parse_usd(max_llm_usd)
    if on_missing is not None and answers_from is None:
        raise typer.BadParameter("applies to --answers-from RUN only", param_hint="--on-missing")
    if worker_timeout is not None and work != "nats":
        raise typer.BadParameter("applies to --work nats", param_hint="--worker-timeout")
    if workers is not None and work != "local":
        raise typer.BadParameter(
            "applies to --work local (with nats, the workers are 'triplegain worker')", param_hint="--workers"
        )
    settings = ctx.obj.settings()
    files = list(replay or [])
    chosen = _source(settings, source, files, seeds)
    options = SweepOptions(
        sweep_id=new_sweep_id(),
        source=chosen,
        answers_from=answers_from,
        on_missing=on_missing or "conservative",
        max_llm_usd=budget,
    )
    grid = build_grid(parsed, files, seed_list)
    runs = plan_runs(settings, parsed, grid, options, os.environ)
    configure_logging(settings.logging.model_copy(update={"level": "warning"}), stream=sys.stderr)
    source_of_work: WorkSource
    errors = Console(stderr=True, soft_wrap=True)
    if work == "nats":
        from triplegain.sweep.jetstream import JetStreamSource  # imports nats-py: only for this way of working

        source_of_work = JetStreamSource(
            settings.bus.nats, options.sweep_id, heartbeat_timeout_seconds=worker_timeout or 30.0
        )
        errors.print(f"sweep {options.sweep_id}: {_plural(len(runs), 'run')} for 'triplegain worker' through NATS")
    else:
        count = min(workers or os.cpu_count() or 1, len(runs))
        source_of_work = LocalProcesses(count)
        errors.print(f"sweep {options.sweep_id}: {_plural(len(runs), 'run')} on {_plural(count, 'worker')}")
    labels = {run.index: f"#{run.index} {run.label}" for run in runs}
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )
    task = progress.add_task("runs", total=len(runs))

    def listener(event: WorkEvent) -> None:
        if isinstance(event, RunStarted):
            progress.console.print(f"{labels[event.index]}: started (worker {event.worker})")
            return
        progress.advance(task)
        said = f": {event.error}" if event.error else ""
        progress.console.print(f"{labels[event.index]}: {event.status}{said}")

    stopped = False

    async def sweeping() -> list[RunOutcome]:
        nonlocal stopped

        def interrupt() -> None:
            nonlocal stopped
            stopped = True
            progress.console.print("stopping: runs in progress stop cleanly (again: at once)")
            source_of_work.stop()

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupt)
        try:
            return await run_sweep(settings, runs, source_of_work, listener)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    with progress:
        outcomes = asyncio.run(sweeping())
    table = table_of(options.sweep_id, runs, outcomes, top)
    if fmt == "json":
        typer.echo(table.model_dump_json(indent=2))
    else:
        _print_table(table)
    if stopped:
        raise typer.Exit(INTERRUPTED)
    if any(row.status != "finished" for row in table.runs):
        raise typer.Exit(1)


def worker(ctx: typer.Context) -> None:
    """Take sweep runs from the JetStream work queue ('triplegain sweep --work nats'; bus.nats.*,
    TRIPLEGAIN_NATS_URL) and replay each on this machine against the sweep's database (TRIPLEGAIN_DATABASE_URL),
    one at a time, until Ctrl-C or SIGTERM (a run in progress is stopped cleanly first)."""
    from triplegain.sweep.jetstream import serve_runs  # imports nats-py: only for this command

    settings = ctx.obj.settings()
    configure_logging(settings.logging.model_copy(update={"level": "warning"}), stream=sys.stderr)

    def say(line: str) -> None:
        typer.echo(line, err=True)

    done = asyncio.run(serve_runs(settings.bus.nats, os.environ, asyncio.Event(), say))
    say(f"worker stopped after {_plural(done, 'run')}")


def _source(
    settings: Settings, source: Literal["replay", "synthetic"] | None, files: list[Path], seeds: str | None
) -> Literal["replay", "synthetic"]:
    """What the runs replay: the candle files given (each a point of the grid), else ``--source`` or
    ``market.source`` (the configured files, or synthetic candles); ``BadParameter`` when that cannot be swept."""
    if files and source == "synthetic":
        raise typer.BadParameter("--replay with --source synthetic: pick one", param_hint="--source")
    chosen = "replay" if files else (source or settings.market.source)
    if chosen == "ccxt":
        raise typer.BadParameter("a sweep replays: use --replay FILE or --source synthetic", param_hint="--source")
    if chosen == "replay" and not files and not settings.market.replay.files:
        raise typer.BadParameter(
            "give at least one candle file (or market.replay.files in the config)", param_hint="--replay"
        )
    if chosen == "replay" and seeds is not None:
        raise typer.BadParameter("seeds apply to --source synthetic", param_hint="--seeds")
    for path in files:
        if not path.is_file():
            raise typer.BadParameter(f"{path}: no such file", param_hint="--replay")
    return chosen


def _print_table(table: SweepTable) -> None:
    # Not a terminal (a file, a pipe): wide enough that no column is cut.
    console = Console(width=None if sys.stdout.isatty() else 240)
    shown = Table(title=f"sweep {table.sweep_id}", title_justify="left")
    columns = ("#", "run", "point", "status", "P&L", "P&L %", "max DD %", "win rate", "fees", "trades", "LLM calls")
    for column in columns:
        shown.add_column(column, justify="left" if column in ("point", "status") else "right")
    for row in table.runs:
        shown.add_row(
            str(row.index),
            _or_dash(row.run_id),
            row.label,
            row.status,
            _number(row.pnl, "{:+,.2f}"),
            _number(row.pnl_pct, "{:+.2f}"),
            _number(row.max_drawdown_pct, "{:.2f}"),
            _number(None if row.win_rate is None else 100 * row.win_rate, "{:.1f} %"),
            _number(row.fees, "{:,.2f}"),
            _or_dash(row.trades),
            _or_dash(row.llm_calls) + ("" if row.answers_served is None else f" ({row.answers_served} served)"),
        )
    console.print(shown)
    by_index = {row.index: row for row in table.runs}
    best = ", ".join(_best(by_index[index]) for index in table.best) or "none (no run finished)"
    console.print(f"best by {RANKED_BY_TEXT}: {best}")
    for row in table.runs:
        if row.status != "finished":
            console.print(f"#{row.index} {row.account}: {row.status}{': ' + row.error if row.error else ''}")


def _best(row: SweepRow) -> str:
    return f"#{row.index} ({row.label}, run {row.run_id}) {_number(row.pnl, '{:+,.2f}')}"


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)
