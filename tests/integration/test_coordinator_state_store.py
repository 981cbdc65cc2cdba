"""The coordinator's state and command queue on a real server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.state_rows import write_state_row
from triplegain.coordinator.state import apply_command
from triplegain.model import Applied, Command, CoordinatorState, DegradationLevel, StateRecord, Verb
from triplegain.store.coordinator_state import (
    NOTIFY_CHANNEL,
    SettledCommand,
    apply_pending,
    load_state,
    submit_command,
)
from triplegain.store.database import Database, open_database_at
from triplegain.store.settings import DatabaseSettings

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(20)]

T0 = datetime(2024, 3, 1, tzinfo=UTC)
ACCOUNT = "paper"
NORMAL = DegradationLevel.NORMAL


async def command_rows(pool: Any, account: str = ACCOUNT) -> list[Any]:
    return list(
        await pool.fetch(
            "SELECT id, verb, args, requested_by, status, outcome, applied_at FROM coordinator_commands"
            " WHERE account = $1 ORDER BY id",
            account,
        )
    )


async def test_a_halt_survives_a_reload(migrated_database: Database) -> None:
    assert await load_state(migrated_database, ACCOUNT) is None
    halt = Command(Verb.HALT, reason="max drawdown", requested_by="breaker")
    await submit_command(migrated_database, ACCOUNT, halt, T0)
    await apply_pending(migrated_database, ACCOUNT, T0, DegradationLevel.LIMITED, apply_command)
    halted = StateRecord(state=CoordinatorState.HALTED, changed_at=T0, changed_by="breaker", reason="max drawdown")
    assert await load_state(migrated_database, ACCOUNT) == halted
    assert await load_state(migrated_database, "other") is None
    level = await migrated_database.pool.fetchval(
        "SELECT degradation_level FROM coordinator_state WHERE account = $1", ACCOUNT
    )
    assert level == "LIMITED"  # the level given is the new row's

    later = T0 + timedelta(hours=1)
    await submit_command(
        migrated_database, ACCOUNT, Command(Verb.RESUME, force=True, reason="ok", requested_by="op"), T0
    )
    await apply_pending(migrated_database, ACCOUNT, later, NORMAL, apply_command)
    running = StateRecord(state=CoordinatorState.RUNNING, changed_at=later, changed_by="op", reason="ok")
    assert await load_state(migrated_database, ACCOUNT) == running


async def test_commands_without_an_applier_stay_pending_and_apply_in_order_later(migrated_database: Database) -> None:
    submitted = [
        await submit_command(migrated_database, ACCOUNT, Command(Verb.PAUSE, reason="news"), T0),
        await submit_command(migrated_database, ACCOUNT, Command(Verb.HALT, requested_by="alice"), T0),
        await submit_command(migrated_database, ACCOUNT, Command(Verb.RESUME, force=True), T0),
        await submit_command(migrated_database, ACCOUNT, Command(Verb.PAUSE), T0),
    ]
    await submit_command(migrated_database, "other", Command(Verb.HALT), T0)

    rows = await command_rows(migrated_database.pool)
    assert [r["id"] for r in rows] == submitted
    assert [r["status"] for r in rows] == ["pending"] * 4
    assert rows[2]["args"] == {"force": True}
    assert rows[1]["requested_by"] == "alice"

    later = T0 + timedelta(minutes=10)
    settled = await apply_pending(migrated_database, ACCOUNT, later, NORMAL, apply_command)
    assert [(s.id, s.status, s.outcome) for s in settled] == [
        (submitted[0], "applied", "RUNNING → PAUSED"),
        (submitted[1], "applied", "PAUSED → HALTED"),
        (submitted[2], "applied", "HALTED → RUNNING"),
        (submitted[3], "applied", "RUNNING → PAUSED"),
    ]
    assert settled[1].command == Command(Verb.HALT, requested_by="alice")
    assert await load_state(migrated_database, ACCOUNT) == StateRecord(
        state=CoordinatorState.PAUSED, changed_at=later, changed_by="operator", reason="pause requested"
    )
    rows = await command_rows(migrated_database.pool)
    assert [(r["status"], r["applied_at"]) for r in rows] == [("applied", later)] * 4
    assert await apply_pending(migrated_database, ACCOUNT, later, NORMAL, apply_command) == []
    assert await load_state(migrated_database, "other") is None
    assert [r["status"] for r in await command_rows(migrated_database.pool, "other")] == ["pending"]


async def test_resume_from_halted_without_force_is_refused_and_recorded(migrated_database: Database) -> None:
    halted = StateRecord(state=CoordinatorState.HALTED, changed_at=T0, changed_by="breaker", reason="daily loss")
    await write_state_row(migrated_database, ACCOUNT, halted)
    command_id = await submit_command(migrated_database, ACCOUNT, Command(Verb.RESUME), T0)

    settled = await apply_pending(migrated_database, ACCOUNT, T0 + timedelta(minutes=1), NORMAL, apply_command)

    assert settled == [SettledCommand(command_id, Command(Verb.RESUME), "refused", "resume from HALTED needs --force")]
    assert await load_state(migrated_database, ACCOUNT) == halted
    [row] = await command_rows(migrated_database.pool)
    assert (row["status"], row["outcome"]) == ("refused", "resume from HALTED needs --force")


async def test_a_malformed_command_is_rejected_and_never_executed(migrated_database: Database) -> None:
    pool = migrated_database.pool
    insert = (
        "INSERT INTO coordinator_commands (account, verb, args, requested_by, requested_at)"
        " VALUES ($1, $2, $3, 'mallory', $4) RETURNING id"
    )
    bad_force = await pool.fetchval(insert, ACCOUNT, "resume", {"force": "yes please"}, T0)
    bad_args = await pool.fetchval(insert, ACCOUNT, "halt", ["now"], T0)
    good = await submit_command(migrated_database, ACCOUNT, Command(Verb.PAUSE), T0)
    bad_later = await pool.fetchval(insert, ACCOUNT, "halt", {"flatten": True, "when": "now"}, T0)

    settled = await apply_pending(migrated_database, ACCOUNT, T0, NORMAL, apply_command)

    assert [(s.id, s.status, s.command) for s in settled] == [
        (bad_force, "rejected", None),
        (bad_args, "rejected", None),
        (good, "applied", Command(Verb.PAUSE)),
        (bad_later, "rejected", None),
    ]
    record = await load_state(migrated_database, ACCOUNT)
    assert record is not None
    assert record.state is CoordinatorState.PAUSED  # the halt with an unknown argument never ran
    rows = {r["id"]: r for r in await command_rows(pool)}
    assert rows[bad_force]["status"] == "rejected"
    assert rows[bad_force]["outcome"] == "rejected: force must be true or false, got 'yes please'"
    assert "JSON object" in rows[bad_args]["outcome"]
    assert "unknown argument(s) when" in rows[bad_later]["outcome"]


def fifty_commands() -> list[Command]:
    cycle = [
        Command(Verb.PAUSE),
        Command(Verb.HALT),
        Command(Verb.RESUME),
        Command(Verb.PAUSE),
        Command(Verb.RESUME, force=True),
        Command(Verb.RESUME),
        Command(Verb.HALT),
    ]
    return [cycle[(i * 3) % len(cycle)] for i in range(50)]


@pytest.mark.parametrize("stored", [False, True], ids=["no-stored-state", "stored-state"])
async def test_concurrent_appliers_settle_each_command_once_and_end_where_a_serial_one_would(
    migrated_database: Database, migrated_database_url: str, stored: bool
) -> None:
    start = StateRecord(state=CoordinatorState.RUNNING, changed_at=T0, changed_by="test", reason="start")
    if stored:
        await write_state_row(migrated_database, ACCOUNT, start)
    commands = fifty_commands()
    ids = [await submit_command(migrated_database, ACCOUNT, c, T0) for c in commands]

    now = T0 + timedelta(minutes=1)
    expected, statuses = start, []
    for command in commands:
        outcome = apply_command(expected, command, now)
        statuses.append("applied" if isinstance(outcome, Applied) else "refused")
        expected = outcome.record if isinstance(outcome, Applied) else expected

    config = DatabaseSettings(pool_min_size=1, pool_max_size=2)
    async with open_database_at(migrated_database_url, config) as other:
        first, second = await asyncio.gather(
            apply_pending(migrated_database, ACCOUNT, now, NORMAL, apply_command),
            apply_pending(other, ACCOUNT, now, NORMAL, apply_command),
        )

    settled_ids = [s.id for s in first + second]
    assert sorted(settled_ids) == ids  # every command settled, none twice
    rows = await command_rows(migrated_database.pool)
    assert [r["status"] for r in rows] == statuses
    final = await load_state(migrated_database, ACCOUNT)
    assert final is not None
    assert final.state is expected.state
    assert (final.changed_by, final.reason) == (expected.changed_by, expected.reason)


async def test_submitting_a_command_notifies_listeners(migrated_database: Database) -> None:
    received = asyncio.Event()
    payloads: list[str] = []

    def on_notify(connection: Any, pid: int, channel: str, payload: str) -> None:
        payloads.append(payload)
        received.set()

    async with migrated_database.pool.acquire() as listener:
        await listener.add_listener(NOTIFY_CHANNEL, on_notify)
        try:
            await submit_command(migrated_database, ACCOUNT, Command(Verb.HALT), T0)
            await asyncio.wait_for(received.wait(), timeout=5)
        finally:
            await listener.remove_listener(NOTIFY_CHANNEL, on_notify)
    assert payloads == [ACCOUNT]
