"""The signal book (each agent's freshest view per symbol) and the consensus of those views on a trade intent.

Signal book: ``SignalBook.with_view`` keeps, per (symbol, agent), the view with the latest timestamp together with
the time it stops being valid (its message's expiry: timestamp + the agent's ``valid_for``); an older view that
arrives late does not replace a newer one. ``book.views(symbol, now)`` is that symbol's views only: the fresh ones
(``now`` before their valid-until) and, by agent, when the stale ones expired. Updates return a new book.

Consensus (``consensus``), for an intent to go long or short with a base confidence, over the symbol's fresh views.
Each directional agent's view leans one way: technical and sentiment by their bias; regime long for trending_bull
and volatile_bull, short for trending_bear and volatile_bear, neutral otherwise. The portfolio agent's view has no
direction and takes no part. With wᵢ the agent's weight, cᵢ its view's confidence and W the sum of all weights:

    support     = Σ wᵢ·cᵢ over the views leaning the intent's way / W
    opposition  = Σ wᵢ·cᵢ over the views leaning the other way  / W
    neutrality  = Σ wᵢ·cᵢ over the neutral views                 / W
    boost       = agreement_boost · support
    penalty     = disagreement_penalty · (opposition + neutral_weight · neutrality)
    confidence  = min(1, max(0, base_confidence + boost − penalty))

W counts every weighted agent, present or not, so a missing view adds nothing rather than inflating the others:
all agents agreeing at full confidence add exactly ``agreement_boost``. Each view only ever adds to one sum, so an
agreeing view never lowers the confidence and an opposing one never raises it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from triplegain.agents.base import AgentOutput
from triplegain.agents.portfolio import PortfolioView
from triplegain.agents.regime import REGIME_DIRECTION, RegimeView
from triplegain.agents.sentiment import SentimentView
from triplegain.agents.technical import TechnicalView
from triplegain.model import AgentName, Bias
from triplegain.section import Section

AgentView = (
    AgentOutput[TechnicalView] | AgentOutput[RegimeView] | AgentOutput[SentimentView] | AgentOutput[PortfolioView]
)
"""Any agent's output, as the coordinator receives it from the bus."""

# ---------------------------------------------------------------------------------------------- signal book


@dataclass(frozen=True, slots=True)
class BookEntry:
    """An agent's latest view of a symbol and the moment it stops being valid."""

    view: AgentView
    valid_until: datetime


@dataclass(frozen=True, slots=True)
class SymbolViews:
    """One symbol's views at ``as_of``: the fresh ones by agent, and when each stale one expired."""

    symbol: str
    as_of: datetime
    fresh: Mapping[AgentName, AgentView] = field(default_factory=dict)
    stale: Mapping[AgentName, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for agent, view in self.fresh.items():
            if view.agent is not agent or view.symbol != self.symbol:
                raise ValueError(
                    f"a {view.agent.value} view of {view.symbol!r} filed as {agent.value}'s view of {self.symbol!r}"
                )
        both = set(self.fresh) & set(self.stale)
        if both:
            raise ValueError(f"agents both fresh and stale: {', '.join(sorted(both))}")


@dataclass(frozen=True, slots=True)
class SignalBook:
    """The freshest view of each agent per symbol; ``with_view`` and ``without_expired`` return a new book."""

    entries: Mapping[tuple[str, AgentName], BookEntry] = field(default_factory=dict)

    def with_view(self, view: AgentView, valid_until: datetime) -> SignalBook:
        """The book with ``view`` as its agent's view of its symbol, unless the book holds a newer one."""
        if view.symbol is None:
            raise ValueError(f"a whole-portfolio {view.agent.value} view has no symbol to file it under")
        key = (view.symbol, view.agent)
        current = self.entries.get(key)
        if current is not None and current.view.timestamp > view.timestamp:
            return self
        return SignalBook({**self.entries, key: BookEntry(view, valid_until)})

    def views(self, symbol: str, now: datetime) -> SymbolViews:
        """``symbol``'s views at ``now``; no other symbol's view is ever among them."""
        fresh: dict[AgentName, AgentView] = {}
        stale: dict[AgentName, datetime] = {}
        for (entry_symbol, agent), entry in self.entries.items():
            if entry_symbol != symbol:
                continue
            if now < entry.valid_until:
                fresh[agent] = entry.view
            else:
                stale[agent] = entry.valid_until
        return SymbolViews(symbol, now, fresh, stale)

    def without_expired(self, now: datetime) -> SignalBook:
        """The book without the views no longer valid at ``now``."""
        return SignalBook({key: entry for key, entry in self.entries.items() if now < entry.valid_until})


# ----------------------------------------------------------------------------------------------- settings


class ConsensusWeights(Section):
    """How much each directional agent's view counts (only ratios matter: terms are divided by their sum)."""

    technical: float = Field(default=1.0, ge=0, description="weight of the technical agent's view")
    regime: float = Field(default=0.7, ge=0, description="weight of the regime agent's view")
    sentiment: float = Field(default=0.5, ge=0, description="weight of the sentiment agent's view")

    @model_validator(mode="after")
    def _some_weight(self) -> Self:
        if self.total <= 0:
            raise ValueError("at least one weight must be > 0")
        return self

    @property
    def total(self) -> float:
        return self.technical + self.regime + self.sentiment

    def of(self, agent: AgentName) -> float:
        """The weight of ``agent``; 0 for the portfolio agent, whose view has no direction."""
        return {
            AgentName.TECHNICAL: self.technical,
            AgentName.REGIME: self.regime,
            AgentName.SENTIMENT: self.sentiment,
        }.get(agent, 0.0)


class ConsensusSettings(Section):
    """Constants of the consensus formula: agreement among fresh views raises an intent's confidence."""

    weights: ConsensusWeights = Field(default_factory=ConsensusWeights, description="per-agent weights")
    agreement_boost: float = Field(
        default=0.2, ge=0, le=1, description="confidence added when every agent agrees at full confidence"
    )
    disagreement_penalty: float = Field(
        default=0.3, ge=0, le=1, description="confidence removed when every agent opposes at full confidence"
    )
    neutral_weight: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="how much a neutral view counts against the intent, as a fraction of an opposing one (0: not)",
    )


