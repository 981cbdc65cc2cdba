"""The resolver chain: ask the configured providers in order, bound the first answer, else the conservative rule.

    resolver = ConflictResolver(gateways)       # e.g. build_resolver_gateways(settings.resolver, settings.llm, …)
    outcome = await resolver.resolve(symbol, Bias.LONG, conflicts, bounds, leverage_limit, decision_id)
    outcome.resolution    # a BoundedResolution: the only thing the coordinator acts on
    outcome.resolved_by   # "deepseek/deepseek-chat", or "conservative_rule" when no provider answered
    outcome.clamps        # each value the answer asked for that was out of bounds, and the value used
    outcome.attempts      # every call-log record made (id, provider, model, attempt, error class)

The providers are asked one after another (``first_success``), each with its own timeout and retries, so a
provider that hung costs only its own time and the next one gets its full timeout. The first answer that
validates as a ``ResolutionAnswer`` is brought within the bounds by ``clamp``; when none does (or the chain is
empty) the answer is ``conservative_resolution``: abort, no new exposure. Every request carries the decision id
as its ``served_id``, so the ``llm_calls`` rows join to the decision, and ``resolution_context`` as its context,
so the offline provider can answer it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from triplegain.clock import Clock
from triplegain.coordinator.conflicts import Conflict
from triplegain.coordinator.resolution import (
    RESOLUTION_OFFLINE_RULES,
    RESOLUTION_PURPOSE,
    BoundedResolution,
    Clamp,
    ResolutionAnswer,
    ResolutionBounds,
    clamp,
    conservative_resolution,
    resolution_context,
)
from triplegain.llm import (
    UNTRUSTED_DATA_RULE,
    CallLog,
    LLMCallRecord,
    LLMGateway,
    LLMRequest,
    LLMSettings,
    PromptTemplate,
    ProvidersSettings,
    RecordedAnswers,
    SpendLedger,
    build_gateway,
    data_block,
    first_success,
    load_template,
)
from triplegain.llm.masking import HistoryMask
from triplegain.model import Bias
from triplegain.section import Section

CONSERVATIVE_RULE = "conservative_rule"
"""``ResolverOutcome.resolved_by`` when no provider answered."""


class ResolverSettings(Section):
    """The resolver chain: which LLM providers settle a conflict, asked in this order."""

    providers: list[str] = Field(
        default_factory=lambda: ["deepseek", "anthropic"],
        description="providers (names under llm.providers) asked in order, each with its own timeout, until one "
        "answers; when none does, the conservative rule (no trade) applies. Empty: always the conservative rule",
    )

    @field_validator("providers")
    @classmethod
    def _known_and_distinct(cls, providers: list[str]) -> list[str]:
        unknown = [name for name in providers if name not in ProvidersSettings.model_fields]
        if unknown:
            raise ValueError(
                f"unknown LLM provider {', '.join(unknown)}; known: {', '.join(ProvidersSettings.model_fields)}"
            )
        if len(set(providers)) != len(providers):
            raise ValueError(f"a provider is listed twice: {providers}")
        return providers


class ResolverAttempt(BaseModel):
    """One call-log record the chain produced: which provider, and how it ended."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    call_id: UUID = Field(description="the LLMCallRecord id (the llm_calls row)")
    provider: str = Field(description="the provider asked")
    model: str = Field(description="the model configured for it")
    attempt: int = Field(ge=1, description="the attempt number within that provider's call")
    error_class: str | None = Field(description="why the attempt failed, e.g. ProviderTimeout; None: it answered")

    @classmethod
    def of(cls, record: LLMCallRecord) -> Self:
        return cls(
            call_id=record.id,
            provider=record.provider,
            model=record.model,
            attempt=record.attempt,
            error_class=record.error_class,
        )


