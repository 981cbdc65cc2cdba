"""Sizing: the unconstrained size from risk per trade and stop distance, then the cuts, in order.

    risk_per_trade      notional = equity · risk_per_trade_pct / 100 / |entry − stop| · entry
    max_position        ≤ equity · max_position_pct / 100 − notional held on the symbol
    max_total_exposure  ≤ equity · max_total_exposure_pct / 100 − notional held on all symbols
    resolver_reduction  · (1 − size_reduction_pct / 100)
    leverage            leverage = min(requested, the regime's limit); notional ≤ max(cash, 0) · leverage

A step that leaves less than ``min_notional`` rejects the proposal, naming itself; sizing stops there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from triplegain.model import AccountSnapshot
from triplegain.risk.models import RiskRule, RuleOutcome, TradeProposal, Verdict, number
from triplegain.risk.settings import RiskSettings


@dataclass(frozen=True)
class Sizing:
    """The outcome of sizing: the notional is 0 when a step rejected the proposal."""

    risk_notional: float
    flat_notional: float
    """The risk size within the position and exposure caps of a flat account: what the account's state may cut."""
    notional: float
    leverage: float
    outcomes: tuple[RuleOutcome, ...]

    @property
    def approved(self) -> bool:
        return all(outcome.verdict is not Verdict.REJECTED for outcome in self.outcomes)


class _Step(NamedTuple):
    rule: RiskRule
    allowed: Callable[[float], float]
    """The most notional this rule allows, given the notional so far."""
    context: str
    changes_terms: bool = False
    """Whether the rule changed the order's terms other than its size (a cut even when the size fits)."""


def _outcome(step: _Step, notional: float, allowed: float, settings: RiskSettings) -> RuleOutcome:
    """Passed when ``notional`` fits ``allowed``, else cut, or rejected when that leaves less than the minimum."""
    if notional <= allowed:
        verdict = Verdict.CUT if step.changes_terms else Verdict.PASSED
        return RuleOutcome(rule=step.rule, verdict=verdict, detail=f"{step.context}; order {number(notional)} fits")
    after = max(allowed, 0.0)
    cut = f"{step.context}; order {number(notional)} → {number(after)}"
    if after < settings.min_notional:
        detail = f"{cut}, below min_notional {number(settings.min_notional)}"
        return RuleOutcome(rule=step.rule, verdict=Verdict.REJECTED, detail=detail)
    return RuleOutcome(rule=step.rule, verdict=Verdict.CUT, detail=cut)


def size_proposal(
    proposal: TradeProposal, stop_price: float, account: AccountSnapshot, settings: RiskSettings
) -> Sizing:
    """Size a proposal that passed the gates (``stop_price`` is its stop, on the loss side of entry)."""
    entry, equity = proposal.entry_price, account.equity
    budget = equity * settings.risk_per_trade_pct / 100
    stop_distance = abs(entry - stop_price)
    risk_notional = max(budget / stop_distance * entry, 0.0)
    context = (
        f"risk {number(settings.risk_per_trade_pct)} % of equity {number(equity)} = {number(budget)} over stop "
        f"distance {number(stop_distance)} per unit at entry {number(entry)}: notional {number(risk_notional)}"
    )
    if risk_notional < settings.min_notional:
        detail = f"{context}, below min_notional {number(settings.min_notional)}"
        first = RuleOutcome(rule=RiskRule.RISK_PER_TRADE, verdict=Verdict.REJECTED, detail=detail)
        return Sizing(
            risk_notional=risk_notional, flat_notional=risk_notional, notional=0.0, leverage=0.0, outcomes=(first,)
        )
    outcomes = [RuleOutcome(rule=RiskRule.RISK_PER_TRADE, verdict=Verdict.PASSED, detail=context)]

    held = account.open_notional.get(proposal.symbol, 0.0)
    held_total = sum(account.open_notional.values())
    position_cap = equity * settings.max_position_pct / 100
    exposure_cap = equity * settings.max_total_exposure_pct / 100
    reduction = proposal.size_reduction_pct
    leverage_limit = settings.leverage_limit(proposal.regime)
    leverage = min(proposal.leverage, leverage_limit)
    margin_cap = max(account.cash, 0.0) * leverage
    flat_notional = min(risk_notional, position_cap, exposure_cap)
    steps = (
        _Step(
            RiskRule.MAX_POSITION,
            lambda _: position_cap - held,
            f"cap {number(settings.max_position_pct)} % of equity = {number(position_cap)}, "
            f"held on {proposal.symbol} {number(held)}",
        ),
        _Step(
            RiskRule.MAX_TOTAL_EXPOSURE,
            lambda _: exposure_cap - held_total,
            f"cap {number(settings.max_total_exposure_pct)} % of equity = {number(exposure_cap)}, "
            f"held on all symbols {number(held_total)}",
        ),
        _Step(
            RiskRule.RESOLVER_REDUCTION,
            lambda so_far: so_far * (1 - reduction / 100) if reduction > 0 else so_far,
            f"resolver asked for a {number(reduction)} % reduction",
        ),
        _Step(
            RiskRule.LEVERAGE,
            lambda _: margin_cap,
            f"leverage requested {number(proposal.leverage)}x, limit in {proposal.regime.value} "
            f"{number(leverage_limit)}x: {number(leverage)}x; margin cash {number(account.cash)} · "
            f"{number(leverage)} = {number(margin_cap)}",
            changes_terms=leverage < proposal.leverage,
        ),
    )
    notional = risk_notional
    for step in steps:
        allowed = step.allowed(notional)
        outcome = _outcome(step, notional, allowed, settings)
        outcomes.append(outcome)
        if outcome.verdict is Verdict.REJECTED:
            return Sizing(
                risk_notional=risk_notional,
                flat_notional=flat_notional,
                notional=0.0,
                leverage=0.0,
                outcomes=tuple(outcomes),
            )
        notional = min(notional, allowed)
    return Sizing(
        risk_notional=risk_notional,
        flat_notional=flat_notional,
        notional=notional,
        leverage=leverage,
        outcomes=tuple(outcomes),
    )
