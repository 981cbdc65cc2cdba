"""Schema migrations: numbered plain-SQL files, applied in order, each once, never edited afterwards.

A migration is ``migrations/NNN_name.sql`` (three or more digits, then lower-case letters, digits and ``_``).
``migrate`` applies the pending ones in version order, each in its own transaction together with its row in
``schema_migrations`` (version, name, checksum, applied_at), so a migration that fails leaves nothing behind.
It holds a Postgres advisory lock meanwhile, so processes migrating the same database at once take turns and
the later one finds nothing left to do.

What has been applied is history: ``migrate`` refuses to run when an applied migration's file has changed
(its checksum differs), was renamed or is missing, and when a pending migration is numbered below the newest
applied one. Fix by adding a new migration, never by editing an applied one. Statements that cannot run inside
a transaction (``CREATE INDEX CONCURRENTLY``) are therefore not possible in a migration.

Each statement is bounded by the pool's command timeout (``database.command_timeout_seconds``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import asyncpg

from triplegain.errors import TriplegainError
from triplegain.paths import shipped_dir
from triplegain.store.database import Database, error_reason

FILE_NAME = re.compile(r"(?P<version>\d{3,})_(?P<name>[a-z0-9_]+)\.sql")
# Key of the session advisory lock held while migrating: the bytes of "tgmigrat" as a bigint.
MIGRATION_LOCK_KEY = int.from_bytes(b"tgmigrat", "big")

CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(TriplegainError):
    """A migration file is misnamed, changed after it was applied, missing, out of order, or failed."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Path
    sql: str

    @property
    def file_name(self) -> str:
        return self.path.name

    @property
    def checksum(self) -> str:
        """SHA-256 of the text with line endings normalised, so a checkout with CRLF endings matches."""
        return hashlib.sha256(self.sql.replace("\r\n", "\n").encode()).hexdigest()


class MigrationState(StrEnum):
    APPLIED = "applied"
    PENDING = "pending"
    CHANGED = "changed"  # applied, but the file has changed (or been renamed) since
    MISSING = "missing"  # applied, but its file is gone


@dataclass(frozen=True)
class MigrationStatus:
    """One line of ``db status``."""

    version: int
    name: str
    state: MigrationState
    applied_at: datetime | None

    @property
    def checksum_ok(self) -> bool:
        """False when the applied migration's file is no longer what was applied."""
        return self.state in (MigrationState.APPLIED, MigrationState.PENDING)


@dataclass(frozen=True)
class _Applied:
    version: int
    name: str
    checksum: str
    applied_at: datetime


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The ``*.sql`` files of ``directory`` (default: the shipped migrations/), ordered by version."""
    folder = directory if directory is not None else shipped_dir("migrations")
    migrations: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = FILE_NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(
                f"{path}: not a migration file name — NNN_name.sql is allowed (a number of three or more digits, "
                "then lower-case letters, digits and _)"
            )
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(f"{path}: version {version} is taken by {migrations[version].file_name} already")
        migrations[version] = Migration(version, match["name"], path, path.read_text(encoding="utf-8"))
    return [migrations[version] for version in sorted(migrations)]


async def migrate(db: Database, directory: Path | None = None) -> list[Migration]:
    """Apply the pending migrations in order; return those applied (none when the schema is up to date)."""
    migrations = load_migrations(directory)
    with db.errors("migrating"):
        async with db.pool.acquire() as connection:
            # A session lock, released here also when migrating fails or is cancelled (or else with the
            # connection: the pool does not reset sessions, see ``database``).
            await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            try:
                await connection.execute(CREATE_VERSION_TABLE)
                pending = _pending(migrations, await _applied(connection), db.server)
                for migration in pending:
                    await _apply(connection, migration, db.server)
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return pending


async def migration_status(db: Database, directory: Path | None = None) -> list[MigrationStatus]:
    """Every migration, applied or not, and every applied one whose file is gone, by version."""
    migrations = {migration.version: migration for migration in load_migrations(directory)}
    with db.errors("reading the migration status"):
        async with db.pool.acquire() as connection:
            has_table = await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            applied = {row.version: row for row in await _applied(connection)} if has_table else {}
    statuses = [_status_of(migration, applied.get(version)) for version, migration in migrations.items()]
    statuses += [
        MigrationStatus(version, row.name, MigrationState.MISSING, row.applied_at)
        for version, row in applied.items()
        if version not in migrations
    ]
    return sorted(statuses, key=lambda status: status.version)


def _status_of(migration: Migration, row: _Applied | None) -> MigrationStatus:
    if row is None:
        return MigrationStatus(migration.version, migration.name, MigrationState.PENDING, None)
    unchanged = (migration.name, migration.checksum) == (row.name, row.checksum)
    state = MigrationState.APPLIED if unchanged else MigrationState.CHANGED
    return MigrationStatus(migration.version, row.name, state, row.applied_at)


async def _applied(connection: Any) -> list[_Applied]:
    rows = await connection.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY 1")
    return [_Applied(row["version"], row["name"], row["checksum"], row["applied_at"]) for row in rows]


def _pending(migrations: list[Migration], applied: list[_Applied], server: str) -> list[Migration]:
    """The migrations still to apply, after checking that the applied ones are still what was applied."""
    files = {migration.version: migration for migration in migrations}
    for row in applied:
        migration = files.get(row.version)
        recorded = f"{row.version:03d}_{row.name}.sql"
        if migration is None:
            raise MigrationError(
                f"migration {recorded} was applied on {server} but its file is missing; restore it — an applied "
                "migration is never removed"
            )
        if migration.name != row.name:
            raise MigrationError(
                f"migration {recorded} was applied on {server} but its file is now {migration.file_name}; "
                "rename it back — an applied migration is never renamed"
            )
        if migration.checksum != row.checksum:
            raise MigrationError(
                f"migration {migration.file_name} was changed after it was applied on {server} (checksum "
                f"{migration.checksum[:12]}, applied {row.checksum[:12]}); restore it and put the change in a new "
                "migration — an applied migration is never edited"
            )
    done = {row.version for row in applied}
    newest = max(done, default=0)
    pending = [migration for migration in migrations if migration.version not in done]
    for migration in pending:
        if migration.version < newest:
            raise MigrationError(
                f"migration {migration.file_name} is not applied on {server} but is numbered below the newest "
                f"applied migration ({newest}); give it a number above {newest}"
            )
    return pending


async def _apply(connection: Any, migration: Migration, server: str) -> None:
    try:
        async with connection.transaction():
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as exc:
        where = _line_of(migration.sql, getattr(exc, "position", None))
        raise MigrationError(
            f"migration {migration.file_name} failed on {server}{where}: {error_reason(exc)}; nothing of it was applied"
        ) from exc


def _line_of(sql: str, position: str | None) -> str:
    """`` at line N`` for the 1-based character position Postgres reports with a syntax error."""
    if not position or not position.isdigit():
        return ""
    line = sql[: int(position) - 1].count("\n") + 1
    return f" at line {line}"
