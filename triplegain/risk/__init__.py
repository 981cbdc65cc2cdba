"""Deterministic risk rules: they size, cut and veto every entry, and nothing overrides them (a pure core:
docs/ARCHITECTURE.md, "What is pure").

    decision = assess_trade(proposal, account, settings.risk)     # TradeProposal, AccountSnapshot, RiskSettings
    decision.approved, decision.quantity, decision.notional, decision.leverage
    decision.outcomes                                             # RuleOutcome(rule, verdict, detail) per rule
    size_cut_fraction(decision)                                   # > threshold: a "risk cut" conflict

Rules, in order (``RiskRule``):

    cooldown            rejected while a loss-streak cooldown runs (``cooldown_after_losses`` tiers)
    min_confidence      rejected below the regime's floor
    stop_loss           rejected without a stop, on the wrong side, or nearer/farther than allowed
    reward_risk         rejected without a target, on the wrong side, or below ``min_reward_risk``
    risk_per_trade      the unconstrained size: equity · risk % / stop distance per unit
    max_position        cut to the symbol's cap less what is held on it
    max_total_exposure  cut to the account's cap less what is held on all symbols
    resolver_reduction  cut by the reduction a conflict resolver asked for
    leverage            leverage capped at the regime's limit; notional cut to free cash · leverage

The four gates are always all evaluated; sizing follows only when they pass. A sizing step that leaves less
than ``min_notional`` rejects the proposal and names itself. A rejected decision has quantity, notional and
leverage 0. Exposure is gross (absolute notional), and a proposal is always an entry: a sell opens or adds to a
short. Losses are counted over the whole account, not per symbol. Pure: the only time read is ``account.now``.
"""


from triplegain.risk.decision import assess_trade, size_cut_fraction
from triplegain.risk.gates import loss_streak
from triplegain.risk.models import RiskDecision, RiskRule, RuleOutcome, TradeProposal, Verdict
from triplegain.risk.settings import RiskSettings

__all__ = [
    "RiskDecision",
    "RiskRule",
    "RiskSettings",
    "RuleOutcome",
    "TradeProposal",
    "Verdict",
    "assess_trade",
    "loss_streak",
    "size_cut_fraction",
]