# ------------------------------------------------------------------------------------------------ consensus


class Stance(StrEnum):
    """A view's stance on an intent."""

    AGREES = "agrees"
    OPPOSES = "opposes"
    NEUTRAL = "neutral"


class ConsensusInput(BaseModel):
    """One fresh view as it entered the formula."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: AgentName = Field(description="whose view")
    output_id: UUID = Field(description="the agent output's id")
    direction: Bias = Field(description="which way the view leans")
    confidence: float = Field(ge=0, le=1, description="the view's confidence")
    weight: float = Field(ge=0, description="the agent's weight")
    stance: Stance = Field(description="whether it leans the intent's way, the other way, or neither")


class ConsensusResult(BaseModel):
    """Everything needed to recompute an intent's consensus: stored with its decision (``model_dump(mode="json")``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field(description="the intent's market")
    direction: Bias = Field(description="the intent's direction")
    base_confidence: float = Field(ge=0, le=1, description="the intent's confidence before consensus")
    inputs: tuple[ConsensusInput, ...] = Field(description="the fresh directional views used")
    absent: tuple[AgentName, ...] = Field(description="weighted agents with no fresh view")
    support: float = Field(ge=0, le=1, description="Σ w·c of agreeing views / Σ all weights")
    opposition: float = Field(ge=0, le=1, description="Σ w·c of opposing views / Σ all weights")
    neutrality: float = Field(ge=0, le=1, description="Σ w·c of neutral views / Σ all weights")
    boost: float = Field(ge=0, description="agreement_boost · support")
    penalty: float = Field(ge=0, description="disagreement_penalty · (opposition + neutral_weight · neutrality)")
    unbounded: float = Field(description="base_confidence + boost − penalty")
    confidence: float = Field(ge=0, le=1, description="the result, bounded to [0, 1]")
    settings: ConsensusSettings = Field(description="the constants used")


def view_direction(view: AgentView) -> Bias | None:
    """Which way a view leans; None for a view without a direction (the portfolio agent's)."""
    body = view.body
    if isinstance(body, TechnicalView | SentimentView):
        return body.bias
    if isinstance(body, RegimeView):
        return REGIME_DIRECTION.get(body.regime, Bias.NEUTRAL)
    return None


def stance_of(direction: Bias, intent: Bias) -> Stance:
    if direction is Bias.NEUTRAL:
        return Stance.NEUTRAL
    return Stance.AGREES if direction is intent else Stance.OPPOSES


def consensus(
    direction: Bias, base_confidence: float, views: SymbolViews, settings: ConsensusSettings
) -> ConsensusResult:
    """The confidence of an intent on ``views.symbol`` after weighing its fresh views (see the module docstring)."""
    if direction is Bias.NEUTRAL:
        raise ValueError("a trade intent goes long or short; neutral has no consensus")
    if not (math.isfinite(base_confidence) and 0 <= base_confidence <= 1):
        raise ValueError(f"base_confidence must be in [0, 1], got {base_confidence}")
    weights = settings.weights
    inputs: list[ConsensusInput] = []
    sums = dict.fromkeys(Stance, 0.0)
    for agent, view in sorted(views.fresh.items()):
        view_bias = view_direction(view)
        if view_bias is None:
            continue
        stance = stance_of(view_bias, direction)
        weight = weights.of(agent)
        sums[stance] += weight * view.confidence
        inputs.append(
            ConsensusInput(
                agent=agent,
                output_id=view.id,
                direction=view_bias,
                confidence=view.confidence,
                weight=weight,
                stance=stance,
            )
        )
    support, opposition, neutrality = (
        min(1.0, sums[stance] / weights.total) for stance in (Stance.AGREES, Stance.OPPOSES, Stance.NEUTRAL)
    )  # min: float rounding only, each sum is at most the total weight
    boost = settings.agreement_boost * support
    penalty = settings.disagreement_penalty * (opposition + settings.neutral_weight * neutrality)
    unbounded = base_confidence + boost - penalty
    absent = tuple(agent for agent in AgentName if weights.of(agent) > 0 and agent not in views.fresh)
    return ConsensusResult(
        symbol=views.symbol,
        direction=direction,
        base_confidence=base_confidence,
        inputs=tuple(inputs),
        absent=absent,
        support=support,
        opposition=opposition,
        neutrality=neutrality,
        boost=boost,
        penalty=penalty,
        unbounded=unbounded,
        confidence=min(1.0, max(0.0, unbounded)),
        settings=settings,
    )
