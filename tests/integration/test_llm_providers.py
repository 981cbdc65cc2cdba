"""The real openai and anthropic SDKs against the local stub: each wire format, each fault, through the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from tests.fakes import InMemoryCallLog
from tests.stubs.llm_server import (
    Answer,
    Delayed,
    Failure,
    Hang,
    LLMStubServer,
    RawBody,
    ReceivedRequest,
    Route,
    refused_url,
)
from triplegain.clock import FakeClock
from triplegain.llm import (
    CallOutcome,
    LLMGateway,
    LLMOutputError,
    LLMRequest,
    Prices,
    ProviderBadResponse,
    ProviderKind,
    ProviderRateLimited,
    ProviderRejectedRequest,
    ProviderServerError,
    ProviderSettings,
    ProviderTimeout,
    ProviderUnreachable,
    RetrySettings,
    build_provider,
)

Wire = Literal["openai", "anthropic"]
WIRES: tuple[Wire, ...] = ("openai", "anthropic")
KEY_ENV = "TEST_LLM_API_KEY"
KEY = "sk-test-4c2d9e"
HANG_TIMEOUT_SECONDS = 0.2


class Resolution(BaseModel):
    action: Literal["proceed", "modify", "wait", "abort"]
    confidence: float = Field(ge=0, le=1)
    reasoning: str
    leverage: float | None = Field(default=None, ge=1, le=3)


REQUEST = LLMRequest(
    purpose="conflict_resolution",
    system_prompt="You settle conflicts between trading agents. Answer with one JSON object.",
    user_prompt="TA says long BTC/USDT (0.7), sentiment says short (0.65). Decide.",
)
WAIT = '{"action": "wait", "confidence": 0.6, "reasoning": "views cancel out"}'


@dataclass
class Harness:
    gateway: LLMGateway
    log: InMemoryCallLog
    waits: list[float]
    route: Route

    async def ask(self) -> CallOutcome[Resolution]:
        return await self.gateway.complete(REQUEST, Resolution)

    def error_classes(self) -> list[str | None]:
        return [record.error_class for record in self.log.records]


Connect = Callable[..., Harness]


@pytest.fixture
async def connect(llm_stub: LLMStubServer) -> AsyncIterator[Connect]:
    """Builds gateways to the stub (or elsewhere) speaking one wire format; closes them afterwards."""
    made: list[LLMGateway] = []

    def make(wire: Wire, base_url: str | None = None, **overrides: Any) -> Harness:
        route = llm_stub.openai if wire == "openai" else llm_stub.anthropic
        default_url = llm_stub.openai_base_url if wire == "openai" else llm_stub.anthropic_base_url
        values: dict[str, Any] = {
            "kind": ProviderKind.OPENAI_COMPATIBLE if wire == "openai" else ProviderKind.ANTHROPIC,
            "base_url": base_url or default_url,
            "model": f"{wire}-test-model",
            "api_key_env": KEY_ENV,
            "timeout_seconds": 5.0,
            "max_output_tokens": 256,
            "retry": RetrySettings(max_attempts=3, backoff_initial_seconds=0.5, retry_after_cap_seconds=10),
            "prices": Prices(input_usd_per_million=1.0, output_usd_per_million=2.0),
        } | overrides
        settings = ProviderSettings(**values)
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        log = InMemoryCallLog()
        provider = build_provider(wire, settings, environ={KEY_ENV: KEY}, offline_rules={})
        gateway = LLMGateway(provider, settings, call_log=log, clock=FakeClock(), sleep=sleep)
        made.append(gateway)
        return Harness(gateway, log, waits, route)

    yield make
    for gateway in made:
        await gateway.aclose()


def sent_key(request: ReceivedRequest) -> str:
    headers = {name.lower(): value for name, value in request.headers.items()}
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


@pytest.mark.parametrize("wire", WIRES)
async def test_an_answer_is_validated_and_recorded(connect: Connect, wire: Wire) -> None:
    harness = connect(wire)
    harness.route.push(Answer(f"Considering both views:\n```json\n{WAIT}\n```", input_tokens=1000, output_tokens=500))

    outcome = await harness.ask()

    assert outcome.answer == Resolution(action="wait", confidence=0.6, reasoning="views cancel out")
    assert outcome.error is None
    [record] = harness.log.records
    assert outcome.records == (record,)
    assert (record.provider, record.model, record.purpose) == (wire, f"{wire}-test-model", "conflict_resolution")
    assert (record.input_tokens, record.output_tokens) == (1000, 500)
    assert record.cost_usd == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)
    assert (record.attempt, record.cached, record.error_class) == (1, False, None)
    assert record.parsed == {"action": "wait", "confidence": 0.6, "reasoning": "views cancel out", "leverage": None}
    assert record.raw_response is not None
    assert WAIT in record.raw_response
    assert record.answer_model.endswith("test_llm_providers.Resolution")
    assert (record.system_prompt, record.user_prompt) == (REQUEST.system_prompt, REQUEST.user_prompt)

    [sent] = harness.route.requests
    assert sent_key(sent) == KEY
    assert sent.body["model"] == f"{wire}-test-model"
    assert sent.body["max_tokens"] == 256
    if wire == "openai":
        assert sent.body["messages"] == [
            {"role": "system", "content": REQUEST.system_prompt},
            {"role": "user", "content": REQUEST.user_prompt},
        ]
    else:
        assert sent.body["system"] == REQUEST.system_prompt
        assert sent.body["messages"] == [{"role": "user", "content": REQUEST.user_prompt}]


@pytest.mark.parametrize("wire", WIRES)
async def test_a_rate_limit_is_retried_after_the_wait_the_server_asks(connect: Connect, wire: Wire) -> None:
    harness = connect(wire)
    harness.route.push(Failure(429, retry_after="1.5"), Answer(WAIT))

    outcome = await harness.ask()

    assert outcome.answer is not None
    assert harness.waits == [1.5]
    assert len(harness.route.requests) == 2
    assert harness.error_classes() == ["ProviderRateLimited", None]
    assert [record.attempt for record in outcome.records] == [1, 2]


@pytest.mark.parametrize("wire", WIRES)
async def test_a_retry_after_beyond_the_cap_ends_the_call(connect: Connect, wire: Wire) -> None:
    harness = connect(wire)
    harness.route.push(Failure(429, retry_after="120"), Answer(WAIT))

    outcome = await harness.ask()

    assert isinstance(outcome.error, ProviderRateLimited)
    assert outcome.error.retry_after == 120
    assert harness.waits == []
    assert len(harness.route.requests) == 1


@pytest.mark.parametrize("wire", WIRES)
async def test_server_errors_are_retried_a_bounded_number_of_times(connect: Connect, wire: Wire) -> None:
    harness = connect(wire)
    harness.route.push(*[Failure(500, message="upstream exploded")] * 5)

    outcome = await harness.ask()

    assert isinstance(outcome.error, ProviderServerError)
    assert str(outcome.error).startswith(f"{wire}: HTTP 500: ")
    assert "upstream exploded" in str(outcome.error)
    assert len(harness.route.requests) == 3
    assert harness.waits == [0.5, 1.0]
    assert harness.error_classes() == ["ProviderServerError"] * 3
    assert [record.attempt for record in outcome.records] == [1, 2, 3]


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("status", [400, 401, 404])
async def test_a_rejected_request_is_not_retried(connect: Connect, wire: Wire, status: int) -> None:
    harness = connect(wire)
    harness.route.push(Failure(status, message="nope"), Answer(WAIT))

    outcome = await harness.ask()

    assert isinstance(outcome.error, ProviderRejectedRequest)
    assert str(outcome.error).startswith(f"{wire}: HTTP {status}: ")
    assert len(harness.route.requests) == 1
    assert harness.waits == []


@pytest.mark.parametrize("wire", WIRES)
async def test_a_refused_connection_is_retried_then_reported(connect: Connect, wire: Wire) -> None:
    base_url = refused_url() + ("/v1" if wire == "openai" else "")
    harness = connect(wire, base_url=base_url, retry=RetrySettings(max_attempts=2))

    outcome = await harness.ask()

    assert isinstance(outcome.error, ProviderUnreachable)
    assert str(outcome.error).startswith(f"{wire}: connection failed")
    assert harness.error_classes() == ["ProviderUnreachable"] * 2


@pytest.mark.parametrize("wire", WIRES)
async def test_a_hanging_server_times_out_on_every_attempt(connect: Connect, wire: Wire) -> None:
    harness = connect(wire, timeout_seconds=HANG_TIMEOUT_SECONDS, retry=RetrySettings(max_attempts=2))
    harness.route.push(Hang(), Hang())

    outcome = await harness.ask()

    assert isinstance(outcome.error, ProviderTimeout)
    assert str(outcome.error) == f"{wire}: no answer within 0.2 s"
    assert harness.error_classes() == ["ProviderTimeout"] * 2
    assert len(harness.route.requests) == 2


@pytest.mark.parametrize("wire", WIRES)
async def test_a_slow_answer_within_the_timeout_is_not_a_failure(connect: Connect, wire: Wire) -> None:
    harness = connect(wire, timeout_seconds=5.0)
    harness.route.push(Delayed(0.05, Answer(WAIT)))

    assert (await harness.ask()).answer is not None


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<html>502 Bad Gateway</html>", "the response body is not JSON"),
        ('{"id": "chatcmpl-1", "choices": [{"index": 0, "mess', "the response body is not JSON"),
        ('{"unexpected": true}', "the response is not a"),
        ("[]", "the response is not a"),
    ],
    ids=["garbage", "truncated", "other-json", "array"],
)
async def test_a_body_outside_the_wire_format_is_a_bad_response(
    connect: Connect, wire: Wire, body: str, problem: str
) -> None:
    harness = connect(wire)
    harness.route.push(RawBody(body))

    outcome = await harness.ask()

    assert isinstance(outcome.error, ProviderBadResponse)
    assert problem in str(outcome.error)
    assert len(harness.route.requests) == 1, "a malformed response is not retried"


@pytest.mark.parametrize("wire", WIRES)
async def test_an_answer_cut_off_at_the_token_limit_is_an_output_error(connect: Connect, wire: Wire) -> None:
    harness = connect(wire)
    harness.route.push(Answer('{"action": "proceed", "confidence": 0.8, "reaso', output_tokens=256, truncated=True))

    outcome = await harness.ask()

    assert isinstance(outcome.error, LLMOutputError)
    assert outcome.error.reason == (
        "no complete JSON object in the answer: it looks cut off (the answer stopped at the output token limit)"
    )
    [record] = outcome.records
    assert record.error_class == "LLMOutputError"
    assert record.validation_error == outcome.error.reason
    assert record.raw_response == '{"action": "proceed", "confidence": 0.8, "reaso'
    assert record.output_tokens == 256
    assert record.cost_usd > 0, "a useless answer was still paid for"
    assert len(harness.route.requests) == 1, "invalid output is not retried"


@pytest.mark.parametrize("wire", WIRES)
async def test_out_of_range_values_are_a_validation_failure(connect: Connect, wire: Wire) -> None:
    harness = connect(wire)
    harness.route.push(Answer('{"action": "proceed", "confidence": 1.7, "reasoning": "sure", "leverage": 50}'))

    outcome = await harness.ask()

    assert outcome.answer is None
    assert isinstance(outcome.error, LLMOutputError)
    [record] = outcome.records
    assert record.parsed is None
    assert record.validation_error is not None
    assert "confidence: input should be less than or equal to 1 (got 1.7)" in record.validation_error
    assert "leverage: input should be less than or equal to 3 (got 50)" in record.validation_error
