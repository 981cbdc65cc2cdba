"""Properties: whatever the proposal, account and settings, an approved order breaks no limit.

Limits are compared with a relative slack of 1e-9: caps are computed as differences of floats (cap − held), so
the sum held + order can round a few ulps past the cap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from triplegain.model import AccountSnapshot, ClosedTrade, OrderSide, RegimeName
from triplegain.risk import (
    RiskDecision,
    RiskRule,
    RiskSettings,
    TradeProposal,
    Verdict,
    assess_trade,
    size_cut_fraction,
)

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT")
SLACK = 1e-9
VOLATILE = (RegimeName.VOLATILE_BULL, RegimeName.VOLATILE_BEAR)


def within(value: float, limit: float) -> bool:
    return value <= limit + SLACK * max(1.0, abs(limit))


def mostly(usual: st.SearchStrategy[float], edge: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    """``usual`` four times in five, else ``edge``: enough approvals to test, and the edges still visited."""
    return st.integers(0, 4).flatmap(lambda pick: edge if pick == 4 else usual)


@st.composite
def risk_settings(draw: st.DrawFn) -> RiskSettings:
    low = draw(mostly(st.floats(0.05, 1), st.floats(0.05, 20)))
    max_leverage = draw(st.floats(1, 10))
    by_regime = draw(st.dictionaries(st.sampled_from(RegimeName), st.floats(1, 10), max_size=3))
    by_regime |= {regime: 1.0 for regime in VOLATILE if max_leverage > 1 or regime in by_regime}
    return RiskSettings(
        risk_per_trade_pct=draw(st.floats(0.01, 10)),
        max_position_pct=draw(st.floats(0.1, 100)),
        max_total_exposure_pct=draw(st.floats(0.1, 100)),
        max_leverage=max_leverage,
        max_leverage_by_regime=by_regime,
        min_stop_distance_pct=low,
        max_stop_distance_pct=draw(mostly(st.floats(max(5, low * 1.01), 50), st.floats(low * 1.01, 50))),
        min_reward_risk=draw(st.floats(0.1, 4)),
        min_confidence=draw(st.floats(0, 0.9)),
        min_confidence_by_regime=draw(st.dictionaries(st.sampled_from(RegimeName), st.floats(0, 0.9), max_size=4)),
        cooldown_after_losses=draw(st.dictionaries(st.integers(1, 6), st.floats(1, 600), max_size=3)),
        min_notional=draw(st.floats(0.01, 100)),
    )


@st.composite
def proposals(draw: st.DrawFn) -> TradeProposal:
    """Mostly sound proposals, with stops and targets sometimes missing, misplaced, too near or too far."""
    side = draw(st.sampled_from(OrderSide))
    entry = draw(st.floats(1e-3, 1e5))
    loss_sign = -1 if side is OrderSide.BUY else 1
    risk = entry * draw(mostly(st.floats(1, 5), st.floats(0.01, 99))) / 100
    reward = risk * draw(mostly(st.floats(4, 8), st.floats(0.05, 8)))
    sound_stop, sound_target = entry + loss_sign * risk, entry - loss_sign * reward
    stop = draw(st.sampled_from([sound_stop] * 12 + [entry - loss_sign * risk, entry, None]))
    target = draw(st.sampled_from([sound_target] * 12 + [entry + loss_sign * reward, None]))
    return TradeProposal(
        symbol=draw(st.sampled_from(SYMBOLS)),
        side=side,
        entry_price=entry,
        stop_price=positive_or_none(stop),
        target_price=positive_or_none(target),
        confidence=draw(mostly(st.floats(0.9, 1), st.floats(0, 1))),
        regime=draw(st.sampled_from(RegimeName)),
        size_reduction_pct=draw(mostly(st.just(0.0), st.floats(0, 100))),
        leverage=draw(st.floats(1, 20)),
    )


def positive_or_none(price: float | None) -> float | None:
    return price if price is not None and price > 0 else None


@st.composite
def accounts(draw: st.DrawFn) -> AccountSnapshot:
    """Equity from negative to 10 M; cash and holdings mostly in proportion to it, sometimes anything."""
    equity = draw(mostly(st.floats(1e3, 1e7), st.floats(-1e3, 1e7)))
    scale = abs(equity)
    holdings = mostly(st.floats(0, 0.3).map(lambda share: share * scale), st.floats(0, 1e7))
    trades = draw(
        st.lists(
            st.builds(ClosedTrade, pnl=st.floats(-1e3, 1e3), closed_at=st.integers(0, 24 * 60).map(minutes_ago)),
            max_size=6,
        )
    )
    return AccountSnapshot(
        equity=equity,
        cash=draw(mostly(st.floats(0, 1.2).map(lambda share: share * scale), st.floats(-1e3, 1e7))),
        open_notional=draw(st.dictionaries(st.sampled_from(SYMBOLS), holdings, max_size=3)),
        closed_trades=tuple(trades),
        now=NOW,
    )


def minutes_ago(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


def in_cooldown(account: AccountSnapshot, limits: RiskSettings) -> bool:
    """An oracle written apart from the rule: walk back from the latest close while trades lose."""
    ordered = sorted(account.closed_trades, key=lambda trade: trade.closed_at)
    streak = 0
    while streak < len(ordered) and ordered[-1 - streak].pnl < 0:
        streak += 1
    minutes = [cooldown for needed, cooldown in limits.cooldown_after_losses.items() if streak >= needed]
    return bool(minutes) and account.now < ordered[-1].closed_at + timedelta(minutes=max(minutes))


def assert_within_every_limit(decision: RiskDecision, account: AccountSnapshot, limits: RiskSettings) -> None:
    proposal = decision.proposal
    entry, stop, target = proposal.entry_price, proposal.stop_price, proposal.target_price
    notional = decision.notional
    assert stop is not None
    assert target is not None
    assert not in_cooldown(account, limits)
    confidence_floor = limits.min_confidence_by_regime.get(proposal.regime, limits.min_confidence)
    assert proposal.confidence >= confidence_floor
    loss_side = -1 if proposal.side is OrderSide.BUY else 1
    assert (stop - entry) * loss_side > 0
    assert (target - entry) * loss_side < 0
    distance_pct = abs(entry - stop) / entry * 100
    assert limits.min_stop_distance_pct <= distance_pct <= limits.max_stop_distance_pct
    assert abs(target - entry) / abs(entry - stop) >= limits.min_reward_risk
    assert within(decision.quantity * abs(entry - stop), account.equity * limits.risk_per_trade_pct / 100)
    held = account.open_notional.get(proposal.symbol, 0.0)
    assert within(held + notional, account.equity * limits.max_position_pct / 100)
    assert within(sum(account.open_notional.values()) + notional, account.equity * limits.max_total_exposure_pct / 100)
    leverage_limit = limits.max_leverage_by_regime.get(proposal.regime, limits.max_leverage)
    assert 1 <= decision.leverage <= min(leverage_limit, proposal.leverage)
    if proposal.regime in VOLATILE:
        assert decision.leverage <= 1
    assert within(notional, account.cash * decision.leverage)
    assert notional >= limits.min_notional
    assert abs(decision.quantity * entry - notional) <= SLACK * notional
    assert all(outcome.verdict is not Verdict.REJECTED for outcome in decision.outcomes)
    assert [outcome.rule for outcome in decision.outcomes] == list(RiskRule)


@settings(max_examples=400, deadline=None)
@given(proposals(), accounts(), risk_settings())
def test_an_approved_order_breaks_no_limit_and_a_rejected_one_is_empty(
    proposal: TradeProposal, account: AccountSnapshot, limits: RiskSettings
) -> None:
    decision = assess_trade(proposal, account, limits)
    assert decision.proposal == proposal
    assert 0 <= size_cut_fraction(decision) <= 1
    if decision.approved:
        assert_within_every_limit(decision, account, limits)
    else:
        assert (decision.quantity, decision.notional, decision.leverage) == (0, 0, 0)
        assert decision.rejected_by is not None
        rejected = [outcome for outcome in decision.outcomes if outcome.verdict is Verdict.REJECTED]
        assert all(outcome.detail for outcome in rejected)


@settings(max_examples=200, deadline=None)
@given(proposals(), accounts(), risk_settings())
def test_sizing_never_exceeds_the_risk_size_or_the_resolvers_reduction(
    proposal: TradeProposal, account: AccountSnapshot, limits: RiskSettings
) -> None:
    decision = assess_trade(proposal, account, limits)
    assert within(decision.notional, decision.risk_notional * (1 - proposal.size_reduction_pct / 100))
    cuts = [outcome for outcome in decision.outcomes if outcome.verdict is Verdict.CUT]
    assert all("→" in outcome.detail or outcome.rule is RiskRule.LEVERAGE for outcome in cuts)


@settings(max_examples=100, deadline=None)
@given(proposals(), accounts())
def test_a_cooldown_always_rejects(proposal: TradeProposal, account: AccountSnapshot) -> None:
    limits = RiskSettings(cooldown_after_losses={1: 24 * 60 + 1})
    decision = assess_trade(proposal, account, limits)
    assert in_cooldown(account, limits) == (decision.outcomes[0].verdict is Verdict.REJECTED)
    if in_cooldown(account, limits):
        assert not decision.approved
