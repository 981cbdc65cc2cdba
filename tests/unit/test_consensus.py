"""The signal book (freshest view per symbol and agent, expiry) and the consensus formula, with its properties."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triplegain.agents import AgentOutput, RegimeMeasures, RegimeView, SentimentView, TechnicalView
from triplegain.coordinator.consensus import (
    AgentView,
    ConsensusSettings,
    ConsensusWeights,
    SignalBook,
    Stance,
    SymbolViews,
    consensus,
)
from triplegain.market import Timeframe
from triplegain.model import AgentName, Bias, RegimeName

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BTC = "BTC/USDT"
SETTINGS = ConsensusSettings()
DIRECTIONAL_AGENTS = (AgentName.TECHNICAL, AgentName.REGIME, AgentName.SENTIMENT)
REGIME_OF = {
    Bias.LONG: RegimeName.TRENDING_BULL,
    Bias.SHORT: RegimeName.VOLATILE_BEAR,
    Bias.NEUTRAL: RegimeName.RANGING,
}


def view(agent: AgentName, bias: Bias, confidence: float = 0.8, symbol: str = BTC, at: datetime = T0) -> AgentView:
    """A technical, regime or sentiment view leaning ``bias`` (regime: a regime that leans that way)."""
    if agent is AgentName.TECHNICAL:
        technical = TechnicalView(
            bias=bias, strength=0.5, timeframe_agreement=1.0, price=100.0, support=(), resistance=(), timeframes=()
        )
        return AgentOutput[TechnicalView](
            agent=agent, symbol=symbol, timestamp=at, confidence=confidence, body=technical, reasoning="t"
        )
    if agent is AgentName.REGIME:
        return regime_view(REGIME_OF[bias], confidence, symbol, at)
    sentiment = SentimentView(
        bias=bias, score=0.0, items_considered=0, items_opinionated=0, evidence=0.0, agreement=1.0, drivers=()
    )
    return AgentOutput[SentimentView](
        agent=agent, symbol=symbol, timestamp=at, confidence=confidence, body=sentiment, reasoning="s"
    )


def regime_view(regime: RegimeName, confidence: float = 0.8, symbol: str = BTC, at: datetime = T0) -> AgentView:
    nothing = RegimeMeasures(
        adx=None, plus_di=None, minus_di=None, ema_slope=None, bandwidth=None, bandwidth_ratio=None, volatility=None
    )
    body = RegimeView(
        regime=regime,
        since=at,
        detected=regime,
        detected_confidence=confidence,
        pending=None,
        pending_count=0,
        confirmations=2,
        timeframe=Timeframe.M5,
        measures=nothing,
        technical_bias=None,
    )
    return AgentOutput[RegimeView](
        agent=AgentName.REGIME, symbol=symbol, timestamp=at, confidence=confidence, body=body, reasoning="r"
    )


def views_of(*outputs: AgentView) -> SymbolViews:
    return SymbolViews(BTC, T0, {output.agent: output for output in outputs})


# -------------------------------------------------------------------------------------------- signal book


def test_the_book_keeps_the_freshest_view_per_symbol_and_agent() -> None:
    older = view(AgentName.TECHNICAL, Bias.LONG, at=T0)
    newer = view(AgentName.TECHNICAL, Bias.SHORT, at=T0 + timedelta(minutes=5))
    book = SignalBook().with_view(older, T0 + timedelta(minutes=10)).with_view(newer, T0 + timedelta(minutes=15))
    assert book.views(BTC, T0 + timedelta(minutes=6)).fresh == {AgentName.TECHNICAL: newer}
    late = book.with_view(older, T0 + timedelta(minutes=10))  # an older view delivered late replaces nothing
    assert late.views(BTC, T0 + timedelta(minutes=6)).fresh == {AgentName.TECHNICAL: newer}


def test_the_book_is_immutable() -> None:
    empty = SignalBook()
    empty.with_view(view(AgentName.TECHNICAL, Bias.LONG), T0 + timedelta(minutes=5))
    assert empty.entries == {}


def test_expired_views_are_stale_from_their_valid_until() -> None:
    until = T0 + timedelta(minutes=5)
    book = SignalBook().with_view(view(AgentName.SENTIMENT, Bias.LONG), until)
    assert AgentName.SENTIMENT in book.views(BTC, until - timedelta(microseconds=1)).fresh
    at_expiry = book.views(BTC, until)
    assert at_expiry.fresh == {}
    assert at_expiry.stale == {AgentName.SENTIMENT: until}
    assert book.without_expired(until).entries == {}
    assert book.without_expired(until - timedelta(seconds=1)) == book


def test_asking_for_a_symbol_never_returns_another_symbols_view() -> None:
    book = (
        SignalBook()
        .with_view(view(AgentName.TECHNICAL, Bias.LONG, symbol="XRP/USDT"), T0 + timedelta(hours=1))
        .with_view(view(AgentName.REGIME, Bias.SHORT, symbol=BTC), T0 + timedelta(hours=1))
    )
    btc = book.views(BTC, T0)
    assert set(btc.fresh) == {AgentName.REGIME}
    assert all(output.symbol == BTC for output in btc.fresh.values())
    assert book.views("ETH/USDT", T0) == SymbolViews("ETH/USDT", T0)


def test_a_view_without_a_symbol_is_refused() -> None:
    whole = view(AgentName.TECHNICAL, Bias.LONG).model_copy(update={"symbol": None})
    with pytest.raises(ValueError, match="no symbol"):
        SignalBook().with_view(whole, T0)


def test_symbol_views_refuse_a_view_of_another_symbol_or_agent() -> None:
    with pytest.raises(ValueError, match="XRP"):
        SymbolViews(BTC, T0, {AgentName.TECHNICAL: view(AgentName.TECHNICAL, Bias.LONG, symbol="XRP/USDT")})
    with pytest.raises(ValueError, match="filed as regime"):
        SymbolViews(BTC, T0, {AgentName.REGIME: view(AgentName.TECHNICAL, Bias.LONG)})


# ---------------------------------------------------------------------------------------------- consensus


def test_the_formula_with_every_term_recorded() -> None:
    views = views_of(
        view(AgentName.TECHNICAL, Bias.LONG, 0.8),
        view(AgentName.REGIME, Bias.SHORT, 0.5),
        view(AgentName.SENTIMENT, Bias.NEUTRAL, 0.4),
    )
    result = consensus(Bias.LONG, 0.6, views, SETTINGS)
    total = 1.0 + 0.7 + 0.5
    assert result.support == pytest.approx(0.8 / total)
    assert result.opposition == pytest.approx(0.7 * 0.5 / total)
    assert result.neutrality == pytest.approx(0.5 * 0.4 / total)
    assert result.boost == pytest.approx(0.2 * result.support)
    assert result.penalty == pytest.approx(0.3 * (result.opposition + 0.25 * result.neutrality))
    assert result.confidence == pytest.approx(0.6 + result.boost - result.penalty)
    assert [(i.agent, i.stance) for i in result.inputs] == [
        (AgentName.REGIME, Stance.OPPOSES),
        (AgentName.SENTIMENT, Stance.NEUTRAL),
        (AgentName.TECHNICAL, Stance.AGREES),
    ]
    assert result.absent == ()
    assert result.settings == SETTINGS
    dumped = json.loads(json.dumps(result.model_dump(mode="json")))
    assert dumped["inputs"][0]["direction"] == "short"
    assert dumped["settings"]["agreement_boost"] == 0.2


@pytest.mark.parametrize(
    ("regime", "stance"),
    [
        (RegimeName.TRENDING_BULL, Stance.AGREES),
        (RegimeName.VOLATILE_BULL, Stance.AGREES),
        (RegimeName.TRENDING_BEAR, Stance.OPPOSES),
        (RegimeName.VOLATILE_BEAR, Stance.OPPOSES),
        (RegimeName.RANGING, Stance.NEUTRAL),
        (RegimeName.CHOPPY, Stance.NEUTRAL),
        (RegimeName.BREAKOUT_POTENTIAL, Stance.NEUTRAL),
    ],
)
def test_the_regime_leans_with_its_trend(regime: RegimeName, stance: Stance) -> None:
    result = consensus(Bias.LONG, 0.5, views_of(regime_view(regime)), SETTINGS)
    assert result.inputs[0].stance is stance


def test_all_agreeing_at_full_confidence_adds_exactly_the_boost() -> None:
    views = views_of(*(view(agent, Bias.SHORT, 1.0) for agent in DIRECTIONAL_AGENTS))
    assert consensus(Bias.SHORT, 0.5, views, SETTINGS).confidence == pytest.approx(0.7)


def test_no_fresh_view_leaves_the_confidence_and_names_the_absent() -> None:
    result = consensus(Bias.LONG, 0.55, views_of(), SETTINGS)
    assert result.confidence == 0.55
    assert result.absent == (AgentName.TECHNICAL, AgentName.REGIME, AgentName.SENTIMENT)


def test_an_agent_weighted_zero_counts_for_nothing() -> None:
    settings = ConsensusSettings(weights=ConsensusWeights(sentiment=0.0))
    result = consensus(Bias.LONG, 0.5, views_of(view(AgentName.SENTIMENT, Bias.SHORT, 1.0)), settings)
    assert result.confidence == 0.5
    assert AgentName.SENTIMENT not in result.absent


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="neutral"):
        consensus(Bias.NEUTRAL, 0.5, views_of(), SETTINGS)
    with pytest.raises(ValueError, match="base_confidence"):
        consensus(Bias.LONG, 1.5, views_of(), SETTINGS)
    with pytest.raises(ValueError, match="at least one weight"):
        ConsensusWeights(technical=0, regime=0, sentiment=0)


# --------------------------------------------------------------------------------------------- properties

unit = st.floats(min_value=0, max_value=1)
sides = st.sampled_from([Bias.LONG, Bias.SHORT])
leanings = st.dictionaries(
    st.sampled_from(DIRECTIONAL_AGENTS), st.tuples(st.sampled_from(list(Bias)), unit), max_size=3
)
settings_st = st.builds(
    ConsensusSettings,
    weights=st.builds(ConsensusWeights, technical=unit, regime=unit, sentiment=st.floats(0.01, 1)),
    agreement_boost=unit,
    disagreement_penalty=unit,
    neutral_weight=unit,
)


def outputs_of(leaning: dict[AgentName, tuple[Bias, float]], symbol: str = BTC) -> list[AgentView]:
    return [view(agent, bias, confidence, symbol) for agent, (bias, confidence) in leaning.items()]


@given(direction=sides, base=unit, leaning=leanings, settings=settings_st)
def test_the_result_is_always_within_0_and_1(
    direction: Bias, base: float, leaning: dict[AgentName, tuple[Bias, float]], settings: ConsensusSettings
) -> None:
    result = consensus(direction, base, views_of(*outputs_of(leaning)), settings)
    assert 0 <= result.confidence <= 1
    assert result.confidence == min(1.0, max(0.0, result.unbounded))


@given(
    direction=sides,
    base=unit,
    leaning=leanings,
    added=st.sampled_from(DIRECTIONAL_AGENTS),
    confidence=unit,
    agrees=st.booleans(),
    settings=settings_st,
)
def test_an_agreeing_view_never_lowers_and_an_opposing_one_never_raises(
    direction: Bias,
    base: float,
    leaning: dict[AgentName, tuple[Bias, float]],
    added: AgentName,
    confidence: float,
    agrees: bool,
    settings: ConsensusSettings,
) -> None:
    leaning.pop(added, None)
    before = consensus(direction, base, views_of(*outputs_of(leaning)), settings).confidence
    opposite = Bias.SHORT if direction is Bias.LONG else Bias.LONG
    extra = view(added, direction if agrees else opposite, confidence)
    after = consensus(direction, base, views_of(*outputs_of(leaning), extra), settings).confidence
    assert after >= before if agrees else after <= before


@given(
    direction=sides,
    base=unit,
    leaning=leanings,
    others=st.lists(st.tuples(st.sampled_from(["ETH/USDT", "XRP/USDT"]), leanings), max_size=4),
)
def test_views_of_other_symbols_never_change_a_symbols_consensus(
    direction: Bias,
    base: float,
    leaning: dict[AgentName, tuple[Bias, float]],
    others: list[tuple[str, dict[AgentName, tuple[Bias, float]]]],
) -> None:
    until = T0 + timedelta(minutes=30)
    book = SignalBook()
    for output in outputs_of(leaning):
        book = book.with_view(output, until)
    alone = consensus(direction, base, book.views(BTC, T0), SETTINGS)
    for symbol, other in others:
        for output in outputs_of(other, symbol):
            book = book.with_view(output, until)
    assert consensus(direction, base, book.views(BTC, T0), SETTINGS) == alone
