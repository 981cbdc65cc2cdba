"""Conflict rules: each fires exactly at its threshold, with its numbers, and only then."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_consensus import BTC, T0, regime_view, view, views_of
from triplegain.coordinator.conflicts import Conflict, ConflictRule, ConflictSettings, detect_conflicts
from triplegain.coordinator.consensus import SymbolViews
from triplegain.model import AgentName, Bias, RegimeName

ALL_FRESH = views_of(
    view(AgentName.TECHNICAL, Bias.LONG, 0.9),
    view(AgentName.REGIME, Bias.LONG, 0.9),
    view(AgentName.SENTIMENT, Bias.LONG, 0.9),
)
SETTINGS = ConflictSettings()


def rules(conflicts: list[Conflict]) -> list[ConflictRule]:
    return [conflict.rule for conflict in conflicts]


def test_no_conflict_when_all_agree_and_the_cut_is_small() -> None:
    assert detect_conflicts(ALL_FRESH, 0.1, SETTINGS) == []


def opposed(technical: float, sentiment: float) -> SymbolViews:
    return views_of(
        view(AgentName.TECHNICAL, Bias.LONG, technical),
        view(AgentName.REGIME, Bias.LONG, 0.5),
        view(AgentName.SENTIMENT, Bias.SHORT, sentiment),
    )


def test_technical_and_sentiment_opposed_with_close_confidence() -> None:
    settings = ConflictSettings(opposed_max_confidence_gap=0.25)
    [conflict] = detect_conflicts(opposed(0.75, 0.5), 0.0, settings)  # gap exactly at the threshold
    assert conflict.rule is ConflictRule.TECHNICAL_SENTIMENT_OPPOSED
    assert conflict.severity == 0.5
    assert conflict.details == {
        "technical_bias": "long",
        "technical_confidence": 0.75,
        "sentiment_bias": "short",
        "sentiment_confidence": 0.5,
        "confidence_gap": 0.25,
        "threshold": 0.25,
    }
    assert detect_conflicts(opposed(0.8, 0.5), 0.0, settings) == []  # a clear winner is no conflict


def test_a_neutral_side_is_not_opposed() -> None:
    views = views_of(view(AgentName.TECHNICAL, Bias.LONG, 0.5), view(AgentName.SENTIMENT, Bias.NEUTRAL, 0.5))
    assert ConflictRule.TECHNICAL_SENTIMENT_OPPOSED not in rules(detect_conflicts(views, 0.0, SETTINGS))


@given(technical=st.floats(0, 1), sentiment=st.floats(0, 1), threshold=st.floats(0, 1))
def test_the_opposed_rule_fires_iff_the_gap_is_at_most_the_threshold(
    technical: float, sentiment: float, threshold: float
) -> None:
    settings = ConflictSettings(opposed_max_confidence_gap=threshold)
    fired = ConflictRule.TECHNICAL_SENTIMENT_OPPOSED in rules(
        detect_conflicts(opposed(technical, sentiment), 0.0, settings)
    )
    assert fired == (abs(technical - sentiment) <= threshold)


def choppy(confidence: float) -> SymbolViews:
    return views_of(
        view(AgentName.TECHNICAL, Bias.LONG, 0.9),
        regime_view(RegimeName.CHOPPY, confidence),
        view(AgentName.SENTIMENT, Bias.LONG, 0.9),
    )


def test_a_trade_in_a_choppy_regime_from_its_confidence_threshold() -> None:
    settings = ConflictSettings(choppy_min_confidence=0.6)
    [conflict] = detect_conflicts(choppy(0.6), 0.0, settings)
    assert conflict.rule is ConflictRule.CHOPPY_REGIME
    assert conflict.severity == 0.6
    assert conflict.details == {"regime": "choppy", "regime_confidence": 0.6, "threshold": 0.6}
    assert detect_conflicts(choppy(0.59), 0.0, settings) == []


def test_other_neutral_regimes_are_not_choppy() -> None:
    views = views_of(
        view(AgentName.TECHNICAL, Bias.LONG), regime_view(RegimeName.RANGING), view(AgentName.SENTIMENT, Bias.LONG)
    )
    assert detect_conflicts(views, 0.0, SETTINGS) == []


@given(cut=st.floats(0, 1), threshold=st.floats(0.01, 1))
def test_a_risk_cut_conflicts_from_its_threshold(cut: float, threshold: float) -> None:
    conflicts = detect_conflicts(ALL_FRESH, cut, ConflictSettings(risk_cut_threshold=threshold))
    if cut >= threshold:
        assert conflicts == [
            Conflict(
                rule=ConflictRule.RISK_CUT,
                severity=cut,
                summary=conflicts[0].summary,
                details={"cut": cut, "threshold": threshold},
            )
        ]
    else:
        assert conflicts == []


def test_the_cut_must_be_a_fraction() -> None:
    for cut in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError, match="risk_cut"):
            detect_conflicts(ALL_FRESH, cut, SETTINGS)


def test_missing_and_stale_agents_of_a_symbol_about_to_trade() -> None:
    views = SymbolViews(
        BTC,
        T0,
        {AgentName.TECHNICAL: view(AgentName.TECHNICAL, Bias.LONG, 0.9)},
        {AgentName.SENTIMENT: T0 - timedelta(seconds=90)},
    )
    [conflict] = detect_conflicts(views, 0.0, SETTINGS)
    assert conflict.rule is ConflictRule.AGENTS_ABSENT
    assert conflict.severity == pytest.approx(2 / 3)
    assert conflict.details == {
        "missing": ["regime"],
        "stale_seconds": {"sentiment": 90.0},
        "required": ["technical", "regime", "sentiment"],
    }
    assert "regime missing" in conflict.summary
    assert "sentiment stale for 90s" in conflict.summary


def test_only_required_agents_count() -> None:
    settings = ConflictSettings(required_agents=[AgentName.TECHNICAL])
    views = views_of(view(AgentName.TECHNICAL, Bias.LONG, 0.9))
    assert detect_conflicts(views, 0.0, settings) == []
    assert detect_conflicts(views_of(), 0.0, ConflictSettings(required_agents=[])) == []
    with pytest.raises(ValueError, match="twice"):
        ConflictSettings(required_agents=[AgentName.REGIME, AgentName.REGIME])


def test_several_conflicts_come_in_rule_order_and_serialise() -> None:
    views = views_of(view(AgentName.TECHNICAL, Bias.LONG, 0.6), regime_view(RegimeName.CHOPPY, 0.7))
    conflicts = detect_conflicts(views, 0.9, SETTINGS)
    assert rules(conflicts) == [ConflictRule.CHOPPY_REGIME, ConflictRule.RISK_CUT, ConflictRule.AGENTS_ABSENT]
    assert all(0 <= conflict.severity <= 1 for conflict in conflicts)
    restored = [Conflict.model_validate(json.loads(json.dumps(c.model_dump(mode="json")))) for c in conflicts]
    assert restored == conflicts
