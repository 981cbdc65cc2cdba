"""The gates: rules that pass or reject a proposal whole, before it is sized."""

from __future__ import annotations

from datetime import timedelta

from triplegain.model import AccountSnapshot, OrderSide
from triplegain.risk.models import RiskRule, RuleOutcome, TradeProposal, Verdict, number
from triplegain.risk.settings import RiskSettings


def _passed(rule: RiskRule, detail: str) -> RuleOutcome:
    return RuleOutcome(rule=rule, verdict=Verdict.PASSED, detail=detail)


def _rejected(rule: RiskRule, detail: str) -> RuleOutcome:
    return RuleOutcome(rule=rule, verdict=Verdict.REJECTED, detail=detail)


def loss_streak(account: AccountSnapshot) -> int:
    """Consecutive losing trades (pnl < 0) up to the latest close; a trade with pnl ≥ 0 ends the streak.

    Trades are ordered by close time; of trades closed at the same time, the later in the list is the newer.
    """
    streak = 0
    for trade in reversed(sorted(account.closed_trades, key=lambda trade: trade.closed_at)):
        if trade.pnl >= 0:
            break
        streak += 1
    return streak


def check_cooldown(account: AccountSnapshot, settings: RiskSettings) -> RuleOutcome:
    """Rejected while the cooldown of the longest tier the loss streak reached runs, from the last loss's close."""
    rule = RiskRule.COOLDOWN
    streak = loss_streak(account)
    reached = [minutes for losses, minutes in settings.cooldown_after_losses.items() if streak >= losses]
    if not reached:
        return _passed(rule, f"{streak} consecutive losses; no cooldown tier reached")
    minutes = max(reached)
    last_close = max(trade.closed_at for trade in account.closed_trades)
    until = last_close + timedelta(minutes=minutes)
    detail = (
        f"{streak} consecutive losses, the last closed at {last_close.isoformat()}: cooldown {number(minutes)} min "
        f"until {until.isoformat()}; now {account.now.isoformat()}"
    )
    return _rejected(rule, detail) if account.now < until else _passed(rule, detail)


def check_confidence(proposal: TradeProposal, settings: RiskSettings) -> RuleOutcome:
    """Rejected when the proposal's confidence is below its regime's floor."""
    floor = settings.confidence_floor(proposal.regime)
    detail = f"confidence {number(proposal.confidence)}, minimum in {proposal.regime.value} {number(floor)}"
    if proposal.confidence < floor:
        return _rejected(RiskRule.MIN_CONFIDENCE, detail)
    return _passed(RiskRule.MIN_CONFIDENCE, detail)


def _on_loss_side(proposal: TradeProposal, price: float) -> bool:
    """Whether ``price`` is where a loss lies: below entry for a buy, above it for a sell."""
    if proposal.side is OrderSide.BUY:
        return price < proposal.entry_price
    return price > proposal.entry_price


def check_stop(proposal: TradeProposal, settings: RiskSettings) -> RuleOutcome:
    """Rejected without a stop, with one on the wrong side of entry, or one nearer or farther than allowed."""
    rule = RiskRule.STOP_LOSS
    stop, entry = proposal.stop_price, proposal.entry_price
    if stop is None:
        return _rejected(rule, "no stop price: a stop-loss is required")
    where = "below" if proposal.side is OrderSide.BUY else "above"
    if not _on_loss_side(proposal, stop):
        return _rejected(rule, f"{proposal.side.value} at {number(entry)}: stop {number(stop)} is not {where} entry")
    distance_pct = abs(entry - stop) / entry * 100
    low, high = settings.min_stop_distance_pct, settings.max_stop_distance_pct
    detail = (
        f"{proposal.side.value} at {number(entry)}, stop {number(stop)}: {number(distance_pct)} % {where} entry, "
        f"allowed {number(low)}–{number(high)} %"
    )
    if not low <= distance_pct <= high:
        return _rejected(rule, detail)
    return _passed(rule, detail)


def check_reward_risk(proposal: TradeProposal, settings: RiskSettings) -> RuleOutcome:
    """Rejected without a target, with one on the wrong side of entry, or with reward/risk below the minimum."""
    rule = RiskRule.REWARD_RISK
    stop, target, entry = proposal.stop_price, proposal.target_price, proposal.entry_price
    if target is None:
        return _rejected(rule, "no target price: reward/risk cannot be checked without one")
    if stop is None or stop == entry:
        return _rejected(rule, "no stop distance to measure the risk against")
    if _on_loss_side(proposal, target) or target == entry:
        where = "above" if proposal.side is OrderSide.BUY else "below"
        return _rejected(
            rule, f"{proposal.side.value} at {number(entry)}: target {number(target)} is not {where} entry"
        )
    reward, risk = abs(target - entry), abs(entry - stop)
    ratio = reward / risk
    detail = (
        f"reward {number(reward)} (target {number(target)}) / risk {number(risk)} (stop {number(stop)}) = "
        f"{number(ratio)}, minimum {number(settings.min_reward_risk)}"
    )
    if ratio < settings.min_reward_risk:
        return _rejected(rule, detail)
    return _passed(rule, detail)
