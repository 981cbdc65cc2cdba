"""Reading decisions: lists (newest first, at most the filter's limit), counts, every match a page at a time for
exports, and one decision's whole record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from pydantic import JsonValue

from triplegain.model import FillRow
from triplegain.review.call_queries import SELECT_CALLS_OF_DECISION, call_of_decision
from triplegain.review.filters import DecisionFilter
from triplegain.review.pages import PAGE_SIZE, PageKey, keyset_pages
from triplegain.review.records import DecisionCounts, DecisionRecord, DecisionSummary, OrderWithFills
from triplegain.review.where import Where
from triplegain.store.database import Database
from triplegain.store.decisions import ORDER_COLUMNS, ConflictRow, DecisionRow, decision_from_row, order_from_row
from triplegain.store.records import AgentOutputRecord

DECISION_EXPORT_COLUMNS = (
    "id",
    "run_id",
    "account",
    "symbol",
    "ts",
    "action",
    "confidence",
    "degradation_level",
    "coordinator_state",
    "reason",
    "conflict_rules",
    "resolved_by",
    "llm_calls",
    "llm_cost_usd",
    "order_status",
    "intent",
    "consensus_inputs",
    "consensus_terms",
    "consensus_result",
    "risk_checks",
    "resolution",
    "effects",
)
"""The columns of an exported decision, in order: the summary, then the stored jsonb columns whole."""

_SUMMARY_SELECT = """
    SELECT d.id, d.run_id, d.account, d.symbol, d.ts, d.action, d.confidence, d.degradation_level,
           d.coordinator_state, d.reason, d.resolution ->> 'resolved_by' AS resolved_by,
           coalesce(fc.rules, ARRAY[]::text[]) AS conflict_rules,
           coalesce(fl.calls, 0) AS llm_calls, coalesce(fl.cost, 0) AS llm_cost_usd,
           fo.status AS order_status
"""
_EXPORT_SELECT = (
    _SUMMARY_SELECT
    + """,
           d.intent, d.consensus_inputs, d.consensus_terms, d.consensus_result, d.risk_checks, d.resolution,
           d.effects
"""
)
_SUMMARY_JOINS = """
    FROM decisions d
    LEFT JOIN LATERAL (
        SELECT array_agg(c.rule ORDER BY c.ts, c.rule) AS rules FROM conflicts c WHERE c.decision_id = d.id
    ) fc ON true
    LEFT JOIN LATERAL (
        SELECT count(*) AS calls, sum(l.cost_usd) AS cost FROM llm_calls l WHERE l.decision_id = d.id
    ) fl ON true
    LEFT JOIN LATERAL (
        SELECT o.status FROM orders o WHERE o.decision_id = d.id ORDER BY o.created_at, o.client_order_id LIMIT 1
    ) fo ON true
"""
_PROVIDER_ASKED = (
    "(EXISTS (SELECT FROM llm_calls pl WHERE pl.decision_id = d.id AND pl.provider = {0})"
    " OR d.resolution -> 'attempts' @> jsonb_build_array(jsonb_build_object('provider', {0}::text)))"
)

_DECISION_COLUMNS = """
    id, run_id, account, symbol, ts, action, confidence, consensus_inputs, consensus_terms, consensus_result,
    risk_checks, degradation_level, coordinator_state, reason, intent, resolution, effects
"""
_SELECT_DECISION = f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE id = $1"
_SELECT_VIEWS = """
    SELECT id, run_id, agent, symbol, ts, confidence, body, reasoning, llm_call_id
    FROM agent_outputs WHERE id = ANY($1::uuid[]) ORDER BY agent, ts, id
"""
_SELECT_CONFLICTS = """
    SELECT id, decision_id, ts, rule, details, resolution, resolved_by
    FROM conflicts WHERE decision_id = $1 ORDER BY ts, rule, id
"""
_SELECT_ORDERS = f"""
    SELECT {ORDER_COLUMNS}, status_reason FROM orders WHERE decision_id = $1 ORDER BY created_at, client_order_id
"""
_SELECT_FILLS = """
    SELECT f.id, f.order_id, o.client_order_id, f.client_fill_id, o.account, o.symbol, o.side, f.qty, f.price, f.fee,
           f.fee_currency, f.liquidity, f.ts
    FROM fills f JOIN orders o ON o.id = f.order_id
    WHERE f.order_id = ANY($1::uuid[]) ORDER BY f.ts, f.client_fill_id
