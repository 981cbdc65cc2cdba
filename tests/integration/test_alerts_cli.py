"""``triplegain alerts list`` in this process against a database holding alerts: newest first, per account."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from tests.faults.conftest import run_main
from triplegain.store import open_database_at
from triplegain.store.alerts import AlertOutcome, AlertRow, store_alerts
from triplegain.store.settings import DatabaseSettings

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(30)]

T0 = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)


def row(account: str, kind: str, outcome: AlertOutcome, minutes: int, error: str | None = None) -> AlertRow:
    raised = T0 + timedelta(minutes=minutes)
    return AlertRow(
        id=uuid4(),
        account=account,
        run_id=None,
        kind=kind,
        at=raised,
        text=f"{kind} text",
        payload={},
        webhook="https://api.telegram.org",
        outcome=outcome,
        attempts=1 if outcome == "delivered" else 5,
        status_code=200 if outcome == "delivered" else None,
        error=error,
        raised_at=raised,
        delivered_at=raised if outcome == "delivered" else None,
        finished_at=raised,
    )


async def fill(url: str) -> None:
    async with open_database_at(url, DatabaseSettings()) as db:
        await store_alerts(
            db,
            [
                row("paper", "halted", "delivered", 1),
                row("paper", "daemon_stopped", "failed", 2, error="ClientConnectorError: refused"),
                row("other", "level_changed", "delivered", 3),
            ],
        )


def test_alerts_list_shows_the_newest_first_and_one_account(migrated_database_url: str) -> None:
    asyncio.run(fill(migrated_database_url))
    env = {"TRIPLEGAIN_DATABASE_URL": migrated_database_url}

    listed = run_main("alerts", "list", env=env)
    assert listed.code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["raised", "(UTC)", "account", "kind", "webhook", "outcome", "tries", "answer", "text"]
    assert [line.split()[3] for line in lines[1:]] == ["level_changed", "daemon_stopped", "halted"]
    assert "failed     5      ClientConnectorError: refused  daemon_stopped text" in lines[2]

    one = run_main("alerts", "list", "--account", "paper", "--limit", "1", env=env)
    assert [line.split()[3] for line in one.stdout.splitlines()[1:]] == ["daemon_stopped"]

    wrong = run_main("alerts", "list", "--limit", "x", env=env)
    assert (wrong.code, wrong.stderr.strip()) == (2, "error: --limit: 'x' is not a whole number of at least 1")
