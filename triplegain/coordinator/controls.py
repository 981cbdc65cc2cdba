"""The operator's controls over a coordinator: its status as lines, and a command submitted and waited for.

One facade for every way an operator reaches the daemon: ``triplegain coordinator`` over the database
(``triplegain.control``), the daemon's control socket (``daemon.control_socket``) and the HTTP API. A command is a
``coordinator_commands`` row plus a NOTIFY (``store.coordinator_state.submit_command``); the daemon holding the
account's lock applies it and writes the outcome into the row, which ``submit_and_wait`` waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from triplegain.clock import WallClock
from triplegain.coordinator.snapshot import load_snapshot
from triplegain.model import Command
from triplegain.store.coordinator_state import command_status, submit_command
from triplegain.store.database import Database
from triplegain.store.runs import daemon_running

POLL_SECONDS = 0.05
"""How often a submitted command's row is read until the daemon has settled it."""

ApplyCommands = Callable[[datetime], Awaitable[object]]

_POSITIONS = """
    SELECT symbol, qty, avg_price, stop_price, target_price FROM positions
    WHERE account = $1 AND qty <> 0 ORDER BY symbol
"""
_LATEST_EQUITY = """
    SELECT ts, equity, cash, drawdown FROM portfolio_snapshots WHERE account = $1 ORDER BY ts DESC, id DESC LIMIT 1
"""
_PENDING_COMMANDS = "SELECT count(*) FROM coordinator_commands WHERE account = $1 AND status = 'pending'"


async def submit_and_wait(
    db: Database,
    account: str,
    command: Command,
    wait: float,
    *,
    apply: ApplyCommands | None = None,
    key: str | None = None,
) -> tuple[list[str], bool]:
    """Store ``command`` for ``account`` and wait up to ``wait`` seconds for the running daemon to settle it; the
    lines to print and whether it was applied (or merely recorded, with no daemon running).

    ``apply``: the daemon's own ``Coordinator.apply_commands``, when the daemon itself submits (its control socket):
    it applies the command at once instead of waiting for its NOTIFY to come back. ``key``: the client's
    idempotency key (``store.coordinator_state.submit_command``): a command sent again under it is not stored
    again, and the answer is that command's outcome."""
    clock = WallClock()
    running = await daemon_running(db, account)
    command_id = await submit_command(db, account, command, clock.now(), key=key)
    if apply is not None:
        await apply(clock.now())
    if not running:
        return [
            f"{command.verb.value} recorded as command {command_id}; no daemon is running for account "
            f"{account!r}: it will be applied at the next start"
        ], True
    deadline = clock.monotonic() + wait
    while True:
        settled = await command_status(db, command_id)
        if settled is not None and settled[0] != "pending":
            break
        if clock.monotonic() >= deadline:
            return [f"{command.verb.value} (command {command_id}) was not applied within {wait:g} s"], False
        await asyncio.sleep(POLL_SECONDS)
    state_now = await _state_line(db, account)
    status_text, outcome = settled
    if status_text == "applied":
        return [f"{command.verb.value}: {outcome}", state_now], True
    return [f"{command.verb.value} {status_text}: {outcome}", state_now], False


async def _state_line(db: Database, account: str) -> str:
    snapshot = await load_snapshot(db, account)
    if snapshot is None:
        return f"account {account!r}: no state stored yet"
    record = snapshot.state
    since = f"{record.changed_at:%Y-%m-%d %H:%M:%S %Z}"
    return f"account {account!r}: state {record.state.value} since {since} by {record.changed_by}: {record.reason}"


async def status_lines(db: Database, account: str) -> tuple[list[str], bool]:
    """The status of ``account`` as lines, and whether a daemon runs it."""
    running = await daemon_running(db, account)
    snapshot = await load_snapshot(db, account)
    with db.errors(f"reading the positions of {account}"):
        positions = await db.pool.fetch(_POSITIONS, account)
        equity = await db.pool.fetchrow(_LATEST_EQUITY, account)
        pending = await db.pool.fetchval(_PENDING_COMMANDS, account)
    lines = [f"account      {account} on {db.server}", f"daemon       {'running' if running else 'not running'}"]
    if snapshot is None:
        return [*lines, "state        none stored yet (a new daemon starts RUNNING)"], running
    record, degradation = snapshot.state, snapshot.degradation
    lines.append(
        f"state        {record.state.value} since {record.changed_at:%Y-%m-%d %H:%M:%S %Z} "
        f"by {record.changed_by}: {record.reason}"
    )
    causes = "; ".join(cause.describe() for cause in degradation.causes)
    lines.append(
        f"degradation  {degradation.level.name} since {degradation.since:%Y-%m-%d %H:%M:%S %Z}"
        + (f": {causes}" if causes else "")
    )
    trips = "; ".join(trip.reason for trip in snapshot.breaker.trips) or "no active trip"
    lines.append(f"breaker      {trips}")
    heartbeat = snapshot.last_heartbeat
    lines.append(f"heartbeat    {f'{heartbeat:%Y-%m-%d %H:%M:%S %Z}' if heartbeat else 'never'}")
    if pending:
        lines.append(f"pending      {pending} command(s) waiting for the daemon")
    if equity is not None:
        lines.append(
            f"equity       {float(equity['equity']):,.2f} (cash {float(equity['cash']):,.2f}, drawdown "
            f"{float(equity['drawdown']) * 100:.2f} %) at {equity['ts']:%Y-%m-%d %H:%M:%S %Z}"
        )
    for row in positions:
        stop = f" stop {float(row['stop_price']):g}" if row["stop_price"] is not None else ""
        target = f" target {float(row['target_price']):g}" if row["target_price"] is not None else ""
        lines.append(f"position     {row['symbol']} {float(row['qty']):g} @ {float(row['avg_price']):g}{stop}{target}")
    if not positions:
        lines.append("positions    none")
    return lines, running
