"""The ASGI app: the REST API, the live stream, ``/healthz``, ``/metrics`` and the dashboard (static files shipped
in the package, no build step, no CDN).

Every ``/api`` route and ``/metrics`` need the bearer token when one is set (``http.auth``); ``/healthz`` and the
dashboard's files do not (they hold no data: the page asks for the token and sends it with each request). CORS is
off: no ``Access-Control-Allow-*`` header is ever sent, so a page of another origin cannot read an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib.resources import files

import structlog
from fastapi import Depends, FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request

from triplegain import __version__
from triplegain.errors import TriplegainError, UserError
from triplegain.http.api import api_router
from triplegain.http.auth import BearerToken
from triplegain.http.context import HttpContext
from triplegain.http.governor import LoopShare
from triplegain.http.live import LiveStatus
from triplegain.http.metrics import daemon_registry

logger = structlog.get_logger(__name__)
STATIC = files("triplegain.http") / "static"


def create_app(context: HttpContext) -> FastAPI:
    app = FastAPI(title="triplegain", version=__version__, docs_url=None, redoc_url=None)
    auth = [Depends(BearerToken(context.token))]
    app.include_router(api_router(context), dependencies=auth)
    registry = daemon_registry(context.status)

    @app.get("/api/stream", dependencies=auth, response_class=StreamingResponse)
    async def stream() -> StreamingResponse:
        """Server-sent events: the status (``event: status``) every ``http.stream_interval_seconds``."""
        return StreamingResponse(
            _status_events(context), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    @app.get("/metrics", dependencies=auth, response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 while the daemon trades or is paused normally; 503 with the reason when the database or the feed
        is gone."""
        live = context.status()
        reason = unhealthy_reason(live, context.settings.feed_stale_seconds)
        body = {"status": "ok" if reason is None else "unavailable", "state": live.state, "level": live.level}
        return JSONResponse(
            body if reason is None else {**body, "reason": reason}, status_code=200 if reason is None else 503
        )

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(part) for part in problem["loc"]),
                "message": problem["msg"],
                "type": problem["type"],
            }
            for problem in error.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(problems)}, status_code=422)

    @app.exception_handler(TriplegainError)
    async def refused(request: Request, error: TriplegainError) -> JSONResponse:
        code = 422 if isinstance(error, UserError) else 503
        return JSONResponse({"detail": str(error)}, status_code=code)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        logger.error("http request failed", path=request.url.path, error=repr(error))
        return JSONResponse({"detail": "internal error (logged by the daemon)"}, status_code=500)

    app.add_middleware(LoopShare, share=context.settings.max_loop_share, closing=context.closing)
    return app


def unhealthy_reason(live: LiveStatus, feed_stale_seconds: float) -> str | None:
    """Why the daemon cannot trade: the database or the feed gone; None when it can."""
    if not live.database_ok:
        return f"database: {live.database}"
    staleness = live.feed_staleness_seconds
    if staleness is not None and staleness > feed_stale_seconds:
        return f"feed: no candle for {staleness:.0f} s"
    return None


async def _status_events(context: HttpContext) -> AsyncIterator[str]:
    interval = context.settings.stream_interval_seconds
    while not context.closing.is_set():
        yield f"event: status\ndata: {context.status().model_dump_json()}\n\n"
        try:
            await asyncio.wait_for(context.closing.wait(), timeout=interval)
        except TimeoutError:
            continue
