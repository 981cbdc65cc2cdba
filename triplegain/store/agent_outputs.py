"""The ``agent_outputs`` table: agents' views through the batching writer, a symbol's views for review, and each
agent's latest view of an account (what a restarted daemon puts back on the bus)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from triplegain.store.database import Database
from triplegain.store.records import AgentOutputRecord, AgentOutputRow
from triplegain.store.writer import BatchWriter

_FOR_SYMBOL = """
    SELECT id, run_id, agent, symbol, ts, confidence, body, reasoning, llm_call_id
    FROM agent_outputs WHERE symbol = $1 AND ts >= $2 ORDER BY ts, id
"""

_LATEST_OF_ACCOUNT = """
    SELECT DISTINCT ON (o.agent, o.symbol)
           o.id, o.run_id, o.agent, o.symbol, o.ts, o.confidence, o.body, o.reasoning, o.llm_call_id
    FROM agent_outputs o JOIN daemon_runs r ON r.id = o.run_id
    WHERE r.account = $1
    ORDER BY o.agent, o.symbol, o.ts DESC, o.id
"""


class PostgresAgentOutputLog:
    """Hands each agent output to the batching writer: ``record`` never waits for the database."""

    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer

    async def record(self, output: AgentOutputRecord | AgentOutputRow) -> None:
        self._writer.submit(output)


async def agent_outputs_for(pool: Any, symbol: str, since: datetime) -> list[AgentOutputRecord]:
    """The views about ``symbol`` from ``since`` (timezone-aware) on, oldest first."""
    if since.tzinfo is None:
        raise ValueError(f"since must be timezone-aware, got {since.isoformat()}")
    records = await pool.fetch(_FOR_SYMBOL, symbol, since)
    return [AgentOutputRecord(**dict(record)) for record in records]


async def latest_agent_outputs(db: Database, account: str) -> list[AgentOutputRecord]:
    """The newest stored view of each (agent, symbol) made by a daemon run on ``account``."""
    with db.errors(f"reading the latest agent views of {account}"):
        records = await db.pool.fetch(_LATEST_OF_ACCOUNT, account)
    return [AgentOutputRecord(**dict(record)) for record in records]
