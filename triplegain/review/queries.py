"""Read-only queries behind decision review: the CLI, the HTML report and the notebook all read through here.

Filters are frozen pydantic models, so a filter is checked once (times aware, ``since`` before ``until``,
limits positive) and then passed around as a value. Each filter becomes a ``WHERE`` clause assembled only from
the fixed fragments in this module, each value sent as a ``$n`` parameter: no text a user typed ever becomes
SQL.

Times: ``since`` is inclusive, ``until`` exclusive, so consecutive windows never count a row twice.

Lists are newest first and stop at ``limit``; the ``*_pages`` functions walk every matching row oldest first,
a page at a time (keyset pagination on ``(time, id)``), so an export of any size holds one page in memory and
no transaction stays open while the caller writes.

The report's series: equity and drawdown come from ``portfolio_snapshots``. There is no candle table, so prices
come from the technical agent's views (``agent_outputs.body->>'price'``, the close it analysed) and trades from
``fills`` (with their orders), plus the orders not filled (yet), placed at their limit price or their decision's
intended entry.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, model_validator

from triplegain.model import DecisionAction, OrderRow
from triplegain.store.database import Database
from triplegain.store.decisions import ORDER_COLUMNS, ConflictRow, DecisionRow, decision_from_row, order_from_row
from triplegain.store.records import AgentOutputRecord

DEFAULT_LIMIT = 50
"""Rows a list shows unless told otherwise: a screenful, the most recent first."""
PAGE_SIZE = 500
"""Rows per page when walking every match (exports): bounded memory, few round trips."""
ID_PREFIX_MIN = 8
"""Hex digits an id prefix needs: 8 digits make a clash between two ids of one database very unlikely."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_ID_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]*")


class _TimeWindow(BaseModel):
    """``since`` (inclusive) and ``until`` (exclusive), both optional and timezone-aware."""

    model_config = _FROZEN

    since: AwareDatetime | None = Field(default=None, description="from this time on (inclusive)")
    until: AwareDatetime | None = Field(default=None, description="before this time (exclusive)")
    limit: int | None = Field(default=DEFAULT_LIMIT, ge=1, description="at most this many rows; None: all")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since {self.since.isoformat()} is not before until {self.until.isoformat()}")
        return self


class DecisionFilter(_TimeWindow):
    """Which decisions to read. Every field narrows; the defaults match every decision (the latest 50)."""

    symbol: str | None = Field(default=None, min_length=1, description="the market, e.g. BTC/USDT")
    action: DecisionAction | None = None
    conflicts_only: bool = Field(default=False, description="only decisions where a conflict rule fired")
    provider: str | None = Field(
        default=None, min_length=1, description="only decisions an LLM of this provider was asked about"
    )
    run_id: int | None = Field(default=None, ge=1, description="only decisions of this daemon run")


class LLMCallFilter(_TimeWindow):
    """Which LLM calls to read (by ``started_at``). Every field narrows."""

    provider: str | None = Field(default=None, min_length=1)
    purpose: str | None = Field(default=None, min_length=1, description="e.g. conflict_resolution, regime_refinement")
    symbol: str | None = Field(
        default=None, min_length=1, description="the call's symbol, its decision's, or its agent view's"
    )
    decision_id: UUID | None = Field(default=None, description="only the attempts made for this decision")
    run_id: int | None = Field(default=None, ge=1)
    errors_only: bool = Field(default=False, description="only failed or skipped attempts")


class DecisionSummary(BaseModel):
    """One line of a decision list: what was decided, and in brief what it involved."""

    model_config = _FROZEN

    id: UUID
    run_id: int | None
    account: str
    symbol: str
    ts: AwareDatetime
    action: DecisionAction
    confidence: float
    degradation_level: str = Field(description="NORMAL, REDUCED, LIMITED or EMERGENCY")
    coordinator_state: str
    reason: str
    conflict_rules: tuple[str, ...] = Field(description="the conflict rules that fired, in order")
    resolved_by: str | None = Field(description="who settled the conflicts; None when nothing went to a resolver")
    llm_calls: int = Field(description="LLM attempts made for the decision")
    llm_cost_usd: float
    order_status: str | None = Field(description="the status of its order; None when it made none")


