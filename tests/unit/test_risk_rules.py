"""The risk rules one by one: each passes, cuts or rejects, naming itself and the numbers it compared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from triplegain.model import AccountSnapshot, ClosedTrade, OrderSide, RegimeName
from triplegain.risk import (
    RiskDecision,
    RiskRule,
    RiskSettings,
    RuleOutcome,
    TradeProposal,
    Verdict,
    assess_trade,
    loss_streak,
    size_cut_fraction,
)

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = RiskSettings()
ALL_RULES = list(RiskRule)


def proposal(**changes: Any) -> TradeProposal:
    """Buy at 100, stop 95 (5 %), target 110 (reward/risk 2): 1 % of 10 000 over 5 per unit = 20 units, 2000."""
    fields: dict[str, Any] = {
        "symbol": "BTC/USDT",
        "side": OrderSide.BUY,
        "entry_price": 100.0,
        "stop_price": 95.0,
        "target_price": 110.0,
        "confidence": 0.8,
        "regime": RegimeName.TRENDING_BULL,
    }
    return TradeProposal(**(fields | changes))


def account(**changes: Any) -> AccountSnapshot:
    fields: dict[str, Any] = {"equity": 10_000.0, "cash": 10_000.0, "now": NOW}
    return AccountSnapshot(**(fields | changes))


def losses(*minutes_ago: float, pnl: float = -10.0) -> tuple[ClosedTrade, ...]:
    return tuple(ClosedTrade(pnl=pnl, closed_at=NOW - timedelta(minutes=ago)) for ago in minutes_ago)


def outcome_of(decision: RiskDecision, rule: RiskRule) -> RuleOutcome:
    [outcome] = [outcome for outcome in decision.outcomes if outcome.rule is rule]
    return outcome


def assess(settings: RiskSettings = SETTINGS, **changes: Any) -> RiskDecision:
    account_fields = {
        key: changes.pop(key) for key in ("equity", "cash", "open_notional", "closed_trades") if key in changes
    }
    return assess_trade(proposal(**changes), account(**account_fields), settings)


def assert_rejected_by(decision: RiskDecision, rule: RiskRule, *details: str) -> None:
    assert not decision.approved
    assert (decision.quantity, decision.notional, decision.leverage) == (0.0, 0.0, 0.0)
    assert decision.rejected_by is rule
    outcome = outcome_of(decision, rule)
    assert outcome.verdict is Verdict.REJECTED
    for detail in details:
        assert detail in outcome.detail


# ------------------------------------------------------------------------------------------------ settings


def test_the_defaults_are_the_documented_ones() -> None:
    assert (SETTINGS.risk_per_trade_pct, SETTINGS.max_position_pct, SETTINGS.max_total_exposure_pct) == (1, 20, 60)
    assert (SETTINGS.min_stop_distance_pct, SETTINGS.max_stop_distance_pct, SETTINGS.min_reward_risk) == (0.5, 10, 1.5)
    assert all(SETTINGS.leverage_limit(regime) == 1.0 for regime in RegimeName)
    assert SETTINGS.confidence_floor(RegimeName.TRENDING_BULL) == 0.55
    assert SETTINGS.confidence_floor(RegimeName.CHOPPY) == SETTINGS.confidence_floor(RegimeName.VOLATILE_BEAR) == 0.7
    assert SETTINGS.cooldown_after_losses == {3: 60.0, 5: 240.0}
    assert SETTINGS.min_notional == 10


def test_every_setting_has_a_description() -> None:
    assert all(field.description for field in RiskSettings.model_fields.values())


def test_leverage_above_one_must_spare_the_volatile_regimes() -> None:
    with pytest.raises(ValidationError, match=r"leverage in volatile_bear, volatile_bull must be ≤ 1"):
        RiskSettings(max_leverage=3)
    limits = RiskSettings(
        max_leverage=3, max_leverage_by_regime={RegimeName.VOLATILE_BULL: 1, RegimeName.VOLATILE_BEAR: 1}
    )
    assert limits.leverage_limit(RegimeName.RANGING) == 3
    assert limits.leverage_limit(RegimeName.VOLATILE_BULL) == 1


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"min_notional": float("inf")}, ("min_notional",)),
        ({"max_leverage_by_regime": {"choppy": 0.5}}, ("max_leverage_by_regime", "choppy")),
        ({"min_confidence_by_regime": {"ranging": 1.2}}, ("min_confidence_by_regime", "ranging")),
        ({"cooldown_after_losses": {0: 60}}, ("cooldown_after_losses", 0, "[key]")),
        ({"max_position_pct": 101}, ("max_position_pct",)),
        ({"stop_loss": 1}, ("stop_loss",)),
    ],
)
def test_a_bad_setting_names_its_field(changes: dict[str, Any], location: tuple[str | int, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        RiskSettings.model_validate(changes)
    assert caught.value.errors()[0]["loc"] == location


def test_the_stop_range_must_not_be_empty() -> None:
    with pytest.raises(ValidationError, match=r"min_stop_distance_pct \(10.0\) must be < max_stop_distance_pct"):
        RiskSettings(min_stop_distance_pct=10)


# ------------------------------------------------------------------------------------------------ inputs


@pytest.mark.parametrize("field", ["entry_price", "stop_price", "confidence", "leverage", "size_reduction_pct"])
def test_a_proposal_refuses_non_finite_numbers(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        proposal(**{field: float("nan")})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_an_account_refuses_non_finite_negative_or_future_inputs() -> None:
    with pytest.raises(ValidationError, match="finite"):
        account(equity=float("inf"))
    with pytest.raises(ValidationError, match="open_notional values must be ≥ 0"):
        account(open_notional={"BTC/USDT": -1.0})
    with pytest.raises(ValidationError, match="closed trades after now"):
        account(closed_trades=losses(-1))


def test_a_decision_must_agree_with_its_outcomes() -> None:
    approved = assess()
    with pytest.raises(ValidationError, match="approved must be true exactly when no rule rejected"):
        RiskDecision.model_validate(approved.model_dump() | {"approved": False})
    rejected = assess(stop_price=None)
    with pytest.raises(ValidationError, match="a rejected decision has quantity, notional and leverage 0"):
        RiskDecision.model_validate(rejected.model_dump() | {"notional": 5.0})
    assert RiskDecision.model_validate_json(approved.model_dump_json()) == approved


def test_a_decision_is_frozen() -> None:
    decision = assess()
    with pytest.raises(ValidationError):
        decision.notional = 1e9  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------ approval


def test_a_proposal_within_every_limit_is_approved_at_its_risk_size() -> None:
    decision = assess()
    assert decision.approved
    assert decision.quantity == pytest.approx(20)
    assert decision.notional == decision.risk_notional == pytest.approx(2000)
    assert decision.leverage == 1
    assert [outcome.rule for outcome in decision.outcomes] == ALL_RULES
    assert all(outcome.verdict is Verdict.PASSED for outcome in decision.outcomes)
    assert decision.rejected_by is None
    assert size_cut_fraction(decision) == 0


def test_the_same_inputs_give_the_same_decision() -> None:
    assert assess(closed_trades=losses(5, 10)) == assess(closed_trades=losses(5, 10))


def test_the_risk_size_detail_shows_the_arithmetic() -> None:
    detail = outcome_of(assess(), RiskRule.RISK_PER_TRADE).detail
    assert "risk 1 % of equity 10000 = 100 over stop distance 5 per unit at entry 100: notional 2000" in detail


# ------------------------------------------------------------------------------------------------ gates


def test_fewer_losses_than_the_first_tier_pass_the_cooldown() -> None:
    decision = assess(closed_trades=losses(1, 2))
    assert outcome_of(decision, RiskRule.COOLDOWN).detail == "2 consecutive losses; no cooldown tier reached"
    assert decision.approved


def test_three_losses_start_an_hour_of_cooldown_from_the_last_close() -> None:
    decision = assess(closed_trades=losses(59, 70, 80))
    assert_rejected_by(decision, RiskRule.COOLDOWN, "3 consecutive losses", "cooldown 60 min", "until 2024-03-01T12:01")
    assert assess(closed_trades=losses(60, 70, 80)).approved


def test_the_longest_tier_reached_applies() -> None:
    assert_rejected_by(assess(closed_trades=losses(100, 101, 102, 103, 104)), RiskRule.COOLDOWN, "cooldown 240 min")
    never_shorter = RiskSettings(cooldown_after_losses={3: 300, 5: 10})
    assert not assess(never_shorter, closed_trades=losses(100, 101, 102, 103, 104)).approved


def test_a_win_ends_the_streak_by_close_time_not_list_order() -> None:
    win = ClosedTrade(pnl=5.0, closed_at=NOW - timedelta(minutes=3))
    trades = (*losses(10, 11), win, *losses(1, 2))
    assert loss_streak(account(closed_trades=trades)) == 2
    assert assess(closed_trades=trades).approved


def test_a_breakeven_trade_is_not_a_loss() -> None:
    assert loss_streak(account(closed_trades=(*losses(1, 2), *losses(0, pnl=0.0)))) == 0


def test_no_tiers_means_no_cooldown() -> None:
    assert assess(RiskSettings(cooldown_after_losses={}), closed_trades=losses(1, 2, 3, 4, 5, 6)).approved


def test_confidence_below_the_regimes_floor_is_rejected() -> None:
    decision = assess(confidence=0.65, regime=RegimeName.CHOPPY)
    assert_rejected_by(decision, RiskRule.MIN_CONFIDENCE, "confidence 0.65, minimum in choppy 0.7")
    assert assess(confidence=0.65, regime=RegimeName.RANGING).approved
    assert assess(confidence=0.55).approved


def test_a_missing_stop_is_rejected() -> None:
    assert_rejected_by(assess(stop_price=None), RiskRule.STOP_LOSS, "no stop price: a stop-loss is required")


@pytest.mark.parametrize(
    ("side", "stop", "target", "detail"),
    [
        (OrderSide.BUY, 101.0, 110.0, "buy at 100: stop 101 is not below entry"),
        (OrderSide.BUY, 100.0, 110.0, "buy at 100: stop 100 is not below entry"),
        (OrderSide.SELL, 99.0, 90.0, "sell at 100: stop 99 is not above entry"),
    ],
)
def test_a_stop_on_the_wrong_side_is_rejected(side: OrderSide, stop: float, target: float, detail: str) -> None:
    assert_rejected_by(assess(side=side, stop_price=stop, target_price=target), RiskRule.STOP_LOSS, detail)


@pytest.mark.parametrize(("stop", "distance"), [(99.6, "0.4 % below"), (89.0, "11 % below")])
def test_a_stop_too_near_or_too_far_is_rejected(stop: float, distance: str) -> None:
    decision = assess(stop_price=stop, target_price=130.0)
    assert_rejected_by(decision, RiskRule.STOP_LOSS, distance, "allowed 0.5–10 %")


@pytest.mark.parametrize("stop", [99.5, 90.0])
def test_a_stop_at_either_bound_passes(stop: float) -> None:
    assert outcome_of(assess(stop_price=stop, target_price=120.0), RiskRule.STOP_LOSS).verdict is Verdict.PASSED


def test_a_sell_has_its_stop_above_and_its_target_below() -> None:
    decision = assess(side=OrderSide.SELL, stop_price=105.0, target_price=90.0)
    assert decision.approved
    assert "5 % above entry" in outcome_of(decision, RiskRule.STOP_LOSS).detail


def test_a_missing_target_is_rejected() -> None:
    assert_rejected_by(assess(target_price=None), RiskRule.REWARD_RISK, "no target price")


def test_a_target_on_the_wrong_side_is_rejected() -> None:
    assert_rejected_by(assess(target_price=90.0), RiskRule.REWARD_RISK, "buy at 100: target 90 is not above entry")


def test_reward_risk_below_the_minimum_is_rejected() -> None:
    decision = assess(target_price=106.0)
    assert_rejected_by(decision, RiskRule.REWARD_RISK, "reward 6 (target 106) / risk 5 (stop 95) = 1.2, minimum 1.5")
    assert assess(target_price=107.5).approved


def test_every_gate_is_evaluated_and_sizing_is_skipped_after_a_rejection() -> None:
    decision = assess(closed_trades=losses(1, 2, 3), confidence=0.1, target_price=None)
    assert [outcome.rule for outcome in decision.outcomes] == ALL_RULES[:4]
    verdicts = [outcome.verdict for outcome in decision.outcomes]
    assert verdicts == [Verdict.REJECTED, Verdict.REJECTED, Verdict.PASSED, Verdict.REJECTED]
    assert decision.rejected_by is RiskRule.COOLDOWN
    assert decision.risk_notional == 0
    assert size_cut_fraction(decision) == 0


# ------------------------------------------------------------------------------------------------ sizing


def test_a_risk_size_below_the_minimum_is_rejected() -> None:
    assert assess(equity=50.0).notional == pytest.approx(10)
    assert_rejected_by(assess(equity=40.0), RiskRule.RISK_PER_TRADE, "notional 8, below min_notional 10")
    assert_rejected_by(assess(equity=-100.0), RiskRule.RISK_PER_TRADE, "notional 0, below min_notional 10")


def test_the_position_cap_cuts_and_names_before_and_after() -> None:
    decision = assess(stop_price=98.0, target_price=104.0)
    outcome = outcome_of(decision, RiskRule.MAX_POSITION)
    assert outcome.verdict is Verdict.CUT
    assert outcome.detail == "cap 20 % of equity = 2000, held on BTC/USDT 0; order 5000 → 2000"
    assert decision.approved
    assert (decision.notional, decision.risk_notional, decision.flat_notional) == (2000, 5000, 2000)
    assert decision.quantity == pytest.approx(20)
    assert size_cut_fraction(decision) == 0  # the caps of a flat account are the intended size, not a cut


def test_what_the_account_holds_or_lacks_is_the_cut() -> None:
    assert size_cut_fraction(assess(open_notional={"BTC/USDT": 1500.0})) == pytest.approx(0.75)
    assert size_cut_fraction(assess(open_notional={"ETH/USDT": 5000.0})) == pytest.approx(0.5)
    assert size_cut_fraction(assess(cash=500.0)) == pytest.approx(0.75)


def test_the_position_cap_counts_what_is_held_on_the_symbol() -> None:
    decision = assess(open_notional={"BTC/USDT": 1500.0})
    assert "held on BTC/USDT 1500; order 2000 → 500" in outcome_of(decision, RiskRule.MAX_POSITION).detail
    assert decision.notional == 500
    assert_rejected_by(
        assess(open_notional={"BTC/USDT": 1995.0}),
        RiskRule.MAX_POSITION,
        "order 2000 → 5, below min_notional 10",
    )
    assert_rejected_by(assess(open_notional={"BTC/USDT": 2500.0}), RiskRule.MAX_POSITION, "order 2000 → 0,")


def test_the_exposure_cap_counts_every_symbol() -> None:
    decision = assess(open_notional={"ETH/USDT": 2000.0, "XRP/USDT": 3000.0})
    outcome = outcome_of(decision, RiskRule.MAX_TOTAL_EXPOSURE)
    assert outcome.verdict is Verdict.CUT
    assert outcome.detail == "cap 60 % of equity = 6000, held on all symbols 5000; order 2000 → 1000"
    assert decision.notional == 1000
    assert_rejected_by(assess(open_notional={"ETH/USDT": 6000.0}), RiskRule.MAX_TOTAL_EXPOSURE, "order 2000 → 0")


def test_the_resolvers_reduction_cuts_but_is_not_counted_as_a_rules_cut() -> None:
    decision = assess(size_reduction_pct=50.0)
    outcome = outcome_of(decision, RiskRule.RESOLVER_REDUCTION)
    assert outcome.verdict is Verdict.CUT
    assert outcome.detail == "resolver asked for a 50 % reduction; order 2000 → 1000"
    assert decision.notional == 1000
    assert size_cut_fraction(decision) == 0
    assert_rejected_by(assess(size_reduction_pct=100.0), RiskRule.RESOLVER_REDUCTION, "below min_notional 10")


def test_the_reduction_applies_after_the_caps() -> None:
    decision = assess(stop_price=98.0, target_price=104.0, size_reduction_pct=50.0)
    assert decision.notional == 1000
    assert size_cut_fraction(decision) == 0
    held = assess(stop_price=98.0, target_price=104.0, size_reduction_pct=50.0, open_notional={"BTC/USDT": 1500.0})
    assert held.notional == 250
    assert size_cut_fraction(held) == pytest.approx(0.75)


def test_free_cash_caps_a_spot_order() -> None:
    decision = assess(cash=500.0)
    outcome = outcome_of(decision, RiskRule.LEVERAGE)
    assert outcome.verdict is Verdict.CUT
    assert outcome.detail == (
        "leverage requested 1x, limit in trending_bull 1x: 1x; margin cash 500 · 1 = 500; order 2000 → 500"
    )
    assert decision.notional == 500
    assert_rejected_by(assess(cash=-20.0), RiskRule.LEVERAGE, "order 2000 → 0, below min_notional 10")


def test_leverage_above_the_regimes_limit_is_cut_to_it() -> None:
    decision = assess(leverage=3.0)
    outcome = outcome_of(decision, RiskRule.LEVERAGE)
    assert outcome.verdict is Verdict.CUT
    assert "requested 3x, limit in trending_bull 1x: 1x" in outcome.detail
    assert (decision.approved, decision.leverage, decision.notional) == (True, 1, 2000)


def test_leverage_within_the_limit_stretches_the_margin() -> None:
    levered = RiskSettings(
        max_leverage=3, max_leverage_by_regime={RegimeName.VOLATILE_BULL: 1, RegimeName.VOLATILE_BEAR: 1}
    )
    decision = assess(levered, cash=800.0, leverage=2.0)
    assert outcome_of(decision, RiskRule.LEVERAGE).detail.endswith("margin cash 800 · 2 = 1600; order 2000 → 1600")
    assert (decision.leverage, decision.notional) == (2, 1600)
    volatile = assess(levered, cash=800.0, leverage=2.0, regime=RegimeName.VOLATILE_BULL)
    assert (volatile.leverage, volatile.notional) == (1, 800)


def test_a_decision_rejected_while_sizing_was_cut_entirely() -> None:
    assert size_cut_fraction(assess(open_notional={"BTC/USDT": 1995.0})) == 1
