"""The ``alerts`` table: each alert the daemon raised, per webhook, with its delivery outcome (migration 006).

``store_alerts`` writes the rows of alerts whose fate is known, in one transaction; ``list_alerts`` reads an
account's newest first. A row's id is made with it: a row stored twice (a store cut short at the stop, then tried
again) is stored once. The webhook is only ever stored redacted (scheme and host): the dispatcher hands it so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from triplegain.store.database import Database

AlertOutcome = Literal["delivered", "failed", "undelivered", "dropped"]

_INSERT = """
    INSERT INTO alerts (id, account, run_id, kind, at, text, payload, webhook, outcome, attempts, status_code, error,
                        raised_at, delivered_at, finished_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    ON CONFLICT (id) DO NOTHING
"""
_COLUMNS = """
    id, account, run_id, kind, at, text, payload, webhook, outcome, attempts, status_code, error, raised_at,
    delivered_at, finished_at
"""


@dataclass(frozen=True)
class AlertRow:
    """One alert at one webhook, once its fate is known; ``id`` is made with it, so storing it again is harmless."""

    id: UUID
    account: str
    run_id: int | None
    kind: str
    at: datetime
    text: str
    payload: dict[str, Any]
    webhook: str
    """Scheme and host only (``https://api.telegram.org``)."""
    outcome: AlertOutcome
    attempts: int
    status_code: int | None
    error: str | None
    raised_at: datetime
    delivered_at: datetime | None
    finished_at: datetime


async def store_alerts(db: Database, rows: list[AlertRow]) -> None:
    """Write ``rows`` in one transaction (``DatabaseError`` when the database is out of reach)."""
    values = [
        (
            row.id,
            row.account,
            row.run_id,
            row.kind,
            row.at,
            row.text,
            row.payload,
            row.webhook,
            row.outcome,
            row.attempts,
            row.status_code,
            row.error,
            row.raised_at,
            row.delivered_at,
            row.finished_at,
        )
        for row in rows
    ]
    with db.errors(f"storing {len(rows)} alert(s)"):
        async with db.pool.acquire() as connection, connection.transaction():
            await connection.executemany(_INSERT, values)


async def list_alerts(db: Database, *, account: str | None = None, limit: int = 50) -> list[AlertRow]:
    """The newest ``limit`` alerts (of ``account``, or of every account), newest first."""
    with db.errors("listing the alerts"):
        rows = await db.pool.fetch(
            f"SELECT {_COLUMNS} FROM alerts WHERE $1::text IS NULL OR account = $1 "
            "ORDER BY raised_at DESC, finished_at DESC LIMIT $2",
            account,
            limit,
        )
    return [AlertRow(**dict(row)) for row in rows]
