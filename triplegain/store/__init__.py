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

Bulk logs (LLM calls, agent outputs, dead letters) go through one ``BatchWriter`` per database (``writer``
explains batching, retries and refused rows); ``PostgresCallLog``, ``PostgresAgentOutputLog`` and
``dead_letter_hook`` hand rows to it without waiting, ``recent_llm_calls`` and ``agent_outputs_for`` read them.

Writes the trading loop depends on are awaited: ``commit_decision`` stores a decision with its conflicts and
order in one transaction against the coordinator's state (``decisions``); ``store_snapshot`` stores the
coordinator's degradation, breaker, heartbeat, task runs and events, ``read_snapshot`` and ``load_task_runs``
restore them at start (``coordinator_snapshot``).
"""


from triplegain.store.agent_outputs import PostgresAgentOutputLog, agent_outputs_for
from triplegain.store.coordinator_snapshot import (
    BreakerEventRow,
    DegradationEventRow,
    SnapshotRow,
    TaskRunRow,
    load_task_runs,
    read_snapshot,
    store_snapshot,
)
from triplegain.store.database import (
    DATABASE_URL_ENV,
    Database,
    describe_url,
    open_database,
    open_database_at,
    translate_errors,
)
from triplegain.store.dead_letters import dead_letter_hook
from triplegain.store.decisions import (
    ConflictRow,
    DecisionRow,
    DecisionWrite,
    StoredDecision,
    commit_decision,
    pending_orders,
)
from triplegain.store.embedded import EmbeddedServer, embedded_server, interrupt_on_sigterm
from triplegain.store.llm_calls import PostgresCallLog, recent_llm_calls
from triplegain.store.migrations import (
    Migration,
    MigrationError,
    MigrationState,
    MigrationStatus,
    load_migrations,
    migrate,
    migration_status,
)
from triplegain.store.records import AgentOutputRecord, DeadLetterRow, LLMCallRow
from triplegain.store.settings import WriterSettings
from triplegain.store.writer import (
    BatchWriter,
    RejectedRow,
    RowsNotWritten,
    WriteBufferFull,
    WriterClosed,
    WriterStats,
)

__all__ = [
    "DATABASE_URL_ENV",
    "AgentOutputRecord",
    "BatchWriter",
    "BreakerEventRow",
    "ConflictRow",
    "Database",
    "DeadLetterRow",
    "DecisionRow",
    "DecisionWrite",
    "DegradationEventRow",
    "EmbeddedServer",
    "LLMCallRow",
    "Migration",
    "MigrationError",
    "MigrationState",
    "MigrationStatus",
    "PostgresAgentOutputLog",
    "PostgresCallLog",
    "RejectedRow",
    "RowsNotWritten",
    "SnapshotRow",
    "StoredDecision",
    "TaskRunRow",
    "WriteBufferFull",
    "WriterClosed",
    "WriterSettings",
    "WriterStats",
    "agent_outputs_for",
    "commit_decision",
    "dead_letter_hook",
    "describe_url",
    "embedded_server",
    "interrupt_on_sigterm",
    "load_migrations",
    "load_task_runs",
    "migrate",
    "migration_status",
    "open_database",
    "open_database_at",
    "pending_orders",
    "read_snapshot",
    "recent_llm_calls",
    "store_snapshot",
    "translate_errors",
]

