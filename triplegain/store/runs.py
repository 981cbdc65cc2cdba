"""Daemon runs and the one-coordinator-per-account lock.

``account_lock`` holds a PostgreSQL session advisory lock on a connection of its own for as long as the daemon
runs: a second daemon on the same account fails to take it and stops with ``DaemonAlreadyRunning``; a daemon
killed outright loses its connection, and the server frees the lock with it. So does a database outage that
cuts the connection: the daemon ``reassert``s the lock once the database is back, and stops if another daemon
took it meanwhile. ``daemon_running`` probes the lock
without keeping it (for ``triplegain coordinator``). ``start_run`` / ``end_run`` keep the ``daemon_runs`` row:
when, which settings (a digest), which version, where, and why it stopped.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from triplegain import __version__
from triplegain.errors import TriplegainError
from triplegain.store.database import Database, connection_lost

_LOCK_KEY = "SELECT hashtextextended('triplegain:' || $1, 0)"


class DaemonAlreadyRunning(TriplegainError):
    """Another daemon holds the account's lock."""


class AccountLock:
    """The account's coordinator lock, held on a connection of its own (see ``account_lock``)."""

    def __init__(self, db: Database, account: str, connection: Any) -> None:
        self._db = db
        self.account = account
        self._connection: Any | None = connection

    async def reassert(self) -> bool:
        """Whether the lock is held; taken again when its connection was lost (a database outage: the server
        freed the lock with the connection). False while the database is out of reach; ``DaemonAlreadyRunning``
        when another daemon took the lock meanwhile."""
        if await self._still_connected():
            return True
        try:
            connection = await self._db.pool.acquire()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        try:
            taken = await connection.fetchval(f"SELECT pg_try_advisory_lock(({_LOCK_KEY}))", self.account)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            await self._db.pool.release(connection)
            return False
        if not taken:
            try:
                holder = await _latest_open_run(connection, self.account)
            finally:
                await self._db.pool.release(connection)
            raise DaemonAlreadyRunning(
                f"the coordinator lock of account {self.account!r} went with its connection in a database outage, "
                f"and another daemon holds it now{holder}: stopping this one"
            )
        self._connection = connection
        return True

    async def release(self) -> None:
        connection = self._connection
        if connection is None or not await self._still_connected():
            return
        self._connection = None
        try:
            await connection.fetchval(f"SELECT pg_advisory_unlock(({_LOCK_KEY}))", self.account)
        finally:
            await self._db.pool.release(connection)

    async def _still_connected(self) -> bool:
        """Whether the lock's connection is open; a lost one is given back to the pool (if the pool has not
        taken it back already) and forgotten."""
        connection = self._connection
        if connection is None:
            return False
        if not connection_lost(connection):
            return True
        self._connection = None
        with contextlib.suppress(asyncpg.InterfaceError):  # the pool may have taken it back already
            await self._db.pool.release(connection)
        return False


@asynccontextmanager
async def account_lock(
    db: Database, account: str, *, standby: Callable[[str], None] | None = None
) -> AsyncIterator[AccountLock]:
    """Hold ``account``'s coordinator lock while the block runs; ``DaemonAlreadyRunning`` if another holds it.

    ``standby``: wait for the lock instead, told once with whom it waits for (``(run 7, pid 1234 on host, since
    …)``); the server grants it the moment the holder's session ends (a daemon stopped or killed, or a client the
    server found dead: ``database.DEAD_CLIENT_SETTINGS``). Cancelling the wait gives the connection back.
    """
    with db.errors(f"taking the coordinator lock of {account}"):
        connection = await db.pool.acquire()
        try:
            taken = await connection.fetchval(f"SELECT pg_try_advisory_lock(({_LOCK_KEY}))", account)
            if not taken and standby is not None:
                standby(await _latest_open_run(connection, account))
                while not taken:
                    # The server ends each wait after 50 s (lock_timeout: no race with a client-side timeout, which
                    # could cancel a wait the server had just granted) and it is asked again.
                    with contextlib.suppress(asyncpg.LockNotAvailableError):
                        async with connection.transaction():
                            await connection.execute("SET LOCAL lock_timeout = '50s'")
                            await connection.fetchval(
                                f"SELECT pg_advisory_lock(({_LOCK_KEY}))", account, timeout=60
                            )
                        taken = True
        except BaseException:
            await db.pool.release(connection)
            raise
    if not taken:
        try:
            holder = await _latest_open_run(connection, account)
        finally:
            await db.pool.release(connection)
        raise DaemonAlreadyRunning(
            f"another triplegain daemon is running for account {account!r} on {db.server}{holder}; stop it first "
            "(or use another coordinator.account)"
        )
    lock = AccountLock(db, account, connection)
    try:
        yield lock
    finally:
        with db.errors(f"releasing the coordinator lock of {account}"):
            await lock.release()


