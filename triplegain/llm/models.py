"""The data of the LLM layer: what is asked, what a provider returns, and the record of each attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from triplegain.llm.errors import LLMError

AnswerT = TypeVar("AnswerT", bound=BaseModel)


class LLMRequest(BaseModel):
    """One question for a model.

    ``context`` is the structured data the prompts were rendered from; the offline provider derives its answer
    from it. ``served_id`` is the decision or agent output the call is made for, so the call log can be joined
    to it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    purpose: str = Field(min_length=1, description="what the answer is for, e.g. conflict_resolution")
    system_prompt: str
    user_prompt: str
    context: dict[str, JsonValue] = Field(default_factory=dict)
    served_id: UUID | None = None


class LLMResult(BaseModel):
    """What a provider returned for one attempt: the text, and the tokens it was billed for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    model: str = Field(description="the model the provider says answered")
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cut_off: bool = Field(default=False, description="the answer stopped at the output token limit")


class LLMCallRecord(BaseModel):
    """One attempt at one provider, as stored in the ``llm_calls`` table — failures and skips included.

    A skip (budget spent, breaker open) has no response and no tokens; a cached answer has ``cached`` set and
    costs nothing. ``request_id`` groups the attempts of one gateway call, ``step`` numbers the attempts of a
    whole resolution (every provider of a fallback chain). ``started_at`` is on the system's clock (candle time
    in a replay); ``wall_started_at`` and ``latency_ms`` on the wall clock. An attempt served from an earlier
    run's record (``served_from_run``) repeats that record's outcome and latency, and costs nothing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID
    request_id: UUID
    served_id: UUID | None
    provider: str
    model: str
    purpose: str
    answer_model: str = Field(description="the pydantic model the answer was validated against")
    prompt_digest: str = Field(description="sha256 of system prompt, user prompt and answer model; the cache key")
    system_prompt: str
    user_prompt: str
    raw_response: str | None
    parsed: dict[str, JsonValue] | None = Field(description="the validated answer as JSON")
    validation_error: str | None = Field(description="why the response did not validate, when it did not")
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0)
    latency_ms: float = Field(ge=0)
    attempt: int = Field(ge=1, description="the attempt's number within its gateway call (retries)")
    step: int = Field(ge=1, description="the attempt's place in its resolution, across the providers of a chain")
    cached: bool
    error_class: str | None = Field(description="e.g. ProviderTimeout, LLMOutputError, BudgetExceeded")
    error_message: str | None
    started_at: AwareDatetime = Field(description="when the attempt started, on the system's clock")
    wall_started_at: AwareDatetime = Field(description="when the attempt started, on the wall clock")
    served_from_run: int | None = Field(
        default=None, description="the daemon run whose stored attempt was served instead of asking the provider"
    )

    @property
    def succeeded(self) -> bool:
        return self.error_class is None


@dataclass(frozen=True)
class CallOutcome(Generic[AnswerT]):
    """The end of one gateway call: the validated answer or the last error, and the record of every attempt."""

    provider: str
    answer: AnswerT | None
    error: LLMError | None
    records: tuple[LLMCallRecord, ...]

    @property
    def succeeded(self) -> bool:
        return self.answer is not None
