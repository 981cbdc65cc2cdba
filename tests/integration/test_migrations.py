"""The migrations runner against a real server: order, idempotence, refusals, rollback, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import TEST_DATABASE_CONFIG
from triplegain.paths import shipped_dir
from triplegain.store import (
    Database,
    MigrationError,
    MigrationState,
    load_migrations,
    migrate,
    migration_status,
    open_database_at,
)
from triplegain.store.migrations import MIGRATION_LOCK_KEY

pytestmark = pytest.mark.postgres

SHIPPED = shipped_dir("migrations")


@pytest.fixture
async def empty_database(empty_database_url: str) -> AsyncIterator[Database]:
    async with open_database_at(empty_database_url, TEST_DATABASE_CONFIG) as db:
        yield db


def write_migrations(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


async def tables(db: Database) -> set[str]:
    rows = await db.pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


async def advisory_locks_held(db: Database) -> int:
    count: int = await db.pool.fetchval(
        """
        SELECT count(*) FROM pg_locks
        WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """
    )
    return count


async def test_the_shipped_migrations_apply_to_an_empty_database_once(empty_database: Database) -> None:
    applied = await migrate(empty_database)

    assert await advisory_locks_held(empty_database) == 0
    assert [migration.file_name for migration in applied] == [path.name for path in sorted(SHIPPED.glob("*.sql"))]
    assert {"coordinator_state", "decisions", "orders", "fills", "schema_migrations"} <= await tables(empty_database)
    assert await migrate(empty_database) == []


async def test_status_lists_pending_then_applied_migrations(empty_database: Database) -> None:
    before = await migration_status(empty_database)
    await migrate(empty_database)
    after = await migration_status(empty_database)

    assert [(status.version, status.state, status.applied_at) for status in before] == [
        (migration.version, MigrationState.PENDING, None) for migration in load_migrations()
    ]
    assert [status.name for status in after] == [migration.name for migration in load_migrations()]
    assert all(status.state is MigrationState.APPLIED and status.checksum_ok for status in after)
    assert all(status.applied_at is not None for status in after)


async def test_migrations_apply_in_version_order(empty_database: Database, tmp_path: Path) -> None:
    folder = write_migrations(
        tmp_path,
        {
            "010_third.sql": "INSERT INTO steps VALUES (3);",
            "002_second.sql": "INSERT INTO steps VALUES (2);",
            "001_first.sql": "CREATE TABLE steps (n int); INSERT INTO steps VALUES (1);",
        },
    )

    applied = await migrate(empty_database, folder)

    assert [migration.version for migration in applied] == [1, 2, 10]
    assert [row["n"] for row in await empty_database.pool.fetch("SELECT n FROM steps")] == [1, 2, 3]


async def test_a_changed_applied_migration_is_refused(empty_database: Database, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path, {"001_first.sql": "CREATE TABLE one (n int);"})
    await migrate(empty_database, folder)
    (folder / "001_first.sql").write_text("CREATE TABLE one (n bigint);")
    write_migrations(folder, {"002_second.sql": "CREATE TABLE two (n int);"})

    with pytest.raises(MigrationError) as refused:
        await migrate(empty_database, folder)

    message = str(refused.value)
    assert "001_first.sql was changed after it was applied" in message
    assert empty_database.server in message
    assert "two" not in await tables(empty_database)
    statuses = await migration_status(empty_database, folder)
    assert [(status.version, status.state) for status in statuses] == [
        (1, MigrationState.CHANGED),
        (2, MigrationState.PENDING),
    ]
    assert not statuses[0].checksum_ok


async def test_a_line_ending_change_is_not_a_change(empty_database: Database, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path, {"001_first.sql": "CREATE TABLE one (n int);\nSELECT 1;\n"})
    await migrate(empty_database, folder)
    (folder / "001_first.sql").write_bytes(b"CREATE TABLE one (n int);\r\nSELECT 1;\r\n")

    assert await migrate(empty_database, folder) == []


async def test_a_missing_applied_migration_is_refused(empty_database: Database, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path, {"001_first.sql": "SELECT 1;", "002_second.sql": "SELECT 2;"})
    await migrate(empty_database, folder)
    (folder / "002_second.sql").unlink()

    with pytest.raises(MigrationError, match=r"002_second\.sql was applied on .* but its file is missing"):
        await migrate(empty_database, folder)
    statuses = await migration_status(empty_database, folder)
    assert [(status.name, status.state) for status in statuses] == [
        ("first", MigrationState.APPLIED),
        ("second", MigrationState.MISSING),
    ]


async def test_a_renamed_applied_migration_is_refused(empty_database: Database, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path, {"001_first.sql": "SELECT 1;"})
    await migrate(empty_database, folder)
    (folder / "001_first.sql").rename(folder / "001_renamed.sql")

    with pytest.raises(MigrationError, match=r"001_first\.sql was applied .* now 001_renamed\.sql"):
        await migrate(empty_database, folder)


async def test_a_pending_migration_below_an_applied_one_is_refused(empty_database: Database, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path, {"001_first.sql": "SELECT 1;", "003_third.sql": "SELECT 3;"})
    await migrate(empty_database, folder)
    write_migrations(folder, {"002_late.sql": "CREATE TABLE late (n int);"})

    with pytest.raises(MigrationError, match=r"002_late\.sql is not applied .* below the newest applied"):
        await migrate(empty_database, folder)
    assert "late" not in await tables(empty_database)


async def test_a_failing_migration_names_the_file_and_leaves_nothing_behind(
    empty_database: Database, tmp_path: Path
) -> None:
    folder = write_migrations(
        tmp_path,
        {
            "001_good.sql": "CREATE TABLE good (n int);",
            "002_bad.sql": "CREATE TABLE half (n int);\nINSERT INTO half VALUES (1);\nSELEC oops;\n",
        },
    )

    with pytest.raises(MigrationError) as failed:
        await migrate(empty_database, folder)

    assert str(failed.value) == (
        f"migration 002_bad.sql failed on {empty_database.server} at line 3: "
        'syntax error at or near "SELEC"; nothing of it was applied'
    )
    assert "half" not in await tables(empty_database)
    assert "good" in await tables(empty_database)
    statuses = await migration_status(empty_database, folder)
    assert [status.state for status in statuses] == [MigrationState.APPLIED, MigrationState.PENDING]
    assert await advisory_locks_held(empty_database) == 0


async def test_a_runtime_error_in_a_migration_is_reported_with_postgres_message(
    empty_database: Database, tmp_path: Path
) -> None:
    folder = write_migrations(tmp_path, {"001_div.sql": "CREATE TABLE t (n int);\nINSERT INTO t SELECT 1 / 0;"})

    with pytest.raises(MigrationError, match=r"001_div\.sql failed on .*: division by zero; nothing of it"):
        await migrate(empty_database, folder)
    assert "t" not in await tables(empty_database)


@pytest.mark.parametrize(
    "bad_name", ["1_short.sql", "001-dash.sql", "001_Upper.sql", "001_.sql", "abc_name.sql", "001_name.SQL.sql"]
)
def test_a_badly_named_migration_file_is_an_error_naming_it(tmp_path: Path, bad_name: str) -> None:
    write_migrations(tmp_path, {"001_fine.sql": "SELECT 1;", bad_name: "SELECT 2;"})

    with pytest.raises(MigrationError, match=rf"{bad_name.replace('.', '[.]')}: not a migration file name"):
        load_migrations(tmp_path)


def test_two_files_with_one_version_are_an_error(tmp_path: Path) -> None:
    write_migrations(tmp_path, {"001_one.sql": "SELECT 1;", "0001_other.sql": "SELECT 2;"})

    with pytest.raises(MigrationError, match="version 1 is taken"):
        load_migrations(tmp_path)


def test_files_other_than_sql_are_ignored(tmp_path: Path) -> None:
    write_migrations(tmp_path, {"001_one.sql": "SELECT 1;", "README.md": "notes", "001_one.sql~": "backup"})

    assert [migration.file_name for migration in load_migrations(tmp_path)] == ["001_one.sql"]


async def test_concurrent_migrations_take_turns(empty_database_url: str) -> None:
    async with (
        open_database_at(empty_database_url, TEST_DATABASE_CONFIG) as first,
        open_database_at(empty_database_url, TEST_DATABASE_CONFIG) as second,
    ):
        results = await asyncio.gather(migrate(first), migrate(second))

        applied = sorted(len(result) for result in results)
        assert applied == [0, len(load_migrations())]
        assert await first.pool.fetchval("SELECT count(*) FROM schema_migrations") == len(load_migrations())


async def test_migrating_waits_for_the_lock_another_process_holds(
    empty_database: Database, empty_database_url: str, tmp_path: Path
) -> None:
    folder = write_migrations(tmp_path, {"001_first.sql": "CREATE TABLE one (n int);"})
    async with open_database_at(empty_database_url, TEST_DATABASE_CONFIG) as other:
        async with other.pool.acquire() as holder:
            await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            migrating = asyncio.create_task(migrate(empty_database, folder))
            await _until_waiting_for_advisory_lock(other)
            assert not migrating.done()
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        assert [migration.name for migration in await migrating] == ["first"]


async def _until_waiting_for_advisory_lock(db: Database) -> None:
    """Return once a session of this database waits for an advisory lock (Postgres notifies nothing: ask)."""
    query = """
        SELECT EXISTS (
            SELECT FROM pg_locks
            WHERE locktype = 'advisory' AND NOT granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        )
    """
    while not await db.pool.fetchval(query):
        pass
