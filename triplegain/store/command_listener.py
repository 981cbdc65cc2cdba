"""LISTEN for an account's operator commands: the NOTIFY that ``submit_command`` sends, on a connection of its own.

    listener = CommandListener(db, account)
    await listener.start(on_command)        # on_command() runs in the event loop at each notification
    await listener.keep_listening()         # after an outage: listen again on a new connection; False until then
    await listener.aclose()

A database outage takes the LISTEN with its connection, silently: nothing is notified until someone listens
again. ``keep_listening`` finds the lost connection and listens on a new one; while it cannot, the caller polls
for commands instead (``listening`` is False).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Any

import asyncpg
import structlog

from triplegain.store.coordinator_state import NOTIFY_CHANNEL
from triplegain.store.database import Database, connection_lost

logger = structlog.get_logger(__name__)

_UNREACHABLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class CommandListener:
    """Calls ``on_command`` whenever a command is submitted for ``account``, while started."""

    def __init__(self, db: Database, account: str) -> None:
        self._db = db
        self.account = account
        self._on_command: Callable[[], None] | None = None
        self._connection: Any = None
        self.lost = asyncio.Event()
        """Set when the listening connection is lost (logged at once); cleared when listening again."""

    @property
    def listening(self) -> bool:
        """Whether a LISTEN is in place on a connection that has not been lost."""
        return self._connection is not None and not connection_lost(self._connection)

    async def start(self, on_command: Callable[[], None]) -> None:
        """Listen; ``DatabaseError`` when the database cannot be reached."""
        self._on_command = on_command
        with self._db.errors(f"listening for the commands of {self.account}"):
            connection = await self._db.pool.acquire()
            try:
                await connection.add_listener(NOTIFY_CHANNEL, self._notified)
            except BaseException:
                await self._db.pool.release(connection)
                raise
        self._listen_on(connection)

    async def keep_listening(self) -> bool:
        """Listen again when the connection was lost; whether a LISTEN is in place now."""
        if self._on_command is None:
            return False
        if self.listening:
            return True
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(asyncpg.InterfaceError):  # the pool may have taken it back already
                connection.remove_termination_listener(self._terminated)
                await self._db.pool.release(connection)
        try:
            connection = await self._db.pool.acquire()
        except _UNREACHABLE:
            return False
        try:
            await connection.add_listener(NOTIFY_CHANNEL, self._notified)
        except _UNREACHABLE:
            await self._db.pool.release(connection)
            return False
        self._listen_on(connection)
        logger.info("listening for commands again", account=self.account)
        return True

    async def aclose(self) -> None:
        """Stop listening and give the connection back (a lost one has nothing left to undo)."""
        self._on_command = None
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            connection.remove_termination_listener(self._terminated)
            await connection.remove_listener(NOTIFY_CHANNEL, self._notified)
            await self._db.pool.release(connection)
        except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError) as error:
            logger.warning("command listener already gone", account=self.account, error=str(error))

    async def __aenter__(self) -> CommandListener:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _listen_on(self, connection: Any) -> None:
        self._connection = connection
        self.lost.clear()
        connection.add_termination_listener(self._terminated)

    def _terminated(self, connection: Any) -> None:
        if connection is self._connection:
            logger.warning("command listener lost its connection; commands are polled until it listens again")
            self.lost.set()

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self.account and self._on_command is not None:
            self._on_command()
