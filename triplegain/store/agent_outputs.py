"""The ``agent_outputs`` table: agents' views through the batching writer, and a symbol's views for review."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from triplegain.store.records import AgentOutputRecord
from triplegain.store.writer import BatchWriter

_FOR_SYMBOL = """
    SELECT id, run_id, agent, symbol, ts, confidence, body, reasoning, llm_call_id
    FROM agent_outputs WHERE symbol = $1 AND ts >= $2 ORDER BY ts, id
"""


class PostgresAgentOutputLog:
    """Hands each agent output to the batching writer: ``record`` never waits for the database."""

    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer

    async def record(self, output: AgentOutputRecord) -> None:
        self._writer.submit(output)


async def agent_outputs_for(pool: Any, symbol: str, since: datetime) -> list[AgentOutputRecord]:
    """The views about ``symbol`` from ``since`` (timezone-aware) on, oldest first."""
    if since.tzinfo is None:
        raise ValueError(f"since must be timezone-aware, got {since.isoformat()}")
    records = await pool.fetch(_FOR_SYMBOL, symbol, since)
    return [AgentOutputRecord(**dict(record)) for record in records]
