"""Every failure of the server or the connection reaches the user as one DatabaseError line naming the server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.conftest import TEST_DATABASE_CONFIG, unique_name, url_with_database
from triplegain.errors import DatabaseError, UserError
from triplegain.store import Database, describe_url, open_database, open_database_at
from triplegain.store.settings import DatabaseSettings


def url_with_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.netloc.rpartition('@')[2]}"))


@pytest.fixture
def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections (in the kernel's backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


async def test_a_refused_connection_is_one_line(closed_port: int) -> None:
    with pytest.raises(DatabaseError) as failed:
        async with open_database_at(f"postgresql://postgres@127.0.0.1:{closed_port}/test", TEST_DATABASE_CONFIG):
            pass

    assert str(failed.value) == f"cannot connect to 127.0.0.1:{closed_port}/test: connection refused"


async def test_a_password_never_appears_in_a_message(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", f"postgresql://trader:s3cret@127.0.0.1:{closed_port}/prod")

    with pytest.raises(DatabaseError) as failed:
        async with open_database(TEST_DATABASE_CONFIG):
            pass

    assert str(failed.value) == f"cannot connect to 127.0.0.1:{closed_port}/prod: connection refused"


async def test_a_url_that_is_not_postgresql_is_the_users_mistake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", "mysql://trader:s3cret@db.example/prod")

    with pytest.raises(UserError) as refused:
        async with open_database(TEST_DATABASE_CONFIG):
            pass

    assert str(refused.value).startswith("TRIPLEGAIN_DATABASE_URL: not a postgresql:// URL")
    assert "s3cret" not in str(refused.value)


async def test_a_server_that_does_not_answer_times_out(silent_port: int) -> None:
    config = DatabaseSettings(connect_timeout_seconds=0.2)

    with pytest.raises(DatabaseError) as failed:
        async with open_database_at(f"postgresql://postgres@127.0.0.1:{silent_port}/test", config):
            pass

    assert str(failed.value) == f"cannot connect to 127.0.0.1:{silent_port}/test: no answer within 0.2 s"


async def test_an_unknown_host_is_one_line() -> None:
    with pytest.raises(DatabaseError, match=r"^cannot connect to nowhere\.invalid:5432/test: cannot resolve"):
        async with open_database_at("postgresql://postgres@nowhere.invalid:5432/test", TEST_DATABASE_CONFIG):
            pass


async def test_a_missing_socket_is_one_line() -> None:
    url = "postgresql://postgres@/test?host=/nonexistent/socket/dir&port=5432"

    with pytest.raises(DatabaseError) as failed:
        async with open_database_at(url, TEST_DATABASE_CONFIG):
            pass

    assert str(failed.value) == "cannot connect to /nonexistent/socket/dir:5432/test: no such file or directory"


@pytest.mark.postgres
async def test_a_missing_database_is_one_line(postgres_url: str) -> None:
    missing = unique_name("missing")
    url = url_with_database(postgres_url, missing)

    with pytest.raises(DatabaseError) as failed:
        async with open_database_at(url, TEST_DATABASE_CONFIG):
            pass

    assert str(failed.value) == f'cannot connect to {describe_url(url)}: database "{missing}" does not exist'


@pytest.mark.postgres
async def test_an_unknown_user_is_one_line(postgres_url: str) -> None:
    stranger = unique_name("stranger")
    url = url_with_user(postgres_url, stranger)

    with pytest.raises(DatabaseError) as failed:
        async with open_database_at(url, TEST_DATABASE_CONFIG):
            pass

    assert str(failed.value) == f'cannot connect to {describe_url(url)}: role "{stranger}" does not exist'


@pytest.mark.postgres
async def test_a_statement_that_runs_too_long_times_out(migrated_database_url: str) -> None:
    config = DatabaseSettings(command_timeout_seconds=0.2)
    async with open_database_at(migrated_database_url, config) as db:
        with pytest.raises(DatabaseError) as failed, db.errors("reading the orders"):
            await db.pool.execute("SELECT pg_sleep(30)")

        assert str(failed.value) == f"reading the orders failed on {db.server}: no answer within 0.2 s"
        assert await db.pool.fetchval("SELECT 1") == 1


@pytest.mark.postgres
async def test_a_refused_statement_is_one_line_with_the_detail(migrated_database: Database) -> None:
    insert = """
        INSERT INTO orders (client_order_id, account, symbol, side, type, qty, status, created_at, updated_at,
                            reason)
        VALUES ('dup', 'paper', 'BTC/USDT', 'buy', 'market', 1, 'open', now(), now(), 'entry')
    """
    await migrated_database.pool.execute(insert)

    with pytest.raises(DatabaseError) as failed, migrated_database.errors("saving the order"):
        await migrated_database.pool.execute(insert)

    assert str(failed.value) == (
        f"saving the order failed on {migrated_database.server}: duplicate key value violates unique constraint "
        '"orders_client_order_id_key" DETAIL: Key (client_order_id)=(dup) already exists.'
    )
    assert isinstance(failed.value.__cause__, asyncpg.UniqueViolationError)


@pytest.mark.postgres
async def test_a_connection_lost_mid_statement_is_one_line(migrated_database: Database) -> None:
    pool = migrated_database.pool
    async with pool.acquire() as connection:
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        sleeping = asyncio.ensure_future(connection.execute("SELECT pg_sleep(30)"))
        await _until_sleeping(pool, pid)
        await pool.execute("SELECT pg_terminate_backend($1)", pid)

        with pytest.raises(DatabaseError) as failed, migrated_database.errors("reading"):
            await sleeping

    assert str(failed.value).startswith(f"reading failed on {migrated_database.server}: ")
    assert str(failed.value).endswith("terminating connection due to administrator command")


async def _until_sleeping(pool: Any, pid: int) -> None:
    """Return once backend ``pid`` runs pg_sleep (Postgres notifies nothing: ask)."""
    query = "SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $1"
    while not await pool.fetchval(query, pid):
        pass


@pytest.mark.postgres
async def test_a_database_without_the_schema_says_to_migrate(empty_database_url: str) -> None:
    async with open_database_at(empty_database_url, TEST_DATABASE_CONFIG) as db:
        with pytest.raises(DatabaseError) as failed, db.errors("listing the alerts"):
            await db.pool.fetch("SELECT * FROM alerts")

    assert str(failed.value) == (
        f'listing the alerts failed on {db.server}: relation "alerts" does not exist (the database\'s schema is '
        "missing or older than this triplegain: run triplegain db migrate)"
    )
