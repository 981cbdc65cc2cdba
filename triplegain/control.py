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
from typing import Annotated

import typer

from triplegain.config import Settings
from triplegain.control_client import operator_name
from triplegain.coordinator.controls import status_lines, submit_and_wait
from triplegain.model import Command, Verb, account_name
from triplegain.store import Database, interrupt_on_sigterm, open_database
from triplegain.store.runs import latest_run_account

coordinator_app = typer.Typer(
    help="Control the running coordinator: status, pause, resume, halt.", no_args_is_help=True
)

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
    _command(ctx, Command(verb=Verb.PAUSE, reason=reason, requested_by=operator_name()), account, wait)


@coordinator_app.command("resume")
def resume(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Needed to leave HALTED.")] = False,
    reason: ReasonOption = "",
    account: AccountOption = None,
    wait: WaitOption = 5.0,
) -> None:
    """Back to RUNNING from PAUSED (from HALTED only with --force, which also resets the breaker's halts)."""
    _command(ctx, Command(verb=Verb.RESUME, force=force, reason=reason, requested_by=operator_name()), account, wait)


@coordinator_app.command("halt")
def halt(
    ctx: typer.Context,
    reason: ReasonOption = "",
    flatten: Annotated[bool, typer.Option("--flatten", help="Also close every position.")] = False,
    account: AccountOption = None,
    wait: WaitOption = 5.0,
) -> None:
    """Stop all trading until `resume --force`; it holds across restarts."""
    _command(ctx, Command(verb=Verb.HALT, flatten=flatten, reason=reason, requested_by=operator_name()), account, wait)


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


async def _status(settings: Settings, given: str | None) -> tuple[list[str], bool]:
    async with open_database(settings.database) as db:
        lines, running = await status_lines(db, await chosen_account(db, settings, given))
    return lines, running


async def chosen_account(db: Database, settings: Settings, given: str | None) -> str:
    """``given``, else the account of the latest daemon run, else the configured one."""
    return given or await latest_run_account(db) or settings.coordinator.account