async def _latest_open_run(connection: Any, account: str) -> str:
    """The lock's holder for a message, as ``(run 7, pid 1234 on host, since …)``: the newest run of ``account``
    without an end (older ones without an end were killed); empty when there is none or it cannot be read."""
    try:
        row = await connection.fetchrow(
            """
            SELECT id, pid, host, started_at FROM daemon_runs
            WHERE account = $1 AND ended_at IS NULL ORDER BY id DESC LIMIT 1
            """,
            account,
        )
    except asyncpg.PostgresError:
        return ""
    if row is None:
        return ""
    since = row["started_at"].astimezone(UTC).isoformat(timespec="seconds")
    return f" (run {row['id']}, pid {row['pid']} on {row['host']}, since {since})"


async def daemon_running(db: Database, account: str) -> bool:
    """Whether a daemon holds ``account``'s lock right now."""
    with db.errors(f"checking for a daemon on {account}"):
        async with db.pool.acquire() as connection:
            free = await connection.fetchval(f"SELECT pg_try_advisory_lock(({_LOCK_KEY}))", account)
            if free:
                await connection.fetchval(f"SELECT pg_advisory_unlock(({_LOCK_KEY}))", account)
    return not free


async def start_run(db: Database, account: str, settings_digest: str, now: datetime) -> int:
    """Record a daemon's start with the digest of its settings (``config.settings_digest``); the run's id."""
    with db.errors("recording the daemon's start"):
        run_id: int = await db.pool.fetchval(
            """
            INSERT INTO daemon_runs (account, started_at, config_hash, version, host, pid)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
            """,
            account,
            now,
            settings_digest,
            __version__,
            socket.gethostname(),
            os.getpid(),
        )
    return run_id


async def end_run(db: Database, run_id: int, now: datetime, reason: str) -> None:
    """Record why and when a run stopped."""
    with db.errors("recording the daemon's exit"):
        await db.pool.execute(
            "UPDATE daemon_runs SET ended_at = greatest($2, started_at), exit_reason = $3 WHERE id = $1",
            run_id,
            now,
            reason,
        )


async def latest_run_account(db: Database) -> str | None:
    """The account of the daemon run started last; None when no daemon ever ran on this database."""
    with db.errors("reading the latest daemon run"):
        account: str | None = await db.pool.fetchval(
            "SELECT account FROM daemon_runs ORDER BY started_at DESC, id DESC LIMIT 1"
        )
    return account


async def end_open_runs(db: Database, account: str, now: datetime, reason: str) -> list[int]:
    """Record the end of every run of ``account`` that has none (its daemon died without recording it); their
    ids."""
    with db.errors(f"ending the open runs of {account}"):
        rows = await db.pool.fetch(
            """
            UPDATE daemon_runs SET ended_at = greatest($2, started_at), exit_reason = $3
            WHERE account = $1 AND ended_at IS NULL RETURNING id
            """,
            account,
            now,
            reason,
        )
    return sorted(row["id"] for row in rows)
