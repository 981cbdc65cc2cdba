"""``triplegain alerts list``: the alerts the daemon raised and what became of each at each webhook.

Registered by ``triplegain.commands``. Newest first; ``--account NAME`` keeps one account's, ``--limit N`` the
newest N (default 50). A webhook shows as its scheme and host: that is all the database keeps of it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Annotated

import typer

from triplegain.model import account_name
from triplegain.review.args import parse_positive
from triplegain.store import interrupt_on_sigterm, open_database
from triplegain.store.alerts import AlertRow, list_alerts
from triplegain.store.settings import DatabaseSettings

DEFAULT_LIMIT = 50

alerts_app = typer.Typer(
    help="The alerts sent to the webhooks (alerts.webhooks) and their outcome.", no_args_is_help=True
)


@alerts_app.command("list")
def list_command(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option("--account", metavar="NAME", help="Only this account's.")] = None,
    limit: Annotated[str | None, typer.Option("--limit", metavar="N", help="The newest N (default 50).")] = None,
) -> None:
    """The newest alerts: when, what, to which webhook, and whether it was delivered (after how many attempts)."""
    name = account_name(account, "--account") if account is not None else None
    count = parse_positive(limit, "--limit", DEFAULT_LIMIT)
    assert count is not None
    database = ctx.obj.settings().database
    with interrupt_on_sigterm():
        rows, server = asyncio.run(_list(database, name, count))
    if not rows:
        typer.echo(f"no alert on {server}: set alerts.webhooks to have the daemon send them (README, \"Alerts\")")
        return
    for line in alert_lines(rows):
        typer.echo(line)


async def _list(database: DatabaseSettings, account: str | None, limit: int) -> tuple[list[AlertRow], str]:
    async with open_database(database) as db:
        return await list_alerts(db, account=account, limit=limit), db.server


def alert_lines(rows: list[AlertRow]) -> list[str]:
    """One line per alert and webhook, under a header, columns aligned; the text last and whole."""
    header = ("raised (UTC)", "account", "kind", "webhook", "outcome", "tries", "answer", "text")
    table = [header]
    for row in rows:
        answer = row.error or (str(row.status_code) if row.status_code is not None else "-")
        table.append(
            (
                f"{row.raised_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
                row.account,
                row.kind,
                row.webhook,
                row.outcome,
                str(row.attempts),
                answer if len(answer) <= 40 else answer[:39] + "…",
                row.text,
            )
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(header) - 1)]
    return [
        "  ".join([*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[-1]]) for line in table
    ]
