"""open_database: the server named by TRIPLEGAIN_DATABASE_URL, else the embedded one in TRIPLEGAIN_HOME."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import TEST_DATABASE_CONFIG, unique_name
from triplegain.store import describe_url, load_migrations, migrate, open_database, open_database_at
from triplegain.store.settings import DatabaseSettings


@pytest.mark.postgres
async def test_the_server_in_the_environment_is_used(
    migrated_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", migrated_database_url)

    async with open_database(TEST_DATABASE_CONFIG) as db:
        assert not db.embedded
        assert db.server == describe_url(migrated_database_url)
        assert await db.pool.fetchval("SELECT current_database()") == urlsplit(migrated_database_url).path[1:]
        assert await db.pool.fetchval("SELECT current_setting('application_name')") == "triplegain"


@pytest.mark.skipif(importlib.util.find_spec("pgserver") is None, reason="pgserver is not installed")
@pytest.mark.timeout(120)
async def test_without_a_url_the_embedded_server_in_the_data_directory_is_used(
    scratch_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = scratch_dir / unique_name("home")
    monkeypatch.setenv("TRIPLEGAIN_HOME", str(home))

    async with open_database(TEST_DATABASE_CONFIG) as db:
        assert db.embedded
        assert db.server == f"embedded PostgreSQL in {home / 'pgdata'}"
        assert await db.pool.fetchval("SELECT current_database()") == "triplegain"
        assert len(await migrate(db)) == len(load_migrations())
    assert not (home / "pgdata" / "postmaster.pid").exists()

    async with open_database(TEST_DATABASE_CONFIG) as db:
        assert await migrate(db) == []
    assert not (home / "pgdata" / "postmaster.pid").exists()


@pytest.mark.parametrize(
    ("url", "described"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", "127.0.0.1:5432/test"),
        ("postgresql://trader:s3cret@db.example.com/prod?sslmode=require", "db.example.com/prod"),
        ("postgres://u:p%40ss@[::1]:6543/my%20db", "[::1]:6543/my db"),
        ("postgresql://h1:5432,h2:5433/app", "h1:5432,h2:5433/app"),
        ("postgresql:///app?host=/run/postgresql&port=5433", "/run/postgresql:5433/app"),
        ("postgresql://localhost", "localhost"),
    ],
)
def test_a_server_is_described_without_user_or_password(url: str, described: str) -> None:
    assert describe_url(url) == described



@pytest.mark.postgres
@pytest.mark.timeout(30)
async def test_a_cancelled_block_cuts_the_pool_instead_of_waiting_for_a_connection_never_given_back(
    migrated_database_url: str,
) -> None:
    settings = DatabaseSettings(pool_min_size=1, pool_max_size=4, command_timeout_seconds=300)
    holding = asyncio.Event()

    async def stopped_at_once() -> None:
        async with open_database_at(migrated_database_url, settings) as db:
            await db.pool.acquire()  # work cut mid-statement: its connection never comes back
            holding.set()
            await asyncio.Event().wait()

    block = asyncio.create_task(stopped_at_once())
    await holding.wait()
    block.cancel()
    done, _ = await asyncio.wait({block}, timeout=15)
    assert done, "the pool waited for the connection (command_timeout_seconds: 300 s) instead of being cut"
    assert block.cancelled()
