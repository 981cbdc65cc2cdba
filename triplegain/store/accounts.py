"""Paper accounts as a whole: what each one holds (``account_summaries``), and deleting one (``delete_account``).

An account is the name every row of one paper portfolio carries: its runs, the coordinator's state and commands,
its decisions, orders, fills, positions, snapshots, marks, events and alerts. Rows that carry no account name belong to
it through its runs (agent views and LLM calls), its decisions (conflicts, a resolver's LLM calls) or its orders
(fills). Deleting an account deletes exactly those rows, in one transaction, children first; no row of another
account is touched (``tests/integration/test_accounts.py``). Dead letters carry no account and stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from triplegain.store.database import Database

_ACCOUNTS = """
    SELECT account FROM daemon_runs UNION SELECT account FROM coordinator_state
    UNION SELECT account FROM broker_marks UNION SELECT account FROM portfolio_snapshots
    UNION SELECT account FROM decisions UNION SELECT account FROM coordinator_commands
"""
_SUMMARIES = f"""
    SELECT a.account,
           (SELECT count(*) FROM daemon_runs r WHERE r.account = a.account) AS runs,
           (SELECT max(m.candle_open_time) FROM broker_marks m WHERE m.account = a.account) AS last_candle,
           (SELECT p.equity FROM portfolio_snapshots p WHERE p.account = a.account ORDER BY p.ts DESC, p.id DESC
            LIMIT 1) AS equity,
           (SELECT s.state FROM coordinator_state s WHERE s.account = a.account) AS state,
           (SELECT max(r.started_at) FROM daemon_runs r WHERE r.account = a.account) AS last_run_started
    FROM ({_ACCOUNTS}) a
    ORDER BY a.account
"""
_OF_RUNS = "SELECT id FROM daemon_runs WHERE account = $1"
_OF_DECISIONS = "SELECT id FROM decisions WHERE account = $1"
_OF_ORDERS = "SELECT id FROM orders WHERE account = $1"
# What deleting an account removes, children before their parents: what it is called → the statement.
_DELETIONS: dict[str, str] = {
    "fills": f"DELETE FROM fills WHERE order_id IN ({_OF_ORDERS})",
    "conflicts": f"DELETE FROM conflicts WHERE decision_id IN ({_OF_DECISIONS})",
    "agent views": f"DELETE FROM agent_outputs WHERE run_id IN ({_OF_RUNS})",
    "LLM calls": f"DELETE FROM llm_calls WHERE run_id IN ({_OF_RUNS}) OR decision_id IN ({_OF_DECISIONS})",
    "orders": "DELETE FROM orders WHERE account = $1",
    "decisions": "DELETE FROM decisions WHERE account = $1",
    "positions": "DELETE FROM positions WHERE account = $1",
    "portfolio snapshots": "DELETE FROM portfolio_snapshots WHERE account = $1",
    "marks": "DELETE FROM broker_marks WHERE account = $1",
    "level changes": "DELETE FROM degradation_events WHERE account = $1",
    "breaker events": "DELETE FROM breaker_events WHERE account = $1",
    "task runs": "DELETE FROM task_runs WHERE account = $1",
    "commands": "DELETE FROM coordinator_commands WHERE account = $1",
    "alerts": "DELETE FROM alerts WHERE account = $1",
    "coordinator state": "DELETE FROM coordinator_state WHERE account = $1",
    "runs": "DELETE FROM daemon_runs WHERE account = $1",
}


@dataclass(frozen=True)
class AccountSummary:
    """One account: how many daemon runs it had, the last candle it processed, its equity and state."""

    account: str
    runs: int
    last_candle: datetime | None
    """Open time of the latest candle the broker processed (of any symbol); None before the first."""
    equity: float | None
    state: str | None
    """RUNNING, PAUSED or HALTED; None before the coordinator first stored its state."""
    last_run_started: datetime | None


async def account_summaries(db: Database) -> list[AccountSummary]:
    """Every account with a row in the database, by name."""
    with db.errors("listing the accounts"):
        rows = await db.pool.fetch(_SUMMARIES)
    return [
        AccountSummary(
            account=row["account"],
            runs=row["runs"],
            last_candle=row["last_candle"],
            equity=float(row["equity"]) if row["equity"] is not None else None,
            state=row["state"],
            last_run_started=row["last_run_started"],
        )
        for row in rows
    ]


async def delete_account(db: Database, account: str, *, dry_run: bool = False) -> dict[str, int]:
    """Delete every row of ``account`` (see the module docstring) in one transaction; how many of each kind, in
    the order deleted. ``dry_run`` counts them and rolls back."""
    counts: dict[str, int] = {}
    with db.errors(f"deleting account {account}"):
        async with db.pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                for name in _DELETIONS:
                    status = await connection.execute(_DELETIONS[name], account)
                    counts[name] = int(status.rpartition(" ")[2])
            except BaseException:
                await transaction.rollback()
                raise
            if dry_run:
                await transaction.rollback()
            else:
                await transaction.commit()
    return counts