class FillRow(BaseModel):
    """A ``fills`` row."""

    model_config = _FROZEN

    id: UUID
    order_id: UUID
    client_fill_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    ts: AwareDatetime
    liquidity: str = Field(description="maker or taker")


class OrderWithFills(BaseModel):
    """An order and its executions, oldest first."""

    model_config = _FROZEN

    order: OrderRow
    status_reason: str | None = Field(description="why the broker gave the order its status (a rejection's rule)")
    fills: tuple[FillRow, ...]


class LLMCallSummary(BaseModel):
    """One line of an LLM call list: who answered what, how fast, for how much, and whether it failed."""

    model_config = _FROZEN

    id: UUID
    request_id: UUID
    decision_id: UUID | None
    run_id: int | None
    provider: str
    model: str
    purpose: str
    symbol: str | None = Field(description="the call's symbol, else its decision's, else its agent view's")
    attempt: int
    cached: bool
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    error_class: str | None
    started_at: AwareDatetime


class LLMCall(LLMCallSummary):
    """A whole ``llm_calls`` row: both prompts, the raw response, the validated answer or why it failed."""

    answer_model: str
    prompt_digest: str
    system_prompt: str
    user_prompt: str
    raw_response: str | None
    parsed: JsonValue
    validation_error: str | None
    error_message: str | None


class DecisionRecord(BaseModel):
    """A decision with everything behind it: the agent views it counted, its conflicts, every LLM attempt
    made for it, and its orders with their fills."""

    model_config = _FROZEN

    decision: DecisionRow
    views: tuple[AgentOutputRecord, ...] = Field(
        description="the agent outputs its consensus inputs (and its intent) name, by agent"
    )
    conflicts: tuple[ConflictRow, ...]
    llm_calls: tuple[LLMCall, ...] = Field(description="in the order they started")
    orders: tuple[OrderWithFills, ...]


class DaemonRun(BaseModel):
    """A ``daemon_runs`` row."""

    model_config = _FROZEN

    id: int
    account: str
    started_at: AwareDatetime
    ended_at: AwareDatetime | None
    config_hash: str
    version: str
    host: str
    pid: int
    exit_reason: str | None


class ReportScope(BaseModel):
    """What a report covers: one daemon run, or everything.

    Tables with a ``run_id`` (decisions, LLM calls, agent outputs) are read by it. The others (snapshots,
    orders and fills, level changes) are read by the run's account between the first and last time its own
    rows carry — candle time in a replay, which a run's wall-clock ``started_at`` would miss — or between
    ``started_at`` and ``ended_at`` when it wrote none.
    """

    model_config = _FROZEN

    run: DaemonRun | None
    account: str | None
    first: AwareDatetime | None = Field(description="inclusive; None: from the beginning")
    last: AwareDatetime | None = Field(description="inclusive; None: up to now")


class EquityPoint(BaseModel):
    model_config = _FROZEN

    account: str
    ts: AwareDatetime
    equity: float
    cash: float
    drawdown: float = Field(description="fraction below the equity peak, 0..1")


class PricePoint(BaseModel):
    model_config = _FROZEN

    symbol: str
    ts: AwareDatetime
    price: float


class TradePoint(BaseModel):
    """A fill, or an order not filled (``filled`` False) at its limit price or its decision's entry."""

    model_config = _FROZEN

    symbol: str
    side: str
    ts: AwareDatetime
    price: float
    qty: float
    filled: bool
    decision_id: UUID | None


class LevelChange(BaseModel):
    model_config = _FROZEN

    account: str
    ts: AwareDatetime
    from_level: str
    to_level: str
    cause: JsonValue


class DailyCost(BaseModel):
    """LLM attempts of one provider on one UTC day."""

    model_config = _FROZEN

    day: date
    provider: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


# --- WHERE clauses -----------------------------------------------------------------------------------------


class _Where:
    """A conjunction of fixed fragments; ``{}`` in a fragment becomes the next ``$n``, its value a parameter."""

    def __init__(self, args: Sequence[Any] = ()) -> None:
        self.args: list[Any] = list(args)
        self._fragments: list[str] = []

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, fragment: str, *values: Any) -> None:
        self._fragments.append(fragment.format(*(self.param(value) for value in values)))

    def sql(self) -> str:
        return f"WHERE {' AND '.join(self._fragments)}" if self._fragments else ""


