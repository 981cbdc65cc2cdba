"""Daemon runs and the one-coordinator-per-account lock.

``account_lock`` holds a PostgreSQL session advisory lock on a connection of its own for as long as the daemon
runs: a second daemon on the same account fails to take it and stops with ``DaemonAlreadyRunning``; a daemon
killed outright loses its connection, and the server frees the lock with it. ``daemon_running`` probes the lock
without keeping it (for ``triplegain coordinator``). ``start_run`` / ``end_run`` keep the ``daemon_runs`` row:
when, which settings (a hash), which version, where, and why it stopped.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from triplegain import __version__
from triplegain.config import Settings
from triplegain.errors import TriplegainError
from triplegain.store.database import Database

_LOCK_KEY = "SELECT hashtextextended('triplegain:' || $1, 0)"


class DaemonAlreadyRunning(TriplegainError):
    """Another daemon holds the account's lock."""


def config_hash(settings: Settings) -> str:
    """sha256 of the settings as JSON (they hold no secrets: those come from the environment)."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()


@asynccontextmanager
async def account_lock(db: Database, account: str) -> AsyncIterator[None]:
    """Hold ``account``'s coordinator lock while the block runs; ``DaemonAlreadyRunning`` if another holds it."""
    with db.errors(f"taking the coordinator lock of {account}"):
        connection = await db.pool.acquire()
        try:
            taken = await connection.fetchval(f"SELECT pg_try_advisory_lock(({_LOCK_KEY}))", account)
        except BaseException:
            await db.pool.release(connection)
            raise
    if not taken:
        await db.pool.release(connection)
        raise DaemonAlreadyRunning(
            f"another triplegain daemon is running for account {account!r} on {db.server}; stop it first "
            "(or use another coordinator.account)"
        )
    try:
        yield
    finally:
        with db.errors(f"releasing the coordinator lock of {account}"):
            try:
                await connection.fetchval(f"SELECT pg_advisory_unlock(({_LOCK_KEY}))", account)
            finally:
                await db.pool.release(connection)


async def daemon_running(db: Database, account: str) -> bool:
    """Whether a daemon holds ``account``'s lock right now."""
    with db.errors(f"checking for a daemon on {account}"):
        async with db.pool.acquire() as connection:
            free = await connection.fetchval(f"SELECT pg_try_advisory_lock(({_LOCK_KEY}))", account)
            if free:
                await connection.fetchval(f"SELECT pg_advisory_unlock(({_LOCK_KEY}))", account)
    return not free


async def start_run(db: Database, account: str, settings: Settings, now: datetime) -> int:
    """Record a daemon's start; the run's id."""
    with db.errors("recording the daemon's start"):
        run_id: int = await db.pool.fetchval(
            """
            INSERT INTO daemon_runs (account, started_at, config_hash, version, host, pid)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
            """,
            account,
            now,
            config_hash(settings),
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
