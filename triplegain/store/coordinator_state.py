"""The coordinator's state and the operator's command queue in PostgreSQL.

``coordinator_state`` holds one row per account; ``coordinator_commands`` is the queue the CLI writes to
(``submit_command`` inserts a pending row and sends ``NOTIFY triplegain_commands, '<account>'`` in the same
transaction) and the daemon drains (``apply_pending``). Commands given while no daemon runs stay pending and
are applied, oldest first, at its next start.

``apply_pending`` runs in one transaction: it locks the account's state row (creating a RUNNING row if there is
none), claims the pending rows with ``FOR UPDATE SKIP LOCKED``, applies them in id order, saves the state and
settles every row. The state-row lock serialises appliers, so no command is applied twice and concurrent
appliers end where a serial one would. A row whose verb or arguments do not parse is marked ``rejected`` with
the reason and never executed.

The row's ``state``, ``changed_*`` and ``reason`` columns belong to this module; the degradation level,
degradation state, breaker state and heartbeat belong to ``coordinator_snapshot``. Each writes only its own
columns of an existing row (the degradation level given here is used only to create a missing row), so neither
undoes a concurrent change of the other. ``ensure_state_row`` and ``locked_state`` are shared with the other
store modules: ``decisions`` holds the row ``FOR SHARE`` while storing a decision, so a command is applied
either wholly before or wholly after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from triplegain.model import Applied, Command, CommandError, CoordinatorState, DegradationLevel, Outcome, StateRecord
from triplegain.store.database import Database

NOTIFY_CHANNEL = "triplegain_commands"
INITIAL_CHANGED_BY = "coordinator"
INITIAL_REASON = "no state stored yet: starting RUNNING"

Status = Literal["applied", "refused", "rejected"]


@dataclass(frozen=True)
class SettledCommand:
    """A command row the applier settled; ``command`` is None when the row was rejected as malformed."""

    id: int
    command: Command | None
    status: Status
    outcome: str


# degradation_level only for a new row: afterwards it belongs to the coordinator's snapshot (see above).
_UPSERT_STATE = """
    INSERT INTO coordinator_state (account, state, changed_at, changed_by, reason, degradation_level)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (account) DO UPDATE SET
        state = EXCLUDED.state,
        changed_at = EXCLUDED.changed_at,
        changed_by = EXCLUDED.changed_by,
        reason = EXCLUDED.reason
"""

_INSERT_INITIAL_STATE = """
    INSERT INTO coordinator_state (account, state, changed_at, changed_by, reason, degradation_level)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (account) DO NOTHING
"""

_SELECT_STATE = "SELECT state, changed_at, changed_by, reason FROM coordinator_state WHERE account = $1"
_LOCK_STATE = {
    "update": _SELECT_STATE + " FOR UPDATE",
    "share": _SELECT_STATE + " FOR SHARE",
}

_SETTLE = """
    UPDATE coordinator_commands SET status = $2, outcome = $3, applied_at = $4
    WHERE id = $1 AND status = 'pending'
"""

_PENDING = """
    SELECT id, verb, args, requested_by FROM coordinator_commands
    WHERE account = $1 AND status = 'pending'
    ORDER BY id
