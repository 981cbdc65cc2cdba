"""The REST API (``/api/...``): the daemon's status, decision review, LLM calls, results, runs and commands.

Reads go through the review queries (``triplegain.review``) with the same filters as ``triplegain decisions``;
commands through the operator's controls (``coordinator.controls``), as command rows like the CLI's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from triplegain.coordinator.controls import submit_and_wait
from triplegain.http.context import HttpContext
from triplegain.http.live import LiveStatus
from triplegain.model import Command, DecisionAction, Verb
from triplegain.review import (
    DaemonRun,
    DecisionFilter,
    DecisionRecord,
    DecisionSummary,
    EquityPoint,
    LLMCall,
    LLMCallFilter,
    LLMCallSummary,
    count_decisions,
    count_llm_calls,
    decision_record,
    equity_series,
    find_run,
    latest_run,
    list_decisions,
    list_llm_calls,
    list_runs,
    llm_call,
    report_scope,
)
from triplegain.review.results import ResultEvent, Results
from triplegain.review.results_queries import result_events, scope_results

MAX_PAGE = 500
NO_NUL = r"^[^\x00]*$"
"""Text PostgreSQL can hold: no NUL character (refused with 422 before it reaches a query)."""
MAX_WAIT_SECONDS = 300.0
"""Longest a command request waits for its outcome."""
Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """One page of a list, newest first; ``next_offset`` asks for the next one (None: this was the last)."""

    items: list[Item]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class CommandRequest(BaseModel):
    """An operator command, as ``triplegain coordinator pause|resume|halt`` takes it."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["pause", "resume", "halt"]
    flatten: bool = Field(default=False, description="halt only: close every position")
    force: bool = Field(default=False, description="resume only: resume from HALTED")
    reason: str = Field(default="", max_length=2_000, pattern=NO_NUL)
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="the same key again is the same command, not another",
    )
    wait_seconds: float = Field(default=10.0, gt=0, le=MAX_WAIT_SECONDS, description="how long to wait for the outcome")

    @field_validator("flatten")
    @classmethod
    def _flatten_with_halt(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("action") != "halt":
            raise ValueError("flatten applies only to halt")
        return value

    @field_validator("force")
    @classmethod
    def _force_with_resume(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("action") != "resume":
            raise ValueError("force applies only to resume")
        return value


class CommandAnswer(BaseModel):
    applied: bool = Field(description="the daemon applied it (or recorded it, with no daemon running)")
    outcome: str
    lines: list[str] = Field(description="what triplegain coordinator prints for it")


class RunResults(BaseModel):
    run: DaemonRun | None
    results: Results


MAX_OFFSET = 1_000_000_000
MAX_ID = 2**63 - 1
"""The largest run id (bigint)."""
Text = Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
RunId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def api_router(context: HttpContext) -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.get("/status", response_model=LiveStatus)
    async def status() -> LiveStatus:
        """The daemon now: state, level and causes, breaker, equity, positions, last decision, progress."""
        return context.status()

    @router.get("/decisions", response_model=Page[DecisionSummary])
    async def decisions(
        run: RunId = None,
        account: Text = None,
        symbol: Text = None,
        action: DecisionAction | None = None,
        since: AwareDatetime | None = None,
        until: AwareDatetime | None = None,
        conflicts_only: bool = False,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[DecisionSummary]:
        """Decisions, newest first (the account of this daemon unless ``account`` says another)."""
        chosen = DecisionFilter(
            run_id=run,
            account=account or context.account,
            symbol=symbol,
            action=action,
            since=_checked_window(since, until),
            until=until,
            conflicts_only=conflicts_only,
            limit=limit,
            offset=offset,
        )
        async with context.reading() as db:
            items = await list_decisions(db, chosen)
            total = await count_decisions(db, chosen)
        return _page(items, total, limit, offset)

    @router.get("/decisions/{decision_id}", response_model=DecisionRecord)
    async def decision(decision_id: UUID) -> DecisionRecord:
        """A decision whole: its views, consensus, conflicts, every LLM attempt, risk checks, orders and fills."""
        async with context.reading() as db:
            record = await decision_record(db, decision_id)
        if record is None:
            raise HTTPException(404, detail=f"no decision {decision_id}")
        return record

    @router.get("/llm-calls", response_model=Page[LLMCallSummary])
    async def llm_calls(
        run: RunId = None,
        account: Text = None,
        provider: Text = None,
        purpose: Text = None,
        symbol: Text = None,
        decision: UUID | None = None,
        errors_only: bool = False,
        since: AwareDatetime | None = None,
        until: AwareDatetime | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[LLMCallSummary]:
        """LLM attempts, newest first (of this daemon's account unless ``account`` says another)."""
        chosen = LLMCallFilter(
            run_id=run,
            account=account or context.account,
            provider=provider,
            purpose=purpose,
            symbol=symbol,
            decision_id=decision,
            errors_only=errors_only,
            since=_checked_window(since, until),
            until=until,
            limit=limit,
            offset=offset,
        )
        async with context.reading() as db:
            items = await list_llm_calls(db, chosen)
            total = await count_llm_calls(db, chosen)
        return _page(items, total, limit, offset)

    @router.get("/llm-calls/{call_id}", response_model=LLMCall)
    async def one_llm_call(call_id: UUID) -> LLMCall:
        """An LLM attempt whole: its prompts, its raw response, what was parsed from it."""
        async with context.reading() as db:
            call = await llm_call(db, call_id)
        if call is None:
            raise HTTPException(404, detail=f"no LLM call {call_id}")
        return call

    @router.get("/results", response_model=RunResults)
    async def results(run: RunId = None) -> RunResults:
        """A run's results (the latest run of this daemon's account by default): round trips, win rate, profit
        factor, drawdown, ratios, buy-and-hold, breaker and command events."""
        async with context.reading() as db:
            chosen = await _run(db, run)
            scope = await report_scope(db, chosen, context.account)
            figures = await scope_results(db, scope, **context.results_inputs)
        return RunResults(run=chosen, results=figures)

    @router.get("/equity", response_model=list[EquityPoint])
    async def equity(run: RunId = None) -> list[EquityPoint]:
        """A run's equity after each candle that changed it (the latest run by default)."""
        async with context.reading() as db:
            scope = await report_scope(db, await _run(db, run), context.account)
            return await equity_series(db, scope)

    @router.get("/timeline", response_model=list[ResultEvent])
    async def timeline(run: RunId = None) -> list[ResultEvent]:
        """Breaker trips and resets, degradation level changes and operator commands of a run (the latest)."""
        async with context.reading() as db:
            scope = await report_scope(db, await _run(db, run), context.account)
            return await result_events(db, scope)

    @router.get("/runs", response_model=Page[DaemonRun])
    async def runs(limit: Limit = 50, offset: Offset = 0) -> Page[DaemonRun]:
        """This daemon's account's runs, started last first."""
        async with context.reading() as db:
            items = await list_runs(db, context.account, limit=limit + 1, offset=offset)
        more = len(items) > limit
        return Page(
            items=items[:limit],
            total=offset + len(items),
            limit=limit,
            offset=offset,
            next_offset=offset + limit if more else None,
        )

    @router.post("/commands", response_model=CommandAnswer, responses={409: {"model": CommandAnswer}})
    async def commands(body: CommandRequest, request: Request) -> Any:
        """Pause, resume (``force`` from HALTED) or halt (``flatten``) the daemon: a command row, as the CLI
        writes, applied at once; 200 when applied, 409 when refused or not applied in time."""
        client = request.client.host if request.client is not None else "?"
        command = Command(
            verb=Verb(body.action),
            force=body.force,
            flatten=body.flatten,
            reason=body.reason,
            requested_by=f"http:{client}",
        )
        async with context.reading() as db:
            lines, ok = await submit_and_wait(
                db, context.account, command, body.wait_seconds, apply=context.apply, key=body.idempotency_key
            )
        answer = CommandAnswer(applied=ok, outcome=lines[0], lines=lines)
        return answer if ok else JSONResponse(answer.model_dump(), status_code=409)

    async def _run(db: Any, run: int | None) -> DaemonRun | None:
        if run is None:
            return await latest_run(db, context.account)
        found = await find_run(db, run)
        if found is None or found.account != context.account:
            raise HTTPException(404, detail=f"no run {run} of account {context.account!r}")
        return found

    return router


def _checked_window(since: datetime | None, until: datetime | None) -> datetime | None:
    if since is not None and until is not None and since >= until:
        raise RequestValidationError(
            [{"loc": ("query", "since"), "msg": "since must be before until", "type": "value_error"}]
        )
    return since


def _page(items: list[Item], total: int, limit: int, offset: int) -> Page[Item]:
    more = offset + len(items) < total
    return Page(items=items, total=total, limit=limit, offset=offset, next_offset=offset + len(items) if more else None)
