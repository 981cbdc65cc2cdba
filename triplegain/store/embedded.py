"""The embedded PostgreSQL server: started on demand in a data directory, shared, stopped by its last user.

pgserver ships the PostgreSQL 16 binaries. This module drives them itself rather than through
``pgserver.get_server``, whose cleanup runs only at a normal interpreter exit and whose list of handles keeps
the pids of killed processes forever (which either keeps a server running for good or stops it under the feet
of a process that still uses it). What it keeps from pgserver is the shared state, so both cooperate on one
data directory: the handle list ``<pgdata>/.handle_pids.json``, pgserver's inter-process lock file, the log
file ``<pgdata>/log`` and, as root, the ``pgserver`` system user.

Lifecycle:

- **Handles.** Every process using the server has its pid in the handle list, once; users within one process
  are counted in memory. Handles are taken and released, and the server started and stopped, only under the
  inter-process lock (plus a thread lock in this process), so two processes never start or stop it at once.
- **Start.** ``acquire_server`` runs ``initdb`` on first use, then ``pg_ctl start`` unless a postmaster already
  serves this data directory, in which case that server is reused (e.g. the daemon's, while the CLI runs
  ``coordinator status``). The server listens on a Unix socket only, with trust authentication: only this OS
  user (and root) can reach it. Starting is bounded by a timeout; a failure raises ``DatabaseError`` naming the
  data directory and quoting the last lines of the server log.
- **Stale state.** A killed process leaves its pid in the handle list, and a killed server leaves a
  ``postmaster.pid`` whose pid is dead or, later, belongs to another program. Before taking a handle, dead pids
  are pruned, and a ``postmaster.pid`` (with its socket lock file) that names no live postmaster of this data
  directory is removed, so the server starts cleanly instead of refusing or being mistaken for running.
- **Stop.** ``release_server`` for the last user of the last process stops the server (``pg_ctl stop -m
  fast``). With ``embedded_server`` that happens on a normal exit, on an exception and on Ctrl-C (asyncio.run
  cancels the main task, so ``finally`` blocks run); ``interrupt_on_sigterm`` makes SIGTERM take the same path.
  A process killed with SIGKILL cannot stop anything: the next user adopts the orphaned server and stops it
  when it leaves, unless other users remain.
- **Root.** PostgreSQL refuses to run as root, so the server runs as pgserver's ``pgserver`` system user
  (created on first use) and the data directory's parents are made traversable by others; see ``paths``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from urllib.parse import quote

import psutil

from triplegain.errors import DatabaseError

SUPERUSER = "postgres"
# PostgreSQL runs as this system user when we are root; pgserver creates it.
SERVER_SYSTEM_USER = "pgserver"
HANDLES_FILE = ".handle_pids.json"
LOG_FILE = "log"
LOG_TAIL_LINES = 5
# lockf() cannot give up after a while, so waiting for the lock means trying again at this interval.
LOCK_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server: where its data lives and where its Unix socket is."""

    pgdata: Path
    socket_dir: Path
    port: int
    postmaster_pid: int

    @property
    def description(self) -> str:
        return f"embedded PostgreSQL in {self.pgdata}"

    def url(self, database: str) -> str:
        """A connection URL for ``database`` as the superuser, over the Unix socket."""
        return f"postgresql://{SUPERUSER}@/{quote(database)}?host={quote(str(self.socket_dir))}&port={self.port}"


# Users of each data directory in this process, and the server they share; guarded by _process_lock.
_users: dict[Path, tuple[int, EmbeddedServer]] = {}
_process_lock = threading.Lock()


def acquire_server(pgdata: Path, timeout_seconds: float) -> EmbeddedServer:
    """Take a handle on the server of ``pgdata``, starting it (and creating the cluster) if needed. Blocks."""
    pgdata = pgdata.resolve()
    deadline = time.monotonic() + timeout_seconds
    with _exclusive(pgdata, deadline):
        count, server = _users.get(pgdata, (0, None))
        if server is None:
            server = _start_or_reuse(pgdata, deadline)
            others = [pid for pid in _live_handles(pgdata) if pid != os.getpid()]
            _write_handles(pgdata, [*others, os.getpid()])
        _users[pgdata] = (count + 1, server)
        return server


def release_server(pgdata: Path, timeout_seconds: float) -> None:
    """Give back a handle; the last user of the last process stops the server. Blocks."""
    pgdata = pgdata.resolve()
    deadline = time.monotonic() + timeout_seconds
    with _exclusive(pgdata, deadline):
        count, server = _users.pop(pgdata)
        if count > 1:
            _users[pgdata] = (count - 1, server)
            return
        others = [pid for pid in _live_handles(pgdata) if pid != os.getpid()]
        _write_handles(pgdata, others)
        if not others:
            _stop(pgdata, deadline)


