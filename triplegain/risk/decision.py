"""The risk decision on a trade proposal: the gates, then sizing; and how much the rules cut the size."""

from __future__ import annotations

from triplegain.model import AccountSnapshot
from triplegain.risk.gates import check_confidence, check_cooldown, check_reward_risk, check_stop
from triplegain.risk.models import RiskDecision, TradeProposal, Verdict
from triplegain.risk.settings import RiskSettings
from triplegain.risk.sizing import size_proposal


def assess_trade(proposal: TradeProposal, account: AccountSnapshot, settings: RiskSettings) -> RiskDecision:
    """Approve, cut or reject ``proposal`` against ``account``: deterministic, and final.

    The gates (cooldown, min_confidence, stop_loss, reward_risk) are all evaluated, so a rejection lists every
    reason; sizing runs only when they all pass, and stops at its first rejection.
    """
    gates = (
        check_cooldown(account, settings),
        check_confidence(proposal, settings),
        check_stop(proposal, settings),
        check_reward_risk(proposal, settings),
    )
    if proposal.stop_price is None or any(outcome.verdict is Verdict.REJECTED for outcome in gates):
        return RiskDecision(
            proposal=proposal,
            approved=False,
            quantity=0.0,
            notional=0.0,
            leverage=0.0,
            risk_notional=0.0,
            flat_notional=0.0,
            outcomes=gates,
        )
    sizing = size_proposal(proposal, proposal.stop_price, account, settings)
    return RiskDecision(
        proposal=proposal,
        approved=sizing.approved,
        quantity=sizing.notional / proposal.entry_price,
        notional=sizing.notional,
        leverage=sizing.leverage,
        risk_notional=sizing.risk_notional,
        flat_notional=sizing.flat_notional,
        outcomes=gates + sizing.outcomes,
    )


def size_cut_fraction(decision: RiskDecision) -> float:
    """How much the account's state made the rules cut the size, 0–1: 1 − notional / requested, where requested
    is the flat-account size (the risk size within the position and exposure caps) less the resolver's reduction.

    A tight stop sized down to the position cap is the caps working as designed, the same on every trade; what
    counts is what the account's holdings, exposure, free cash and leverage then take away. The resolver's
    requested reduction is not counted either. A decision rejected while sizing gives 1, unless there was nothing
    to cut (a flat size of 0, or a 100 % reduction asked by the resolver): 0, as for a decision a gate rejected
    before sizing.
    """
    requested = decision.flat_notional * (1 - decision.proposal.size_reduction_pct / 100)
    if requested <= 0:
        return 0.0
    return min(1.0, max(0.0, 1 - decision.notional / requested))
