"""A connection to NATS JetStream and the streams on it: the one module that speaks to NATS for the whole package.

    async with connect_jetstream(settings.bus.nats, name="triplegain agents") as link:
        await ensure_stream(link, name="TRIPLEGAIN", subjects=["triplegain.>"], max_age_seconds=86400, …)
        ack = await link.js.publish("triplegain.ta_signals.BTC/USDT", data, headers={MSG_ID: "…"})

The server is ``TRIPLEGAIN_NATS_URL`` when set (it may carry a user and password), else ``bus.nats.url`` (which
may not). The first connection must succeed within ``connect_timeout_seconds`` (else ``NatsUnavailable``, one
line naming the server); after that the client reconnects for ever, every ``reconnect_wait_seconds``, and the
link says whether it is connected (``connected``, an event) and since when it is not (``down_since``, on the
monotonic clock). A stream is created when missing and its limits brought to the settings when it exists
(``ensure_stream``): ``limits`` retention for the bus's messages, ``workqueue`` for jobs taken once each.

nats-py is imported here only: the single-process daemon never imports this module.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from triplegain.bus.settings import NatsSettings
from triplegain.errors import TriplegainError

logger = structlog.get_logger(__name__)

NATS_URL_ENV = "TRIPLEGAIN_NATS_URL"
MSG_ID = "Nats-Msg-Id"
"""The header whose value JetStream de-duplicates on within the stream's duplicate window."""

Retention = Literal["limits", "workqueue"]


class NatsUnavailable(TriplegainError):
    """The NATS server could not be reached, or refused what was asked of it (no JetStream, a bad stream)."""


def server_url(settings: NatsSettings, environ: Mapping[str, str] | None = None) -> str:
    """The server to connect to: ``TRIPLEGAIN_NATS_URL`` when set, else ``bus.nats.url``."""
    env = os.environ if environ is None else environ
    return env.get(NATS_URL_ENV, "").strip() or settings.url


def describe(url: str) -> str:
    """``host:port`` of a URL, for messages: never its user or password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 4222}"


@dataclass
class JetStreamLink:
    """An open connection, its JetStream context, and whether it is connected now."""

    client: Client
    js: JetStreamContext
    server: str
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    down_since: float | None = None
    """``time.monotonic()`` when the connection was lost; None while connected."""
    disconnects: int = 0

    def down_seconds(self) -> float:
        """How long the connection has been down; 0 while connected."""
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since


@asynccontextmanager
async def connect_jetstream(
    settings: NatsSettings, *, name: str, environ: Mapping[str, str] | None = None
) -> AsyncIterator[JetStreamLink]:
    """A connection for the duration of the block (closed after its pending messages are sent)."""
    url = server_url(settings, environ)
    server = describe(url)
    link: JetStreamLink | None = None

    async def disconnected() -> None:
        if link is not None and link.connected.is_set():
            link.connected.clear()
            link.down_since = time.monotonic()
            link.disconnects += 1
            logger.warning("NATS connection lost; reconnecting", server=server)

    async def reconnected() -> None:
        if link is not None:
            down = link.down_seconds()
            link.down_since = None
            link.connected.set()
            logger.warning("NATS connection back", server=server, down_seconds=round(down, 3))

    async def error(exc: Exception) -> None:
        logger.debug("NATS client error", server=server, error=f"{type(exc).__name__}: {exc}")

    client = Client()
    try:
        # The client would try a first connection for ever (its reconnects never stop): the first one is bounded.
        async with asyncio.timeout(settings.connect_timeout_seconds):
            await _connect(client, url, name, settings, disconnected, reconnected, error)
    except Exception as exc:  # nats-py raises its own errors and OSError alike
        await _close(client)
        reason = "no answer" if isinstance(exc, TimeoutError) else _reason(exc)
        raise NatsUnavailable(
            f"cannot connect to NATS at {server}: {reason} within {settings.connect_timeout_seconds:g} s"
        ) from None
    link = JetStreamLink(client, client.jetstream(timeout=settings.ack_timeout_seconds), server)
    link.connected.set()
    try:
        yield link
    finally:
        link.connected.clear()
        try:
            await asyncio.wait_for(client.drain(), timeout=settings.ack_timeout_seconds)
        except Exception:  # a server gone at exit: the connection is closed all the same
            await _close(client)


async def _close(client: Client) -> None:
    """Close, whatever state the connection is in (a server gone mid-close is closed all the same)."""
    try:
        await client.close()
    except Exception as exc:
        logger.debug("NATS connection closed with an error", error=f"{type(exc).__name__}: {exc}")


async def _connect(
    client: Client,
    url: str,
    name: str,
    settings: NatsSettings,
    disconnected: Callable[[], Awaitable[None]],
    reconnected: Callable[[], Awaitable[None]],
    error: Callable[[Exception], Awaitable[None]],
) -> None:
    await client.connect(
        url,
        name=name,
        connect_timeout=max(1, round(settings.connect_timeout_seconds)),
        reconnect_time_wait=settings.reconnect_wait_seconds,  # type: ignore[arg-type]  # typed int, slept as given
        max_reconnect_attempts=-1,
        allow_reconnect=True,
        ping_interval=2,
        max_outstanding_pings=2,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )


async def ensure_stream(
    link: JetStreamLink,
    *,
    name: str,
    subjects: Sequence[str],
    max_age_seconds: float,
    max_bytes: int,
    duplicate_window_seconds: float,
    retention: Retention = "limits",
) -> StreamInfo:
    """The stream ``name`` on file storage with these subjects and limits: created, or updated to them."""
    config = StreamConfig(
        name=name,
        subjects=list(subjects),
        retention=RetentionPolicy.WORK_QUEUE if retention == "workqueue" else RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age_seconds,
        max_bytes=max_bytes,
        duplicate_window=min(duplicate_window_seconds, max_age_seconds),
    )
    try:
        try:
            await link.js.stream_info(name)
        except NotFoundError:
            return await link.js.add_stream(config)
        return await link.js.update_stream(config)
    except Exception as exc:
        raise NatsUnavailable(f"JetStream stream {name} on {link.server}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())

