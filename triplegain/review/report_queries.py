"""Reading what the report draws: daemon runs, a report's scope, and the series in that scope, oldest first.

Equity and drawdown come from ``portfolio_snapshots``. There is no candle table, so prices come from the
technical agent's views (``agent_outputs.body->>'price'``, the close it analysed) and trades from ``fills``
(with their orders), plus the orders not filled (yet), placed at their limit price or their decision's intended
entry. Which rows a scope takes: see ``ReportScope``.
"""

from __future__ import annotations

from typing import Any

from triplegain.review.filters import DEFAULT_LIMIT, DecisionFilter
from triplegain.review.records import (
    DaemonRun,
    DailyCost,
    EquityPoint,
    LevelChange,
    PricePoint,
    ReportScope,
    TradePoint,
)
from triplegain.review.where import Where
from triplegain.store.database import Database

_RUN_COLUMNS = "id, account, started_at, ended_at, config_hash, version, host, pid, exit_reason"
_SELECT_RUN = f"SELECT {_RUN_COLUMNS} FROM daemon_runs WHERE id = $1"
_SELECT_LATEST_RUN = f"SELECT {_RUN_COLUMNS} FROM daemon_runs ORDER BY started_at DESC, id DESC LIMIT 1"
_SELECT_LATEST_RUN_OF = (
    f"SELECT {_RUN_COLUMNS} FROM daemon_runs WHERE account = $1 ORDER BY started_at DESC, id DESC LIMIT 1"
)
_SELECT_RUNS_OF = (
    f"SELECT {_RUN_COLUMNS} FROM daemon_runs WHERE account = $1 ORDER BY started_at DESC, id DESC LIMIT $2 OFFSET $3"
)
_RUN_EXTENT = """
    SELECT min(first) AS first, max(last) AS last FROM (
        SELECT min(ts) AS first, max(ts) AS last FROM decisions WHERE run_id = $1
        UNION ALL SELECT min(ts), max(ts) FROM agent_outputs WHERE run_id = $1
        UNION ALL SELECT min(started_at), max(started_at) FROM llm_calls WHERE run_id = $1
    ) extents
"""


async def find_run(db: Database, run_id: int) -> DaemonRun | None:
    """The daemon run with that id; None when there is none."""
    with db.errors(f"reading daemon run {run_id}"):
        row = await db.pool.fetchrow(_SELECT_RUN, run_id)
    return None if row is None else DaemonRun(**dict(row))


async def latest_run(db: Database, account: str | None = None) -> DaemonRun | None:
    """The daemon run started last (of ``account``, when given); None when no daemon ever ran (on it)."""
    with db.errors("reading the latest daemon run"):
        if account is None:
            row = await db.pool.fetchrow(_SELECT_LATEST_RUN)
        else:
            row = await db.pool.fetchrow(_SELECT_LATEST_RUN_OF, account)
    return None if row is None else DaemonRun(**dict(row))


async def list_runs(db: Database, account: str, *, limit: int, offset: int = 0) -> list[DaemonRun]:
    """The daemon runs of ``account``, started last first, at most ``limit`` after skipping ``offset``."""
    with db.errors(f"listing the daemon runs of {account}"):
        rows = await db.pool.fetch(_SELECT_RUNS_OF, account, limit, offset)
    return [DaemonRun(**dict(row)) for row in rows]


async def report_scope(db: Database, run: DaemonRun | None, account: str | None = None) -> ReportScope:
    """The scope of a report on ``run``, else on every run of ``account``, else on everything; see ``ReportScope``
    for how rows are chosen."""
    if run is None:
        return ReportScope(run=None, account=account, first=None, last=None)
    with db.errors(f"reading the extent of daemon run {run.id}"):
        extent = await db.pool.fetchrow(_RUN_EXTENT, run.id)
    if extent["first"] is not None:
        return ReportScope(run=run, account=run.account, first=extent["first"], last=extent["last"])
    return ReportScope(run=run, account=run.account, first=run.started_at, last=run.ended_at)


def scope_decisions(scope: ReportScope, limit: int | None = DEFAULT_LIMIT) -> DecisionFilter:
    """The decisions of a report's scope."""
    if scope.run is not None:
        return DecisionFilter(run_id=scope.run.id, limit=limit)
    return DecisionFilter(account=scope.account, limit=limit)


def _run_where(scope: ReportScope, run_column: str) -> Where:
    """Rows of a table with a run id (``run_column``, e.g. ``c.run_id``, a constant of this module): the run's,
    those of the account's runs, or all."""
    where = Where()
    if scope.run is not None:
        where.add(f"{run_column} = {{}}", scope.run.id)
    elif scope.account is not None:
        where.add(f"{run_column} IN (SELECT r.id FROM daemon_runs r WHERE r.account = {{}})", scope.account)
    return where


def window_where(scope: ReportScope, account_fragment: str, time_column: str) -> Where:
    """Rows of a table without a run id: the run's account within its extent, or all.

    ``account_fragment`` and ``time_column`` are constants of this module (e.g. ``"o.account = {}"``, ``f.ts``).
    """
    where = Where()
    if scope.account is not None:
        where.add(account_fragment, scope.account)
    if scope.first is not None:
        where.add(f"{time_column} >= {{}}", scope.first)
    if scope.last is not None:
        where.add(f"{time_column} <= {{}}", scope.last)
    return where


