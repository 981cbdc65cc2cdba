"""Trying providers in order until one gives a validated answer.

The gateways are asked one after another, never at once, and each applies its own timeout to each of its
attempts: a provider that hung has used only its own time, and the next one gets its full timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic

from triplegain.llm.gateway import LLMGateway
from triplegain.llm.models import AnswerT, CallOutcome, LLMCallRecord, LLMRequest


@dataclass(frozen=True)
class FallbackOutcome(Generic[AnswerT]):
    """The first validated answer (or None when every provider failed), who gave it, and every call made."""

    answer: AnswerT | None
    provider: str | None
    calls: tuple[CallOutcome[AnswerT], ...]

    @property
    def records(self) -> tuple[LLMCallRecord, ...]:
        """Every attempt at every provider, in order."""
        return tuple(record for call in self.calls for record in call.records)


async def first_success(
    gateways: Sequence[LLMGateway],
    request: LLMRequest,
    answer_model: type[AnswerT],
    *,
    trail: list[LLMCallRecord] | None = None,
) -> FallbackOutcome[AnswerT]:
    """The first validated answer of ``gateways`` asked in turn. ``trail`` receives every attempt as it is made,
    numbered across the chain (see ``LLMGateway.complete``)."""
    calls: list[CallOutcome[AnswerT]] = []
    trail = trail if trail is not None else []
    for gateway in gateways:
        outcome = await gateway.complete(request, answer_model, trail=trail)
        calls.append(outcome)
        if outcome.answer is not None:
            return FallbackOutcome(answer=outcome.answer, provider=outcome.provider, calls=tuple(calls))
    return FallbackOutcome(answer=None, provider=None, calls=tuple(calls))
