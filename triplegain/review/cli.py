"""``triplegain decisions …``, ``triplegain llm-calls …``, ``triplegain report`` and ``triplegain runs compare``:
reviewing what was decided.

Registered by ``triplegain.commands``. Every option is checked before the database is opened (``args``): a mistake
is one line naming the option and its value, exit code 2. Lists, exports and the report read the latest daemon run
unless told otherwise: ``--run ID`` another run, ``--account NAME`` every run of an account, ``--all`` everything;
a list's title says which. An id nobody has is one line, exit code 1. Ids may be
given whole or by their first 8 or more hex digits, as the lists print them.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
from rich.console import Console

from triplegain.clock import WallClock
from triplegain.errors import TriplegainError, UserError
from triplegain.review.args import (
    ACTIONS,
    IdQuery,
    ScopeChoice,
    parse_action,
    parse_choice,
    parse_id,
    parse_positive,
    parse_scope,
    parse_symbol,
    parse_text,
    parse_window,
)
from triplegain.review.call_queries import count_llm_calls, list_llm_calls, llm_call, llm_call_pages
from triplegain.review.comparison import RunComparison, compare_runs
from triplegain.review.decision_queries import count_decisions, decision_pages, decision_record, list_decisions
from triplegain.review.export import (
    DECISION_COLUMNS,
    LLM_CALL_COLUMNS,
    Column,
    ExportFormat,
    Pages,
    atomic_path,
    write_csv,
    write_jsonl,
    write_parquet,
)
from triplegain.review.filters import DEFAULT_LIMIT, DecisionFilter, LLMCallFilter
from triplegain.review.id_prefixes import decision_ids_starting_with, llm_call_ids_starting_with
from triplegain.review.records import DecisionRecord, DecisionSummary, LLMCall, LLMCallSummary, ReportScope
from triplegain.review.render import Precision, call_block, call_table, decision_table, print_decision, scope_text
from triplegain.review.report import TABLE_LIMIT, render_html, report_data
from triplegain.review.report_queries import find_run, latest_run, report_scope
from triplegain.review.results import Results
from triplegain.review.results_queries import scope_results
from triplegain.review.results_text import results_lines
from triplegain.review.run_queries import run_record
from triplegain.store import Database, interrupt_on_sigterm, open_database
from triplegain.store.settings import DatabaseSettings

decisions_app = typer.Typer(
    help="Review the coordinator's decisions: list them, show one with everything behind it, export them.",
    no_args_is_help=True,
)
llm_calls_app = typer.Typer(
    help="Review every LLM attempt (agents' reviews and conflict resolution): list, show, export.",
    no_args_is_help=True,
)
runs_app = typer.Typer(help="Daemon runs: compare two.", no_args_is_help=True)


class NotFound(TriplegainError):
    """No stored row has the id the user gave (exit code 1: the input was well formed)."""


# --- options shared by the commands ------------------------------------------------------------------------

Since = Annotated[
    str | None,
    typer.Option(
        "--since", metavar="TIME", help="From this time on, inclusive: ISO 8601 date or date-time, UTC if no offset."
    ),
]
Until = Annotated[
    str | None,
    typer.Option("--until", metavar="TIME", help="Before this time (exclusive), same forms as --since."),
]
Symbol = Annotated[str | None, typer.Option("--symbol", metavar="SYMBOL", help="Only this market, e.g. BTC/USDT.")]
Provider = Annotated[
    str | None, typer.Option("--provider", metavar="NAME", help="Only where this LLM provider was asked.")
]
Run = Annotated[
    str | None, typer.Option("--run", metavar="ID", help="This daemon run. Default: the latest run.")
]
Account = Annotated[
    str | None, typer.Option("--account", metavar="NAME", help="Every daemon run of this account.")
]
Everything = Annotated[bool, typer.Option("--all", help="Every run of every account.")]
Limit = Annotated[
    str | None, typer.Option("--limit", metavar="N", help=f"At most N rows, the newest (default {DEFAULT_LIMIT}).")
]
ExportLimit = Annotated[
    str | None, typer.Option("--limit", metavar="N", help="At most N rows, the oldest first (default: all).")
]
Full = Annotated[bool, typer.Option("--full", help="Whole prompts, responses and JSON instead of their start.")]
Format = Annotated[str, typer.Option("--format", "-f", metavar="jsonl|csv|parquet", help="Output format.")]
Out = Annotated[
    str | None,
    typer.Option("--out", "-o", metavar="FILE", help="Write to FILE (required for parquet). Default, or -: stdout."),
]


def _decision_filter(
    since: str | None,
    until: str | None,
    symbol: str | None,
    action: str | None,
    conflicts_only: bool,
    provider: str | None,
    limit: int | None,
) -> DecisionFilter:
    start, end = parse_window(since, until)
    return DecisionFilter(
        since=start,
        until=end,
        symbol=parse_symbol(symbol),
        action=parse_action(action),
        conflicts_only=conflicts_only,
        provider=parse_text(provider, "--provider"),
        limit=limit,
    )


def _call_filter(
    since: str | None,
    until: str | None,
    provider: str | None,
    purpose: str | None,
    symbol: str | None,
    errors_only: bool,
    limit: int | None,
) -> LLMCallFilter:
    start, end = parse_window(since, until)
    return LLMCallFilter(
        since=start,
        until=end,
        provider=parse_text(provider, "--provider"),
        purpose=parse_text(purpose, "--purpose"),
        symbol=parse_symbol(symbol),
        errors_only=errors_only,
        limit=limit,
    )


async def chosen_scope(db: Database, choice: ScopeChoice) -> ReportScope:
    """The rows a command reads (see ``ScopeChoice``); ``NotFound`` for a run nobody has."""
    if choice.run_id is not None:
        run = await find_run(db, choice.run_id)
        if run is None:
            raise NotFound(f"--run: no daemon run {choice.run_id}")
        return await report_scope(db, run)
    if choice.account is not None or choice.everything:
        return await report_scope(db, None, choice.account)
    return await report_scope(db, await latest_run(db))


def scoped(chosen: Filter, scope: ReportScope) -> Filter:
    """``chosen`` narrowed to the scope's run or account."""
    if scope.run is not None:
        return chosen.model_copy(update={"run_id": scope.run.id})
    return chosen.model_copy(update={"account": scope.account})