"""


async def load_state(db: Database, account: str) -> StateRecord | None:
    """The stored state of ``account``, or None if none was ever saved."""
    with db.errors(f"loading the coordinator state of {account}"):
        row = await db.pool.fetchrow(_SELECT_STATE, account)
    return None if row is None else _record(row)


async def submit_command(
    db: Database, account: str, command: Command, now: datetime, *, key: str | None = None
) -> int:
    """Queue ``command`` for ``account`` and notify listeners, in one transaction; the new row's id.

    ``key``: a client's idempotency key. A command already stored under the same key for the account is not
    stored again: its id is returned (``CommandError`` when it was another command)."""
    with db.errors(f"submitting the {command.verb.value} command for {account}"):
        async with db.pool.acquire() as connection, connection.transaction():
            command_id: int | None = await connection.fetchval(
                """
                INSERT INTO coordinator_commands (account, verb, args, requested_by, requested_at, idempotency_key)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (account, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id
                """,
                account,
                command.verb.value,
                command.args(),
                command.requested_by,
                now,
                key,
            )
            if command_id is None:
                return await _command_of_key(connection, account, command, key)
            await connection.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, account)
    return command_id


async def _command_of_key(connection: Any, account: str, command: Command, key: str | None) -> int:
    row = await connection.fetchrow(
        "SELECT id, verb, args FROM coordinator_commands WHERE account = $1 AND idempotency_key = $2", account, key
    )
    if (row["verb"], row["args"]) != (command.verb.value, command.args()):
        raise CommandError(
            f"idempotency key {key!r} was used for another command ({row['verb']} {row['args']}, command {row['id']})"
        )
    command_id: int = row["id"]
    return command_id


async def command_status(db: Database, command_id: int) -> tuple[str, str | None] | None:
    """The status of a command row (pending, applied, refused or rejected) and its outcome; None if unknown."""
    with db.errors(f"reading command {command_id}"):
        row = await db.pool.fetchrow("SELECT status, outcome FROM coordinator_commands WHERE id = $1", command_id)
    return None if row is None else (row["status"], row["outcome"])


CommandRule = Callable[[StateRecord, Command, datetime], Outcome]
"""What a command does to a state (the coordinator's ``state.apply_command``)."""


async def apply_pending(
    db: Database, account: str, now: datetime, degradation_level: DegradationLevel, apply_command: CommandRule
) -> list[SettledCommand]:
    """Apply every pending command of ``account`` in id order to its stored state with ``apply_command``, in one
    transaction.

    Saves the resulting state (``degradation_level`` only if the row is new) and settles each row: applied,
    refused (e.g. resume from HALTED without force) or rejected (malformed). Returns the settled rows in id order.
    """
    with db.errors(f"applying the pending commands of {account}"):
        async with db.pool.acquire() as connection:
            # Cheap check without locks, so an idle poll writes nothing; a command arriving just after is
            # picked up by the next call (its NOTIFY triggers one).
            if not await connection.fetchval(
                "SELECT EXISTS (SELECT FROM coordinator_commands WHERE account = $1 AND status = 'pending')", account
            ):
                return []
            async with connection.transaction():
                record = await lock_state(connection, account, now, degradation_level)
                rows = await connection.fetch(_PENDING + " FOR UPDATE SKIP LOCKED", account)
                settled: list[SettledCommand] = []
                for row in rows:
                    try:
                        command = _parse(row)
                    except CommandError as exc:
                        await connection.execute(_SETTLE, row["id"], "rejected", f"rejected: {exc}", now)
                        settled.append(SettledCommand(row["id"], None, "rejected", f"rejected: {exc}"))
                        continue
                    outcome = apply_command(record, command, now)
                    status: Status = "applied" if isinstance(outcome, Applied) else "refused"
                    if isinstance(outcome, Applied):
                        record = outcome.record
                    await connection.execute(_SETTLE, row["id"], status, outcome.message, now)
                    settled.append(SettledCommand(row["id"], command, status, outcome.message))
                await _save(connection, account, record, degradation_level)
    return settled


async def lock_state(
    connection: Any,
    account: str,
    now: datetime,
    degradation_level: DegradationLevel = DegradationLevel.NORMAL,
    *,
    mode: Literal["update", "share"] = "update",
) -> StateRecord:
    """The account's state row, locked until the transaction ends; a RUNNING row is created if there is none.

    ``update`` (the command applier) excludes every other locker; ``share`` (storing a decision) only
    excludes ``update`` and writers of the row. The insert waits for a concurrent transaction inserting the
    same account, so the row always exists to lock.
    """
    await ensure_state_row(connection, account, now, degradation_level)
    record = await locked_state(connection, account, mode=mode)
    assert record is not None, "the row was just ensured"
    return record


async def locked_state(
    connection: Any, account: str, *, mode: Literal["update", "share"] = "update"
) -> StateRecord | None:
    """The account's state row locked until the transaction ends (see ``lock_state``); None if there is none."""
    row = await connection.fetchrow(_LOCK_STATE[mode], account)
    return None if row is None else _record(row)


async def ensure_state_row(
    connection: Any, account: str, now: datetime, degradation_level: DegradationLevel = DegradationLevel.NORMAL
) -> None:
    """Create the account's row, RUNNING since ``now``, unless it exists; an existing row is left untouched."""
    await connection.execute(
        _INSERT_INITIAL_STATE,
        account,
        CoordinatorState.RUNNING.value,
        now,
        INITIAL_CHANGED_BY,
        INITIAL_REASON,
        degradation_level.name,
    )


async def _save(executor: Any, account: str, record: StateRecord, degradation_level: DegradationLevel) -> None:
    await executor.execute(
        _UPSERT_STATE,
        account,
        record.state.value,
        record.changed_at,
        record.changed_by,
        record.reason,
        degradation_level.name,
    )


def _parse(row: Any) -> Command:
    args = row["args"]
    if not isinstance(args, dict):
        raise CommandError(f"arguments must be a JSON object, got {args!r}")
    return Command.parse(row["verb"], args, requested_by=row["requested_by"])


def _record(row: Any) -> StateRecord:
    return StateRecord(
        state=CoordinatorState(row["state"]),
        changed_at=row["changed_at"],
        changed_by=row["changed_by"],
        reason=row["reason"],
    )
