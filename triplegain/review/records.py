"""What decision review reads: one frozen model per kind of row a query returns.

Summaries are the lines of a list; ``DecisionRecord`` and ``LLMCall`` are one row with everything behind it; the
rest are the report's scope and series.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from triplegain.model import DecisionAction, FillRow, OrderRow
from triplegain.store.decisions import ConflictRow, DecisionRow
from triplegain.store.records import AgentOutputRecord

_FROZEN = ConfigDict(frozen=True, extra="forbid")


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


class DecisionCounts(BaseModel):
    """How many decisions match, by action, and how many had a conflict."""

    model_config = _FROZEN

    total: int
    by_action: dict[str, int]
    conflicted: int


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
    attempt: int = Field(description="within its gateway call (retries)")
    step: int = Field(description="its place in its resolution, across the providers of the chain")
    cached: bool
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    error_class: str | None
    started_at: AwareDatetime = Field(description="on the system's clock (candle time in a replay)")
    wall_started_at: AwareDatetime = Field(description="on the wall clock")
    served_from_run: int | None = Field(description="the run whose stored answer was served, asking no provider")


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
    llm_calls: tuple[LLMCall, ...] = Field(description="in the order they were made (step)")
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
    """What a report covers: one daemon run, every run of one account, or everything.

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
