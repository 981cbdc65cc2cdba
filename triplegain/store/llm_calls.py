"""The ``llm_calls`` table: the LLM layer's ``CallLog`` on the batching writer, and recent calls for review."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from triplegain.llm.models import LLMCallRecord
from triplegain.store.database import Database
from triplegain.store.records import LLMCallRow
from triplegain.store.writer import BatchWriter

Serves = Literal["decision", "agent_output"]

_COLUMNS = """
    id, request_id, decision_id, run_id, provider, model, purpose, answer_model, prompt_digest, system_prompt,
    user_prompt, raw_response, parsed, validation_error, input_tokens, output_tokens, cost_usd, latency_ms, attempt,
    step, cached, error_class, error_message, started_at, wall_started_at, served_from_run
"""
_RECENT = f"SELECT {_COLUMNS} FROM llm_calls ORDER BY started_at DESC, id LIMIT $1"
_OF_RUN = f"SELECT {_COLUMNS} FROM llm_calls WHERE run_id = $1 ORDER BY wall_started_at, step, id"
_RUN_EXISTS = "SELECT EXISTS (SELECT FROM daemon_runs WHERE id = $1)"
_SPENT_BY_PROVIDER = """
    SELECT provider, sum(cost_usd) AS spent FROM llm_calls
    WHERE wall_started_at >= $1 AND wall_started_at < $2 AND cost_usd > 0 GROUP BY provider
"""
_RECENT_OF_PROVIDER = f"SELECT {_COLUMNS} FROM llm_calls WHERE provider = $2 ORDER BY started_at DESC, id LIMIT $1"


class PostgresCallLog:
    """A ``CallLog`` that hands each record to the batching writer: ``record`` never waits for the database.

    ``serves`` says what the records' ``served_id`` names. A decision's id is stored as ``decision_id``; an
    agent output's is not stored here (the agent output points at its call through ``llm_call_id``).
    """

    def __init__(self, writer: BatchWriter, *, serves: Serves, run_id: int | None = None) -> None:
        self._writer = writer
        self._serves = serves
        self._run_id = run_id

    async def record(self, call: LLMCallRecord) -> None:
        decision_id = call.served_id if self._serves == "decision" else None
        self._writer.submit(LLMCallRow(call=call, run_id=self._run_id, decision_id=decision_id))


async def spent_on(db: Database, day: date) -> dict[str, float]:
    """USD each provider cost on ``day``, a wall-clock UTC day (whatever the calls' candle time): what seeds the
    daily budgets of a daemon restarted that day."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    with db.errors(f"summing the LLM spend of {day.isoformat()}"):
        rows = await db.pool.fetch(_SPENT_BY_PROVIDER, start, start + timedelta(days=1))
    return {row["provider"]: float(row["spent"]) for row in rows}


async def run_llm_calls(db: Database, run_id: int) -> list[LLMCallRecord] | None:
    """Every LLM call of daemon run ``run_id``, in the order they were made; None when there is no such run."""
    with db.errors(f"reading the LLM calls of run {run_id}"):
        async with db.pool.acquire() as connection:
            if not await connection.fetchval(_RUN_EXISTS, run_id):
                return None
            rows = await connection.fetch(_OF_RUN, run_id)
    return [_row(row).call for row in rows]


async def recent_llm_calls(pool: Any, limit: int, provider: str | None = None) -> list[LLMCallRow]:
    """The ``limit`` most recently started calls, newest first, of one provider or of all.

    A call's ``served_id`` reads back as its ``decision_id`` (None for an agent's call).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if provider is None:
        records = await pool.fetch(_RECENT, limit)
    else:
        records = await pool.fetch(_RECENT_OF_PROVIDER, limit, provider)
    return [_row(record) for record in records]


def _row(record: Any) -> LLMCallRow:
    fields = dict(record)
    run_id, decision_id = fields.pop("run_id"), fields.pop("decision_id")
    fields["cost_usd"] = float(fields["cost_usd"])
    return LLMCallRow(call=LLMCallRecord(served_id=decision_id, **fields), run_id=run_id, decision_id=decision_id)
