"""Serving the app inside the daemon's event loop (uvicorn's ``Server`` on a socket bound before it starts).

    async with serving_http(settings.http, db, account, live, apply=..., results_inputs=..., environ=...) as address:
        ...                        # address: (host, port) listened on; None when HTTP is off

The socket is bound first, so a port in use is a ``UserError`` before trading starts and connections made at once
wait in its backlog. uvicorn never takes the daemon's signal handlers. At the end, live streams are told to end
and requests still running get ``STOP_SECONDS`` before they are cancelled: a client that never reads cannot hold
the daemon's stop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import structlog
import uvicorn

from triplegain.coordinator.controls import ApplyCommands
from triplegain.errors import UserError
from triplegain.http.app import create_app
from triplegain.http.context import HttpContext
from triplegain.http.exposure import check_exposure, http_token
from triplegain.http.live import LiveSource
from triplegain.http.settings import HttpSettings
from triplegain.store.database import Database

logger = structlog.get_logger(__name__)
BACKLOG = 512
STOP_SECONDS = 1
"""At the daemon's stop, how long requests still running (e.g. writing to a client that never reads) may take
before they are cancelled."""


class _InLoopServer(uvicorn.Server):
    """uvicorn's server, leaving SIGINT and SIGTERM to the daemon."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serving_http(
    settings: HttpSettings,
    db: Database,
    account: str,
    live: LiveSource,
    *,
    apply: ApplyCommands | None,
    results_inputs: dict[str, Any],
    environ: Mapping[str, str],
) -> AsyncIterator[tuple[str, int] | None]:
    """Serve the HTTP surface while the block runs (when ``settings.enabled``); the address listened on."""
    if not settings.enabled:
        yield None
        return
    token = http_token(environ)
    check_exposure(settings.host, token)
    listening = bind(settings.host, settings.port)
    context = HttpContext(settings, db, account, live, apply, results_inputs, token)
    config = uvicorn.Config(
        create_app(context),
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=STOP_SECONDS,
        backlog=BACKLOG,
    )
    server = _InLoopServer(config)
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    host, port = listening.getsockname()[:2]
    logger.info("http listening", host=host, port=port, auth="bearer token" if token else "none (loopback only)")
    try:
        yield host, port
    finally:
        context.closing.set()
        await asyncio.sleep(0)  # requests waiting for their turn answer 503 before the cut
        server.should_exit = server.force_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        listening.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``; ``UserError`` when it cannot be had."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(BACKLOG)
    except OSError as error:
        raise UserError(f"--http {host}:{port}: cannot listen ({error.strerror or error})") from None
    listening.setblocking(False)
    return listening