_PROVIDER_ASKED = (
    "(EXISTS (SELECT FROM llm_calls pl WHERE pl.decision_id = d.id AND pl.provider = {0})"
    " OR d.resolution -> 'attempts' @> jsonb_build_array(jsonb_build_object('provider', {0}::text)))"
)


def _decision_where(decisions: DecisionFilter) -> _Where:
    where = _Where()
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
    return where


def _call_where(calls: LLMCallFilter) -> _Where:
    where = _Where()
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
    if calls.errors_only:
        where.add("c.error_class IS NOT NULL")
    return where


# --- decisions ---------------------------------------------------------------------------------------------

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


async def list_decisions(db: Database, decisions: DecisionFilter) -> list[DecisionSummary]:
    """The decisions matching the filter, newest first, at most ``decisions.limit``."""
    where = _decision_where(decisions)
    statement = f"{_SUMMARY_SELECT} {_SUMMARY_JOINS} {where.sql()} ORDER BY d.ts DESC, d.id DESC"
    if decisions.limit is not None:
        statement += f" LIMIT {where.param(decisions.limit)}"
    with db.errors("listing decisions"):
        rows = await db.pool.fetch(statement, *where.args)
    return [_summary(row) for row in rows]


async def count_decisions(db: Database, decisions: DecisionFilter) -> int:
    """How many decisions match the filter, whatever its limit."""
    where = _decision_where(decisions)
    with db.errors("counting decisions"):
        count: int = await db.pool.fetchval(f"SELECT count(*) FROM decisions d {where.sql()}", *where.args)
    return count


class DecisionCounts(BaseModel):
    """How many decisions match, by action, and how many had a conflict."""

    model_config = _FROZEN

    total: int
    by_action: dict[str, int]
    conflicted: int


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


