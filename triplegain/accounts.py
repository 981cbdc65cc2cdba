"""``triplegain account list | reset``: the paper accounts in the database, and starting one afresh.

Every run trades one account (``run --account NAME``, default ``coordinator.account``); a replay only carries on
from the last candle its account processed (``daemon.continuity``). ``list`` shows each account's runs, the last
candle it processed, its equity and its coordinator's state; ``reset NAME --yes`` deletes everything of that
account — runs, state, decisions, orders, fills, snapshots, events and the agent views and LLM calls of its runs —
and nothing of any other (``store.accounts``). Deleting rather than archiving: decision and order ids are derived
from the account's name, so archived rows would collide with those of the same candles traded again. Export what
you want to keep first (``triplegain decisions export --account NAME``). Without ``--yes`` nothing is deleted and
the command says what would be (exit 2). The account's coordinator lock is held while it is deleted, so no daemon
can trade it meanwhile, and a running one makes the reset stop with one line.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Annotated

import typer

from triplegain.config import Settings
from triplegain.errors import UserError
from triplegain.model import account_name
from triplegain.store import interrupt_on_sigterm, open_database
from triplegain.store.accounts import AccountSummary, account_summaries, delete_account
from triplegain.store.runs import account_lock, daemon_running

account_app = typer.Typer(help="The paper accounts: list them, start one afresh.", no_args_is_help=True)


@account_app.command("list")
def list_accounts(ctx: typer.Context) -> None:
    """Every account: its runs, the last candle it processed, its equity, its state and whether a daemon runs it."""
    settings: Settings = ctx.obj.settings()
    with interrupt_on_sigterm():
        rows, running, server = asyncio.run(_list(settings))
    if not rows:
        typer.echo(f"no account on {server} yet: `triplegain run` makes one (--account NAME)")
        return
    for line in account_lines(rows, running):
        typer.echo(line)


@account_app.command("reset")
def reset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The account to start afresh.")],
    yes: Annotated[bool, typer.Option("--yes", help="Really delete; without it, say what would be deleted.")] = False,
) -> None:
    """Delete everything of account NAME (runs, state, decisions, orders, fills, snapshots, its LLM calls)."""
    account = account_name(name, "NAME")
    settings: Settings = ctx.obj.settings()
    with interrupt_on_sigterm():
        counts, server = asyncio.run(_reset(settings, account, dry_run=not yes))
    listed = ", ".join(f"{count:,} {what}" for what, count in counts.items() if count)
    if not listed:
        raise UserError(f"NAME: no account {account!r} on {server} — `triplegain account list` shows them")
    if not yes:
        raise UserError(f"--yes: missing, so nothing was deleted — with it, account {account!r} loses {listed}")
    typer.echo(f"account {account!r} reset on {server}: deleted {listed}")


def account_lines(rows: list[AccountSummary], running: set[str]) -> list[str]:
    """The table ``account list`` prints; ``running``: the accounts a daemon runs now."""
    header = ("account", "runs", "last candle (UTC)", "equity", "state", "daemon")
    table = [header]
    for row in rows:
        table.append(
            (
                row.account,
                f"{row.runs:,}",
                f"{row.last_candle.astimezone(UTC):%Y-%m-%d %H:%M}" if row.last_candle is not None else "-",
                f"{row.equity:,.2f}" if row.equity is not None else "-",
                row.state or "-",
                "running" if row.account in running else "-",
            )
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    right = {1, 3}
    lines = []
    for line in table:
        cells = zip(line, widths, strict=True)
        lines.append(
            "  ".join(cell.rjust(width) if n in right else cell.ljust(width) for n, (cell, width) in enumerate(cells))
        )
    return [line.rstrip() for line in lines]


async def _list(settings: Settings) -> tuple[list[AccountSummary], set[str], str]:
    async with open_database(settings.database) as db:
        rows = await account_summaries(db)
        running = {row.account for row in rows if await daemon_running(db, row.account)}
    return rows, running, db.server


async def _reset(settings: Settings, account: str, *, dry_run: bool) -> tuple[dict[str, int], str]:
    async with open_database(settings.database) as db, account_lock(db, account):
        return await delete_account(db, account, dry_run=dry_run), db.server