def _format(value: str, out: str | None) -> tuple[ExportFormat, Path | None]:
    """The export format and the file to write (None: stdout)."""
    try:
        chosen = ExportFormat(value.strip().lower())
    except ValueError:
        raise UserError(
            f"--format: {value!r} is not an export format — one of {', '.join(f.value for f in ExportFormat)}"
        ) from None
    path = _out_path(out, "-")
    if path is None and chosen is ExportFormat.PARQUET:
        raise UserError("--out: missing — parquet is binary and is written to a file only: --out FILE.parquet")
    return chosen, path


def _out_path(value: str | None, stdout_name: str | None) -> Path | None:
    """A file to write, in a folder that exists; None for stdout (no value, or ``stdout_name``)."""
    if value is None or value == stdout_name:
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        raise UserError(f"--out: {value!r} is a folder — a file name is allowed")
    if not path.parent.is_dir():
        raise UserError(f"--out: {value!r} is in a folder that does not exist ({path.parent})")
    return path


def _emit(draw: Callable[[Console], None]) -> None:
    """Print what ``draw`` prints, without the spaces rich pads lines with (they clutter files and diffs)."""
    console = Console(highlight=False)
    with console.capture() as captured:
        draw(console)
    sys.stdout.write("".join(f"{line.rstrip()}\n" for line in captured.get().splitlines()))


T = TypeVar("T")
Filter = TypeVar("Filter", DecisionFilter, LLMCallFilter)


