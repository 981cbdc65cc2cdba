"""The decision core: intent, gates, risk, conflicts, the resolver's answer and the commit-time confirmation."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_consensus import BTC, T0, regime_view, view, views_of
from triplegain.agents.technical import Components, IndicatorsUsed, TechnicalView, TimeframeReading
from triplegain.coordinator.breaker import PortfolioBreakerState, Trip
from triplegain.coordinator.conflicts import ConflictRule, ConflictSettings
from triplegain.coordinator.consensus import AgentView, ConsensusSettings, SymbolViews
from triplegain.coordinator.decision import Decision, DecisionContext, DecisionRules, assess, confirm, settle
from triplegain.coordinator.degradation import DegradationSettings
from triplegain.coordinator.intent import IntentSettings
from triplegain.coordinator.resolution import BoundedResolution, ResolutionBounds, conservative_resolution
from triplegain.coordinator.resolver import CONSERVATIVE_RULE, ResolverOutcome
from triplegain.market import Timeframe
from triplegain.model import (
    AccountSnapshot,
    AgentName,
    Bias,
    BreakerAction,
    BreakerRule,
    CoordinatorState,
    DecisionAction,
    DegradationLevel,
    RegimeName,
    ResolutionAction,
)
from triplegain.risk import RiskSettings

pytestmark = pytest.mark.timeout(60)

RULES = DecisionRules(
    consensus=ConsensusSettings(),
    conflicts=ConflictSettings(),
    bounds=ResolutionBounds(),
    intent=IntentSettings(),
    degradation=DegradationSettings(),
    risk=RiskSettings(),
)
ACCOUNT = AccountSnapshot(equity=10_000.0, cash=10_000.0, now=T0)
AGREEING = views_of(
    view(AgentName.TECHNICAL, Bias.LONG, 0.8),
    view(AgentName.REGIME, Bias.LONG, 0.8),
    view(AgentName.SENTIMENT, Bias.LONG, 0.8),
)


def context(
    views: SymbolViews = AGREEING,
    *,
    state: CoordinatorState = CoordinatorState.RUNNING,
    level: DegradationLevel = DegradationLevel.NORMAL,
    breaker: PortfolioBreakerState | None = None,
    account: AccountSnapshot = ACCOUNT,
) -> DecisionContext:
    return DecisionContext(
        symbol=views.symbol,
        at=T0,
        state=state,
        level=level,
        breaker=breaker or PortfolioBreakerState(),
        views=views,
        account=account,
    )


def decided(ctx: DecisionContext, rules: DecisionRules = RULES) -> Decision:
    decision = assess(ctx, rules)
    assert decision is not None
    return decision


def outcome(action: ResolutionAction, **changes: float) -> ResolverOutcome:
    resolution = BoundedResolution(
        action=action,
        confidence=0.6,
        reasoning="test answer",
        size_reduction_pct=changes.get("size_reduction_pct", 0.0),
        stop_distance_pct=changes.get("stop_distance_pct"),
        leverage=changes.get("leverage"),
    )
    return ResolverOutcome(
        resolution=resolution, resolved_by="deepseek/deepseek-chat", call_id=uuid4(), clamps=(), attempts=()
    )


def test_no_intent_without_a_leaning_technical_view() -> None:
    assert assess(context(views_of(view(AgentName.REGIME, Bias.LONG))), RULES) is None
    assert assess(context(views_of(view(AgentName.TECHNICAL, Bias.NEUTRAL))), RULES) is None


def test_agreement_trades_the_risk_size_with_a_stop_and_target_on_either_side() -> None:
    decision = decided(context())
    assert decision.action is DecisionAction.BUY
    assert decision.risk is not None
    assert decision.risk.approved
    assert decision.notional == pytest.approx(decision.risk.notional)
    assert decision.quantity == pytest.approx(decision.notional / decision.intent.entry_price)
    assert decision.intent.stop_price < decision.intent.entry_price < decision.intent.target_price
    assert decision.confidence == decision.consensus.confidence > decision.intent.base_confidence
    assert decision.conflicts == ()
    assert "risk rules approve" in decision.reason


SHORT = views_of(
    view(AgentName.TECHNICAL, Bias.SHORT, 0.8),
    view(AgentName.REGIME, Bias.SHORT, 0.8),
    view(AgentName.SENTIMENT, Bias.SHORT, 0.8),
)
SHORTING = dataclasses.replace(RULES, can_short=True)


def test_with_borrowing_a_short_sells_with_the_stop_above_entry() -> None:
    decision = decided(context(SHORT), SHORTING)
    assert decision.action is DecisionAction.SELL
    assert not decision.closes_position
    assert decision.intent.target_price < decision.intent.entry_price < decision.intent.stop_price


def test_on_spot_a_short_lean_closes_the_long_held_or_decides_nothing() -> None:
    assert assess(context(SHORT), RULES) is None  # nothing held, nothing to sell
    held = dataclasses.replace(context(SHORT), held=0.25)
    decision = decided(held)
    assert (decision.action, decision.closes_position, decision.quantity) == (DecisionAction.SELL, True, 0.25)
    assert decision.risk is None
    assert "closing the long of 0.25" in decision.reason


@pytest.mark.parametrize(
    ("state", "level", "sells"),
    [
        (CoordinatorState.PAUSED, DegradationLevel.NORMAL, True),
        (CoordinatorState.RUNNING, DegradationLevel.EMERGENCY, True),
        (CoordinatorState.HALTED, DegradationLevel.NORMAL, False),
    ],
)
def test_exits_run_while_paused_and_at_emergency_but_not_halted(
    state: CoordinatorState, level: DegradationLevel, sells: bool
) -> None:
    decision = decided(dataclasses.replace(context(SHORT, state=state, level=level), held=1.0))
    assert decision.trades is sells
    assert confirm(decision, CoordinatorState.PAUSED).trades is sells
    assert not confirm(decision, CoordinatorState.HALTED).trades


@pytest.mark.parametrize("state", [CoordinatorState.PAUSED, CoordinatorState.HALTED])
def test_only_running_opens_positions(state: CoordinatorState) -> None:
    decision = decided(context(state=state))
    assert decision.action is DecisionAction.HOLD
    assert state.value in decision.reason
    assert decision.risk is None
    assert decision.quantity == 0


def test_an_active_breaker_trip_holds() -> None:
    trip = Trip(
        rule=BreakerRule.DAILY_LOSS,
        action=BreakerAction.PAUSE,
        at=T0,
        until=T0 + timedelta(hours=1),
        measured=6.0,
        threshold=5.0,
        equity=9_400.0,
        reference_equity=10_000.0,
        reason="daily_loss 6.00% reached 5%",
    )
    decision = decided(context(breaker=PortfolioBreakerState(trips=(trip,))))
    assert decision.action is DecisionAction.HOLD
    assert "circuit breaker" in decision.reason
    assert "daily_loss" in decision.reason


def test_emergency_opens_nothing() -> None:
    decision = decided(context(level=DegradationLevel.EMERGENCY))
    assert decision.action is DecisionAction.HOLD
    assert decision.reason == "degradation EMERGENCY: no new exposure"


def test_limited_halves_the_size_and_needs_higher_confidence() -> None:
    normal = decided(context())
    limited = decided(context(level=DegradationLevel.LIMITED))
    assert limited.action is DecisionAction.BUY
    assert limited.size_multiplier == 0.5
    assert limited.notional == pytest.approx(normal.notional / 2)
    weak = views_of(
        view(AgentName.TECHNICAL, Bias.LONG, 0.5),
        view(AgentName.REGIME, Bias.LONG, 0.5),
        view(AgentName.SENTIMENT, Bias.LONG, 0.5),
    )
    held = decided(context(weak, level=DegradationLevel.LIMITED))
    assert held.action is DecisionAction.HOLD
    assert "required at LIMITED" in held.reason


def test_reduced_leaves_sentiment_out_of_consensus_and_conflicts() -> None:
    without_sentiment = views_of(view(AgentName.TECHNICAL, Bias.LONG, 0.8), view(AgentName.REGIME, Bias.LONG, 0.8))
    with_opposed_sentiment = views_of(
        view(AgentName.TECHNICAL, Bias.LONG, 0.8),
        view(AgentName.REGIME, Bias.LONG, 0.8),
        view(AgentName.SENTIMENT, Bias.SHORT, 0.8),
    )
    reduced = decided(context(with_opposed_sentiment, level=DegradationLevel.REDUCED))
    assert reduced.views_used == (AgentName.REGIME, AgentName.TECHNICAL)
    assert reduced.conflicts == ()  # neither the opposed sentiment nor its absence conflicts
    assert reduced.action is DecisionAction.BUY
    assert (
        reduced.consensus.confidence == decided(context(without_sentiment, level=DegradationLevel.REDUCED)).confidence
    )
    assert ConflictRule.AGENTS_ABSENT in [c.rule for c in decided(context(without_sentiment)).conflicts]


def choppy_views() -> SymbolViews:
    return views_of(
        view(AgentName.TECHNICAL, Bias.LONG, 0.9),
        regime_view(RegimeName.CHOPPY, 0.9),
        view(AgentName.SENTIMENT, Bias.LONG, 0.9),
    )


def test_a_conflict_awaits_the_resolver_and_limited_holds_it() -> None:
    decision = decided(context(choppy_views()))
    assert decision.awaits_resolution
    assert decision.action is DecisionAction.HOLD
    assert [c.rule for c in decision.conflicts] == [ConflictRule.CHOPPY_REGIME]
    held = decided(context(choppy_views(), level=DegradationLevel.LIMITED))
    assert not held.awaits_resolution
    assert "LIMITED trades only unconflicted intents" in held.reason or "required at LIMITED" in held.reason


@pytest.mark.parametrize("action", [ResolutionAction.WAIT, ResolutionAction.ABORT])
def test_wait_and_abort_hold(action: ResolutionAction) -> None:
    ctx = context(choppy_views())
    settled = settle(decided(ctx), outcome(action), ctx, RULES)
    assert settled.action is DecisionAction.HOLD
    assert f"answered {action.value}" in settled.reason
    assert settled.resolution is not None
    assert not settled.awaits_resolution


def test_the_conservative_rule_holds() -> None:
    ctx = context(choppy_views())
    conservative = ResolverOutcome(
        resolution=conservative_resolution("no resolver answered"),
        resolved_by=CONSERVATIVE_RULE,
        call_id=None,
        clamps=(),
        attempts=(),
    )
    settled = settle(decided(ctx), conservative, ctx, RULES)
    assert settled.action is DecisionAction.HOLD
    assert "conservative_rule answered abort" in settled.reason


def test_modify_applies_the_size_reduction_and_the_stop_and_the_risk_rules_decide_again() -> None:
    ctx = context(choppy_views())
    first = decided(ctx)
    settled = settle(
        first, outcome(ResolutionAction.MODIFY, size_reduction_pct=50.0, stop_distance_pct=4.0), ctx, RULES
    )
    assert settled.action is DecisionAction.BUY
    assert settled.risk_before_resolution == first.risk
    assert settled.intent.stop_distance_pct == pytest.approx(4.0)
    assert settled.risk is not None
    assert settled.risk.proposal.size_reduction_pct == 50.0
    # a wider stop halves the risk size, and the resolver halves it again
    assert first.risk is not None
    assert settled.notional == pytest.approx(min(first.risk.notional, first.risk.risk_notional * 0.5) * 0.5)


def test_leverage_asked_by_the_resolver_never_passes_the_regime_limit() -> None:
    ctx = context(choppy_views())
    settled = settle(decided(ctx), outcome(ResolutionAction.PROCEED, leverage=3.0), ctx, RULES)
    assert settled.risk is not None
    assert settled.leverage <= RULES.risk.leverage_limit(RegimeName.CHOPPY) == 1.0


def test_settle_needs_a_decision_that_awaits_resolution() -> None:
    ctx = context()
    with pytest.raises(ValueError, match="awaits no resolution"):
        settle(decided(ctx), outcome(ResolutionAction.PROCEED), ctx, RULES)


def test_confirm_holds_a_trade_when_the_state_changed_before_the_commit() -> None:
    decision = decided(context())
    assert confirm(decision, CoordinatorState.RUNNING) == decision
    paused = confirm(decision, CoordinatorState.PAUSED)
    assert paused.action is DecisionAction.HOLD
    assert paused.quantity == 0
    assert paused.state is CoordinatorState.PAUSED
    assert "became PAUSED while deciding" in paused.reason


def test_views_of_another_symbol_are_refused() -> None:
    with pytest.raises(ValueError, match="views of"):
        DecisionContext(
            symbol="XRP/USDT",
            at=T0,
            state=CoordinatorState.RUNNING,
            level=DegradationLevel.NORMAL,
            breaker=PortfolioBreakerState(),
            views=AGREEING,
            account=ACCOUNT,
        )


biases = st.sampled_from(list(Bias))
confidences = st.floats(0, 1)


@st.composite
def symbol_views(draw: st.DrawFn) -> SymbolViews:
    outputs: list[AgentView] = [view(AgentName.TECHNICAL, draw(biases), draw(confidences))]
    if draw(st.booleans()):
        outputs.append(regime_view(draw(st.sampled_from(list(RegimeName))), draw(confidences)))
    if draw(st.booleans()):
        outputs.append(view(AgentName.SENTIMENT, draw(biases), draw(confidences)))
    return SymbolViews(BTC, T0, {output.agent: output for output in outputs})


@given(
    views=symbol_views(),
    state=st.sampled_from(list(CoordinatorState)),
    level=st.sampled_from(list(DegradationLevel)),
    held=st.floats(0, 5_000),
    cash=st.floats(0, 10_000),
    answer=st.sampled_from(list(ResolutionAction)),
    reduction=st.floats(0, 100),
)
def test_no_decision_ever_trades_past_the_limits(
    views: SymbolViews,
    state: CoordinatorState,
    level: DegradationLevel,
    held: float,
    cash: float,
    answer: ResolutionAction,
    reduction: float,
) -> None:
    account = AccountSnapshot(equity=10_000.0, cash=cash, open_notional={BTC: held}, now=T0)
    ctx = context(views, state=state, level=level, account=account)
    decision = assess(ctx, RULES)
    if decision is None:
        return
    if decision.awaits_resolution:
        decision = settle(decision, outcome(answer, size_reduction_pct=reduction), ctx, RULES)
    if not decision.trades:
        assert decision.quantity == decision.notional == 0
        return
    risk = RULES.risk
    level_effects = decision.effects
    assert state is CoordinatorState.RUNNING
    assert level_effects.allow_new_exposure
    assert decision.confidence >= level_effects.min_confidence
    assert not (decision.conflicts and not level_effects.allow_conflicted)
    assert decision.risk is not None
    assert decision.risk.approved
    assert decision.notional <= decision.risk.notional * level_effects.size_multiplier + 1e-9
    assert held + decision.notional <= 10_000 * risk.max_position_pct / 100 + 1e-6
    assert decision.notional <= cash * decision.leverage + 1e-6
    assert decision.notional >= risk.min_notional


def test_a_stop_brought_to_the_risk_rules_minimum_passes_their_stop_rule() -> None:
    tight = views_of(
        technical_view_with_atr(17_288.4, 24.7327),
        view(AgentName.REGIME, Bias.LONG, 0.9),
        view(AgentName.SENTIMENT, Bias.LONG, 0.9),
    )
    decision = decided(context(tight))
    assert decision.intent.stop_distance_pct == pytest.approx(RULES.risk.min_stop_distance_pct)
    assert decision.risk is not None
    assert decision.risk.rejected_by is None
    assert decision.action is DecisionAction.BUY


def technical_view_with_atr(price: float, atr: float) -> AgentView:
    """A long technical view at ``price`` whose first timeframe reads ``atr``."""
    base = view(AgentName.TECHNICAL, Bias.LONG, 0.9)
    indicators = IndicatorsUsed(
        close=price,
        ema_fast=None,
        ema_slow=None,
        macd_histogram=None,
        rsi=None,
        adx=None,
        atr=atr,
        vwap=None,
        bollinger_upper=None,
        bollinger_lower=None,
    )
    components = Components(ema_cross=None, macd=None, rsi=None, vwap=None)
    reading = TimeframeReading(
        timeframe=Timeframe.M5,
        open_time=T0,
        score=0.5,
        trend=1.0,
        consistency=1.0,
        components=components,
        indicators=indicators,
    )
    assert isinstance(base.body, TechnicalView)
    body = base.body.model_copy(update={"price": price, "timeframes": (reading,)})
    return base.model_copy(update={"body": body})
