"""Opening the database: which server, the asyncpg pool, and database errors as one line for the user.

The server is ``TRIPLEGAIN_DATABASE_URL`` when set; otherwise the embedded server in ``home_dir()/pgdata``
(database ``triplegain``, created on first use), started for the duration of ``open_database`` unless another
process already runs it (see ``embedded``).

Every failure of the server or of the connection to it surfaces as a ``DatabaseError`` with one line naming the
server and what failed (``cannot connect to 127.0.0.1:5433/test: connection refused``); servers are described
without user or password, so no message ever carries a secret.

Pool connections decode ``json``/``jsonb`` columns to Python objects and encode parameters with ``json.dumps``:
pass a dict, not a JSON string (a string would be stored as a JSON string). ``json_text`` encodes a jsonb value
for a row the batching writer copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import asyncpg
import pydantic_core
from pydantic import JsonValue

from triplegain.errors import DatabaseError, UserError
from triplegain.paths import home_dir
from triplegain.store.embedded import embedded_server
from triplegain.store.settings import DatabaseSettings

DATABASE_URL_ENV = "TRIPLEGAIN_DATABASE_URL"
DATABASE_PASSWORD_FILE_ENV = "TRIPLEGAIN_DATABASE_PASSWORD_FILE"
"""A file holding the password of ``TRIPLEGAIN_DATABASE_URL``'s user, given apart from the URL (a Docker secret):
any character works, ``@ : / #`` included, and the password is in no environment variable."""
EMBEDDED_DATA_DIR = "pgdata"
EMBEDDED_DATABASE = "triplegain"
APPLICATION_NAME = "triplegain"
URL_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class Database:
    """An open database: the asyncpg pool and a description of its server for messages (never a password)."""

    pool: Any  # asyncpg.Pool; asyncpg has no type hints
    server: str
    embedded: bool
    command_timeout_seconds: float

    def errors(self, action: str) -> AbstractContextManager[None]:
        """Turn server and connection errors in the block into ``DatabaseError``.

        The message reads ``{action} failed on {server}: {reason}``, e.g. ``saving the order failed on
        127.0.0.1:5432/test: no answer within 30 s``.
        """
        return translate_errors(f"{action} failed on {self.server}", timeout_seconds=self.command_timeout_seconds)


DEAD_CLIENT_SETTINGS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "5",
    "idle_in_transaction_session_timeout": "10000",
}
"""Every connection's session settings that let the server find a client gone without a word (a machine that
died, a network cut): TCP keepalives from 5 s of silence, one a second, five missed, so it closes the session
(and frees the account's lock with it: a standby takes over) about 10 s after the last packet; a transaction left
idle 10 s is ended. On a Unix socket (the embedded server) a dead client's socket closes at once anyway."""


@contextlib.asynccontextmanager
async def open_database(config: DatabaseSettings) -> AsyncIterator[Database]:
    """The configured database for the duration of the block: ``TRIPLEGAIN_DATABASE_URL``, else embedded."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        if url.partition("://")[0].lower() not in URL_SCHEMES:
            raise UserError(
                f"{DATABASE_URL_ENV}: not a postgresql:// URL (its value is not shown: it may hold a password) — "
                "postgresql://user:password@host:5432/database is allowed"
            )
        async with open_database_at(url, config, password=password_from_file()) as db:
            yield db
        return
    async with embedded_server(home_dir() / EMBEDDED_DATA_DIR, config.embedded_start_timeout_seconds) as server:
        await _create_database_if_missing(server.url("postgres"), EMBEDDED_DATABASE, server.description, config)
        async with _pooled(server.url(EMBEDDED_DATABASE), server.description, config, embedded=True) as db:
            yield db


@contextlib.asynccontextmanager
async def open_database_at(
    url: str, config: DatabaseSettings, *, password: str | None = None
) -> AsyncIterator[Database]:
    """The database a PostgreSQL URL names, for the duration of the block; ``password``, when given, instead of
    the URL's."""
    with _malformed_url_is_a_user_error(url):
        server = describe_url(url)
    async with _pooled(url, server, config, embedded=False, password=password) as db:
        yield db


def password_from_file() -> str | None:
    """The password in ``TRIPLEGAIN_DATABASE_PASSWORD_FILE`` (its last line break dropped); None when unset."""
    path = os.environ.get(DATABASE_PASSWORD_FILE_ENV, "").strip()
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise UserError(f"{DATABASE_PASSWORD_FILE_ENV}: cannot read {path} ({reason})") from None


@contextlib.contextmanager
def _malformed_url_is_a_user_error(url: str) -> Iterator[None]:
    """A URL that cannot be parsed (a port that is not a number, a broken IPv6 address) is the user's mistake:
    one line with the parser's reason, any password in it replaced by ``***``, instead of a traceback."""
    try:
        yield
    except (ValueError, OverflowError) as exc:
        reason = str(exc)
        password = url.partition("://")[2].partition("/")[0].rpartition("@")[0].partition(":")[2]
        for secret in {password, unquote(password)} - {""}:
            reason = reason.replace(secret, "***")
        raise UserError(
            f"database URL: not a valid PostgreSQL URL ({reason}; the URL is not shown: it may hold a password) — "
            "postgresql://user:password@host:5432/database is allowed"
        ) from None


def connection_lost(connection: Any) -> bool:
    """Whether a pooled connection was closed: by the server or the network (an outage), or taken back by the
    pool itself when it broke."""
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:
        return True


def url_with_database(url: str, database: str) -> str:
    """The same server and user as ``url``, another database (for tools that create and drop databases)."""
    parts = urlsplit(url)
    query = "&".join(item for item in parts.query.split("&") if item and not item.startswith("dbname="))
    return urlunsplit(parts._replace(path=f"/{database}", query=query))