"""


def _decision_where(decisions: DecisionFilter) -> Where:
    where = Where()
    if decisions.since is not None:
        where.add("d.ts >= {}", decisions.since)
    if decisions.until is not None:
        where.add("d.ts < {}", decisions.until)
    if decisions.symbol is not None:
        where.add("d.symbol = {}", decisions.symbol)
    if decisions.action is not None:
        where.add("d.action = {}", decisions.action)
    if decisions.conflicts_only:
        where.add("EXISTS (SELECT FROM conflicts fc WHERE fc.decision_id = d.id)")
    if decisions.provider is not None:
        where.add(_PROVIDER_ASKED, decisions.provider)
    if decisions.run_id is not None:
        where.add("d.run_id = {}", decisions.run_id)
    if decisions.account is not None:
        where.add("d.account = {}", decisions.account)
    return where


async def list_decisions(db: Database, decisions: DecisionFilter) -> list[DecisionSummary]:
    """The decisions matching the filter, newest first, at most ``decisions.limit``."""
    where = _decision_where(decisions)
    statement = f"{_SUMMARY_SELECT} {_SUMMARY_JOINS} {where.sql()} ORDER BY d.ts DESC, d.id DESC"
    if decisions.limit is not None:
        statement += f" LIMIT {where.param(decisions.limit)}"
    if decisions.offset:
        statement += f" OFFSET {where.param(decisions.offset)}"
    with db.errors("listing decisions"):
        rows = await db.pool.fetch(statement, *where.args)
    return [_summary(row) for row in rows]


async def count_decisions(db: Database, decisions: DecisionFilter) -> int:
    """How many decisions match the filter, whatever its limit."""
    where = _decision_where(decisions)
    with db.errors("counting decisions"):
        count: int = await db.pool.fetchval(f"SELECT count(*) FROM decisions d {where.sql()}", *where.args)
    return count


async def decision_counts(db: Database, decisions: DecisionFilter) -> DecisionCounts:
    """Counts of the decisions matching the filter, whatever its limit."""
    where = _decision_where(decisions)
    statement = f"""
        SELECT d.action, count(*) AS decisions,
               count(*) FILTER (WHERE EXISTS (SELECT FROM conflicts c WHERE c.decision_id = d.id)) AS conflicted
        FROM decisions d {where.sql()} GROUP BY d.action
    """
    with db.errors("counting decisions"):
        rows = await db.pool.fetch(statement, *where.args)
    return DecisionCounts(
        total=sum(row["decisions"] for row in rows),
        by_action={row["action"]: row["decisions"] for row in rows},
        conflicted=sum(row["conflicted"] for row in rows),
    )


def decision_pages(
    db: Database, decisions: DecisionFilter, page_size: int = PAGE_SIZE
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every decision matching the filter (up to its limit), oldest first, a page at a time.

    Each row has ``DECISION_EXPORT_COLUMNS``: the summary's fields and the jsonb columns as Python values.
    """

    async def read(after: PageKey | None, size: int) -> list[dict[str, Any]]:
        where = _decision_where(decisions)
        if after is not None:
            where.add("(d.ts, d.id) > ({}, {})", *after)
        statement = f"{_EXPORT_SELECT} {_SUMMARY_JOINS} {where.sql()} ORDER BY d.ts, d.id LIMIT {where.param(size)}"
        with db.errors("exporting decisions"):
            rows = await db.pool.fetch(statement, *where.args)
        return [_export_row(row) for row in rows]

    return keyset_pages(read, limit=decisions.limit, page_size=page_size, key=("ts", "id"))


async def decision_record(db: Database, decision_id: UUID) -> DecisionRecord | None:
    """The decision with its views, conflicts, LLM calls (whole rows), orders and fills, read in one snapshot;
    None when no decision has that id."""
    with db.errors(f"reading decision {decision_id}"):
        async with (
            db.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await connection.fetchrow(_SELECT_DECISION, decision_id)
            if row is None:
                return None
            decision = decision_from_row(row)
            views = await connection.fetch(_SELECT_VIEWS, sorted(_view_ids(decision)))
            conflicts = await connection.fetch(_SELECT_CONFLICTS, decision_id)
            calls = await connection.fetch(SELECT_CALLS_OF_DECISION, decision_id)
            orders = await connection.fetch(_SELECT_ORDERS, decision_id)
            fills = await connection.fetch(_SELECT_FILLS, [order["id"] for order in orders])
    fills_of: dict[UUID, list[FillRow]] = {}
    for fill in fills:
        fills_of.setdefault(fill["order_id"], []).append(_fill(fill))
    return DecisionRecord(
        decision=decision,
        views=tuple(AgentOutputRecord(**dict(view)) for view in views),
        conflicts=tuple(ConflictRow(**dict(conflict)) for conflict in conflicts),
        llm_calls=tuple(call_of_decision(call) for call in calls),
        orders=tuple(_with_fills(dict(order), fills_of) for order in orders),
    )


def _view_ids(decision: DecisionRow) -> set[UUID]:
    """The agent outputs a decision names: each consensus input's ``output_id`` and the intent's source view."""
    named: list[JsonValue] = [decision.intent.get("source_output_id")]
    inputs = decision.consensus_inputs
    for entry in inputs if isinstance(inputs, list) else inputs.values():
        if isinstance(entry, dict):
            named.append(entry.get("output_id"))
    ids: set[UUID] = set()
    for value in named:
        if isinstance(value, str):
            try:
                ids.add(UUID(value))
            except ValueError:
                continue  # a hand-written row with a bad id names no view; the decision is still shown
    return ids


def _summary(row: Any) -> DecisionSummary:
    fields = dict(row)
    fields["conflict_rules"] = tuple(fields["conflict_rules"])
    fields["llm_cost_usd"] = float(fields["llm_cost_usd"])
    return DecisionSummary(**fields)


def _export_row(row: Any) -> dict[str, Any]:
    fields = dict(row)
    fields["conflict_rules"] = list(fields["conflict_rules"])
    fields["llm_cost_usd"] = float(fields["llm_cost_usd"])
    return {column: fields[column] for column in DECISION_EXPORT_COLUMNS}


def _fill(row: Any) -> FillRow:
    """A row of ``_SELECT_FILLS``: its numerics are the floats the broker stored (see ``triplegain.model.orders``)."""
    fields = dict(row)
    for name in ("qty", "price", "fee"):
        fields[name] = float(fields[name])
    return FillRow(**fields)


def _with_fills(order: dict[str, Any], fills_of: dict[UUID, list[FillRow]]) -> OrderWithFills:
    status_reason = order.pop("status_reason")
    return OrderWithFills(
        order=order_from_row(order), status_reason=status_reason, fills=tuple(fills_of.get(order["id"], ()))
    )