class ResolverOutcome(BaseModel):
    """What the chain decided, who decided it, what was clamped, and every attempt made."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    resolution: BoundedResolution = Field(description="the resolution within bounds")
    resolved_by: str = Field(description='"provider/model" of the answer used, or "conservative_rule"')
    call_id: UUID | None = Field(description="the call-log record of the answer used; None for the conservative rule")
    clamps: tuple[Clamp, ...] = Field(description="each out-of-bounds value asked for and the value used instead")
    attempts: tuple[ResolverAttempt, ...] = Field(description="every attempt at every provider, in order")

    @property
    def conservative(self) -> bool:
        return self.resolved_by == CONSERVATIVE_RULE


class ConflictResolver:
    """Asks ``gateways`` in order for a ``ResolutionAnswer``; see the module docstring."""

    def __init__(
        self, gateways: Sequence[LLMGateway], *, prompts_dir: Path | None = None, mask: HistoryMask | None = None
    ) -> None:
        """``prompts_dir``: where the ``conflict_resolution_*`` templates are (default: the shipped ``prompts/``);
        ``mask``: what the prompt may show of the symbol (``llm.masking``; the answer is mapped back)."""
        names = [gateway.name for gateway in gateways]
        if len(set(names)) != len(names):
            raise ValueError(f"the resolver chain lists a provider twice: {names}")
        self._gateways = tuple(gateways)
        self._mask = mask or HistoryMask.off()
        self._system: PromptTemplate = load_template(f"{RESOLUTION_PURPOSE}_system", prompts_dir)
        self._user: PromptTemplate = load_template(f"{RESOLUTION_PURPOSE}_user", prompts_dir)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(gateway.name for gateway in self._gateways)

    def request(
        self,
        symbol: str,
        direction: Bias,
        conflicts: Sequence[Conflict],
        bounds: ResolutionBounds,
        leverage_limit: float,
        decision_id: UUID,
    ) -> LLMRequest:
        """The question the chain asks: the conflicts' numbers in the prompt, ``resolution_context`` as context."""
        mask = self._mask
        summaries = data_block("conflicts", [mask.text(conflict.summary) for conflict in conflicts])
        numbers = [
            {"rule": conflict.rule.value, "severity": conflict.severity, "details": conflict.details}
            for conflict in conflicts
        ]
        return LLMRequest(
            purpose=RESOLUTION_PURPOSE,
            system_prompt=self._system.render(untrusted_data_rule=UNTRUSTED_DATA_RULE),
            user_prompt=self._user.render(
                symbol=mask.symbol(symbol),
                direction=direction.value,
                conflicts=json.dumps(numbers, sort_keys=True),
                summaries=summaries,
                bounds=json.dumps(_bounds_for_prompt(bounds, leverage_limit), sort_keys=True),
            ),
            context=resolution_context(symbol, direction, conflicts, bounds),
            served_id=decision_id,
        )

    async def resolve(
        self,
        symbol: str,
        direction: Bias,
        conflicts: Sequence[Conflict],
        bounds: ResolutionBounds,
        leverage_limit: float,
        decision_id: UUID,
        *,
        trail: list[LLMCallRecord] | None = None,
    ) -> ResolverOutcome:
        """The bounded resolution of a ``direction`` trade on ``symbol`` (long or short), for ``decision_id``.

        ``leverage_limit`` is the risk rules' leverage limit (finite, ≥ 1). Never raises for an LLM failure.
        ``trail`` receives every attempt as it is made: a caller cancelled meanwhile (its task timed out) still
        has them for ``cut_short``.
        """
        if direction is Bias.NEUTRAL:
            raise ValueError("a trade intent to resolve is long or short, not neutral")
        if not (math.isfinite(leverage_limit) and leverage_limit >= 1):
            raise ValueError(f"leverage_limit must be a finite number ≥ 1, got {leverage_limit}")
        if not self._gateways:
            return _conservative("no resolver provider is configured", ())
        request = self.request(symbol, direction, conflicts, bounds, leverage_limit, decision_id)
        result = await first_success(self._gateways, request, ResolutionAnswer, trail=trail)
        attempts = tuple(ResolverAttempt.of(record) for record in result.records)
        if result.answer is None:
            failures = "; ".join(f"{call.provider}: {call.error}" for call in result.calls)
            return _conservative(f"no resolver answered ({failures})", attempts)
        answering = result.calls[-1].records[-1]
        resolution, clamps = clamp(self._mask.answer(result.answer), bounds, leverage_limit)
        return ResolverOutcome(
            resolution=resolution,
            resolved_by=f"{answering.provider}/{answering.model}",
            call_id=answering.id,
            clamps=tuple(clamps),
            attempts=attempts,
        )


def cut_short(trail: Sequence[LLMCallRecord], reason: str) -> ResolverOutcome:
    """The conservative resolution of a chain that did not finish (its task was cancelled), with the attempts
    made until then."""
    return _conservative(f"the resolution was cut short ({reason})", tuple(ResolverAttempt.of(r) for r in trail))


def build_resolver_gateways(
    settings: ResolverSettings,
    llm: LLMSettings,
    *,
    call_log: CallLog,
    clock: Clock,
    replaying: bool = False,
    environ: Mapping[str, str] | None = None,
    ledger: SpendLedger | None = None,
    wall: Clock | None = None,
    answers: RecordedAnswers | None = None,
) -> list[LLMGateway]:
    """A gateway for each provider of the chain, in order, with the offline rule for ``conflict_resolution``;
    ``ledger``: the process's spend, shared with the agents' gateways; ``answers``: an earlier run's calls to
    serve.

    Raises ``MissingAPIKey`` when a listed provider needs a key that is not set.
    """
    return [
        build_gateway(
            name,
            llm,
            call_log=call_log,
            clock=clock,
            replaying=replaying,
            offline_rules=RESOLUTION_OFFLINE_RULES,
            environ=environ,
            ledger=ledger,
            wall=wall,
            answers=answers,
        )
        for name in settings.providers
    ]


def _bounds_for_prompt(bounds: ResolutionBounds, leverage_limit: float) -> dict[str, JsonValue]:
    """The ranges ``clamp`` will apply, as [low, high]."""
    return {
        "confidence": [0.0, 1.0],
        "size_reduction_pct": [0.0, bounds.max_size_reduction_pct],
        "stop_distance_pct": [bounds.min_stop_distance_pct, bounds.max_stop_distance_pct],
        "leverage": [1.0, min(bounds.max_leverage, leverage_limit)],
    }


def _conservative(reason: str, attempts: tuple[ResolverAttempt, ...]) -> ResolverOutcome:
    return ResolverOutcome(
        resolution=conservative_resolution(reason),
        resolved_by=CONSERVATIVE_RULE,
        call_id=None,
        clamps=(),
        attempts=attempts,
    )
