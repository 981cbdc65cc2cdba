"""The summary a run ends with: candles, decisions, trades, LLM calls and cost, then the run's results
(``review.results``: round trips, win rate, profit factor, fees, drawdown, Sharpe, buy-and-hold, breaker events),
computed from the rows it stored — what ``triplegain results --run ID`` prints at the top.

LLM calls are those made by the run (an answer served from an earlier run, ``--answers-from``, is counted under
``answers`` instead: served, missed — never asked by that run — and of those, asked of a provider). The run
budget (``--max-llm-usd``) says what was spent of it and, once reached, when and how many paid calls it refused.

``buy_and_hold_equity`` puts the starting equity in equal parts into every symbol quoted in the account's quote
asset at its first close and values it at its last close; with no such symbol it is None.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.daemon.status import RunTracker
from triplegain.llm import RecordedAnswers, SpendLedger
from triplegain.review.cli import results_inputs
from triplegain.review.report_queries import find_run, report_scope
from triplegain.review.results import Results
from triplegain.review.results_queries import scope_results
from triplegain.review.results_text import LABEL, core_lines
from triplegain.store import Database


class ProviderUse(BaseModel):
    model_config = ConfigDict(frozen=True)

    calls: int
    cost_usd: float


class ServedAnswers(BaseModel):
    """How the questions of a run re-executed from an earlier run's answers fared."""

    model_config = ConfigDict(frozen=True)

    from_run: int
    served: int
    missed: int
    asked: int


class RunBudget(BaseModel):
    """What the run's paid LLM calls cost against ``--max-llm-usd``."""

    model_config = ConfigDict(frozen=True)

    limit_usd: float
    spent_usd: float
    reached_at: AwareDatetime | None = Field(description="when a paid call was first refused (the run's clock)")
    refused: int = Field(description="paid calls refused for the budget: the conservative rule answered instead")


class RunSummary(BaseModel):
    """A finished run in figures (printed as a table, or JSON with ``--json-logs``)."""

    model_config = ConfigDict(frozen=True)

    run_id: int
    account: str
    exit_reason: str = ""
    candles: int
    decisions: int
    trades: int = Field(description="orders filled")
    llm_calls: dict[str, ProviderUse] = Field(description="by provider")
    starting_equity: float | None
    final_equity: float
    buy_and_hold_equity: float | None
    max_drawdown_pct: float
    wall_seconds: float
    candles_per_second: float
    results: Results | None = Field(default=None, description="the run's results, from its stored rows")
    resolutions_cut_short: int = Field(
        default=0, description="decisions whose resolver chain its task's timeout cut: stored as conservative holds"
    )
    task_timeouts: int = Field(default=0, description="task runs cancelled at their timeout")
    rows_refused: int = Field(default=0, description="log rows (LLM calls, agent views) the database refused")
    answers: ServedAnswers | None = Field(default=None, description="with --answers-from")
    llm_budget: RunBudget | None = Field(default=None, description="with --max-llm-usd")

    def lines(self) -> list[str]:
        """The summary as aligned lines for a terminal: the run, then its results."""
        calls = ", ".join(f"{name} {use.calls} (${use.cost_usd:.4f})" for name, use in sorted(self.llm_calls.items()))
        wall = ("wall time", f"{self.wall_seconds:.1f} s ({self.candles_per_second:,.0f} candles/s)")
        if self.results is not None:
            rows = [
                ("run", f"{self.run_id} ({self.exit_reason})"),
                ("account", self.account),
                ("candles", f"{self.candles:,}"),
                ("decisions", f"{self.decisions:,}"),
                ("trades", f"{self.trades:,} orders of decisions filled"),
                ("LLM calls", calls or "none"),
                *self._llm_lines(),
                wall,
                *self._problem_lines(),
            ]
            return [f"{label:<{LABEL}}{value}" for label, value in rows] + core_lines(self.results)
        hold = f"{self.buy_and_hold_equity:,.2f}" if self.buy_and_hold_equity is not None else "n/a"
        rows = [
            ("run", f"{self.run_id} ({self.exit_reason})"),
            ("account", self.account),
            ("candles", f"{self.candles:,}"),
            ("decisions", f"{self.decisions:,}"),
            ("trades", f"{self.trades:,}"),
            ("LLM calls", calls or "none"),
            *self._llm_lines(),
            ("final equity", f"{self.final_equity:,.2f}"),
            ("buy and hold", hold),
            ("max drawdown", f"{self.max_drawdown_pct:.2f} %"),
            wall,
            *self._problem_lines(),
        ]
        return [f"{label:<{LABEL}}{value}" for label, value in rows]

    def _problem_lines(self) -> list[tuple[str, str]]:
        rows = []
        if self.task_timeouts:
            rows.append(("timed out", f"{self.task_timeouts:,} task runs"))
        if self.resolutions_cut_short:
            rows.append(
                (
                    "cut short",
                    f"{self.resolutions_cut_short:,} resolutions (the task's timeout): stored as conservative holds",
                )
            )
        if self.rows_refused:
            rows.append(("not stored", f"{self.rows_refused:,} log rows refused by the database (see the log)"))
        return rows


    def _llm_lines(self) -> list[tuple[str, str]]:
        rows = []
        if self.answers is not None:
            answers = self.answers
            rows.append(
                (
                    "answers",
                    f"from run {answers.from_run}: {answers.served:,} served, {answers.missed:,} missed "
                    f"({answers.asked:,} asked of a provider)",
                )
            )
        if self.llm_budget is not None:
            budget = self.llm_budget
            spent = f"${budget.spent_usd:.4f} of ${budget.limit_usd:.2f} (--max-llm-usd)"
            if budget.reached_at is not None:
                spent += (
                    f" reached at {budget.reached_at:%Y-%m-%d %H:%M}: {budget.refused:,} paid calls refused since, "
                    "the conservative rule answered"
                )
            rows.append(("LLM budget", spent))
        return rows