async def equity_series(db: Database, scope: ReportScope) -> list[EquityPoint]:
    """Portfolio snapshots in scope, oldest first."""
    where = window_where(scope, "account = {}", "ts")
    statement = f"SELECT account, ts, equity, cash, drawdown FROM portfolio_snapshots {where.sql()} ORDER BY ts, id"
    with db.errors("reading portfolio snapshots"):
        rows = await db.pool.fetch(statement, *where.args)
    return [
        EquityPoint(
            account=row["account"],
            ts=row["ts"],
            equity=float(row["equity"]),
            cash=float(row["cash"]),
            drawdown=float(row["drawdown"]),
        )
        for row in rows
    ]


async def price_series(db: Database, scope: ReportScope) -> list[PricePoint]:
    """Each symbol's price over time, as the technical agent saw it (there is no candle table), oldest first."""
    where = _run_where(scope, "a.run_id")
    where.add("a.agent = 'technical'")
    where.add("a.symbol IS NOT NULL")
    statement = f"""
        SELECT symbol, ts, price FROM (
            SELECT a.symbol, a.ts, a.id,
                   CASE WHEN jsonb_typeof(a.body -> 'price') = 'number' THEN (a.body ->> 'price')::double precision END
                   AS price
            FROM agent_outputs a {where.sql()}
        ) prices
        WHERE price > 0
        ORDER BY symbol, ts, id
    """
    with db.errors("reading prices from the technical views"):
        rows = await db.pool.fetch(statement, *where.args)
    return [PricePoint(symbol=row["symbol"], ts=row["ts"], price=row["price"]) for row in rows]


async def trade_points(db: Database, scope: ReportScope) -> list[TradePoint]:
    """Fills in scope, and the orders without a fill at their price or their decision's intended entry."""
    fill_where = window_where(scope, "o.account = {}", "f.ts")
    fills_statement = f"""
        SELECT o.symbol, o.side, f.ts, f.price, f.qty, o.decision_id
        FROM fills f JOIN orders o ON o.id = f.order_id {fill_where.sql()} ORDER BY f.ts, f.client_fill_id
    """
    order_where = window_where(scope, "o.account = {}", "o.created_at")
    order_where.add("NOT EXISTS (SELECT FROM fills f WHERE f.order_id = o.id)")
    orders_statement = f"""
        SELECT symbol, side, ts, price, qty, decision_id FROM (
            SELECT o.symbol, o.side, o.created_at AS ts, o.qty, o.decision_id, o.client_order_id,
                   coalesce(o.price::double precision, CASE WHEN jsonb_typeof(d.intent -> 'entry_price') = 'number'
                                                       THEN (d.intent ->> 'entry_price')::double precision END)
                   AS price
            FROM orders o LEFT JOIN decisions d ON d.id = o.decision_id {order_where.sql()}
        ) unfilled
        WHERE price > 0
        ORDER BY ts, client_order_id
    """
    with db.errors("reading fills and orders"):
        fills = await db.pool.fetch(fills_statement, *fill_where.args)
        orders = await db.pool.fetch(orders_statement, *order_where.args)
    points = [_trade(row, filled=True) for row in fills] + [_trade(row, filled=False) for row in orders]
    return sorted(points, key=lambda point: point.ts)


async def level_changes(db: Database, scope: ReportScope) -> list[LevelChange]:
    """Degradation level changes in scope, oldest first."""
    where = window_where(scope, "account = {}", "ts")
    statement = f"SELECT account, ts, from_level, to_level, cause FROM degradation_events {where.sql()} ORDER BY ts, id"
    with db.errors("reading degradation events"):
        rows = await db.pool.fetch(statement, *where.args)
    return [LevelChange(**dict(row)) for row in rows]


async def daily_llm_costs(db: Database, scope: ReportScope) -> list[DailyCost]:
    """LLM attempts per UTC day and provider in scope, oldest day first."""
    where = _run_where(scope, "c.run_id")
    statement = f"""
        SELECT (c.started_at AT TIME ZONE 'UTC')::date AS day, c.provider, count(*) AS calls,
               count(c.error_class) AS errors, sum(c.input_tokens) AS input_tokens,
               sum(c.output_tokens) AS output_tokens, sum(c.cost_usd) AS cost_usd
        FROM llm_calls c {where.sql()}
        GROUP BY 1, 2 ORDER BY 1, 2
    """
    with db.errors("reading LLM costs per day"):
        rows = await db.pool.fetch(statement, *where.args)
    return [
        DailyCost(
            day=row["day"],
            provider=row["provider"],
            calls=row["calls"],
            errors=row["errors"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cost_usd=float(row["cost_usd"]),
        )
        for row in rows
    ]


def _trade(row: Any, *, filled: bool) -> TradePoint:
    return TradePoint(
        symbol=row["symbol"],
        side=row["side"],
        ts=row["ts"],
        price=float(row["price"]),
        qty=float(row["qty"]),
        filled=filled,
        decision_id=row["decision_id"],
    )