def describe_url(url: str) -> str:
    """``host:port/database`` from a PostgreSQL URL, without user or password (they are never shown)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    address = unquote(parts.netloc.rpartition("@")[2])
    if not address:
        host, port = query.get("host", ["localhost"])[0], query.get("port", [""])[0]
        address = f"{host}:{port}" if port else host
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", [""])[0]
    return f"{address}/{database}" if database else address


@contextlib.contextmanager
def translate_errors(failure: str, *, timeout_seconds: float | None = None) -> Iterator[None]:
    """Inside the block, an error of the server or the connection raises ``DatabaseError(f"{failure}: …")``.

    ``timeout_seconds`` is the limit that applied, quoted when the error is a timeout.
    """
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as exc:
        raise DatabaseError(f"{failure}: {error_reason(exc, timeout_seconds)}") from exc


def error_reason(exc: BaseException, timeout_seconds: float | None = None) -> str:
    """What went wrong, in one line: Postgres's message (with its DETAIL and HINT), the socket error, the timeout."""
    if isinstance(exc, TimeoutError):
        reason = f"no answer within {timeout_seconds:g} s" if timeout_seconds else "timed out"
    elif isinstance(exc, socket.gaierror):
        reason = f"cannot resolve the host name ({exc.strerror})"
    elif isinstance(exc, OSError):
        reason = _socket_reason(exc)
    elif isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
        reason = f"{exc} (the database's schema is missing or older than this triplegain: run triplegain db migrate)"
    else:
        reason = str(exc)
    return " ".join(reason.split())


def _socket_reason(exc: OSError) -> str:
    # asyncio reports "Connect call failed (...)" as the text, and several addresses as one OSError without an
    # errno whose text lists "[Errno N] ..." per address: name the error numbers instead.
    codes = [exc.errno] if exc.errno else [int(code) for code in re.findall(r"\[Errno (\d+)\]", str(exc))]
    reason = "; ".join(dict.fromkeys(os.strerror(code) for code in codes)) or str(exc)
    return reason[:1].lower() + reason[1:]


async def _keep_session(connection: Any) -> None:
    """What the pool runs on a connection given back, after asyncpg rolled back any transaction left open: nothing.

    asyncpg's default sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every release, a
    round trip per pooled query. Nothing here leaves session state behind: the account and migration locks are
    unlocked by the code that took them, a listener's connection unlistens as it is removed, and no ``SET`` is
    session-wide.
    """


@contextlib.asynccontextmanager
async def _pooled(
    url: str, server: str, config: DatabaseSettings, *, embedded: bool, password: str | None = None
) -> AsyncIterator[Database]:
    with (
        translate_errors(f"cannot connect to {server}", timeout_seconds=config.connect_timeout_seconds),
        _malformed_url_is_a_user_error(url),  # asyncpg parses the URL as it connects
    ):
        pool = await asyncpg.create_pool(
            url,
            **({"password": password} if password is not None else {}),
            min_size=config.pool_min_size,
            max_size=config.pool_max_size,
            timeout=config.connect_timeout_seconds,
            command_timeout=config.command_timeout_seconds,
            init=_use_json_codecs,
            reset=_keep_session,
            server_settings={"application_name": APPLICATION_NAME, **DEAD_CLIENT_SETTINGS},
        )
        try:
            # With pool_min_size 0 the pool has not connected yet: fail here, with this message, if it cannot.
            async with pool.acquire(timeout=config.connect_timeout_seconds):
                pass
        except BaseException:
            pool.terminate()
            raise
    try:
        yield Database(
            pool=pool, server=server, embedded=embedded, command_timeout_seconds=config.command_timeout_seconds
        )
    finally:
        if _being_cancelled():
            pool.terminate()
        else:
            await _close(pool, config.command_timeout_seconds)


def _being_cancelled() -> bool:
    """Whether the task closing the pool is being cancelled (a daemon stopped at once by a second signal): the work
    holding connections was cut mid-statement and may never give them back, so the pool is cut too instead of
    waiting ``command_timeout_seconds`` for them. What was acknowledged is already committed."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _close(pool: Any, limit_seconds: float) -> None:
    """Close gracefully, but never wait forever for a connection someone still holds."""
    with contextlib.suppress(TimeoutError):
        # A close() that is cancelled (here, by the timeout) terminates the pool: held connections are cut.
        await asyncio.wait_for(pool.close(), limit_seconds)


# The strict encoder, for the rare text that may hold a non-finite number (json_text).
_STRICT_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def json_text(value: JsonValue) -> str:
    """A JSON value as JSON text; NaN and infinities are refused (``ValueError``) rather than by the server.

    pydantic's encoder writes the same values as ``json`` (numbers as their shortest round-trip digits; only the
    spacing and exponent style differ, which jsonb does not keep) in a third of the CPU. It writes a non-finite
    number as a bare ``NaN``/``Infinity``, so text that contains those words anywhere, even inside a string, is
    encoded again by ``json``, which refuses only the numbers.
    """
    text = pydantic_core.to_json(value, inf_nan_mode="constants")
    if b"NaN" in text or b"Infinity" in text:
        return _STRICT_JSON.encode(value)
    return text.decode()


async def _use_json_codecs(connection: Any) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(type_name, schema="pg_catalog", encoder=json.dumps, decoder=json.loads)


async def _create_database_if_missing(maintenance_url: str, name: str, server: str, config: DatabaseSettings) -> None:
    with translate_errors(f"cannot connect to {server}", timeout_seconds=config.connect_timeout_seconds):
        connection = await asyncpg.connect(maintenance_url, timeout=config.connect_timeout_seconds)
        try:
            if not await connection.fetchval("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name):
                # Two processes starting at once both find it missing: the one that loses may see either error.
                with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                    await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
