"""``triplegain coordinator status | pause | resume | halt``: the operator's hand on the running daemon.

Each command works on one account: ``--account NAME``, else the account of the daemon run started last (the one
an operator has just started, usually), else ``coordinator.account``; the output names it.

A command is a ``coordinator_commands`` row plus a NOTIFY (``store.coordinator_state.submit_command``). When a
daemon holds the account's lock, it applies the command at once and writes the outcome into the row; the CLI waits
for that (``--wait`` seconds) and prints the resulting state (exit 0) or the refusal (exit 1). With no daemon
running the command stays pending, is applied at the next start, and the CLI says so (exit 0).
"""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated

import typer

from triplegain.clock import WallClock
from triplegain.config import Settings
from triplegain.coordinator.snapshot import load_snapshot
from triplegain.model import Command, Verb, account_name
from triplegain.store import Database, interrupt_on_sigterm, open_database
from triplegain.store.coordinator_state import command_status, submit_command
from triplegain.store.runs import daemon_running, latest_run_account

coordinator_app = typer.Typer(
    help="Control the running coordinator: status, pause, resume, halt.", no_args_is_help=True
)

POLL_SECONDS = 0.05

ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why; stored with the command and the state.")]
AccountOption = Annotated[
    str | None,
    typer.Option(
        "--account",
        metavar="NAME",
        help="The account. Default: that of the latest daemon run, else coordinator.account.",
    ),
]
WaitOption = Annotated[
    float,
    typer.Option("--wait", min=0.1, max=3600, help="Seconds (at most 3600) to wait for a running daemon to apply it."),
]


@coordinator_app.command("status")
def status(
    ctx: typer.Context,
    account: AccountOption = None,
    healthcheck: Annotated[
        bool, typer.Option("--healthcheck", help="Exit 1 unless a daemon runs the account (a container's check).")
    ] = False,
) -> None:
    """Show the state, who changed it and why, degradation, breaker, heartbeat, positions and equity."""
    given = account_name(account, "--account") if account is not None else None
    settings: Settings = ctx.obj.settings()
    with interrupt_on_sigterm():
        lines, running = asyncio.run(_status(settings, given))
    for line in lines:
        typer.echo(line)
    if healthcheck and not running:
        raise typer.Exit(1)


@coordinator_app.command("pause")
def pause(ctx: typer.Context, reason: ReasonOption = "", account: AccountOption = None, wait: WaitOption = 5.0) -> None:
    """Stop opening positions (analysis, exits and stops go on)."""
    _command(ctx, Command(verb=Verb.PAUSE, reason=reason, requested_by=_operator()), account, wait)


@coordinator_app.command("resume")
def resume(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Needed to leave HALTED.")] = False,
    reason: ReasonOption = "",
    account: AccountOption = None,
    wait: WaitOption = 5.0,
) -> None:
    """Back to RUNNING from PAUSED (from HALTED only with --force, which also resets the breaker's halts)."""
    _command(ctx, Command(verb=Verb.RESUME, force=force, reason=reason, requested_by=_operator()), account, wait)


@coordinator_app.command("halt")
def halt(
    ctx: typer.Context,
    reason: ReasonOption = "",
    flatten: Annotated[bool, typer.Option("--flatten", help="Also close every position.")] = False,
    account: AccountOption = None,
    wait: WaitOption = 5.0,
) -> None:
    """Stop all trading until `resume --force`; it holds across restarts."""
    _command(ctx, Command(verb=Verb.HALT, flatten=flatten, reason=reason, requested_by=_operator()), account, wait)


def _operator() -> str:
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):
        return "operator"


def _command(ctx: typer.Context, command: Command, account: str | None, wait: float) -> None:
    given = account_name(account, "--account") if account is not None else None
    settings: Settings = ctx.obj.settings()
    with interrupt_on_sigterm():
        lines, ok = asyncio.run(_submit(settings, command, given, wait))
    for line in lines:
        typer.echo(line, err=not ok)
    if not ok:
        raise typer.Exit(1)


async def _submit(settings: Settings, command: Command, given: str | None, wait: float) -> tuple[list[str], bool]:
    async with open_database(settings.database) as db:
        return await submit_and_wait(db, await chosen_account(db, settings, given), command, wait)


async def chosen_account(db: Database, settings: Settings, given: str | None) -> str:
    """``given``, else the account of the latest daemon run, else the configured one."""
    return given or await latest_run_account(db) or settings.coordinator.account


async def submit_and_wait(db: Database, account: str, command: Command, wait: float) -> tuple[list[str], bool]:
    """Store ``command`` for ``account`` and wait up to ``wait`` seconds for the running daemon to settle it; the
    lines to print and whether it was applied (or merely recorded, with no daemon running)."""
    clock = WallClock()
    running = await daemon_running(db, account)
    command_id = await submit_command(db, account, command, clock.now())
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


async def _status(settings: Settings, given: str | None) -> tuple[list[str], bool]:
    """The status lines, and whether a daemon runs the account."""
    async with open_database(settings.database) as db:
        account = await chosen_account(db, settings, given)
        running = await daemon_running(db, account)
        snapshot = await load_snapshot(db, account)
        with db.errors(f"reading the positions of {account}"):
            positions = await db.pool.fetch(
                "SELECT symbol, qty, avg_price, stop_price, target_price FROM positions "
                "WHERE account = $1 AND qty <> 0 ORDER BY symbol",
                account,
            )
            equity = await db.pool.fetchrow(
                "SELECT ts, equity, cash, drawdown FROM portfolio_snapshots WHERE account = $1 "
                "ORDER BY ts DESC, id DESC LIMIT 1",
                account,
            )
            pending = await db.pool.fetchval(
                "SELECT count(*) FROM coordinator_commands WHERE account = $1 AND status = 'pending'", account
            )
    lines = [f"account      {account} on {db.server}", f"daemon       {'running' if running else 'not running'}"]
    if snapshot is None:
        return [*lines, "state        none stored yet (a new daemon starts RUNNING)"], running
    record, degradation = snapshot.state, snapshot.degradation
    lines.append(
        f"state        {record.state.value} since {record.changed_at:%Y-%m-%d %H:%M:%S %Z} "
        f"by {record.changed_by}: {record.reason}"
    )
    causes = "; ".join(
        f"{cause.signal}{f' ({cause.subject})' if cause.subject else ''} {cause.value:g} ≥ {cause.threshold:g}"
        for cause in degradation.causes
    )
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
