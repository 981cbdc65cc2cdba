"""PostgreSQL storage: the server (embedded or by URL), the asyncpg pool, and schema migrations.

Open the database for the duration of a command, and let SIGTERM stop it as cleanly as Ctrl-C::

    with interrupt_on_sigterm():
        asyncio.run(main())

    async def main() -> None:
        async with open_database(settings.database) as db:   # TRIPLEGAIN_DATABASE_URL, else embedded
            await migrate(db)
            with db.errors("saving the order"):
                await db.pool.execute(...)

Every failure of the server or the connection reaches the caller as one ``DatabaseError`` line naming the
server (``db.server``, never with a password) and what failed. ``embedded`` explains the embedded server's
lifecycle, ``migrations`` the rules for migration files.
"""

from triplegain.store.database import (
    DATABASE_URL_ENV,
    Database,
    describe_url,
    open_database,
    open_database_at,
    translate_errors,
)
from triplegain.store.embedded import EmbeddedServer, embedded_server, interrupt_on_sigterm
from triplegain.store.migrations import (
    Migration,
    MigrationError,
    MigrationState,
    MigrationStatus,
    load_migrations,
    migrate,
    migration_status,
)

__all__ = [
    "DATABASE_URL_ENV",
    "Database",
    "EmbeddedServer",
    "Migration",
    "MigrationError",
    "MigrationState",
    "MigrationStatus",
    "describe_url",
    "embedded_server",
    "interrupt_on_sigterm",
    "load_migrations",
    "migrate",
    "migration_status",
    "open_database",
    "open_database_at",
    "translate_errors",
]
