"""A running daemon's control socket: ``triplegain coordinator`` answered by the daemon itself, through the same
command rows and with the same lines as the database way."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.coordinator_harness import ACCOUNT, Harness, coordinator_harness
from triplegain import control_client
from triplegain.coordinator.controls import status_lines
from triplegain.daemon.control_socket import serving_control
from triplegain.model import CoordinatorState
from triplegain.store.database import Database
from triplegain.store.runs import account_lock

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


@asynccontextmanager
async def daemon_listening(db: Database, home: Path, environ: Mapping[str, str]) -> AsyncIterator[Harness]:
    """A coordinator holding its account's lock, as a daemon does, listening on its control socket."""
    # capture_logs: the coordinator's log lines would go to stdout, where the tests read what the CLI printed
    with capture_logs():
        async with account_lock(db, ACCOUNT), coordinator_harness(db) as harness:
            async with serving_control(db, ACCOUNT, harness.coordinator, home, environ) as path:
                assert path is not None
                assert path.stat().st_mode & 0o777 == 0o600
                yield harness
            assert not path.exists()


@pytest.fixture
def environ(migrated_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TRIPLEGAIN_HOME", str(tmp_path))
    return {"TRIPLEGAIN_DATABASE_URL": migrated_database_url}


async def ask(argv: list[str], environ: Mapping[str, str]) -> int | None:
    return await asyncio.to_thread(control_client.run, argv, environ)


async def test_a_pause_over_the_socket_is_a_command_row_applied_at_once(
    migrated_database: Database, environ: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with daemon_listening(migrated_database, tmp_path, environ) as harness:
        assert await ask(["coordinator", "pause", "--reason", "news at 14:00"], environ) == 0
        assert harness.coordinator.state is CoordinatorState.PAUSED
        row = await migrated_database.pool.fetchrow("SELECT verb, args, requested_by, status FROM coordinator_commands")
        assert (row["verb"], row["args"], row["status"]) == ("pause", {"reason": "news at 14:00"}, "applied")
        assert row["requested_by"].startswith("operator")
        printed = capsys.readouterr().out.splitlines()
        assert printed[0] == "pause: RUNNING → PAUSED"
        assert printed[1].startswith(f"account {ACCOUNT!r}: state PAUSED since ")

        assert await ask(["coordinator", "pause", "--account", ACCOUNT], environ) == 0  # already paused: applied
        assert await ask(["coordinator", "halt", "--flatten"], environ) == 0
        assert await ask(["coordinator", "resume"], environ) == 1  # HALTED needs --force: refused, exit 1
        refused = capsys.readouterr()
        assert "resume refused: resume from HALTED needs --force" in refused.err
        assert harness.coordinator.state is CoordinatorState.HALTED


async def test_status_over_the_socket_prints_the_database_ways_lines(
    migrated_database: Database, environ: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with daemon_listening(migrated_database, tmp_path, environ):
        assert await ask(["coordinator", "status", "--healthcheck"], environ) == 0
        over_socket = capsys.readouterr().out.splitlines()
        direct, running = await status_lines(migrated_database, ACCOUNT)
    assert running
    assert over_socket == direct
    assert "daemon       running" in over_socket


async def test_without_a_daemon_listening_the_database_way_is_taken(
    migrated_database: Database, environ: dict[str, str], tmp_path: Path
) -> None:
    assert await ask(["coordinator", "status"], environ) is None  # no socket at all
    async with daemon_listening(migrated_database, tmp_path, environ):
        assert await ask(["coordinator", "status", "--account", "other"], environ) is None  # no daemon of that account
        assert await ask(["coordinator", "status"], {"TRIPLEGAIN_DATABASE_URL": "postgresql://x@elsewhere/db"}) is None
    stale = control_client.socket_path(tmp_path, ACCOUNT, environ)
    stale.parent.mkdir(exist_ok=True)
    with socket.socket(socket.AF_UNIX) as left_behind:  # a socket file whose daemon was killed
        left_behind.bind(str(stale))
    assert await ask(["coordinator", "pause"], environ) is None
