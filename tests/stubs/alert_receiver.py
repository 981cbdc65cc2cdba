"""A webhook on 127.0.0.1 (a random port) that records every alert POSTed to it.

Each request takes the next status of its script (``push``), 200 once the script is empty; ``hang()`` makes
requests wait, unanswered, until ``release()`` or the server closes. ``until(n)`` waits for the nth request:
tests follow the requests, never a clock.

    async with AlertReceiver() as receiver:
        receiver.push(503)
        url = receiver.url  # a Telegram-like path with a token in it: SECRET_TOKEN
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import Any

from aiohttp import web

SECRET_TOKEN = "123456:AAE-very-secret-token"
WAIT_SECONDS = 15.0


class AlertReceiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._statuses: deque[int] = deque()
        self._answer = asyncio.Event()
        self._answer.set()
        self._arrived = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._take)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        self.port = 0

    @property
    def url(self) -> str:
        """A Telegram sendMessage-like URL with the token in its path and the chat in its query."""
        return f"http://127.0.0.1:{self.port}/bot{SECRET_TOKEN}/sendMessage?chat_id=42"

    def kinds(self) -> list[str]:
        return [body["kind"] for body in self.bodies]

    def push(self, *statuses: int) -> None:
        self._statuses.extend(statuses)

    def hang(self) -> None:
        self._answer.clear()

    def release(self) -> None:
        self._answer.set()

    async def until(self, count: int) -> None:
        """Wait for the ``count``th request."""
        async with asyncio.timeout(WAIT_SECONDS):
            while len(self.bodies) < count:
                self._arrived.clear()
                await self._arrived.wait()

    async def _take(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.paths.append(request.path_qs)
        self._arrived.set()
        await self._answer.wait()
        status = self._statuses.popleft() if self._statuses else 200
        return web.json_response({"ok": 200 <= status < 300}, status=status)

    async def __aenter__(self) -> AlertReceiver:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
        await self._runner.cleanup()
