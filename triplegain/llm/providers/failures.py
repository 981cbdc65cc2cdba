"""Turning an HTTP failure into one of our ``ProviderError`` classes, with any API key taken out of the text."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from triplegain.llm.errors import (
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderRejectedRequest,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnreachable,
)

_MESSAGE_CHARS = 300
REDACTED = "[redacted]"


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` in it (a server may quote the key it was sent), cut to a readable length."""
    if secret:
        text = text.replace(secret, REDACTED)
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."


@dataclass(frozen=True)
class SdkErrors:
    """An SDK's exception classes; the openai and anthropic SDKs share this hierarchy under their own names."""

    timeout: type[Exception]
    connection: type[Exception]
    status: type[Exception]


def sdk_failure(
    provider: str, error: Exception, classes: SdkErrors, *, timeout_seconds: float, api_key: str | None
) -> ProviderError:
    """Our error for an SDK's exception, with the key taken out of every text."""
    if isinstance(error, classes.timeout):
        return ProviderTimeout(f"{provider}: no answer within {timeout_seconds:g} s")
    if isinstance(error, classes.connection):
        return ProviderUnreachable(f"{provider}: connection failed: {redact(str(error.__cause__ or error), api_key)}")
    if isinstance(error, classes.status):
        status_error: Any = error
        status = status_error.status_code
        message = redact(status_error.message.removeprefix(f"Error code: {status} - "), api_key)
        return status_failure(provider, status, message, status_error.response.headers)
    return ProviderBadResponse(f"{provider}: {type(error).__name__}: {redact(str(error), api_key)}")


def status_failure(provider: str, status: int, message: str, headers: Mapping[str, str]) -> ProviderError:
    """The error for an HTTP error status; ``message`` must already be redacted."""
    text = f"{provider}: HTTP {status}: {message}"
    if status == 429:
        return ProviderRateLimited(text, retry_after=retry_after_seconds(headers))
    if status >= 500:
        return ProviderServerError(text)
    return ProviderRejectedRequest(text)


def not_in_wire_format(provider: str, expected: str, error: ValidationError) -> ProviderBadResponse:
    """The error for a response that parsed as JSON but is not what the wire format promises."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    return ProviderBadResponse(f"{provider}: the response is not {expected} ({where}: {first['msg']})")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a 429 asks for: ``retry-after-ms``, else ``retry-after`` in seconds; None if absent or a date."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None
