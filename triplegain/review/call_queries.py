"""Reading LLM calls: lists (newest first, at most the filter's limit), counts, one whole call, and every match a
page at a time for exports.

A call's symbol is its own, else its decision's, else that of the agent view it was made for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from uuid import UUID

from triplegain.review.filters import LLMCallFilter
from triplegain.review.pages import PAGE_SIZE, PageKey, keyset_pages
from triplegain.review.records import LLMCall, LLMCallSummary
from triplegain.review.where import Where
from triplegain.store.database import Database

LLM_CALL_EXPORT_COLUMNS = (
    "id",
    "request_id",
    "decision_id",
    "run_id",
    "provider",
    "model",
    "purpose",
    "symbol",
    "attempt",
    "step",
    "cached",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "error_class",
    "started_at",
    "wall_started_at",
    "served_from_run",
    "answer_model",
    "prompt_digest",
    "system_prompt",
    "user_prompt",
    "raw_response",
    "parsed",
    "validation_error",
    "error_message",
)
"""The columns of an exported LLM call, in order: every column of ``llm_calls``, the symbol filled in."""

_CALL_SUMMARY_COLUMNS = """
    c.id, c.request_id, c.decision_id, c.run_id, c.provider, c.model, c.purpose, coalesce(c.symbol, d.symbol) AS symbol,
    c.attempt, c.step, c.cached, c.input_tokens, c.output_tokens, c.cost_usd, c.latency_ms, c.error_class, c.started_at,
    c.wall_started_at, c.served_from_run
"""
_CALL_COLUMNS = (
    _CALL_SUMMARY_COLUMNS
    + """,
    c.answer_model, c.prompt_digest, c.system_prompt, c.user_prompt, c.raw_response, c.parsed, c.validation_error,
    c.error_message
