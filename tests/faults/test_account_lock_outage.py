"""The account's coordinator lock across a database outage: it goes with its connection, and comes back — unless
another daemon took it meanwhile."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.postgres_proxy import PostgresProxy
from triplegain.config import DatabaseConfig
from triplegain.store import Database, open_database_at
from triplegain.store.runs import DaemonAlreadyRunning, account_lock, daemon_running

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(30)]

PROXIED_CONFIG = DatabaseConfig(
    pool_min_size=1, pool_max_size=3, connect_timeout_seconds=2.0, command_timeout_seconds=2.0
)


async def freed(db: Database) -> None:
    """Wait until the server has noticed the cut connection and freed its lock (nothing to wait on but the
    server itself: ask it again, within a deadline; each question is a round trip)."""
    async with asyncio.timeout(10):
        while await daemon_running(db, "paper"):
            pass


async def test_the_lock_is_taken_again_once_the_database_is_back(
    postgres_url: str, migrated_database_url: str, migrated_database: Database
) -> None:
    async with (
        PostgresProxy.running(postgres_url) as proxy,
        open_database_at(proxy.url(migrated_database_url), PROXIED_CONFIG) as db,
        account_lock(db, "paper") as lock,
    ):
        assert await lock.reassert()
        await proxy.refuse()
        await freed(migrated_database)
        assert not await lock.reassert(), "out of reach: not held, nothing raised"
        await proxy.accept()
        assert await lock.reassert()
        assert await daemon_running(migrated_database, "paper"), "held again"


async def test_a_daemon_that_took_the_lock_meanwhile_keeps_it(
    postgres_url: str, migrated_database_url: str, migrated_database: Database
) -> None:
    async with (
        PostgresProxy.running(postgres_url) as proxy,
        open_database_at(proxy.url(migrated_database_url), PROXIED_CONFIG) as db,
        account_lock(db, "paper") as lock,
    ):
        await proxy.refuse()
        await freed(migrated_database)
        async with account_lock(migrated_database, "paper"):  # a second daemon, beside the outage
            await proxy.accept()
            with pytest.raises(DaemonAlreadyRunning, match="went with its connection in a database outage"):
                await lock.reassert()
            assert await daemon_running(migrated_database, "paper")
