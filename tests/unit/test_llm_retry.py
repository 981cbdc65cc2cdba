from __future__ import annotations

import pytest

from triplegain.llm import (
    LLMOutputError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRejectedRequest,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnreachable,
    RetrySettings,
)
from triplegain.llm.errors import ProviderError
from triplegain.llm.providers.failures import REDACTED, redact, retry_after_seconds, status_failure
from triplegain.llm.retry import retrying, wait_seconds, worth_retrying

SETTINGS = RetrySettings(
    max_attempts=4, backoff_initial_seconds=0.5, backoff_max_seconds=3.0, retry_after_cap_seconds=20
)


@pytest.mark.parametrize(
    "error",
    [
        ProviderRateLimited("429"),
        ProviderRateLimited("429", retry_after=20),
        ProviderServerError("500"),
        ProviderTimeout("slow"),
        ProviderUnreachable("refused"),
    ],
)
def test_transient_failures_are_worth_retrying(error: ProviderError) -> None:
    assert worth_retrying(error, SETTINGS)


@pytest.mark.parametrize(
    "error",
    [
        ProviderRejectedRequest("400"),
        ProviderBadResponse("garbage"),
        LLMOutputError("no JSON", "text"),
        ProviderRateLimited("429", retry_after=20.5),
        ValueError("a bug"),
    ],
)
def test_other_failures_are_not(error: Exception) -> None:
    assert not worth_retrying(error, SETTINGS)


def test_waits_double_up_to_the_maximum() -> None:
    waits = [wait_seconds(attempt, ProviderServerError("500"), SETTINGS) for attempt in range(1, 6)]
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_a_rate_limit_waits_as_long_as_the_server_asks() -> None:
    assert wait_seconds(1, ProviderRateLimited("429", retry_after=7.5), SETTINGS) == 7.5
    assert wait_seconds(3, ProviderRateLimited("429"), SETTINGS) == 2.0


async def test_the_loop_stops_after_max_attempts_and_reraises_the_last_error() -> None:
    waits: list[float] = []
    calls = 0

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def always_500() -> None:
        nonlocal calls
        calls += 1
        raise ProviderServerError(f"500 #{calls}")

    with pytest.raises(ProviderServerError, match="500 #4"):
        await retrying(SETTINGS, sleep)(always_500)
    assert calls == 4
    assert waits == [0.5, 1.0, 2.0]


async def test_the_loop_does_not_retry_a_rejected_request() -> None:
    calls = 0

    async def sleep(seconds: float) -> None:
        raise AssertionError("no wait expected")

    async def bad_request() -> None:
        nonlocal calls
        calls += 1
        raise ProviderRejectedRequest("400")

    with pytest.raises(ProviderRejectedRequest):
        await retrying(SETTINGS, sleep)(bad_request)
    assert calls == 1


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_seconds_or_milliseconds(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers) == seconds


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, ProviderRateLimited),
        (500, ProviderServerError),
        (529, ProviderServerError),
        (400, ProviderRejectedRequest),
        (401, ProviderRejectedRequest),
        (404, ProviderRejectedRequest),
    ],
)
def test_statuses_map_to_error_classes(status: int, kind: type[ProviderError]) -> None:
    error = status_failure("deepseek", status, "went wrong", {"retry-after": "3"})
    assert type(error) is kind
    assert str(error) == f"deepseek: HTTP {status}: went wrong"


def test_redaction_removes_the_key_and_shortens() -> None:
    assert redact("bad key sk-123 (Bearer sk-123)", "sk-123") == f"bad key {REDACTED} (Bearer {REDACTED})"
    assert redact("no key here", None) == "no key here"
    assert len(redact("x" * 1000, "sk")) == 300