def _run(database: DatabaseSettings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the configured database, do ``work`` with it, close it; its result. SIGTERM stops it like Ctrl-C."""

    async def main() -> T:
        async with open_database(database) as db:
            return await work(db)

    try:
        with interrupt_on_sigterm():
            return asyncio.run(main())
    except BrokenPipeError:
        # The reader of stdout went away (`… export | head`): stop quietly. Point stdout at /dev/null so that
        # Python's flush at exit does not fail again (the way the Python docs recommend).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(1) from None


async def _resolve(
    db: Database, query: IdQuery, what: str, starting_with: Callable[[Database, str], Awaitable[list[UUID]]]
) -> UUID:
    """The one id ``query`` names (it may be a prefix); ``NotFound`` when none or several do."""
    if query.exact is not None:
        return query.exact
    assert query.prefix is not None
    matches = await starting_with(db, query.prefix)
    if not matches:
        raise NotFound(f"no {what} has an id starting with {query.prefix}")
    if len(matches) > 1:
        raise NotFound(f"several {what}s have an id starting with {query.prefix}: give more digits")
    return matches[0]


# --- decisions ---------------------------------------------------------------------------------------------


@decisions_app.command("list")
def decisions_list(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    symbol: Symbol = None,
    action: Annotated[str | None, typer.Option("--action", metavar="|".join(ACTIONS), help="Only this action.")] = None,
    conflicts_only: Annotated[
        bool, typer.Option("--conflicts-only", help="Only decisions where a conflict rule fired.")
    ] = False,
    provider: Provider = None,
    run: Run = None,
    account: Account = None,
    everything: Everything = False,
    limit: Limit = None,
) -> None:
    """List decisions of the latest run (or --run, --account, --all), newest first; `decisions show ID` for one."""
    chosen = _decision_filter(
        since, until, symbol, action, conflicts_only, provider, parse_positive(limit, "--limit", DEFAULT_LIMIT)
    )
    choice = parse_scope(run, account, everything)
    database = ctx.obj.settings().database

    async def work(db: Database) -> tuple[list[DecisionSummary], int, ReportScope]:
        scope = await chosen_scope(db, choice)
        decisions = scoped(chosen, scope)
        return await list_decisions(db, decisions), await count_decisions(db, decisions), scope

    rows, total, scope = _run(database, work)
    if not rows:
        typer.echo(f"no decisions of {scope_text(scope)} match")
        return
    _emit(lambda console: console.print(decision_table(rows, total, scope_text(scope))))


@decisions_app.command("show")
def decisions_show(
    ctx: typer.Context,
    decision_id: Annotated[str, typer.Argument(metavar="ID", help="A decision's id, or its first 8+ hex digits.")],
    full: Full = False,
) -> None:
    """Show a decision: agent views, consensus terms, conflicts, every LLM attempt, risk rules, order and fills."""
    query = parse_id(decision_id, "ID", "a decision")
    settings = ctx.obj.settings()

    async def work(db: Database) -> DecisionRecord:
        wanted = await _resolve(db, query, "decision", decision_ids_starting_with)
        record = await decision_record(db, wanted)
        if record is None:
            raise NotFound(f"no decision {wanted}")
        return record

    record = _run(settings.database, work)
    rules = settings.execution.rules_for(record.decision.symbol)
    precision = Precision.of_steps(rules.price_step, rules.qty_step)
    _emit(lambda console: print_decision(console, record, full=full, precision=precision))


@decisions_app.command("export")
def decisions_export(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    symbol: Symbol = None,
    action: Annotated[str | None, typer.Option("--action", metavar="|".join(ACTIONS), help="Only this action.")] = None,
    conflicts_only: Annotated[
        bool, typer.Option("--conflicts-only", help="Only decisions where a conflict rule fired.")
    ] = False,
    provider: Provider = None,
    run: Run = None,
    account: Account = None,
    everything: Everything = False,
    limit: ExportLimit = None,
    fmt: Format = ExportFormat.JSONL.value,
    out: Out = None,
) -> None:
    """Export every matching decision of the latest run (or --run, --account, --all), oldest first, one row each
    (jsonb columns as JSON text in CSV/Parquet)."""
    exported = parse_positive(limit, "--limit", None)
    chosen = _decision_filter(since, until, symbol, action, conflicts_only, provider, exported)
    choice = parse_scope(run, account, everything)
    export_format, path = _format(fmt, out)
    database = ctx.obj.settings().database

    async def work(db: Database) -> None:
        scope = await chosen_scope(db, choice)
        count = await _export(decision_pages(db, scoped(chosen, scope)), DECISION_COLUMNS, export_format, path)
        if path is not None:
            typer.echo(f"{count} decisions of {scope_text(scope)} written to {path}")

    _run(database, work)


# --- LLM calls ---------------------------------------------------------------------------------------------

Purpose = Annotated[
    str | None, typer.Option("--purpose", metavar="NAME", help="Only this purpose, e.g. conflict_resolution.")
]
Decision = Annotated[
    str | None, typer.Option("--decision", metavar="ID", help="Only the attempts made for this decision.")
]
ErrorsOnly = Annotated[bool, typer.Option("--errors-only", help="Only failed or skipped attempts.")]


@llm_calls_app.command("list")
def llm_calls_list(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    provider: Annotated[str | None, typer.Option("--provider", metavar="NAME", help="Only this provider.")] = None,
    purpose: Purpose = None,
    symbol: Symbol = None,
    decision: Decision = None,
    run: Run = None,
    account: Account = None,
    everything: Everything = False,
    errors_only: ErrorsOnly = False,
    limit: Limit = None,
) -> None:
    """List LLM calls of the latest run (or --run, --account, --all), newest first; `llm-calls show ID` for one."""
    chosen = _call_filter(
        since, until, provider, purpose, symbol, errors_only, parse_positive(limit, "--limit", DEFAULT_LIMIT)
    )
    choice = parse_scope(run, account, everything)
    decision_query = parse_id(decision, "--decision", "a decision") if decision is not None else None
    database = ctx.obj.settings().database

    async def work(db: Database) -> tuple[list[LLMCallSummary], int, ReportScope]:
        scope = await chosen_scope(db, choice)
        calls = await _with_decision(db, scoped(chosen, scope), decision_query)
        return await list_llm_calls(db, calls), await count_llm_calls(db, calls), scope

    rows, total, scope = _run(database, work)
    if not rows:
        typer.echo(f"no LLM calls of {scope_text(scope)} match")
        return
    _emit(lambda console: console.print(call_table(rows, total, scope_text(scope))))


@llm_calls_app.command("show")
def llm_calls_show(
    ctx: typer.Context,
    call_id: Annotated[str, typer.Argument(metavar="ID", help="An LLM call's id, or its first 8+ hex digits.")],
    full: Full = False,
) -> None:
    """Show one LLM attempt: provider, model, latency, tokens, cost, outcome, both prompts and the response."""
    query = parse_id(call_id, "ID", "an LLM call")
    database = ctx.obj.settings().database

    async def work(db: Database) -> LLMCall:
        wanted = await _resolve(db, query, "LLM call", llm_call_ids_starting_with)
        call = await llm_call(db, wanted)
        if call is None:
            raise NotFound(f"no LLM call {wanted}")
        return call

    call = _run(database, work)
    _emit(lambda console: console.print(call_block(call, full=full)))


@llm_calls_app.command("export")
def llm_calls_export(
    ctx: typer.Context,
    since: Since = None,
    until: Until = None,
    provider: Annotated[str | None, typer.Option("--provider", metavar="NAME", help="Only this provider.")] = None,
    purpose: Purpose = None,
    symbol: Symbol = None,
    decision: Decision = None,
    run: Run = None,
    account: Account = None,
    everything: Everything = False,
    errors_only: ErrorsOnly = False,
    limit: ExportLimit = None,
    fmt: Format = ExportFormat.JSONL.value,
    out: Out = None,
) -> None:
    """Export every matching LLM call of the latest run (or --run, --account, --all), oldest first, with both
    prompts and the response."""
    chosen = _call_filter(since, until, provider, purpose, symbol, errors_only, parse_positive(limit, "--limit", None))
    choice = parse_scope(run, account, everything)
    decision_query = parse_id(decision, "--decision", "a decision") if decision is not None else None
    export_format, path = _format(fmt, out)
    database = ctx.obj.settings().database

    async def work(db: Database) -> None:
        scope = await chosen_scope(db, choice)
        calls = await _with_decision(db, scoped(chosen, scope), decision_query)
        count = await _export(llm_call_pages(db, calls), LLM_CALL_COLUMNS, export_format, path)
        if path is not None:
            typer.echo(f"{count} LLM calls of {scope_text(scope)} written to {path}")

    _run(database, work)


async def _with_decision(db: Database, calls: LLMCallFilter, query: IdQuery | None) -> LLMCallFilter:
    if query is None:
        return calls
    wanted = await _resolve(db, query, "decision", decision_ids_starting_with)
    return calls.model_copy(update={"decision_id": wanted})


async def _export(pages: Pages, columns: Sequence[Column], export_format: ExportFormat, path: Path | None) -> int:
    """Write the pages to ``path`` (atomically) or to stdout; how many rows."""
    if path is None:
        if export_format is ExportFormat.CSV:
            return await write_csv(pages, columns, sys.stdout)
        return await write_jsonl(pages, columns, sys.stdout)
    try:
        with atomic_path(path) as partial:
            if export_format is ExportFormat.PARQUET:
                return await write_parquet(pages, columns, partial)
            with partial.open("w", encoding="utf-8", newline="") as stream:
                if export_format is ExportFormat.CSV:
                    return await write_csv(pages, columns, stream)
                return await write_jsonl(pages, columns, stream)
    except OSError as error:
        raise TriplegainError(f"cannot write {path}: {error.strerror or error}") from error


# --- results -----------------------------------------------------------------------------------------------


def results(
    ctx: typer.Context,
    run: Run = None,
    account: Account = None,
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="text|json", help="Output format.")] = "text",
) -> None:
    """The latest run's results (or --run ID, or every run of --account NAME): round trips, win rate, profit
    factor, expectancy, fees, turnover, time in market, drawdown, Sharpe, Sortino, buy-and-hold, breaker events."""
    choice = parse_scope(run, account, False)
    as_json = parse_choice(fmt, "--format", ("text", "json")) == "json"
    settings = ctx.obj.settings()

    async def work(db: Database) -> tuple[Results, ReportScope]:
        scope = await chosen_scope(db, choice)
        return await scope_results(db, scope, **results_inputs(settings.execution)), scope

    figures, scope = _run(settings.database, work)
    if as_json:
        typer.echo(figures.model_dump_json(indent=2))
        return
    for line in results_lines(figures, scope_text(scope)):
        typer.echo(line)


def results_inputs(execution: Any) -> dict[str, Any]:
    """What the results need of the paper broker's settings (``execution``): the starting balance in the quote
    asset, and each symbol's smallest order (a position below it is dust, i.e. closed)."""

    def dust(symbol: str) -> float:
        rules = execution.rules_for(symbol)
        return float(max(rules.min_qty, rules.qty_step))

    return {"starting_balance": float(execution.starting_balances.get(execution.quote_asset, 0.0)), "dust": dust}


# --- report ------------------------------------------------------------------------------------------------


def report(
    ctx: typer.Context,
    run: Run = None,
    account: Account = None,
    everything: Everything = False,
    out: Annotated[str, typer.Option("--out", "-o", metavar="FILE", help="The HTML file to write.")] = "report.html",
    table_limit: Annotated[
        str | None,
        typer.Option("--table-limit", metavar="N", help=f"Decisions in the table, the newest (default {TABLE_LIMIT})."),
    ] = None,
) -> None:
    """Write a self-contained HTML report of the latest daemon run (or --run, --account, --all).

    Results (round trips, win rate, drawdown, Sharpe…), plots (equity vs buy-and-hold with breaker trips, halts,
    pauses and commands marked, drawdown, trades on price, degradation level, LLM cost per day), decisions.
    """
    choice = parse_scope(run, account, everything)
    rows = parse_positive(table_limit, "--table-limit", TABLE_LIMIT)
    assert rows is not None
    path = _out_path(out, None)
    assert path is not None
    settings = ctx.obj.settings()
    inputs = results_inputs(settings.execution)

    async def work(db: Database) -> str:
        scope = await chosen_scope(db, choice)
        return render_html(await report_data(db, scope, now=WallClock().now(), table_limit=rows, **inputs))

    page = _run(settings.database, work)
    try:
        with atomic_path(path) as partial:
            partial.write_text(page, encoding="utf-8")
    except OSError as error:
        raise TriplegainError(f"cannot write {path}: {error.strerror or error}") from error
    typer.echo(str(path.resolve()))


# --- runs --------------------------------------------------------------------------------------------------


@runs_app.command("compare")
def runs_compare(
    ctx: typer.Context,
    first: Annotated[str, typer.Argument(metavar="A", help="A daemon run's id.")],
    second: Annotated[str, typer.Argument(metavar="B", help="The run to compare it with.")],
    limit: Annotated[
        str | None,
        typer.Option("--limit", metavar="N", help=f"Differences shown of each kind (default {DEFAULT_LIMIT})."),
    ] = None,
) -> None:
    """Compare two runs: the decisions that differ (time, symbol, action, confidence, why), the trades and the final
    equity side by side. Exit 1 when they differ, 0 when they do not."""
    run_a = parse_positive(first, "A", None)
    run_b = parse_positive(second, "B", None)
    shown = parse_positive(limit, "--limit", DEFAULT_LIMIT)
    assert run_a is not None
    assert run_b is not None
    database = ctx.obj.settings().database

    async def work(db: Database) -> RunComparison:
        records = []
        for run_id in (run_a, run_b):
            record = await run_record(db, run_id)
            if record is None:
                raise UserError(f"runs compare: no daemon run {run_id}")
            records.append(record)
        return compare_runs(*records)

    comparison = _run(database, work)
    for line in comparison.lines(limit=shown):
        typer.echo(line)
    if comparison.differ:
        raise typer.Exit(1)
