"""A bound on the share of the daemon's event loop that HTTP requests may take.

The app runs in the daemon's own event loop, so a flood of requests would otherwise delay trading by the time it
takes to answer them. ``LoopShare`` lets one request at a time compute its answer and, after it, rests long
enough for its wall time to be at most ``share`` of the whole: at 0.02 (the default), a request that took 2 ms
is followed by 98 ms in which no other request starts. The rest of a request (sending its body to a client that
may never read it) happens outside the bound, in that request's own task. The live stream, commands and
``/healthz`` go around it: a stream sends one small event a second, a command mostly waits for its row to be
settled, and the health check (a shared snapshot) must answer under a flood.
"""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from triplegain.clock import Clock, WallClock
from triplegain.waiting import unless_set

UNBOUNDED_PATHS = frozenset({"/api/stream", "/api/commands", "/healthz"})


class LoopShare:
    """ASGI middleware: requests one at a time, each followed by a rest, so HTTP takes at most ``share`` of the
    wall time."""

    def __init__(
        self, app: ASGIApp, *, share: float, closing: asyncio.Event, clock: Clock | None = None
    ) -> None:
        """``closing``: set when the server stops; requests still waiting for their turn get 503 at once."""
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self._app = app
        self._closing = closing
        self._share = share
        self._clock: Clock = clock if clock is not None else WallClock()
        self._turn = asyncio.Lock()
        self._rest_until = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNBOUNDED_PATHS:
            await self._app(scope, receive, send)
            return
        if not await self._turn_or_closing():
            await JSONResponse({"detail": "the daemon is stopping"}, status_code=503)(scope, receive, send)
            return
        holding = True
        started: float | None = None

        def release() -> None:
            nonlocal holding
            if holding:
                holding = False
                now = self._clock.monotonic()
                busy = now - started if started is not None else 0.0
                self._rest_until = now + busy * (1 / self._share - 1)
                self._turn.release()

        async def answering(message: Message) -> None:
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            rest = self._rest_until - self._clock.monotonic()
            if rest > 0:
                await asyncio.sleep(rest)
            started = self._clock.monotonic()
            await self._app(scope, receive, answering)
        finally:
            release()

    async def _turn_or_closing(self) -> bool:
        """Wait for this request's turn (True), or for the server to stop (False)."""
        turn = await unless_set(self._turn.acquire(), self._closing)
        if turn.cancelled():
            return False
        if self._closing.is_set():
            self._turn.release()
            return False
        return True