"""
)
_CALLS_FROM = "FROM llm_calls c LEFT JOIN decisions d ON d.id = c.decision_id"
_VIEW_SYMBOLS = "SELECT llm_call_id, symbol FROM agent_outputs WHERE llm_call_id = ANY($1::uuid[])"

_OLDEST_FIRST = "c.started_at, c.wall_started_at, c.id"
"""Calls in time order; the attempts of one decision, all at one candle time in a replay, in the order made."""
_NEWEST_FIRST = "c.started_at DESC, c.wall_started_at DESC, c.id DESC"

SELECT_CALLS_OF_DECISION = (
    f"SELECT {_CALL_COLUMNS} {_CALLS_FROM} WHERE c.decision_id = $1 "
    "ORDER BY c.run_id NULLS FIRST, c.step, c.wall_started_at, c.id"
)
"""Every LLM call made for the decision ``$1``, whole, in the order they were made: by their place in the
resolution (``step``), the runs that made them apart (a task run again after a crash resolves again). Rows for
``call_of_decision``."""


def _call_where(calls: LLMCallFilter) -> Where:
    where = Where()
    if calls.since is not None:
        where.add("c.started_at >= {}", calls.since)
    if calls.until is not None:
        where.add("c.started_at < {}", calls.until)
    if calls.provider is not None:
        where.add("c.provider = {}", calls.provider)
    if calls.purpose is not None:
        where.add("c.purpose = {}", calls.purpose)
    if calls.symbol is not None:
        # Not a correlated subquery: agent_outputs has no index on llm_call_id, so it is read once, hashed.
        where.add(
            "(c.symbol = {0} OR d.symbol = {0} OR c.id IN "
            "(SELECT a.llm_call_id FROM agent_outputs a WHERE a.symbol = {0} AND a.llm_call_id IS NOT NULL))",
            calls.symbol,
        )
    if calls.decision_id is not None:
        where.add("c.decision_id = {}", calls.decision_id)
    if calls.run_id is not None:
        where.add("c.run_id = {}", calls.run_id)
    if calls.account is not None:
        where.add("c.run_id IN (SELECT r.id FROM daemon_runs r WHERE r.account = {})", calls.account)
    if calls.errors_only:
        where.add("c.error_class IS NOT NULL")
    return where


async def list_llm_calls(db: Database, calls: LLMCallFilter) -> list[LLMCallSummary]:
    """The LLM calls matching the filter, newest first, at most ``calls.limit``."""
    where = _call_where(calls)
    statement = f"SELECT {_CALL_SUMMARY_COLUMNS} {_CALLS_FROM} {where.sql()} ORDER BY {_NEWEST_FIRST}"
    if calls.limit is not None:
        statement += f" LIMIT {where.param(calls.limit)}"
    if calls.offset:
        statement += f" OFFSET {where.param(calls.offset)}"
    with db.errors("listing LLM calls"):
        rows = await db.pool.fetch(statement, *where.args)
        symbols = await _view_symbols(db, rows)
    return [LLMCallSummary(**_call_fields(row, symbols)) for row in rows]


async def count_llm_calls(db: Database, calls: LLMCallFilter) -> int:
    """How many LLM calls match the filter, whatever its limit."""
    where = _call_where(calls)
    with db.errors("counting LLM calls"):
        count: int = await db.pool.fetchval(f"SELECT count(*) {_CALLS_FROM} {where.sql()}", *where.args)
    return count


async def llm_call(db: Database, call_id: UUID) -> LLMCall | None:
    """The whole ``llm_calls`` row; None when no call has that id."""
    with db.errors(f"reading LLM call {call_id}"):
        row = await db.pool.fetchrow(f"SELECT {_CALL_COLUMNS} {_CALLS_FROM} WHERE c.id = $1", call_id)
        if row is None:
            return None
        symbols = await _view_symbols(db, [row])
    return LLMCall(**_call_fields(row, symbols))


def llm_call_pages(
    db: Database, calls: LLMCallFilter, page_size: int = PAGE_SIZE
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every LLM call matching the filter (up to its limit), oldest first, a page at a time, each row with
    ``LLM_CALL_EXPORT_COLUMNS``."""

    async def read(after: PageKey | None, size: int) -> list[dict[str, Any]]:
        where = _call_where(calls)
        if after is not None:
            where.add("(c.started_at, c.wall_started_at, c.id) > ({}, {}, {})", *after)
        statement = (
            f"SELECT {_CALL_COLUMNS} {_CALLS_FROM} {where.sql()} ORDER BY {_OLDEST_FIRST} LIMIT {where.param(size)}"
        )
        with db.errors("exporting LLM calls"):
            rows = await db.pool.fetch(statement, *where.args)
            symbols = await _view_symbols(db, rows)
        return [_call_fields(row, symbols) for row in rows]

    return keyset_pages(read, limit=calls.limit, page_size=page_size, key=("started_at", "wall_started_at", "id"))


def call_of_decision(row: Any) -> LLMCall:
    """A row of ``SELECT_CALLS_OF_DECISION``: it has a symbol (its own or its decision's), so no view is looked up."""
    return LLMCall(**_call_fields(row, {}))


async def _view_symbols(db: Database, rows: Sequence[Any]) -> dict[UUID, str]:
    """The symbol of the agent view each agent's call (no symbol of its own, no decision) was made for."""
    missing = [row["id"] for row in rows if row["symbol"] is None and row["decision_id"] is None]
    if not missing:
        return {}
    found = await db.pool.fetch(_VIEW_SYMBOLS, missing)
    return {row["llm_call_id"]: row["symbol"] for row in found if row["symbol"] is not None}


def _call_fields(row: Any, view_symbols: Mapping[UUID, str]) -> dict[str, Any]:
    fields = dict(row)
    fields["cost_usd"] = float(fields["cost_usd"])
    if fields["symbol"] is None:
        fields["symbol"] = view_symbols.get(fields["id"])
    return fields
