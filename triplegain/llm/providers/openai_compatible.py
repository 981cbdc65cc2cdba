"""Chat completions through the ``openai`` SDK: DeepSeek, OpenAI, Ollama and any other compatible server."""

from __future__ import annotations

import json

import openai
from pydantic import BaseModel, Field, ValidationError

from triplegain.llm.errors import ProviderBadResponse, ProviderError
from triplegain.llm.models import LLMRequest, LLMResult
from triplegain.llm.providers.failures import SdkErrors, not_in_wire_format, sdk_failure
from triplegain.llm.settings import ProviderSettings

_SDK_ERRORS = SdkErrors(
    timeout=openai.APITimeoutError, connection=openai.APIConnectionError, status=openai.APIStatusError
)

# The SDK refuses an empty key; keyless servers (Ollama) ignore whatever is sent.
_KEYLESS_PLACEHOLDER = "no-key"
_CUT_OFF_REASONS = frozenset({"length"})


class _Usage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class _Message(BaseModel):
    content: str | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Completion(BaseModel):
    """The part of a chat completion we read; the SDK does not validate responses, so we do."""

    model: str
    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage


class OpenAICompatibleProvider:
    def __init__(self, name: str, settings: ProviderSettings, api_key: str | None) -> None:
        self.name = name
        self._settings = settings
        self._api_key = api_key
        # Passing every argument explicitly keeps the SDK from reading OPENAI_API_KEY / OPENAI_BASE_URL.
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=api_key or _KEYLESS_PLACEHOLDER,
            timeout=settings.timeout_seconds,
            max_retries=0,
        )

    async def complete(self, request: LLMRequest) -> LLMResult:
        # The error is raised outside the except block: the SDK's exception (whose request carries the key)
        # must not travel along as its context.
        failure: ProviderError
        try:
            completion = await self._client.chat.completions.create(
                model=self._settings.model,
                messages=[
                    {"role": "system", "content": request.system_prompt},
                    {"role": "user", "content": request.user_prompt},
                ],
                max_tokens=self._settings.max_output_tokens,
            )
        except openai.OpenAIError as error:
            failure = self._failure(error)
        except json.JSONDecodeError:
            failure = ProviderBadResponse(f"{self.name}: the response body is not JSON")
        else:
            return self._result(completion)
        raise failure

    def _result(self, completion: object) -> LLMResult:
        try:
            parsed = _Completion.model_validate(completion, from_attributes=True)
        except ValidationError as error:
            raise not_in_wire_format(self.name, "a chat completion", error) from None
        choice = parsed.choices[0]
        return LLMResult(
            text=choice.message.content or "",
            model=parsed.model,
            input_tokens=parsed.usage.prompt_tokens,
            output_tokens=parsed.usage.completion_tokens,
            cut_off=choice.finish_reason in _CUT_OFF_REASONS,
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _failure(self, error: openai.OpenAIError) -> ProviderError:
        return sdk_failure(
            self.name, error, _SDK_ERRORS, timeout_seconds=self._settings.timeout_seconds, api_key=self._api_key
        )
