"""Reading the rows a run's results are computed from (``results``), in a report's scope (``ReportScope``).

Fills with what the results need of their orders, in the order the broker applied them; the equity snapshots;
the first and last price of each symbol (the technical agent's views: there is no candle table); breaker events,
applied commands and level changes; and the starting equity: the account's last snapshot before the scope,
else what the caller says the account starts with (the configured starting balance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from triplegain.review.records import ReportScope
from triplegain.review.report_queries import equity_series, price_series, window_where
from triplegain.review.results import ResultEvent, ResultFill, Results, results
from triplegain.store.database import Database

_COMMAND_KINDS = {"pause": "pause", "resume": "resume", "halt": "halt"}


async def scope_results(
    db: Database, scope: ReportScope, *, starting_balance: float, dust: Callable[[str], float]
) -> Results:
    """The results of ``scope`` (a run, or every run of an account); ``starting_balance`` when the account has no
    snapshot before the scope; ``dust(symbol)``: the symbol's smallest order (a position below it is closed)."""
    fills = await result_fills(db, scope)
    equity = await equity_series(db, scope)
    prices = await price_series(db, scope)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for point in prices:
        first.setdefault(point.symbol, point.price)
        last[point.symbol] = point.price
    start = await equity_before(db, scope)
    return results(
        fills,
        [(point.ts, point.equity) for point in equity],
        first,
        last,
        await result_events(db, scope),
        start if start is not None else starting_balance,
        {symbol: dust(symbol) for symbol in {fill.symbol for fill in fills}},
    )


async def result_fills(db: Database, scope: ReportScope) -> list[ResultFill]:
    """The scope's fills, in the order applied, with their order's type, reason and whether a decision made it."""
    where = window_where(scope, "o.account = {}", "f.ts")
    statement = f"""
        SELECT o.symbol, o.side, f.qty, f.price, f.fee, f.ts, o.type AS order_type,
               o.decision_id IS NOT NULL AS from_decision, o.reason AS order_reason
        FROM fills f JOIN orders o ON o.id = f.order_id {where.sql()} ORDER BY f.seq
    """
    with db.errors("reading fills for the results"):
        rows = await db.pool.fetch(statement, *where.args)
    return [
        ResultFill(
            symbol=row["symbol"],
            side=row["side"],
            qty=float(row["qty"]),
            price=float(row["price"]),
            fee=float(row["fee"]),
            ts=row["ts"],
            order_type=row["order_type"],
            from_decision=row["from_decision"],
            order_reason=row["order_reason"],
        )
        for row in rows
    ]


async def equity_before(db: Database, scope: ReportScope) -> float | None:
    """The account's equity in its last snapshot before the scope; None without one (or without an account)."""
    if scope.account is None or scope.first is None:
        return None
    with db.errors("reading the equity before the run"):
        value = await db.pool.fetchval(
            "SELECT equity FROM portfolio_snapshots WHERE account = $1 AND ts < $2 ORDER BY ts DESC, id DESC LIMIT 1",
            scope.account,
            scope.first,
        )
    return float(value) if value is not None else None


async def result_events(db: Database, scope: ReportScope) -> list[ResultEvent]:
    """Breaker trips and resets, commands applied and level changes in scope, oldest first."""
    breaker_where = window_where(scope, "account = {}", "ts")
    command_where = window_where(scope, "account = {}", "applied_at")
    command_where.add("status = 'applied'")
    level_where = window_where(scope, "account = {}", "ts")
    with db.errors("reading breaker events, commands and level changes"):
        trips = await db.pool.fetch(
            f"SELECT ts, rule, state, details FROM breaker_events {breaker_where.sql()} ORDER BY ts, id",
            *breaker_where.args,
        )
        applied = await db.pool.fetch(
            f"SELECT applied_at, verb, args, requested_by, outcome FROM coordinator_commands {command_where.sql()} "
            "ORDER BY applied_at, id",
            *command_where.args,
        )
        changes = await db.pool.fetch(
            f"SELECT ts, from_level, to_level, cause FROM degradation_events {level_where.sql()} ORDER BY ts, id",
            *level_where.args,
        )
    events = [_breaker_event(row) for row in trips]
    events += [_command_event(row) for row in applied]
    events += [
        ResultEvent(
            ts=row["ts"],
            kind="level change",
            what=f"{row['from_level']} → {row['to_level']}",
            cause=_causes(row["cause"]),
        )
        for row in changes
    ]
    return sorted(events, key=lambda event: event.ts)


def _breaker_event(row: Any) -> ResultEvent:
    details = row["details"] if isinstance(row["details"], dict) else {}
    if row["state"] == "tripped":
        action = details.get("action", "?")
        return ResultEvent(
            ts=row["ts"], kind="breaker trip", what=f"{row['rule']} ({action})", cause=str(details.get("reason", ""))
        )
    return ResultEvent(ts=row["ts"], kind="breaker reset", what=row["rule"], cause=str(details.get("reason", "")))


def _command_event(row: Any) -> ResultEvent:
    args = row["args"] if isinstance(row["args"], dict) else {}
    verb = row["verb"]
    flags = " --force" if args.get("force") else ""
    flags += " --flatten" if args.get("flatten") else ""
    return ResultEvent(
        ts=row["applied_at"],
        kind=_COMMAND_KINDS.get(verb, verb),
        what=f"{verb}{flags} by {row['requested_by']} ({row['outcome'] or 'applied'})",
        cause=str(args.get("reason") or ""),
    )


def _causes(cause: Any) -> str:
    """A level change's causes (a list of the monitor's causes) as one line."""
    if not isinstance(cause, list):
        return str(cause)
    parts = []
    for item in cause:
        if isinstance(item, dict):
            subject = f" ({item['subject']})" if item.get("subject") else ""
            parts.append(f"{item.get('signal', '?')}{subject} {item.get('value', '?')} ≥ {item.get('threshold', '?')}")
        else:
            parts.append(str(item))
    return "; ".join(parts) or "recovered"
