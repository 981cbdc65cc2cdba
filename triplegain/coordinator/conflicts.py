"""Conflicts in a trade intent: named rules over the symbol's views and the risk rules' cut, thresholds in config.

A trade intent is long or short; ``detect_conflicts`` is asked once the intent is about to trade. Each rule that
holds is one ``Conflict`` with its numbers and a severity in [0, 1]:

    technical_sentiment_opposed  fresh technical and sentiment views lean opposite ways and
                                 |c_technical − c_sentiment| ≤ opposed_max_confidence_gap
                                 severity min(c_technical, c_sentiment): how sure the less sure side is
    choppy_regime                the fresh regime view is choppy with confidence ≥ choppy_min_confidence
                                 severity: that confidence
    risk_cut                     the risk rules cut the size by a fraction ≥ risk_cut_threshold
                                 severity: the cut
    agents_absent                an agent of required_agents has no fresh view (missing, or stale)
                                 severity: absent agents / required agents

Rules are checked in that order, and the list keeps it.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from triplegain.agents.regime import RegimeView
from triplegain.agents.sentiment import SentimentView
from triplegain.agents.technical import TechnicalView
from triplegain.coordinator.consensus import SymbolViews
from triplegain.model import AgentName, Bias, RegimeName
from triplegain.section import Section


class ConflictRule(StrEnum):
    TECHNICAL_SENTIMENT_OPPOSED = "technical_sentiment_opposed"
    CHOPPY_REGIME = "choppy_regime"
    RISK_CUT = "risk_cut"
    AGENTS_ABSENT = "agents_absent"


class ConflictSettings(Section):
    """Thresholds of the conflict rules; a conflict sends the intent to the resolver chain."""

    opposed_max_confidence_gap: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="technical and sentiment leaning opposite ways conflict when their confidences differ by at most "
        "this",
    )
    choppy_min_confidence: float = Field(
        default=0.0, ge=0, le=1, description="a choppy regime conflicts with a trade from this regime confidence up"
    )
    risk_cut_threshold: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="the risk rules cutting the size by at least this fraction (0–1) of the intended size conflict",
    )
    required_agents: list[AgentName] = Field(
        default_factory=lambda: [AgentName.TECHNICAL, AgentName.REGIME, AgentName.SENTIMENT],
        description="agents that must have a fresh view of a symbol about to trade; empty: none",
    )

    @model_validator(mode="after")
    def _distinct_agents(self) -> Self:
        if len(set(self.required_agents)) != len(self.required_agents):
            raise ValueError(f"required_agents lists an agent twice: {[a.value for a in self.required_agents]}")
        return self


class Conflict(BaseModel):
    """One rule that held, with the numbers that made it hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: ConflictRule = Field(description="which rule")
    severity: float = Field(ge=0, le=1, description="how serious, 0–1 (see the module docstring)")
    summary: str = Field(description="the conflict in words")
    details: dict[str, JsonValue] = Field(description="the values compared and the threshold")


def detect_conflicts(views: SymbolViews, risk_cut: float, settings: ConflictSettings) -> list[Conflict]:
    """The conflicts of a trade intent on ``views.symbol``; ``risk_cut`` is the fraction (0–1) the risk rules cut."""
    if not (math.isfinite(risk_cut) and 0 <= risk_cut <= 1):
        raise ValueError(f"risk_cut must be a fraction in [0, 1], got {risk_cut}")
    found = [
        _technical_sentiment_opposed(views, settings),
        _choppy_regime(views, settings),
        _risk_cut(risk_cut, settings),
        _agents_absent(views, settings),
    ]
    return [conflict for conflict in found if conflict is not None]


def _technical_sentiment_opposed(views: SymbolViews, settings: ConflictSettings) -> Conflict | None:
    technical = views.fresh.get(AgentName.TECHNICAL)
    sentiment = views.fresh.get(AgentName.SENTIMENT)
    if technical is None or sentiment is None:
        return None
    if not isinstance(technical.body, TechnicalView) or not isinstance(sentiment.body, SentimentView):
        return None
    biases = {technical.body.bias, sentiment.body.bias}
    gap = abs(technical.confidence - sentiment.confidence)
    threshold = settings.opposed_max_confidence_gap
    if biases != {Bias.LONG, Bias.SHORT} or gap > threshold:
        return None
    return Conflict(
        rule=ConflictRule.TECHNICAL_SENTIMENT_OPPOSED,
        severity=min(technical.confidence, sentiment.confidence),
        summary=f"technical leans {technical.body.bias.value} ({technical.confidence:.2f}) and sentiment "
        f"{sentiment.body.bias.value} ({sentiment.confidence:.2f}), confidence gap {gap:.2f} ≤ {threshold:.2f}",
        details={
            "technical_bias": technical.body.bias.value,
            "technical_confidence": technical.confidence,
            "sentiment_bias": sentiment.body.bias.value,
            "sentiment_confidence": sentiment.confidence,
            "confidence_gap": gap,
            "threshold": threshold,
        },
    )


def _choppy_regime(views: SymbolViews, settings: ConflictSettings) -> Conflict | None:
    regime = views.fresh.get(AgentName.REGIME)
    if regime is None or not isinstance(regime.body, RegimeView) or regime.body.regime is not RegimeName.CHOPPY:
        return None
    threshold = settings.choppy_min_confidence
    if regime.confidence < threshold:
        return None
    return Conflict(
        rule=ConflictRule.CHOPPY_REGIME,
        severity=regime.confidence,
        summary=f"a directional trade in a choppy regime (confidence {regime.confidence:.2f} ≥ {threshold:.2f})",
        details={"regime": regime.body.regime.value, "regime_confidence": regime.confidence, "threshold": threshold},
    )


def _risk_cut(cut: float, settings: ConflictSettings) -> Conflict | None:
    threshold = settings.risk_cut_threshold
    if cut < threshold:
        return None
    return Conflict(
        rule=ConflictRule.RISK_CUT,
        severity=cut,
        summary=f"the risk rules cut the size by {cut:.0%} (≥ {threshold:.0%})",
        details={"cut": cut, "threshold": threshold},
    )


def _agents_absent(views: SymbolViews, settings: ConflictSettings) -> Conflict | None:
    required = settings.required_agents
    missing = [agent for agent in required if agent not in views.fresh and agent not in views.stale]
    stale = {agent: views.stale[agent] for agent in required if agent in views.stale}
    if not missing and not stale:
        return None
    expired_ago = {agent.value: (views.as_of - until).total_seconds() for agent, until in stale.items()}
    described = [f"{agent.value} missing" for agent in missing]
    described += [f"{name} stale for {seconds:.0f}s" for name, seconds in expired_ago.items()]
    return Conflict(
        rule=ConflictRule.AGENTS_ABSENT,
        severity=(len(missing) + len(stale)) / len(required),
        summary=f"{views.symbol} is about to trade without fresh views: {', '.join(described)}",
        details={
            "missing": [agent.value for agent in missing],
            "stale_seconds": expired_ago,
            "required": [agent.value for agent in required],
        },
    )
