"""Answers of an earlier run, served again instead of asking: a run re-executed for free.

    answers = RecordedAnswers(run_id, records, on_missing="conservative")  # records: the run's llm_calls
    gateway = build_gateway(..., answers=answers)   # every gateway of the new run shares it

A gateway asked a question looks it up by (provider, model, prompt digest) — what it would cache by — and, when the
earlier run asked it, repeats that run's gateway call: every attempt in order, with its outcome (the validated
answer, or the failure with its class and message), its latency and its ``cached`` flag, so the health monitor
and the resolver chain see what they saw then; nothing is sent and nothing is paid. The same question asked
several times is answered in the order the earlier run asked it, the last answer again once those run out.

A question the earlier run never asked (a prompt, a setting or the model changed) is counted as missed and,
``on_missing``: ``ask`` — asked of the provider as usual (counted as asked), or ``conservative`` — not asked at
all: the call fails with ``AnswerNotRecorded``, so an agent keeps its baseline and the resolver chain ends in
the conservative rule, with no network. A provider the earlier run used but whose API key is not set here is
never asked (``Unasked``), whatever ``on_missing`` says.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Literal, TypeAlias
from uuid import UUID

from triplegain.llm.cache import CacheKey
from triplegain.llm.errors import ProviderRejectedRequest
from triplegain.llm.models import LLMCallRecord, LLMRequest, LLMResult

OnMissing: TypeAlias = Literal["ask", "conservative"]

RecordedCall: TypeAlias = tuple[LLMCallRecord, ...]
"""One gateway call of the earlier run: its attempts, in order."""


class RecordedAnswers:
    """The gateway calls of run ``run_id``, by question, and how many questions were served, missed and asked."""

    def __init__(self, run_id: int, records: Iterable[LLMCallRecord], *, on_missing: OnMissing) -> None:
        """``records``: every ``llm_calls`` row of the run, in the order they were made."""
        self.run_id = run_id
        self.on_missing: OnMissing = on_missing
        calls: dict[UUID, list[LLMCallRecord]] = {}
        for record in records:
            calls.setdefault(record.request_id, []).append(record)
        self._calls: dict[CacheKey, deque[RecordedCall]] = {}
        for attempts in calls.values():
            first = attempts[0]
            key = CacheKey(first.provider, first.model, first.prompt_digest)
            self._calls.setdefault(key, deque()).append(tuple(sorted(attempts, key=lambda r: r.step)))
        self.served = 0
        self.missed = 0
        self.asked = 0

    @property
    def providers(self) -> frozenset[str]:
        """The providers the run asked."""
        return frozenset(key.provider for key in self._calls)

    def __len__(self) -> int:
        """How many gateway calls the run made."""
        return sum(len(calls) for calls in self._calls.values())

    def take(self, key: CacheKey) -> RecordedCall | None:
        """The run's next call for this question, counted as served; None (counted as missed) when it never asked."""
        calls = self._calls.get(key)
        if calls is None:
            self.missed += 1
            return None
        self.served += 1
        return calls.popleft() if len(calls) > 1 else calls[0]

    def unusable(self) -> None:
        """The call ``take`` served last cannot be used (its answer no longer validates): a miss after all."""
        self.served -= 1
        self.missed += 1


class Unasked:
    """The provider of a gateway that only serves an earlier run's answers (its API key is not set here)."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self._why = why

    async def complete(self, request: LLMRequest) -> LLMResult:
        raise ProviderRejectedRequest(f"{self.name}: not asked ({self._why})")

    async def aclose(self) -> None:
        return None
