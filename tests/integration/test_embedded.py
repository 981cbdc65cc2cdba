"""The embedded server's lifecycle, with real processes: start, share, stop, recover, signals, failures.

Every test has its own data directory under the session's scratch folder. Other processes are real ``python -c``
children; the test synchronises on the lines they print, never on time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import psutil  # type: ignore[import-untyped]
import pytest

from tests.conftest import unique_name
from triplegain.errors import DatabaseError
from triplegain.store import embedded_server
from triplegain.store.embedded import SERVER_SYSTEM_USER, acquire_server, release_server

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("pgserver") is None, reason="pgserver is not installed"),
    pytest.mark.timeout(120),
]

TIMEOUT_SECONDS = 60.0

HOLD_A_HANDLE = """
import sys
from pathlib import Path
from triplegain.store.embedded import acquire_server, release_server

pgdata = Path(sys.argv[1])
server = acquire_server(pgdata, 60)
print("ready", server.postmaster_pid, flush=True)
sys.stdin.read()
release_server(pgdata, 60)
print("released", flush=True)
"""

SERVE_UNTIL_SIGNALLED = """
import asyncio
import signal
import sys
from triplegain.store.settings import DatabaseSettings
from triplegain.store import interrupt_on_sigterm, open_database

if sys.argv[1] == "ignore-sigint":
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def main() -> None:
    async with open_database(DatabaseSettings()) as db:
        await db.pool.fetchval("SELECT 1")
        print("ready", flush=True)
        await asyncio.Event().wait()


try:
    with interrupt_on_sigterm():
        asyncio.run(main())
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""

HOLD_THE_LOCK = """
import fcntl
import sys

with open(sys.argv[1], "a") as lock_file:
    fcntl.lockf(lock_file.fileno(), fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
"""


class Child:
    """A ``python -c`` child process that talks in lines on stdout and waits on stdin."""

    def __init__(self, script: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def read_line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the child exited with status {self.process.wait()} before saying more")
        return line.strip()

    def finish(self) -> list[str]:
        """Close its stdin (its cue to leave), wait for it to exit and return what it said meanwhile."""
        output, _ = self.process.communicate(timeout=TIMEOUT_SECONDS)
        assert self.process.returncode == 0
        return output.split()

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=TIMEOUT_SECONDS)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        if child.process.poll() is None:
            child.kill()


@pytest.fixture
def pgdata(scratch_dir: Path) -> Iterator[Path]:
    path = (scratch_dir / unique_name("embedded") / "pgdata").resolve()
    yield path
    _stop_leftover_server(path)


def _stop_leftover_server(pgdata: Path) -> None:
    """A failed test must not leave a server running: stop it the way pg_ctl's fast mode does."""
    pid = postmaster_pid(pgdata)
    if pid is not None and is_running(pid):
        server = psutil.Process(pid)
        server.send_signal(signal.SIGINT)
        server.wait(TIMEOUT_SECONDS)


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except FileNotFoundError:
        return None


def is_running(pid: int) -> bool:
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    return status != psutil.STATUS_ZOMBIE


def handles(pgdata: Path) -> list[int]:
    pids: list[int] = json.loads((pgdata / ".handle_pids.json").read_text())
    return pids


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def pgserver_lock_path() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import PostgresServer
    return Path(PostgresServer.lock_path)


async def test_the_server_runs_while_used_and_stops_after(pgdata: Path) -> None:
    async with embedded_server(pgdata, TIMEOUT_SECONDS) as server:
        assert server.description == f"embedded PostgreSQL in {pgdata}"
        assert is_running(server.postmaster_pid)
        assert handles(pgdata) == [os.getpid()]
        connection = await asyncpg.connect(server.url("postgres"))
        assert await connection.fetchval("SELECT current_setting('server_version_num')::int / 10000") == 16
        await connection.close()

    assert not is_running(server.postmaster_pid)
    assert postmaster_pid(pgdata) is None
    assert handles(pgdata) == []


