"""Control commands: only the documented verbs and arguments are ever executed.

The CLI offers only ``pause [--reason] [--wait]``, ``resume [--force] [--reason] [--wait]`` and
``halt [--flatten] [--reason] [--wait]`` (anything else is a usage error, tests/faults/test_bad_cli.py). A row
written into ``coordinator_commands`` by other means — a verb the table refuses, arguments that are not a JSON
object, unknown arguments, wrong types, an argument of another verb — is settled ``rejected`` with the reason by a
running coordinator (woken by NOTIFY, as by the CLI) and never executed; the good commands around it still are.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.coordinator_harness import ACCOUNT, coordinator_harness
from tests.faults.conftest import InvokeCli
from triplegain.bus import Message, Topic
from triplegain.model import ARGUMENTS, Command, CommandError, CoordinatorState, StateChanged, Verb
from triplegain.store import Database
from triplegain.store.coordinator_state import NOTIFY_CHANNEL, submit_command

INSERT = (
    "INSERT INTO coordinator_commands (account, verb, args, requested_by, requested_at)"
    " VALUES ($1, $2, $3::text::jsonb, $4, now()) RETURNING id"
)
# (verb, args as JSON text, requested_by) → the start of the recorded reason.
MALFORMED = [
    ("halt", "[]", "mallory", "rejected: arguments must be a JSON object, got []"),
    ("halt", '"now"', "mallory", "rejected: arguments must be a JSON object, got 'now'"),
    ("halt", "null", "mallory", "rejected: arguments must be a JSON object, got None"),
    ("halt", "42", "mallory", "rejected: arguments must be a JSON object, got 42"),
    ("halt", '{"flatten": true, "sql": "DROP TABLE orders"}', "mallory", "rejected: unknown argument(s) sql"),
    ("resume", '{"force": "yes"}', "mallory", "rejected: force must be true or false, got 'yes'"),
    ("resume", '{"force": 1}', "mallory", "rejected: force must be true or false, got 1"),
    ("halt", '{"flatten": {"all": true}}', "mallory", "rejected: flatten must be true or false"),
    ("pause", '{"reason": ["a", "b"]}', "mallory", "rejected: reason must be a string"),
    ("pause", '{"force": true}', "mallory", "rejected: force applies only to resume, not to pause"),
    ("resume", '{"flatten": true}', "mallory", "rejected: flatten applies only to halt, not to resume"),
    ("halt", "{}", "  ", "rejected: requested_by must name who asked"),
]

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(30)]


async def insert(pool: Any, verb: str, args: str, requested_by: str) -> int:
    command_id: int = await pool.fetchval(INSERT, ACCOUNT, verb, args, requested_by)
    return command_id


async def test_the_table_refuses_a_verb_nobody_documented(migrated_database: Database) -> None:
    for verb in ("shutdown", "PAUSE", "", "halt; DROP TABLE orders"):
        with pytest.raises(asyncpg.CheckViolationError):
            await insert(migrated_database.pool, verb, "{}", "mallory")


async def test_a_running_coordinator_rejects_malformed_rows_and_executes_only_the_good_ones(
    migrated_database: Database,
) -> None:
    pool = migrated_database.pool
    async with coordinator_harness(migrated_database) as harness:
        changes: list[StateChanged] = []
        paused = asyncio.Event()

        async def on_system_event(message: Message) -> None:
            payload = message.payload
            if isinstance(payload, StateChanged):
                changes.append(payload)
                if payload.to_state is CoordinatorState.PAUSED:
                    paused.set()

        await harness.bus.subscribe(Topic.SYSTEM_EVENTS, on_system_event, name="test-state-changes")
        bad = [await insert(pool, verb, args, by) for verb, args, by, _ in MALFORMED]
        await pool.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, ACCOUNT)
        # A good command last, with the CLI's own NOTIFY: the applier settles every pending row in id order in
        # one transaction, so once its pause is published every row before it is settled too.
        good = await submit_command(migrated_database, ACCOUNT, Command(Verb.PAUSE, reason="ok"), harness.clock.now())
        await asyncio.wait_for(paused.wait(), 10)

        rows = {
            row["id"]: row
            for row in await pool.fetch(
                "SELECT id, status, outcome FROM coordinator_commands WHERE account = $1", ACCOUNT
            )
        }
        for command_id, (verb, args, _, reason) in zip(bad, MALFORMED, strict=True):
            assert rows[command_id]["status"] == "rejected", (verb, args)
            assert rows[command_id]["outcome"].startswith(reason), rows[command_id]["outcome"]
        assert (rows[good]["status"], rows[good]["outcome"]) == ("applied", "RUNNING → PAUSED")
        # None of the malformed halts or resumes ran: the only state reached besides RUNNING is the good pause.
        assert [change.to_state for change in changes if change.to_state is not CoordinatorState.RUNNING] == ["PAUSED"]
        assert harness.coordinator.state is CoordinatorState.PAUSED


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    verb=st.sampled_from([*(verb.value for verb in Verb), "stop", "Pause", ""]),
    args=st.dictionaries(
        st.sampled_from([*ARGUMENTS, "when", "sql"]),
        st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.lists(st.booleans(), max_size=2),
        max_size=3,
    ),
)
def test_command_parse_accepts_exactly_the_documented_shapes(verb: str, args: dict[str, Any]) -> None:
    documented = (
        verb in {"pause", "resume", "halt"}
        and set(args) <= set(ARGUMENTS)
        and isinstance(args.get("force", False), bool)
        and isinstance(args.get("flatten", False), bool)
        and isinstance(args.get("reason", ""), str)
        and (not args.get("force") or verb == "resume")
        and (not args.get("flatten") or verb == "halt")
    )
    if not documented:
        with pytest.raises(CommandError):
            Command.parse(verb, json.loads(json.dumps(args)))
        return
    command = Command.parse(verb, json.loads(json.dumps(args)))
    assert command.verb.value == verb
    assert command.args() == {key: value for key, value in args.items() if value not in (False, "")}


@pytest.mark.parametrize(
    "args",
    [
        ["coordinator", "shutdown"],
        ["coordinator", "pause", "--force"],
        ["coordinator", "pause", "--flatten"],
        ["coordinator", "halt", "--force"],
        ["coordinator", "resume", "--flatten"],
        ["coordinator", "halt", "--wait", "0"],
        ["coordinator", "resume", "--force=yes"],
        ["coordinator", "pause", "now"],
    ],
)
def test_the_cli_offers_no_other_verb_or_argument(invoke_cli: InvokeCli, args: list[str]) -> None:
    result = invoke_cli(*args, env={"TRIPLEGAIN_DATABASE_URL": "postgresql://u:x@127.0.0.1:9/none"})
    assert (result.code, result.stdout) == (2, "")
    [line] = result.error_lines
    assert line.startswith("error: ")
