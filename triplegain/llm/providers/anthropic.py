"""Claude through the ``anthropic`` SDK's messages API."""

from __future__ import annotations

import json

import anthropic
from pydantic import BaseModel, Field, ValidationError

from triplegain.llm.errors import ProviderBadResponse, ProviderError
from triplegain.llm.models import LLMRequest, LLMResult
from triplegain.llm.providers.failures import SdkErrors, not_in_wire_format, sdk_failure
from triplegain.llm.settings import ProviderSettings

_SDK_ERRORS = SdkErrors(
    timeout=anthropic.APITimeoutError, connection=anthropic.APIConnectionError, status=anthropic.APIStatusError
)

_CUT_OFF_REASONS = frozenset({"max_tokens", "model_context_window_exceeded"})


class _Usage(BaseModel):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class _Block(BaseModel):
    type: str
    text: str | None = None


class _Message(BaseModel):
    """The part of a message we read; the SDK does not validate responses, so we do."""

    model: str
    content: list[_Block]
    stop_reason: str | None = None
    usage: _Usage


class AnthropicProvider:
    def __init__(self, name: str, settings: ProviderSettings, api_key: str) -> None:
        self.name = name
        self._settings = settings
        self._api_key = api_key
        # An explicit key and base URL keep the SDK from reading credentials or profiles of its own.
        self._client = anthropic.AsyncAnthropic(
            base_url=settings.base_url,
            api_key=api_key,
            timeout=settings.timeout_seconds,
            max_retries=0,
        )

    async def complete(self, request: LLMRequest) -> LLMResult:
        # The error is raised outside the except block: the SDK's exception (whose request carries the key)
        # must not travel along as its context.
        failure: ProviderError
        try:
            message = await self._client.messages.create(
                model=self._settings.model,
                system=request.system_prompt,
                messages=[{"role": "user", "content": request.user_prompt}],
                max_tokens=self._settings.max_output_tokens,
            )
        except anthropic.AnthropicError as error:
            failure = self._failure(error)
        except json.JSONDecodeError:
            failure = ProviderBadResponse(f"{self.name}: the response body is not JSON")
        else:
            return self._result(message)
        raise failure

    def _result(self, message: object) -> LLMResult:
        try:
            parsed = _Message.model_validate(message, from_attributes=True)
        except ValidationError as error:
            raise not_in_wire_format(self.name, "a message", error) from None
        return LLMResult(
            text="".join(block.text or "" for block in parsed.content if block.type == "text"),
            model=parsed.model,
            input_tokens=parsed.usage.input_tokens,
            output_tokens=parsed.usage.output_tokens,
            cut_off=parsed.stop_reason in _CUT_OFF_REASONS,
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _failure(self, error: anthropic.AnthropicError) -> ProviderError:
        return sdk_failure(
            self.name, error, _SDK_ERRORS, timeout_seconds=self._settings.timeout_seconds, api_key=self._api_key
        )