@contextlib.asynccontextmanager
async def embedded_server(pgdata: Path, timeout_seconds: float) -> AsyncIterator[EmbeddedServer]:
    """Use the server of ``pgdata`` for the duration of the block (starting and stopping run in a thread).

    If the caller is cancelled while the server starts, the start still completes in its thread and the handle
    is released before the cancellation goes on, so no handle is ever left behind.
    """
    starting = asyncio.ensure_future(asyncio.to_thread(acquire_server, pgdata, timeout_seconds))
    try:
        server = await asyncio.shield(starting)
    except asyncio.CancelledError:
        await asyncio.wait([starting])
        if not starting.cancelled() and starting.exception() is None:
            await asyncio.to_thread(release_server, pgdata, timeout_seconds)
        raise
    try:
        yield server
    finally:
        await asyncio.to_thread(release_server, pgdata, timeout_seconds)


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """While active, SIGTERM is handled like Ctrl-C, so ``finally`` blocks run and the server is stopped.

    Wrap ``asyncio.run(...)`` in it (main thread only). Inside asyncio.run, Ctrl-C cancels the main task and
    asyncio.run then raises ``KeyboardInterrupt``; outside, Ctrl-C raises ``KeyboardInterrupt`` at once. SIGTERM
    does exactly the same, so the caller handles both in one ``except KeyboardInterrupt``. When SIGINT is
    ignored (a process started in the background by a shell), SIGTERM raises ``KeyboardInterrupt`` directly.
    """
    previous = signal.signal(signal.SIGTERM, _handle_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _handle_sigterm(signum: int, frame: FrameType | None) -> None:
    on_interrupt = signal.getsignal(signal.SIGINT)
    if callable(on_interrupt):
        on_interrupt(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def _pgserver() -> ModuleType:
    """pgserver, imported on first use: it is only installed where it ships wheels (CPython 3.11/3.12)."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset while pgserver picks its lock folder; its fallback
            # is what we want, and a warning on every command would only confuse.
            warnings.simplefilter("ignore")
            import pgserver.postgres_server
    except ImportError:
        raise DatabaseError(
            "the embedded PostgreSQL server needs the pgserver package, which has wheels for CPython 3.11 and "
            "3.12 only; set TRIPLEGAIN_DATABASE_URL to use a PostgreSQL server instead"
        ) from None
    return pgserver


@contextlib.contextmanager
def _exclusive(pgdata: Path, deadline: float) -> Iterator[None]:
    """Hold pgserver's inter-process lock (and this process's thread lock) until the block ends."""
    lock_path = Path(_pgserver().postgres_server.PostgresServer.lock_path)
    if not _process_lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
        raise DatabaseError(
            f"embedded PostgreSQL in {pgdata}: timed out waiting for another thread starting or stopping it"
        )
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock_file:
            while not _try_lock(lock_file.fileno()):
                if time.monotonic() >= deadline:
                    raise DatabaseError(
                        f"embedded PostgreSQL in {pgdata}: timed out waiting for the lock {lock_path}, held by "
                        "another process starting or stopping a server"
                    )
                time.sleep(LOCK_POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.lockf(lock_file.fileno(), fcntl.LOCK_UN)
    finally:
        _process_lock.release()


def _try_lock(fd: int) -> bool:
    # pgserver's lock (fasteners) uses POSIX record locks, so this must too: flock() would not exclude it.
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


def _start_or_reuse(pgdata: Path, deadline: float) -> EmbeddedServer:
    _remove_stale_postmaster_pid(pgdata)
    running = _running_server(pgdata)
    if running is not None:
        return running
    pg = _pgserver()
    bin_dir = Path(pg.postgres_server.POSTGRES_BIN_PATH)
    system_user = _server_system_user()
    pgdata.mkdir(parents=True, exist_ok=True)
    if system_user is not None:
        _open_to_system_user(pg, pgdata, bin_dir, system_user)
    if not (pgdata / "PG_VERSION").exists():
        _run(
            pgdata,
            bin_dir / "initdb",
            ["-D", str(pgdata), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-locale"],
            system_user=system_user,
            deadline=deadline,
            action="create the database cluster (initdb)",
        )
    socket_dir = Path(pg.utils.find_suitable_socket_dir(pgdata, pg.postgres_server.PostgresServer.runtime_path))
    if system_user is not None and socket_dir != pgdata:
        pg.utils.ensure_prefix_permissions(socket_dir)
        socket_dir.chmod(0o777)
    wait_seconds = max(int(deadline - time.monotonic()), 1)
    _run(
        pgdata,
        bin_dir / "pg_ctl",
        [
            "-D", str(pgdata),
            "-l", str(pgdata / LOG_FILE),
            "-w", "-t", str(wait_seconds),
            "-o", f'-h "" -k "{socket_dir}"',
            "start",
        ],
        system_user=system_user,
        deadline=deadline,
        action="start the server (pg_ctl start)",
    )  # fmt: skip
    started = _running_server(pgdata)
    if started is None:
        raise _server_failure(pgdata, "start the server", "pg_ctl reported success but no postmaster is running")
    return started


def _stop(pgdata: Path, deadline: float) -> None:
    if _running_server(pgdata) is None:
        return
    bin_dir = Path(_pgserver().postgres_server.POSTGRES_BIN_PATH)
    wait_seconds = max(int(deadline - time.monotonic()), 1)
    _run(
        pgdata,
        bin_dir / "pg_ctl",
        ["-D", str(pgdata), "-m", "fast", "-w", "-t", str(wait_seconds), "stop"],
        system_user=_server_system_user(),
        deadline=deadline,
        action="stop the server (pg_ctl stop)",
    )


def _server_system_user() -> str | None:
    return SERVER_SYSTEM_USER if os.geteuid() == 0 else None


def _open_to_system_user(pg: ModuleType, pgdata: Path, bin_dir: Path, system_user: str) -> None:
    """As root: what pgserver does so that its system user can run the binaries and own the data directory."""
    import pwd
    import stat

    pg.utils.ensure_user_exists(system_user)
    pg.utils.ensure_prefix_permissions(pgdata)
    pg.utils.ensure_prefix_permissions(bin_dir)
    readable = stat.S_IRGRP | stat.S_IROTH
    pg.utils.ensure_folder_permissions(bin_dir, readable | stat.S_IXGRP | stat.S_IXOTH)
    pg.utils.ensure_folder_permissions(bin_dir.parent / "lib", readable)
    account = pwd.getpwnam(system_user)
    os.chown(pgdata, account.pw_uid, account.pw_gid)


def _run(
    pgdata: Path, program: Path, args: list[str], *, system_user: str | None, deadline: float, action: str
) -> None:
    """Run a PostgreSQL program; a failure or a timeout becomes a DatabaseError quoting the server log."""
    # Output goes to a file, not a pipe: the server pg_ctl starts would inherit a pipe and keep it open.
    with tempfile.TemporaryFile("w+") as output:
        try:
            completed = subprocess.run(
                [str(program), *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=pgdata,
                user=system_user,
                timeout=max(deadline - time.monotonic(), 0) + 1,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _server_failure(pgdata, action, "timed out") from None
        if completed.returncode != 0:
            output.seek(0)
            said = [line.strip() for line in output.read().splitlines() if line.strip()]
            # pg_ctl ends with "Examine the log output."; the line naming the program says what failed.
            own_lines = [line for line in said if line.startswith(f"{program.name}:")]
            reason = (own_lines or said or [f"exit status {completed.returncode}"])[-1]
            raise _server_failure(pgdata, action, reason)


def _server_failure(pgdata: Path, action: str, reason: str) -> DatabaseError:
    log = pgdata / LOG_FILE
    try:
        tail = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        tail = []
    quoted = f"; last lines of {log}: " + " | ".join(tail[-LOG_TAIL_LINES:]) if tail else ""
    return DatabaseError(f"embedded PostgreSQL in {pgdata}: cannot {action}: {reason}{quoted}")


def _postmaster_lines(pgdata: Path) -> list[str] | None:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a live postgres process serving ``pgdata`` (not a dead pid, not another program)."""
    try:
        process = psutil.Process(pid)
        return process.name() == "postgres" and str(pgdata) in process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        # Cannot look inside: assume it is the server rather than delete the pid file of a live one.
        return True


def _running_server(pgdata: Path) -> EmbeddedServer | None:
    """The server ``postmaster.pid`` describes, if its postmaster is alive and has written its socket."""
    lines = _postmaster_lines(pgdata)
    if lines is None or len(lines) < 5 or not (lines[0].strip().isdigit() and lines[3].strip().isdigit()):
        return None
    pid = int(lines[0])
    if not _is_postmaster_of(pid, pgdata):
        return None
    return EmbeddedServer(pgdata=pgdata, socket_dir=Path(lines[4].strip()), port=int(lines[3]), postmaster_pid=pid)


def _remove_stale_postmaster_pid(pgdata: Path) -> None:
    """Delete a ``postmaster.pid`` (and its socket lock) left by a server that is gone.

    PostgreSQL itself takes any live process of its own user for the postmaster, so a pid recycled by one makes
    it refuse to start; and pgserver takes any live pid for a running server.
    """
    lines = _postmaster_lines(pgdata)
    if lines is None:
        return
    pid_text = lines[0].strip() if lines else ""
    if pid_text.isdigit() and _is_postmaster_of(int(pid_text), pgdata):
        return
    if len(lines) >= 5 and lines[3].strip() and lines[4].strip():
        socket_lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
        with contextlib.suppress(OSError):
            if socket_lock.read_text().splitlines()[:1] == [pid_text]:
                socket_lock.unlink()
    (pgdata / "postmaster.pid").unlink(missing_ok=True)


def _live_handles(pgdata: Path) -> list[int]:
    """Pids in the handle list whose process still exists (dead ones are what killed processes leave)."""
    try:
        listed = json.loads((pgdata / HANDLES_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return []
    if not isinstance(listed, list):
        return []
    return [pid for pid in listed if isinstance(pid, int) and _is_alive(pid)]


def _is_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _write_handles(pgdata: Path, pids: list[int]) -> None:
    path = pgdata / HANDLES_FILE
    staging = path.with_name(f"{HANDLES_FILE}.{os.getpid()}")
    staging.write_text(json.dumps(pids))
    staging.replace(path)
