from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.stubs.llm_server import LLMStubServer


@pytest.fixture
async def llm_stub() -> AsyncIterator[LLMStubServer]:
    """A local server speaking the OpenAI chat-completions and Anthropic messages wire formats."""
    async with LLMStubServer() as server:
        yield server