async def decision_pages(
    db: Database, decisions: DecisionFilter, page_size: int = PAGE_SIZE
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every decision matching the filter (up to its limit), oldest first, a page at a time.

    Each row has ``DECISION_EXPORT_COLUMNS``: the summary's fields and the jsonb columns as Python values.
    """
    remaining = decisions.limit
    after: tuple[datetime, UUID] | None = None
    while remaining is None or remaining > 0:
        where = _decision_where(decisions)
        if after is not None:
            where.add("(d.ts, d.id) > ({}, {})", *after)
        size = page_size if remaining is None else min(page_size, remaining)
        statement = f"{_EXPORT_SELECT} {_SUMMARY_JOINS} {where.sql()} ORDER BY d.ts, d.id LIMIT {where.param(size)}"
        with db.errors("exporting decisions"):
            rows = await db.pool.fetch(statement, *where.args)
        if not rows:
            return
        page = [_export_row(row) for row in rows]
        yield page
        if remaining is not None:
            remaining -= len(page)
        if len(rows) < size:
            return
        after = (rows[-1]["ts"], rows[-1]["id"])


_MATCH_DECISION_PREFIX = "SELECT id FROM decisions WHERE id::text LIKE $1 ORDER BY id LIMIT $2"
_MATCH_CALL_PREFIX = "SELECT id FROM llm_calls WHERE id::text LIKE $1 ORDER BY id LIMIT $2"


async def decision_ids_starting_with(db: Database, prefix: str, limit: int = 2) -> list[UUID]:
    """Decisions whose id starts with ``prefix`` (hex digits and dashes, at least ``ID_PREFIX_MIN`` digits)."""
    pattern = _prefix_pattern(prefix)
    with db.errors(f"looking up decision {prefix}"):
        rows = await db.pool.fetch(_MATCH_DECISION_PREFIX, pattern, limit)
    return [row["id"] for row in rows]


async def llm_call_ids_starting_with(db: Database, prefix: str, limit: int = 2) -> list[UUID]:
    """LLM calls whose id starts with ``prefix``; see ``decision_ids_starting_with``."""
    pattern = _prefix_pattern(prefix)
    with db.errors(f"looking up LLM call {prefix}"):
        rows = await db.pool.fetch(_MATCH_CALL_PREFIX, pattern, limit)
    return [row["id"] for row in rows]


def _prefix_pattern(prefix: str) -> str:
    """A LIKE pattern for an id prefix; the prefix is checked, so it holds no wildcard."""
    prefix = prefix.lower()
    digits = prefix.replace("-", "")
    if not _ID_PREFIX.fullmatch(prefix) or len(digits) < ID_PREFIX_MIN or len(prefix) > 36:
        raise ValueError(f"not an id prefix: {prefix!r}")
    return f"{prefix}%"


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
_CALL_SUMMARY_COLUMNS = """
    c.id, c.request_id, c.decision_id, c.run_id, c.provider, c.model, c.purpose, coalesce(c.symbol, d.symbol) AS symbol,
    c.attempt, c.cached, c.input_tokens, c.output_tokens, c.cost_usd, c.latency_ms, c.error_class, c.started_at
"""
_CALL_COLUMNS = (
    _CALL_SUMMARY_COLUMNS
    + """,
    c.answer_model, c.prompt_digest, c.system_prompt, c.user_prompt, c.raw_response, c.parsed, c.validation_error,
    c.error_message
"""
)
_CALLS_FROM = "FROM llm_calls c LEFT JOIN decisions d ON d.id = c.decision_id"
_SELECT_DECISION_CALLS = (
    f"SELECT {_CALL_COLUMNS} {_CALLS_FROM} WHERE c.decision_id = $1 ORDER BY c.started_at, c.attempt, c.id"
)
_SELECT_ORDERS = f"""
    SELECT {ORDER_COLUMNS}, status_reason FROM orders WHERE decision_id = $1 ORDER BY created_at, client_order_id
"""
_SELECT_FILLS = """
    SELECT id, order_id, client_fill_id, qty, price, fee, fee_currency, ts, liquidity
    FROM fills WHERE order_id = ANY($1::uuid[]) ORDER BY ts, client_fill_id
"""


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
            calls = await connection.fetch(_SELECT_DECISION_CALLS, decision_id)
            orders = await connection.fetch(_SELECT_ORDERS, decision_id)
            fills = await connection.fetch(_SELECT_FILLS, [order["id"] for order in orders])
    fills_of: dict[UUID, list[FillRow]] = {}
    for fill in fills:
        fills_of.setdefault(fill["order_id"], []).append(FillRow(**dict(fill)))
    return DecisionRecord(
        decision=decision,
        views=tuple(AgentOutputRecord(**dict(view)) for view in views),
        conflicts=tuple(ConflictRow(**dict(conflict)) for conflict in conflicts),
        llm_calls=tuple(_call(call) for call in calls),
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


# --- LLM calls ---------------------------------------------------------------------------------------------

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
    "cached",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "error_class",
    "started_at",
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

_VIEW_SYMBOLS = "SELECT llm_call_id, symbol FROM agent_outputs WHERE llm_call_id = ANY($1::uuid[])"


async def list_llm_calls(db: Database, calls: LLMCallFilter) -> list[LLMCallSummary]:
    """The LLM calls matching the filter, newest first, at most ``calls.limit``."""
    where = _call_where(calls)
    statement = f"SELECT {_CALL_SUMMARY_COLUMNS} {_CALLS_FROM} {where.sql()} ORDER BY c.started_at DESC, c.id DESC"
    if calls.limit is not None:
        statement += f" LIMIT {where.param(calls.limit)}"
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


async def llm_call_pages(
    db: Database, calls: LLMCallFilter, page_size: int = PAGE_SIZE
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every LLM call matching the filter (up to its limit), oldest first, a page at a time, each row with
    ``LLM_CALL_EXPORT_COLUMNS``."""
    remaining = calls.limit
    after: tuple[datetime, UUID] | None = None
    while remaining is None or remaining > 0:
        where = _call_where(calls)
        if after is not None:
            where.add("(c.started_at, c.id) > ({}, {})", *after)
        size = page_size if remaining is None else min(page_size, remaining)
        statement = (
            f"SELECT {_CALL_COLUMNS} {_CALLS_FROM} {where.sql()} ORDER BY c.started_at, c.id LIMIT {where.param(size)}"
        )
        with db.errors("exporting LLM calls"):
            rows = await db.pool.fetch(statement, *where.args)
            symbols = await _view_symbols(db, rows)
        if not rows:
            return
        yield [_call_fields(row, symbols) for row in rows]
        if remaining is not None:
            remaining -= len(rows)
        if len(rows) < size:
            return
        after = (rows[-1]["started_at"], rows[-1]["id"])


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


def _call(row: Any) -> LLMCall:
    return LLMCall(**_call_fields(row, {}))


# --- the report's series -----------------------------------------------------------------------------------

_RUN_COLUMNS = "id, account, started_at, ended_at, config_hash, version, host, pid, exit_reason"
_SELECT_RUN = f"SELECT {_RUN_COLUMNS} FROM daemon_runs WHERE id = $1"
_SELECT_LATEST_RUN = f"SELECT {_RUN_COLUMNS} FROM daemon_runs ORDER BY started_at DESC, id DESC LIMIT 1"
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


async def latest_run(db: Database) -> DaemonRun | None:
    """The daemon run started last; None when no daemon ever ran on this database."""
    with db.errors("reading the latest daemon run"):
        row = await db.pool.fetchrow(_SELECT_LATEST_RUN)
    return None if row is None else DaemonRun(**dict(row))


async def report_scope(db: Database, run: DaemonRun | None) -> ReportScope:
    """The scope of a report on ``run`` (None: everything); see ``ReportScope`` for how rows are chosen."""
    if run is None:
        return ReportScope(run=None, account=None, first=None, last=None)
    with db.errors(f"reading the extent of daemon run {run.id}"):
        extent = await db.pool.fetchrow(_RUN_EXTENT, run.id)
    if extent["first"] is not None:
        return ReportScope(run=run, account=run.account, first=extent["first"], last=extent["last"])
    return ReportScope(run=run, account=run.account, first=run.started_at, last=run.ended_at)


def scope_decisions(scope: ReportScope, limit: int | None = DEFAULT_LIMIT) -> DecisionFilter:
    """The decisions of a report's scope."""
    return DecisionFilter(run_id=scope.run.id if scope.run is not None else None, limit=limit)


def _run_where(scope: ReportScope, run_fragment: str) -> _Where:
    """Rows of a table with a run id: the run's (``run_fragment``, e.g. ``"c.run_id = {}"``), or all."""
    where = _Where()
    if scope.run is not None:
        where.add(run_fragment, scope.run.id)
    return where


def _window_where(scope: ReportScope, account_fragment: str, time_column: str) -> _Where:
    """Rows of a table without a run id: the run's account within its extent, or all.

    ``account_fragment`` and ``time_column`` are constants of this module (e.g. ``"o.account = {}"``, ``f.ts``).
    """
    where = _Where()
    if scope.account is not None:
        where.add(account_fragment, scope.account)
    if scope.first is not None:
        where.add(f"{time_column} >= {{}}", scope.first)
    if scope.last is not None:
        where.add(f"{time_column} <= {{}}", scope.last)
    return where


async def equity_series(db: Database, scope: ReportScope) -> list[EquityPoint]:
    """Portfolio snapshots in scope, oldest first."""
    where = _window_where(scope, "account = {}", "ts")
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
    where = _run_where(scope, "a.run_id = {}")
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
    fill_where = _window_where(scope, "o.account = {}", "f.ts")
    fills_statement = f"""
        SELECT o.symbol, o.side, f.ts, f.price, f.qty, o.decision_id
        FROM fills f JOIN orders o ON o.id = f.order_id {fill_where.sql()} ORDER BY f.ts, f.client_fill_id
    """
    order_where = _window_where(scope, "o.account = {}", "o.created_at")
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
    where = _window_where(scope, "account = {}", "ts")
    statement = f"SELECT account, ts, from_level, to_level, cause FROM degradation_events {where.sql()} ORDER BY ts, id"
    with db.errors("reading degradation events"):
        rows = await db.pool.fetch(statement, *where.args)
    return [LevelChange(**dict(row)) for row in rows]


async def daily_llm_costs(db: Database, scope: ReportScope) -> list[DailyCost]:
    """LLM attempts per UTC day and provider in scope, oldest day first."""
    where = _run_where(scope, "c.run_id = {}")
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


# --- rows to models ----------------------------------------------------------------------------------------


def _with_fills(order: dict[str, Any], fills_of: dict[UUID, list[FillRow]]) -> OrderWithFills:
    status_reason = order.pop("status_reason")
    return OrderWithFills(
        order=order_from_row(order), status_reason=status_reason, fills=tuple(fills_of.get(order["id"], ()))
    )


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