async def test_an_error_in_the_block_still_stops_the_server(pgdata: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with embedded_server(pgdata, TIMEOUT_SECONDS) as server:
            raise RuntimeError("boom")

    assert not is_running(server.postmaster_pid)
    assert handles(pgdata) == []


async def test_users_within_one_process_share_the_server(pgdata: Path) -> None:
    async with embedded_server(pgdata, TIMEOUT_SECONDS) as outer:
        async with embedded_server(pgdata, TIMEOUT_SECONDS) as inner:
            assert inner == outer
            assert handles(pgdata) == [os.getpid()]
        assert is_running(outer.postmaster_pid)

    assert not is_running(outer.postmaster_pid)


def test_another_process_reuses_the_server_and_leaves_it_running(pgdata: Path, children: list[Child]) -> None:
    server = acquire_server(pgdata, TIMEOUT_SECONDS)
    try:
        child = Child(HOLD_A_HANDLE, str(pgdata))
        children.append(child)
        assert child.read_line() == f"ready {server.postmaster_pid}"
        assert sorted(handles(pgdata)) == sorted([os.getpid(), child.process.pid])

        assert child.finish() == ["released"]
        assert is_running(server.postmaster_pid)
        assert handles(pgdata) == [os.getpid()]
    finally:
        release_server(pgdata, TIMEOUT_SECONDS)

    assert not is_running(server.postmaster_pid)


def test_the_last_process_to_leave_stops_the_server(pgdata: Path, children: list[Child]) -> None:
    child = Child(HOLD_A_HANDLE, str(pgdata))
    children.append(child)
    started_by_child = int(child.read_line().split()[1])

    server = acquire_server(pgdata, TIMEOUT_SECONDS)
    assert server.postmaster_pid == started_by_child
    release_server(pgdata, TIMEOUT_SECONDS)
    assert is_running(started_by_child)

    assert child.finish() == ["released"]
    assert not is_running(started_by_child)
    assert handles(pgdata) == []


def test_handles_of_killed_processes_are_pruned(pgdata: Path, children: list[Child]) -> None:
    child = Child(HOLD_A_HANDLE, str(pgdata))
    children.append(child)
    started_by_child = int(child.read_line().split()[1])
    child.kill()
    assert handles(pgdata) == [child.process.pid]

    server = acquire_server(pgdata, TIMEOUT_SECONDS)
    assert server.postmaster_pid == started_by_child
    assert handles(pgdata) == [os.getpid()]
    release_server(pgdata, TIMEOUT_SECONDS)

    assert not is_running(started_by_child)


@contextmanager
def a_stale_pid(left_by: str) -> Iterator[int]:
    """A pid a killed server may leave in postmaster.pid: dead, or recycled by a live process of the user the
    server runs as (which PostgreSQL itself would take for a running postmaster, and refuse to start)."""
    if left_by == "dead process":
        yield dead_pid()
        return
    server_user = SERVER_SYSTEM_USER if os.geteuid() == 0 else None
    with subprocess.Popen(["cat"], stdin=subprocess.PIPE, user=server_user) as waiting_for_stdin:
        yield waiting_for_stdin.pid


@pytest.mark.parametrize("left_by", ["dead process", "live process"])
def test_a_stale_postmaster_pid_does_not_prevent_a_start(pgdata: Path, left_by: str) -> None:
    server = acquire_server(pgdata, TIMEOUT_SECONDS)
    socket_lock = server.socket_dir / f".s.PGSQL.{server.port}.lock"
    left_behind = {path: path.read_text() for path in (pgdata / "postmaster.pid", socket_lock)}
    release_server(pgdata, TIMEOUT_SECONDS)

    with a_stale_pid(left_by) as stale_pid:
        for path, text in left_behind.items():
            path.write_text(text.replace(f"{server.postmaster_pid}\n", f"{stale_pid}\n", 1))
        restarted = acquire_server(pgdata, TIMEOUT_SECONDS)
        try:
            assert restarted.postmaster_pid not in (server.postmaster_pid, stale_pid)
            assert is_running(restarted.postmaster_pid)
            assert postmaster_pid(pgdata) == restarted.postmaster_pid
        finally:
            release_server(pgdata, TIMEOUT_SECONDS)

    assert not is_running(restarted.postmaster_pid)


@pytest.mark.parametrize(
    ("signal_number", "mode"),
    [(signal.SIGTERM, "default"), (signal.SIGINT, "default"), (signal.SIGTERM, "ignore-sigint")],
    ids=["SIGTERM", "SIGINT", "SIGTERM with SIGINT ignored"],
)
def test_a_signal_to_the_process_using_the_server_stops_it(
    scratch_dir: Path, children: list[Child], signal_number: int, mode: str
) -> None:
    home = scratch_dir / unique_name("home")
    child = Child(SERVE_UNTIL_SIGNALLED, mode, env={**os.environ, "TRIPLEGAIN_HOME": str(home)})
    children.append(child)
    assert child.read_line() == "ready"
    server_pid = postmaster_pid(home / "pgdata")
    assert server_pid is not None
    assert is_running(server_pid)

    child.process.send_signal(signal_number)

    assert child.finish() == ["interrupted"]
    assert not is_running(server_pid)
    assert handles(home / "pgdata") == []


def test_a_server_that_cannot_start_is_one_line_quoting_its_log(pgdata: Path) -> None:
    acquire_server(pgdata, TIMEOUT_SECONDS)
    release_server(pgdata, TIMEOUT_SECONDS)
    with (pgdata / "postgresql.conf").open("a") as settings:
        settings.write("shared_buffers = 'plenty'\n")

    with pytest.raises(DatabaseError) as failed:
        acquire_server(pgdata, TIMEOUT_SECONDS)

    message = str(failed.value)
    assert message.startswith(
        f"embedded PostgreSQL in {pgdata}: cannot start the server (pg_ctl start): pg_ctl: could not start server;"
        f" last lines of {pgdata / 'log'}: "
    )
    assert 'invalid value for parameter "shared_buffers": "plenty"' in message
    assert "\n" not in message
    assert handles(pgdata) == []


def test_waiting_for_another_process_holding_the_lock_is_bounded(pgdata: Path, children: list[Child]) -> None:
    child = Child(HOLD_THE_LOCK, str(pgserver_lock_path()))
    children.append(child)
    assert child.read_line() == "locked"

    with pytest.raises(DatabaseError, match=r"timed out waiting for the lock .*held by another process"):
        acquire_server(pgdata, 0.3)

    child.finish()
    assert not pgdata.exists()


async def test_a_start_cancelled_midway_completes_and_leaves_nothing_behind(pgdata: Path) -> None:
    async def use_the_server() -> None:
        async with embedded_server(pgdata, TIMEOUT_SECONDS):
            raise AssertionError("the block must not run: the start was cancelled")

    using = asyncio.ensure_future(use_the_server())
    await asyncio.sleep(0)  # let it begin starting the server, so the cancellation lands mid-start
    using.cancel()

    with pytest.raises(asyncio.CancelledError):
        await using
    assert (pgdata / "PG_VERSION").exists()
    assert postmaster_pid(pgdata) is None
    assert handles(pgdata) == []
