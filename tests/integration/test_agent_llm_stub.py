"""An agent's review through a real SDK provider (OpenAI wire format) pointed at the local LLM stub server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from tests.builders import rising_frames
from tests.fakes import InMemoryCallLog
from tests.stubs.llm_server import Answer, Failure, LLMStubServer
from triplegain.agents import TechnicalAgent, TechnicalContext, TechnicalSettings
from triplegain.clock import FakeClock
from triplegain.llm import (
    LLMGateway,
    LLMSettings,
    ProviderKind,
    ProviderSettings,
    ProvidersSettings,
    RetrySettings,
    build_gateway,
)
from triplegain.market import Timeframe
from triplegain.model import Bias

KEY_ENV = "TEST_DEEPSEEK_KEY"
SETTINGS = TechnicalSettings(timeframes=[Timeframe.M5], llm_provider="deepseek")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
async def deepseek(llm_stub: LLMStubServer) -> AsyncIterator[tuple[LLMGateway, InMemoryCallLog]]:
    provider = ProviderSettings(
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url=llm_stub.openai_base_url,
        model="deepseek-chat",
        api_key_env=KEY_ENV,
        timeout_seconds=5.0,
        retry=RetrySettings(max_attempts=1),
    )
    log = InMemoryCallLog()
    gateway = build_gateway(
        "deepseek",
        LLMSettings(providers=ProvidersSettings(deepseek=provider)),
        call_log=log,
        clock=FakeClock(),
        environ={KEY_ENV: "sk-test"},
    )
    yield gateway, log
    await gateway.aclose()


async def test_a_model_answer_refines_the_view(
    llm_stub: LLMStubServer, deepseek: tuple[LLMGateway, InMemoryCallLog]
) -> None:
    gateway, log = deepseek
    reply = {"bias": "neutral", "strength": 0.1, "confidence": 0.4, "reasoning": "overextended"}
    llm_stub.openai.push(Answer("Here is my review:\n```json\n" + json.dumps(reply) + "\n```"))
    output = await TechnicalAgent(SETTINGS, clock=FakeClock(), gateway=gateway).analyze(
        TechnicalContext("BTC/USDT", (rising_frames()[-1],))
    )
    assert (output.body.bias, output.body.strength, output.confidence) == (Bias.NEUTRAL, 0.1, 0.4)
    [record] = log.records
    assert (output.llm_call_id, record.served_id, record.provider) == (record.id, output.id, "deepseek")
    [request] = llm_stub.openai.requests
    assert "Market: BTC/USDT" in json.dumps(request.body)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Answer("I think it goes up. Buy everything!"), "LLMOutputError: no JSON object in the answer"),
        (
            Answer('{"bias": "long", "strength": 1.7, "confidence": 0.9, "reasoning": "moon"}'),
            "LLMOutputError: no JSON object matches TechnicalRefinement: strength",
        ),
        (Failure(500), "ProviderServerError"),
    ],
)
async def test_a_bad_or_failed_answer_leaves_the_baseline_standing(
    llm_stub: LLMStubServer,
    deepseek: tuple[LLMGateway, InMemoryCallLog],
    reply: Answer | Failure,
    reason: str,
) -> None:
    gateway, log = deepseek
    llm_stub.openai.push(reply)
    frames = (rising_frames()[-1],)
    baseline = await TechnicalAgent(SETTINGS.model_copy(update={"llm_provider": None}), clock=FakeClock()).analyze(
        TechnicalContext("BTC/USDT", frames)
    )
    output = await TechnicalAgent(SETTINGS, clock=FakeClock(), gateway=gateway).analyze(
        TechnicalContext("BTC/USDT", frames)
    )
    assert (output.body, output.confidence, output.llm_call_id) == (baseline.body, baseline.confidence, None)
    assert f"LLM refinement (deepseek) failed, so the baseline stands: {reason}" in output.reasoning
    [record] = log.records
    assert record.served_id == output.id
    assert not record.succeeded
