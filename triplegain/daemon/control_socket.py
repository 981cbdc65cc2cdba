"""The daemon's control socket: ``triplegain coordinator`` commands answered by the daemon itself, quickly.

    async with serving_control(db, account, coordinator, home, environ) as path:   # None: could not listen
        ...

The socket (``control_client.socket_path``: ``<home>/control/<account>.<database>.sock``) is created with the
account's lock held, so only the daemon trading the account listens on it; it is its owner's only (0600, in a 0700
folder). One request per connection, one JSON line each way: the request names a verb (``status``, ``pause``,
``resume``, ``halt``) and its options as ``control_client.request_of`` reads them; the answer holds the lines to
print, whether they go to stderr, and the exit code. A command is submitted as a ``coordinator_commands`` row and
applied at once by this daemon's coordinator (``coordinator.controls``), exactly as over the database.

A socket that cannot be made (a path too long for a Unix socket, a read-only data directory) is logged and the
daemon runs on without it: the CLI then goes the database way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triplegain.control_client import MAX_WAIT_SECONDS, socket_path
from triplegain.coordinator.controls import status_lines, submit_and_wait
from triplegain.coordinator.coordinator import Coordinator
from triplegain.errors import TriplegainError
from triplegain.model import Command, Verb
from triplegain.store.database import Database

logger = structlog.get_logger(__name__)

REQUEST_LIMIT_BYTES = 64 * 1024


class ControlRequest(BaseModel):
    """A request read from the socket (validated: it comes from another process)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    verb: Literal["status", "pause", "resume", "halt"]
    account: str | None
    reason: str = Field(default="", max_length=2_000)
    wait: float = Field(ge=0.1, le=MAX_WAIT_SECONDS)
    operator: str = Field(min_length=1, max_length=200)
    healthcheck: bool = False
    force: bool = False
    flatten: bool = False


class ControlAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    lines: list[str]
    stderr: bool = False
    exit_code: int = 0


@asynccontextmanager
async def serving_control(
    db: Database, account: str, coordinator: Coordinator, home: Path, environ: Mapping[str, str]
) -> AsyncIterator[Path | None]:
    """Listen on the account's control socket while the block runs; the socket's path, or None when it could not
    be made."""
    path = socket_path(home, account, environ)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await _answer(await reader.readline(), db, account, coordinator)
            writer.write(answer.model_dump_json().encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as error:
            logger.warning("control socket request dropped", error=str(error))
        finally:
            writer.close()

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # left by a daemon of this account that was killed: we hold its lock now
        server = await asyncio.start_unix_server(serve, path=str(path), limit=REQUEST_LIMIT_BYTES)
        os.chmod(path, 0o600)
    except OSError as error:
        logger.warning("no control socket: commands go through the database", path=str(path), error=str(error))
        yield None
        return
    try:
        yield path
    finally:
        server.close()
        with contextlib.suppress(OSError):
            path.unlink()
        await server.wait_closed()


async def _answer(line: bytes, db: Database, account: str, coordinator: Coordinator) -> ControlAnswer:
    try:
        request = ControlRequest.model_validate(json.loads(line))
    except (ValueError, ValidationError) as error:
        return ControlAnswer(lines=[f"error: a control request that cannot be read: {error}"], stderr=True, exit_code=2)
    if request.account not in (None, account):
        return ControlAnswer(lines=[f"error: this daemon trades {account!r}"], stderr=True, exit_code=2)
    try:
        if request.verb == "status":
            lines, running = await status_lines(db, account)
            return ControlAnswer(lines=lines, exit_code=1 if request.healthcheck and not running else 0)
        command = Command(
            verb=Verb(request.verb),
            force=request.force,
            flatten=request.flatten,
            reason=request.reason,
            requested_by=request.operator,
        )
        lines, ok = await submit_and_wait(db, account, command, request.wait, apply=coordinator.apply_commands)
    except TriplegainError as error:
        return ControlAnswer(lines=[f"error: {error}"], stderr=True, exit_code=error.exit_code)
    return ControlAnswer(lines=lines, stderr=not ok, exit_code=0 if ok else 1)
