"""The one place LLM calls are retried (the SDKs' own retries are off), as tenacity over pure decisions.

Retried: rate limits, server errors, timeouts and connection failures (``TransientProviderError``). Never
retried: rejected requests (400, 401 …), malformed responses and answers that do not validate. A 429's
``retry-after`` is honoured when it is within ``retry_after_cap_seconds``; a longer one ends the call, since
the next provider in the chain will answer sooner. Otherwise the wait doubles from ``backoff_initial_seconds``
up to ``backoff_max_seconds``, without jitter, so runs are reproducible. Waits go through an injected ``sleep``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from triplegain.llm.errors import ProviderRateLimited, TransientProviderError
from triplegain.llm.settings import ProviderSettings, RetrySettings

Sleep = Callable[[float], Awaitable[None]]


def worth_retrying(error: BaseException, settings: RetrySettings) -> bool:
    """Whether another attempt may succeed where this one failed with ``error``."""
    if not isinstance(error, TransientProviderError):
        return False
    if isinstance(error, ProviderRateLimited) and error.retry_after is not None:
        return error.retry_after <= settings.retry_after_cap_seconds
    return True


def wait_seconds(attempt: int, error: BaseException, settings: RetrySettings) -> float:
    """How long to wait after failed attempt number ``attempt`` (1 for the first) before the next."""
    if isinstance(error, ProviderRateLimited) and error.retry_after is not None:
        return error.retry_after
    return float(min(settings.backoff_initial_seconds * 2 ** (attempt - 1), settings.backoff_max_seconds))


def longest_waits(settings: RetrySettings) -> list[float]:
    """The longest wait before each attempt after the first: its backoff, or a 429's retry-after up to the cap."""
    waits, backoff = [], settings.backoff_initial_seconds
    for _ in range(settings.max_attempts - 1):
        waits.append(max(min(backoff, settings.backoff_max_seconds), settings.retry_after_cap_seconds))
        backoff = min(backoff * 2, settings.backoff_max_seconds)
    return waits


def call_worst_case_seconds(settings: ProviderSettings) -> float:
    """The longest one gateway call to this provider can take: every attempt hangs until its timeout, and every
    wait between two attempts is the longest allowed."""
    return settings.retry.max_attempts * settings.timeout_seconds + sum(longest_waits(settings.retry))


def retrying(settings: RetrySettings, sleep: Sleep) -> AsyncRetrying:
    """A tenacity loop applying the rules above; the last error is re-raised as is."""

    def retry(state: RetryCallState) -> bool:
        error = _error_of(state)
        return error is not None and worth_retrying(error, settings)

    def wait(state: RetryCallState) -> float:
        error = _error_of(state)
        return 0.0 if error is None else wait_seconds(state.attempt_number, error, settings)

    return AsyncRetrying(
        stop=stop_after_attempt(settings.max_attempts), wait=wait, retry=retry, sleep=sleep, reraise=True
    )


def _error_of(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None
