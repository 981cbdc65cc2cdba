"""Offline-provider answers for the agents' refinement purposes, so the whole pipeline runs without keys or network.

Each rule reads the baseline the agent put in the request's ``context`` and confirms it: the offline provider
has no judgement to add, and an answer computed from the baseline keeps a replay deterministic. The answer still
goes through the gateway's parsing and validation like any model's.

    build_gateway("offline", settings.llm, call_log=log, clock=clock, offline_rules={**AGENT_OFFLINE_RULES, …})
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import JsonValue

from triplegain.agents.regime import REFINEMENT_PURPOSE as REGIME_REFINEMENT
from triplegain.agents.sentiment import REFINEMENT_PURPOSE as SENTIMENT_REFINEMENT
from triplegain.agents.technical import REFINEMENT_PURPOSE as TECHNICAL_REFINEMENT
from triplegain.llm import LLMRequest, OfflineRule


def _baseline(request: LLMRequest) -> Mapping[str, JsonValue]:
    baseline = request.context.get("baseline")
    if not isinstance(baseline, dict):
        raise ValueError(f"{request.purpose}: the request's context has no baseline to refine")
    return baseline


def _confirmation(request: LLMRequest) -> str:
    symbol = request.context.get("symbol")
    return f"offline refinement of {symbol}: no judgement to add, the baseline is confirmed"


def refine_technical(request: LLMRequest) -> Mapping[str, JsonValue]:
    baseline = _baseline(request)
    return {
        "bias": baseline["bias"],
        "strength": baseline["strength"],
        "confidence": baseline["confidence"],
        "reasoning": _confirmation(request),
    }


def refine_regime(request: LLMRequest) -> Mapping[str, JsonValue]:
    baseline = _baseline(request)
    return {"regime": baseline["regime"], "confidence": baseline["confidence"], "reasoning": _confirmation(request)}


def refine_sentiment(request: LLMRequest) -> Mapping[str, JsonValue]:
    baseline = _baseline(request)
    return {"score": baseline["score"], "confidence": baseline["confidence"], "reasoning": _confirmation(request)}


AGENT_OFFLINE_RULES: Mapping[str, OfflineRule] = {
    TECHNICAL_REFINEMENT: refine_technical,
    REGIME_REFINEMENT: refine_regime,
    SENTIMENT_REFINEMENT: refine_sentiment,
}
"""Purpose → rule, for ``build_gateway(..., offline_rules=...)``."""
