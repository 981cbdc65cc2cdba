"""One alert to one webhook: a JSON POST, tried again with backoff (tenacity) while another try may succeed.

Retried: a connection error, a timeout, a 408, a 429 or a 5xx. Not retried: any other answer that is not a 2xx
(a 400 or a 404 will not change). The wait doubles from ``backoff_initial_seconds`` up to
``backoff_max_seconds``, without jitter; waits go through an injected ``sleep``. Every attempt is counted in the
alert's ``Attempts`` as it is made, so an alert cut short at the daemon's stop is stored with what it went through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from triplegain.alerts.settings import AlertsRetrySettings
from triplegain.alerts.webhook import Webhook
from triplegain.clock import Clock
from triplegain.errors import TriplegainError

Sleep = Callable[[float], Awaitable[None]]
RETRIED_STATUSES = frozenset({408, 429})
"""Answers worth another attempt besides every 5xx."""


@dataclass
class Attempts:
    """What the attempts so far ended with (the last one's status code or error)."""

    count: int = 0
    status_code: int | None = None
    error: str | None = None
    delivered_at: datetime | None = None


class _Transient(TriplegainError):
    """An attempt failed in a way another attempt may not."""


def wait_seconds(attempt: int, settings: AlertsRetrySettings) -> float:
    """How long to wait after failed attempt number ``attempt`` (1 for the first) before the next."""
    return float(min(settings.backoff_initial_seconds * 2 ** (attempt - 1), settings.backoff_max_seconds))


def worth_retrying(status: int) -> bool:
    """Whether an answer with this HTTP status may be followed by a better one."""
    return status in RETRIED_STATUSES or status >= 500


async def deliver(
    session: aiohttp.ClientSession,
    webhook: Webhook,
    body: dict[str, Any],
    *,
    retry: AlertsRetrySettings,
    timeout_seconds: float,
    wall: Clock,
    sleep: Sleep,
    attempts: Attempts,
) -> bool:
    """POST ``body`` to ``webhook`` until it is taken (True) or no further attempt is worth making (False);
    ``attempts`` says how it went. Errors are masked (``Webhook.mask``) before they are kept."""
    limit = aiohttp.ClientTimeout(total=timeout_seconds)

    def wait(state: RetryCallState) -> float:
        return wait_seconds(state.attempt_number, retry)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(retry.max_attempts),
        wait=wait,
        retry=retry_if_exception_type(_Transient),
        sleep=sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                attempts.count += 1
                await _post(session, webhook, body, limit, attempts)
    except _Transient:
        return False
    if attempts.status_code is not None and 200 <= attempts.status_code < 300:
        attempts.delivered_at = wall.now()
        return True
    return False


async def _post(
    session: aiohttp.ClientSession,
    webhook: Webhook,
    body: dict[str, Any],
    limit: aiohttp.ClientTimeout,
    attempts: Attempts,
) -> None:
    """One attempt; ``_Transient`` when it failed in a way worth another."""
    try:
        async with session.post(webhook.url, json=body, timeout=limit, allow_redirects=False) as response:
            await response.read()
            status = response.status
    except TimeoutError:
        attempts.status_code, attempts.error = None, f"no answer within {limit.total:g} s"
        raise _Transient from None
    except aiohttp.ClientError as error:
        attempts.status_code = None
        attempts.error = webhook.mask(" ".join(f"{type(error).__name__}: {error}".split()))
        raise _Transient from None
    attempts.status_code = status
    attempts.error = None if 200 <= status < 300 else f"HTTP {status}"
    if worth_retrying(status):
        raise _Transient
