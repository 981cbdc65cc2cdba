"""A TCP proxy in front of the test PostgreSQL server that a test turns into an outage.

    async with PostgresProxy.running(postgres_url) as proxy:
        url = proxy.url(database_url)        # the same database, reached through the proxy
        await proxy.refuse()                 # the server is gone: open connections are cut, new ones refused
        await proxy.accept()                 # back, on the same port
        proxy.lose_next_commit_answer()      # the next COMMIT reaches the server; its answer never comes back

The server behind it is the one the URL names: TCP (``host:port``) or the embedded server's Unix socket
(``?host=<socket dir>&port=N``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

CHUNK = 65536
# The simple-query message asyncpg sends to commit a transaction: type, length (4 + 8), text, NUL.
COMMIT_MESSAGE = b"Q\x00\x00\x00\x0cCOMMIT;\x00"


@dataclass(eq=False)
class _Link:
    """One client connection and its connection to the server."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    lose_answer: bool = False  # the client sent the COMMIT whose answer is to be lost

    def cut(self) -> None:
        self.client.transport.abort()
        self.server.transport.abort()


@dataclass(eq=False)
class PostgresProxy:
    """Listens on 127.0.0.1 and forwards every connection to the server; see the module docstring."""

    server_url: str
    port: int = 0
    connections: int = 0  # accepted so far
    _listener: asyncio.Server | None = None
    _links: set[_Link] = field(default_factory=set)
    _lose_next_commit_answer: bool = False

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, server_url: str) -> AsyncIterator[PostgresProxy]:
        proxy = cls(server_url)
        await proxy.accept()
        try:
            yield proxy
        finally:
            await proxy.refuse()

    def url(self, database_url: str) -> str:
        """``database_url``'s user and database, through the proxy."""
        parts = urlsplit(database_url)
        user = parts.netloc.rpartition("@")[0]
        return f"postgresql://{user}@127.0.0.1:{self.port}{parts.path}"

    async def accept(self) -> None:
        """Listen (again, on the same port once it has one)."""
        self._listener = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._listener.sockets[0].getsockname()[1]

    async def refuse(self) -> None:
        """Stop listening and cut every open connection: connecting is refused until ``accept()``."""
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        for link in list(self._links):
            link.cut()

    def lose_next_commit_answer(self) -> None:
        """Let the next COMMIT through, then drop the server's answer and cut that connection."""
        self._lose_next_commit_answer = True

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await self._open_server()
        except OSError:
            client_writer.transport.abort()
            return
        link = _Link(client=client_writer, server=server_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._to_server(client_reader, link), self._to_client(server_reader, link))
        finally:
            self._links.discard(link)
            link.cut()

    async def _open_server(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        parts = urlsplit(self.server_url)
        query = parse_qs(parts.query)
        host = parts.hostname or query.get("host", ["/var/run/postgresql"])[0]
        port = parts.port or int(query.get("port", ["5432"])[0])
        if host.startswith("/"):
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host, port)

    async def _to_server(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(CHUNK):
                if self._lose_next_commit_answer and COMMIT_MESSAGE in data:
                    self._lose_next_commit_answer = False
                    link.lose_answer = True
                link.server.write(data)
                await link.server.drain()
        link.cut()

    async def _to_client(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(CHUNK):
                if link.lose_answer:
                    break
                link.client.write(data)
                await link.client.drain()
        link.cut()
