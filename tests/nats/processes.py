"""The roles as processes for the NATS tests: a settings file naming the test's stream, and the rows compared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from tests.faults.daemon_process import DaemonProcess, Event

SYMBOLS = {"BTC/USDT": 40000.0, "ETH/USDT": 2500.0}
CONFIG = """
market:
  synthetic:
    symbols: {{BTC/USDT: 40000.0, ETH/USDT: 2500.0}}
    count: {count}
    start: 2024-01-01T00:00:00Z
agents:
  technical: {{llm_provider: offline}}
  regime: {{llm_provider: offline}}
coordinator:
  resolver: {{providers: [offline]}}
  conflicts: {{risk_cut_threshold: 0.3}}
bus:
  nats: {{stream: {stream}, subject_prefix: {subject_prefix}, ack_timeout_seconds: 2.0}}
"""
SEED = "3"


def write_config(folder: Path, nats_names: dict[str, str], *, count: int) -> Path:
    path = folder / "triplegain.yaml"
    path.write_text(CONFIG.format(count=count, **nats_names))
    return path


def role_env(database_url: str, config: Path, nats_url: str) -> dict[str, str]:
    return {"TRIPLEGAIN_DATABASE_URL": database_url, "TRIPLEGAIN_CONFIG": str(config), "TRIPLEGAIN_NATS_URL": nats_url}


def agents_service(env: dict[str, str], *, speed: str) -> DaemonProcess:
    return DaemonProcess.start(["--source", "synthetic", "--seed", SEED, "--speed", speed], env=env, command="agents")


def remote_coordinator(env: dict[str, str], account: str, *extra: str, source: str = "synthetic") -> DaemonProcess:
    return DaemonProcess.start(["--agents", "remote", "--source", source, "--account", account, *extra], env=env)


def single_process(env: dict[str, str], account: str) -> DaemonProcess:
    return DaemonProcess.start(["--source", "synthetic", "--seed", SEED, "--account", account], env=env)


def is_new_decision(event: Event) -> bool:
    return event.get("event") == "decision" and not event.get("already_stored", False)


def finished(process: DaemonProcess, *, within: float) -> Event:
    """Its exit (0, no traceback) and its last JSON line (a summary)."""
    code = process.finish(within=within)
    assert code == 0, process.err()[-3000:]
    assert "Traceback" not in process.err(), process.err()[-3000:]
    return process.events[-1]


def event_named(process: DaemonProcess, name: str) -> Event:
    [found] = [event for event in process.events if event.get("event") == name]
    return found


async def trading_rows(url: str, account: str) -> dict[str, list[tuple[Any, ...]]]:
    """An account's decisions, orders and fills, with what a loss, a double or a reordering would change (ids
    derive from the account's name, so accounts are compared by these)."""
    connection = await asyncpg.connect(url)
    try:
        decisions = await connection.fetch(
            "SELECT symbol, ts, action, confidence, reason FROM decisions WHERE account = $1 ORDER BY ts, symbol",
            account,
        )
        orders = await connection.fetch(
            """
            SELECT o.symbol, d.ts, o.side, o.type, o.qty, o.status FROM orders o
            LEFT JOIN decisions d ON d.id = o.decision_id WHERE o.account = $1 ORDER BY o.created_at, o.symbol, o.side
            """,
            account,
        )
        fills = await connection.fetch(
            """
            SELECT o.symbol, o.side, f.qty, f.price, f.fee, f.ts FROM fills f JOIN orders o ON o.id = f.order_id
            WHERE o.account = $1 ORDER BY f.ts, o.symbol, f.client_fill_id
            """,
            account,
        )
    finally:
        await connection.close()
    return {
        "decisions": [tuple(row) for row in decisions],
        "orders": [tuple(row) for row in orders],
        "fills": [tuple(row) for row in fills],
    }


async def difference(url: str, account: str, reference: str, expected: dict[str, list[tuple[Any, ...]]]) -> str:
    """Where ``account``'s rows first part from ``expected`` (``reference``'s), per table, with both accounts'
    decisions around that time in full (level, state, run, reason): what a failed comparison needs to be read."""
    got = await trading_rows(url, account)
    lines: list[str] = []
    first_time = None
    for table, rows in expected.items():
        index = next((i for i, (a, b) in enumerate(zip(rows, got[table], strict=False)) if a != b), None)
        if index is None and len(rows) == len(got[table]):
            continue
        index = min(len(rows), len(got[table])) if index is None else index
        lines.append(f"{table}: {len(got[table])} rows against {len(rows)}; first apart at row {index}:")
        lines.append(f"  {account}: {got[table][index] if index < len(got[table]) else None}")
        lines.append(f"  {reference}: {rows[index] if index < len(rows) else None}")
        if table == "decisions":
            apart = got[table] if index < len(got[table]) else rows
            first_time = apart[index][1] if index < len(apart) else None
    if first_time is not None:
        connection = await asyncpg.connect(url)
        try:
            around = await connection.fetch(
                """
                SELECT account, symbol, ts, action, confidence, degradation_level, coordinator_state, run_id, reason,
                       consensus_inputs
                FROM decisions
                WHERE account = ANY($1) AND ts BETWEEN $2::timestamptz - interval '15 minutes' AND $2::timestamptz
                ORDER BY ts, symbol, account
                """,
                [account, reference],
                first_time,
            )
        finally:
            await connection.close()
        lines.extend(f"  {tuple(row)}" for row in around)
    return "\n".join(lines)


async def agent_llm_calls(url: str) -> dict[str | None, int]:
    """The agents' LLM calls (no decision) per account of their run; None: the agents service's (no run)."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            """
            SELECT r.account, count(*) AS calls FROM llm_calls c LEFT JOIN daemon_runs r ON r.id = c.run_id
            WHERE c.decision_id IS NULL GROUP BY r.account
            """
        )
    finally:
        await connection.close()
    return {row["account"]: row["calls"] for row in rows}


def decisions_made(process: DaemonProcess) -> int:
    """The new decisions ``process`` has logged so far (of the lines read)."""
    return sum(1 for event in process.events if is_new_decision(event))


def wait_for_decisions(process: DaemonProcess, count: int, *, within: float) -> None:
    """Until ``process`` has logged ``count`` new decisions in all."""
    if decisions_made(process) >= count:
        return
    for event in process.lines(within):
        if is_new_decision(event) and decisions_made(process) >= count:
            return
    raise AssertionError(
        f"the daemon exited after {decisions_made(process)} of {count} decisions: {process.err()[-2000:]}"
    )
