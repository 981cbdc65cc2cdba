"""A local model: the ``ollama`` provider block as shipped (no key, no price), its base URL pointed at the stub
speaking the OpenAI-compatible endpoint Ollama serves, asked by every agent and by the resolver chain in a
replay run by the daemon with no API key in the environment."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_answers_from import replay
from tests.offline_replay import HEADLINES
from tests.stubs.llm_server import Answer, LLMStubServer, Reply
from triplegain.config import load_settings

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

CONFIG = """
llm:
  providers:
    ollama: {{base_url: "{url}"}}
agents:
  technical: {{llm_provider: ollama}}
  regime: {{llm_provider: ollama}}
  sentiment: {{llm_provider: ollama, sources: [{{kind: replay, path: "{headlines}"}}]}}
coordinator:
  resolver: {{providers: [ollama]}}
  conflicts: {{risk_cut_threshold: 0.3, opposed_max_confidence_gap: 0.5}}
risk: {{min_confidence: 0.05, min_confidence_by_regime: {{}}}}
market:
  synthetic: {{symbols: {{BTC/USDT: 40000.0}}, count: 200, start: 2024-01-01T00:00:00Z, seed: 11}}
"""

ANSWERS = {
    "market-regime": {"regime": "choppy", "confidence": 0.8, "reasoning": "no direction"},
    "technical-analysis": {"bias": "long", "strength": 0.6, "confidence": 0.7, "reasoning": "trend up"},
    "sentiment score": {"score": 0.3, "confidence": 0.5, "reasoning": "mildly positive"},
    "resolve a conflict": {"action": "proceed", "confidence": 0.7, "reasoning": "the trend wins"},
}


def purpose(body: Any) -> str:
    """Which prompt it is, by a phrase of its system prompt (the regime's mentions a technical-analysis view)."""
    system = body["messages"][0]["content"]
    return next(name for name in ANSWERS if name in system)


def ollama(body: Any) -> Reply:
    return Answer(json.dumps(ANSWERS[purpose(body)]))


def test_every_agent_and_the_resolver_ask_a_local_model_without_a_key(
    migrated_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", migrated_database_url)

    async def run() -> tuple[Any, LLMStubServer, str]:
        async with LLMStubServer() as stub:
            stub.openai.respond = ollama
            path = tmp_path / "ollama.yaml"
            path.write_text(CONFIG.format(url=stub.openai_base_url, headlines=HEADLINES))
            summary, said = await replay(load_settings(path, environ={}), environ={})
        return summary, stub, said

    summary, stub, said = asyncio.run(run())

    asked = Counter(purpose(request.body) for request in stub.openai.requests)
    assert set(asked) == set(ANSWERS), asked
    assert {request.body["model"] for request in stub.openai.requests} == {"llama3.1"}
    assert {request.headers["Authorization"] for request in stub.openai.requests} == {"Bearer no-key"}
    assert "API key" not in said, "no provider gave way to the offline one"
    assert "LLM cost" not in said, "a local model costs nothing: no estimate, no --max-llm-usd needed"
    assert set(summary.llm_calls) == {"ollama"}
    assert summary.llm_calls["ollama"].cost_usd == 0.0
