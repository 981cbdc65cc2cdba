"""The optional LLM refinement of an agent's baseline: ask, validate, and say in words what came of it.

A refinement either returns an answer that validated against the agent's answer model (whose field bounds are the
body's bounds, so nothing out of range gets through) with the id of the call-log record that produced it, or
the reason the baseline stands. The gateway has already recorded every attempt in its call log either way.

A refiner carries the run's ``HistoryMask`` (``llm.mask_history``): the agents show symbols, times and prices
through it, and the answer's text is mapped back before anyone reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic
from uuid import UUID

from triplegain.llm import UNTRUSTED_DATA_RULE, LLMGateway, LLMRequest, PromptTemplate, load_template
from triplegain.llm.errors import error_class_name
from triplegain.llm.masking import HistoryMask
from triplegain.llm.models import AnswerT

REASONING_MAX_CHARS = 2000
"""Longest reasoning an answer model accepts from an LLM."""


@dataclass(frozen=True, slots=True)
class RefinementPrompts:
    """A refinement's two templates: ``prompts/<purpose>_system.txt`` and ``prompts/<purpose>_user.txt``."""

    purpose: str
    system: PromptTemplate
    user: PromptTemplate

    @classmethod
    def load(cls, purpose: str, directory: Path | None = None) -> RefinementPrompts:
        """Both templates (from the shipped ``prompts/`` unless ``directory`` is given); fails if either is absent."""
        return cls(purpose, load_template(f"{purpose}_system", directory), load_template(f"{purpose}_user", directory))

    def system_prompt(self) -> str:
        """The system template's only field is the rule that quoted outside text is data, never instructions."""
        return self.system.render(untrusted_data_rule=UNTRUSTED_DATA_RULE)


@dataclass(frozen=True, slots=True)
class Refinement(Generic[AnswerT]):
    """The validated answer and its call-log id, or why there is none."""

    provider: str
    answer: AnswerT | None
    call_id: UUID | None
    failure: str | None

    def explain(self, baseline_reasoning: str, answer_reasoning: str | None) -> str:
        """The output's reasoning: the baseline's, then what the refinement said or why the baseline stood."""
        if self.answer is not None:
            return f"{baseline_reasoning} LLM refinement ({self.provider}): {answer_reasoning}"
        return f"{baseline_reasoning} LLM refinement ({self.provider}) failed, so the baseline stands: {self.failure}"


@dataclass(frozen=True)
class Refiner:
    """The LLM an agent asks to refine its baseline, the prompts it asks with, and what they may show."""

    gateway: LLMGateway
    prompts: RefinementPrompts
    mask: HistoryMask


def configured_refiner(
    agent: str,
    purpose: str,
    provider: str | None,
    gateway: LLMGateway | None,
    prompts: RefinementPrompts | None,
    mask: HistoryMask | None = None,
) -> Refiner | None:
    """The refiner ``llm_provider`` asks for (prompts default to the shipped ones, the mask to none), or None
    without one.

    ``gateway`` must be the one ``llm_provider`` names: a mismatch is a wiring mistake, not a silent default.
    """
    if gateway is None and provider is None:
        return None
    if gateway is None:
        raise ValueError(f"{agent} agent: llm_provider is {provider!r} but no gateway was given for it")
    if gateway.name != provider:
        raise ValueError(f"{agent} agent: llm_provider is {provider!r} but the gateway given is {gateway.name!r}")
    return Refiner(gateway, prompts or RefinementPrompts.load(purpose), mask or HistoryMask.off())


async def request_refinement(refiner: Refiner, request: LLMRequest, answer_model: type[AnswerT]) -> Refinement[AnswerT]:
    """Ask the refiner's gateway; a failed or invalid answer is a ``Refinement`` with ``failure`` set, never an
    exception. The answer's text comes back unmasked."""
    outcome = await refiner.gateway.complete(request, answer_model)
    if outcome.answer is not None:
        call_id = next(record.id for record in reversed(outcome.records) if record.succeeded)
        return Refinement(outcome.provider, refiner.mask.answer(outcome.answer), call_id, None)
    error = outcome.error
    failure = f"{error_class_name(error)}: {error}" if error is not None else "no answer"
    return Refinement(outcome.provider, None, None, failure)