async def summarize(
    db: Database, run_id: int, tracker: RunTracker, wall_seconds: float, final_equity: float
) -> RunSummary:
    """The run's figures, counted from what it stored."""
    with db.errors(f"summarizing run {run_id}"):
        decisions = await db.pool.fetchval("SELECT count(*) FROM decisions WHERE run_id = $1", run_id)
        trades = await db.pool.fetchval(
            """
            SELECT count(DISTINCT o.id) FROM orders o JOIN decisions d ON d.id = o.decision_id
            JOIN fills f ON f.order_id = o.id WHERE d.run_id = $1
            """,
            run_id,
        )
        rows = await db.pool.fetch(
            "SELECT provider, count(*) AS calls, coalesce(sum(cost_usd), 0) AS cost FROM llm_calls "
            "WHERE run_id = $1 AND served_from_run IS NULL GROUP BY provider",
            run_id,
        )
    system = tracker.system
    execution = system.settings.execution
    run = await find_run(db, run_id)
    figures = None
    if run is not None:
        figures = await scope_results(db, await report_scope(db, run), **results_inputs(execution))
    quote = execution.quote_asset
    starting = execution.starting_balances.get(quote)
    events = tracker.events
    held = [symbol for symbol in events.first_close if symbol.endswith(f"/{quote}")]
    hold = None
    if starting is not None and held:
        share = starting / len(held)
        hold = sum(share / events.first_close[s] * events.last_close[s] for s in held)
    return RunSummary(
        run_id=run_id,
        account=tracker.system.coordinator.account,
        candles=events.candles,
        decisions=decisions,
        trades=trades,
        llm_calls={row["provider"]: ProviderUse(calls=row["calls"], cost_usd=float(row["cost"])) for row in rows},
        starting_equity=starting,
        final_equity=final_equity,
        buy_and_hold_equity=hold,
        max_drawdown_pct=tracker.max_drawdown * 100,
        wall_seconds=wall_seconds,
        candles_per_second=events.candles / wall_seconds if wall_seconds > 0 else 0.0,
        results=figures,
        resolutions_cut_short=system.coordinator.resolutions_cut_short,
        task_timeouts=system.runner.timeouts,
        rows_refused=system.writer.stats().rejected,
        answers=_served(system.answers),
        llm_budget=_budget(system.ledger),
    )


def _served(answers: RecordedAnswers | None) -> ServedAnswers | None:
    if answers is None:
        return None
    return ServedAnswers(from_run=answers.run_id, served=answers.served, missed=answers.missed, asked=answers.asked)


def _budget(ledger: SpendLedger) -> RunBudget | None:
    if ledger.run_limit_usd is None:
        return None
    return RunBudget(
        limit_usd=ledger.run_limit_usd,
        spent_usd=ledger.run_spent_usd,
        reached_at=ledger.run_limit_reached_at,
        refused=ledger.run_limit_skips,
    )
