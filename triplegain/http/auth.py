"""The bearer token each request must carry when ``TRIPLEGAIN_HTTP_TOKEN`` is set, compared in constant time. A
refused request is logged with its path and client, never with the token it carried."""

from __future__ import annotations

import hmac

import structlog
from fastapi import HTTPException, Request, status

from triplegain.http.exposure import TOKEN_VARIABLE

logger = structlog.get_logger(__name__)


class BearerToken:
    """A FastAPI dependency: passes a request carrying ``Authorization: Bearer <token>``, else 401."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token is not None else None

    async def __call__(self, request: Request) -> None:
        if self._token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return
        client = request.client.host if request.client is not None else "?"
        reason = "no bearer token" if not given else "wrong bearer token"
        logger.warning("http request refused", path=request.url.path, client=client, reason=reason)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"{reason}: send Authorization: Bearer <{TOKEN_VARIABLE}>",
            headers={"WWW-Authenticate": "Bearer"},
        )
