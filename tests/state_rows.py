"""A coordinator state row written straight into the database, for tests that start from a given state.

In the package only the command applier (``apply_pending``) writes the state columns; a test that needs, say, a
HALTED account to begin with writes the row here instead of submitting and applying commands to reach it.
"""

from __future__ import annotations

from triplegain.model import DegradationLevel, StateRecord
from triplegain.store.database import Database

_UPSERT_STATE = """
    INSERT INTO coordinator_state (account, state, changed_at, changed_by, reason, degradation_level)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (account) DO UPDATE SET
        state = EXCLUDED.state, changed_at = EXCLUDED.changed_at, changed_by = EXCLUDED.changed_by,
        reason = EXCLUDED.reason
"""


async def write_state_row(
    db: Database, account: str, record: StateRecord, degradation_level: DegradationLevel = DegradationLevel.NORMAL
) -> None:
    """``record`` as the state of ``account``; ``degradation_level`` only if the account has no row yet (as the
    applier does: an existing row's level belongs to the coordinator's snapshot)."""
    await db.pool.execute(
        _UPSERT_STATE,
        account,
        record.state.value,
        record.changed_at,
        record.changed_by,
        record.reason,
        degradation_level.name,
    )
