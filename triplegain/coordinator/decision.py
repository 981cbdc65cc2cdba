"""A trade decision on one symbol, as pure functions: the functional core of the coordinator's decision task.

    decision = assess(context, rules)          # None: the technical view opens no intent
    if decision.awaits_resolution:              # a conflict: the shell asks the resolver chain (I/O)
        decision = settle(decision, outcome, rules)
    decision = confirm(decision, state)         # at commit, against the state locked in the database

``assess`` reads one ``DecisionContext``: the coordinator state, the degradation level and the breaker state as
they were when the decision started, the symbol's views and the account. Everything after uses that one
snapshot, so a level that changes while the resolver is asked does not mix two levels into one decision. Steps,
the first that applies deciding a hold:

    intent       the technical view's lean, entry, stop and target (``intent.intent_from``); none: no decision.
                 On spot without borrowing (``rules.can_short`` False) a short lean is an exit: it sells the
                 long held (also while PAUSED, at EMERGENCY or with the breaker tripped; not when HALTED), or
                 decides nothing when none is held
    views        at a level without sentiment, the sentiment view is left out of consensus and conflicts
    consensus    the intent's confidence after weighing the fresh views
    state        only RUNNING opens new positions
    data         no trade on stale market data: when the symbol's newest candle closed more than
                 ``max_market_data_age_intervals`` candle intervals ago, the views rest on old prices and the decision
                 holds (an exit too: its price is as old)
    breaker      an active trip forbids new exposure
    degradation  the level must allow new exposure, and the confidence must reach its floor
    risk         the rules size the proposal; a rejection holds, naming the rule
    conflicts    at a level that trades only unconflicted intents, a conflict holds; otherwise the intent
                 awaits the resolver
    size         the level's size multiplier scales the approved size; below the risk rules' minimum notional
                 it holds

``settle`` applies the resolver's bounded answer: wait and abort hold; proceed and modify change the proposal
(size reduction, stop distance, leverage) and the risk rules decide again, with the last word. ``confirm`` turns a
buy or sell into a hold when the state locked at commit no longer allows new entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from triplegain.agents.regime import RegimeView
from triplegain.coordinator.breaker import PortfolioBreakerState, blocks_new_exposure
from triplegain.coordinator.conflicts import Conflict, ConflictSettings, detect_conflicts
from triplegain.coordinator.consensus import AgentView, ConsensusResult, ConsensusSettings, SymbolViews, consensus
from triplegain.coordinator.degradation import DegradationSettings, LevelEffects, effects
from triplegain.coordinator.intent import IntentSettings, TradeIntent, intent_from
from triplegain.coordinator.resolution import ResolutionBounds
from triplegain.coordinator.resolver import ResolverOutcome
from triplegain.coordinator.state import allows_exits, allows_new_entries
from triplegain.model import (
    AccountSnapshot,
    AgentName,
    Bias,
    CoordinatorState,
    DecisionAction,
    DegradationLevel,
    RegimeName,
)
from triplegain.risk import RiskDecision, RiskSettings, TradeProposal, assess_trade, size_cut_fraction

REGIME_WHEN_UNKNOWN = RegimeName.CHOPPY
"""The regime the risk rules assume without a fresh regime view: the one with the strictest default floor."""


@dataclass(frozen=True)
class DecisionRules:
    """The settings a decision follows, gathered from the config's coordinator and risk sections."""

    consensus: ConsensusSettings
    conflicts: ConflictSettings
    bounds: ResolutionBounds
    intent: IntentSettings
    degradation: DegradationSettings
    risk: RiskSettings
    can_short: bool = False
    """Whether a short lean may open a short (borrowing allowed); on spot without it, it closes the long held."""
    max_market_data_age_intervals: float = 3.0
    """Candle intervals since the symbol's newest candle closed beyond which a decision holds (stale data)."""


@dataclass(frozen=True)
class DecisionContext:
    """Everything a decision reads, taken once when it starts."""

    symbol: str
    at: datetime
    state: CoordinatorState
    level: DegradationLevel
    breaker: PortfolioBreakerState
    views: SymbolViews
    account: AccountSnapshot
    held: float = 0.0
    """Base quantity of the symbol held (a long), what a short lean closes on spot."""
    market_data_age: float | None = None
    """Candle intervals from the close of the symbol's newest candle to ``at``; None: not measured."""

    def __post_init__(self) -> None:
        if self.views.symbol != self.symbol:
            raise ValueError(f"a decision on {self.symbol!r} was given the views of {self.views.symbol!r}")


class Decision(BaseModel):
    """A decision and every number behind it; what the coordinator stores and acts on."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    symbol: str
    at: datetime
    state: CoordinatorState = Field(description="the coordinator state it was decided (or confirmed) in")
    level: DegradationLevel = Field(description="the degradation level it was decided at")
    effects: LevelEffects = Field(description="that level's effects, as applied")
    intent: TradeIntent = Field(description="the intent as finally proposed (after a resolver's changes)")
    views_used: tuple[AgentName, ...] = Field(description="agents whose views counted at this level")
    consensus: ConsensusResult
    conflicts: tuple[Conflict, ...] = Field(description="conflicts found before resolution")
    risk_before_resolution: RiskDecision | None = Field(
        default=None, description="the risk rules' first decision, when a resolver changed the proposal after it"
    )
    risk: RiskDecision | None = Field(description="the risk rules' decision the action rests on; None: not reached")
    resolution: ResolverOutcome | None = Field(default=None, description="the resolver chain's outcome, if asked")
    awaits_resolution: bool = Field(default=False, description="conflicts found: the resolver must be asked")
    closes_position: bool = Field(
        default=False, description="an exit: sells the long held (spot without borrowing); PAUSED still exits"
    )
    action: DecisionAction
    confidence: float = Field(ge=0, le=1, description="the intent's confidence after consensus")
    size_multiplier: float = Field(ge=0, le=1, description="the level's factor on the approved size")
    quantity: float = Field(ge=0, description="units to buy or sell; 0 for a hold")
    notional: float = Field(ge=0, description="quantity · entry price")
    leverage: float = Field(ge=0)
    reason: str = Field(description="why this action, in a sentence")

    @property
    def trades(self) -> bool:
        return self.action is not DecisionAction.HOLD


def assess(context: DecisionContext, rules: DecisionRules) -> Decision | None:
    """The decision on ``context.symbol`` up to the resolver (see the module docstring); None without an intent."""
    level_effects = effects(context.level, rules.degradation)
    views = _views_at_level(context.views, level_effects)
    intent = intent_from(views, rules.intent, rules.risk)
    if intent is None:
        return None
    agreed = consensus(intent.direction, intent.base_confidence, views, rules.consensus)
    draft = Decision(
        symbol=context.symbol,
        at=context.at,
        state=context.state,
        level=context.level,
        effects=level_effects,
        intent=intent,
        views_used=tuple(sorted(views.fresh)),
        consensus=agreed,
        conflicts=(),
        risk=None,
        action=DecisionAction.HOLD,
        confidence=agreed.confidence,
        size_multiplier=level_effects.size_multiplier,
        quantity=0.0,
        notional=0.0,
        leverage=0.0,
        reason="",
    )
    if intent.direction is Bias.SHORT and not rules.can_short:
        return _exit(draft, context, rules)
    blocked = _blocked(context, rules, level_effects, agreed.confidence)
    if blocked is not None:
        return _hold(draft, blocked)
    risk = assess_trade(_proposal(intent, agreed.confidence, views, 0.0, 1.0), context.account, rules.risk)
    if not risk.approved:
        return _hold(draft.model_copy(update={"risk": risk}), _rejection(risk))
    conflict_settings = _conflict_settings(rules.conflicts, level_effects)
    conflicts = tuple(detect_conflicts(views, size_cut_fraction(risk), conflict_settings))
    draft = draft.model_copy(update={"risk": risk, "conflicts": conflicts})
    if conflicts and not level_effects.allow_conflicted:
        names = ", ".join(conflict.rule.value for conflict in conflicts)
        return _hold(draft, f"conflicted ({names}) and {context.level.name} trades only unconflicted intents")
    if conflicts:
        names = ", ".join(conflict.rule.value for conflict in conflicts)
        return draft.model_copy(update={"awaits_resolution": True, "reason": f"conflicts ({names}) to resolve"})
    return _trade(draft, risk, rules.risk, "agents agree enough and the risk rules approve")


def settle(decision: Decision, outcome: ResolverOutcome, context: DecisionContext, rules: DecisionRules) -> Decision:
    """The decision after the resolver chain answered ``outcome`` for it; the risk rules decide again."""
    if not decision.awaits_resolution:
        raise ValueError(f"the decision on {decision.symbol} awaits no resolution")
    resolution = outcome.resolution
    settled = decision.model_copy(update={"awaits_resolution": False, "resolution": outcome})
    if not resolution.opens_exposure:
        return _hold(
            settled, f"resolver {outcome.resolved_by} answered {resolution.action.value}: {resolution.reasoning}"
        )
    intent = decision.intent
    if resolution.stop_distance_pct is not None:
        intent = intent.with_stop_distance(resolution.stop_distance_pct, rules.intent.reward_risk)
    views = _views_at_level(context.views, decision.effects)
    proposal = _proposal(intent, decision.confidence, views, resolution.size_reduction_pct, resolution.leverage or 1.0)
    risk = assess_trade(proposal, context.account, rules.risk)
    settled = settled.model_copy(update={"intent": intent, "risk": risk, "risk_before_resolution": decision.risk})
    if not risk.approved:
        return _hold(settled, f"after resolver {outcome.resolved_by}: {_rejection(risk)}")
    return _trade(settled, risk, rules.risk, f"resolver {outcome.resolved_by} answered {resolution.action.value}")


def confirm(decision: Decision, state: CoordinatorState) -> Decision:
    """The decision as committed in ``state`` (the state locked at commit): an entry holds unless it is RUNNING,
    an exit unless the state allows exits (not HALTED)."""
    allowed = allows_exits(state) if decision.closes_position else allows_new_entries(state)
    if not decision.trades or allowed:
        return decision
    held = _hold(decision, f"the coordinator became {state.value} while deciding: no new entries")
    return held.model_copy(update={"state": state})


def _exit(draft: Decision, context: DecisionContext, rules: DecisionRules) -> Decision | None:
    """A short lean on spot without borrowing: sell the long held, or nothing to decide when none is held.

    Exits are not entries: they run while PAUSED, at EMERGENCY and with the breaker tripped; only HALTED stops
    them. The risk rules size entries and have no say here."""
    if context.held <= 0:
        return None
    exit_draft = draft.model_copy(update={"closes_position": True})
    if not allows_exits(context.state):
        return _hold(exit_draft, f"coordinator {context.state.value}: no orders")
    stale = _stale_data(context, rules)
    if stale is not None:
        return _hold(exit_draft, stale)
    entry = draft.intent.entry_price
    return exit_draft.model_copy(
        update={
            "action": DecisionAction.SELL,
            "quantity": context.held,
            "notional": context.held * entry,
            "leverage": 1.0,
            "size_multiplier": 1.0,
            "reason": f"the technical view leans short: closing the long of {context.held:.8g} "
            f"(spot, no borrowing), about {context.held * entry:.2f} notional",
        }
    )


def _views_at_level(views: SymbolViews, level_effects: LevelEffects) -> SymbolViews:
    """The views that count at a level: without sentiment where the level skips it."""
    if level_effects.allow_sentiment:
        return views
    fresh: dict[AgentName, AgentView] = {a: v for a, v in views.fresh.items() if a is not AgentName.SENTIMENT}
    stale: dict[AgentName, datetime] = {a: t for a, t in views.stale.items() if a is not AgentName.SENTIMENT}
    return SymbolViews(views.symbol, views.as_of, fresh, stale)


def _conflict_settings(settings: ConflictSettings, level_effects: LevelEffects) -> ConflictSettings:
    """A level that skips sentiment does not require a sentiment view."""
    if level_effects.allow_sentiment or AgentName.SENTIMENT not in settings.required_agents:
        return settings
    required = [agent for agent in settings.required_agents if agent is not AgentName.SENTIMENT]
    return settings.model_copy(update={"required_agents": required})


def _blocked(
    context: DecisionContext, rules: DecisionRules, level_effects: LevelEffects, confidence: float
) -> str | None:
    """Why no new exposure may be opened now, or None."""
    if not allows_new_entries(context.state):
        return f"coordinator {context.state.value}: no new entries"
    stale = _stale_data(context, rules)
    if stale is not None:
        return stale
    if blocks_new_exposure(context.breaker, context.at):
        trips = "; ".join(trip.reason for trip in context.breaker.trips)
        return f"circuit breaker tripped ({trips}): no new exposure"
    level = context.level.name
    if not level_effects.allow_new_exposure:
        return f"degradation {level}: no new exposure"
    if confidence < level_effects.min_confidence:
        return f"confidence {confidence:.3f} below the {level_effects.min_confidence:.3f} required at {level}"
    return None


def _stale_data(context: DecisionContext, rules: DecisionRules) -> str | None:
    """Why the symbol's market data is too old to decide on, or None."""
    age = context.market_data_age
    if age is None or age <= rules.max_market_data_age_intervals:
        return None
    return (
        f"stale market data: the newest {context.symbol} candle closed {age:.1f} candle intervals ago, more than "
        f"{rules.max_market_data_age_intervals:g}: no trade on old prices"
    )


def _proposal(
    intent: TradeIntent, confidence: float, views: SymbolViews, size_reduction_pct: float, leverage: float
) -> TradeProposal:
    regime_view = views.fresh.get(AgentName.REGIME)
    regime = regime_view.body.regime if regime_view is not None and isinstance(regime_view.body, RegimeView) else None
    return TradeProposal(
        symbol=intent.symbol,
        side=intent.side,
        entry_price=intent.entry_price,
        stop_price=intent.stop_price,
        target_price=intent.target_price,
        confidence=confidence,
        regime=regime or REGIME_WHEN_UNKNOWN,
        size_reduction_pct=size_reduction_pct,
        leverage=leverage,
    )


def _rejection(risk: RiskDecision) -> str:
    outcome = next(outcome for outcome in risk.outcomes if outcome.rule is risk.rejected_by)
    return f"risk rule {outcome.rule.value} rejected it: {outcome.detail}"


def _hold(decision: Decision, reason: str) -> Decision:
    return decision.model_copy(
        update={
            "action": DecisionAction.HOLD,
            "awaits_resolution": False,
            "quantity": 0.0,
            "notional": 0.0,
            "leverage": 0.0,
            "reason": reason,
        }
    )


def _trade(decision: Decision, risk: RiskDecision, settings: RiskSettings, why: str) -> Decision:
    """Buy or sell the approved size scaled by the level's multiplier, unless that leaves too little."""
    multiplier = decision.size_multiplier
    notional = risk.notional * multiplier
    level = decision.level.name
    if notional < settings.min_notional:
        return _hold(
            decision,
            f"{why}, but {level}'s size multiplier {multiplier:g} leaves {notional:.2f}, below min_notional "
            f"{settings.min_notional:g}",
        )
    sized = f" at {level}'s size multiplier {multiplier:g}" if multiplier != 1 else ""
    action = DecisionAction.BUY if decision.intent.is_long else DecisionAction.SELL
    return decision.model_copy(
        update={
            "action": action,
            "awaits_resolution": False,
            "quantity": risk.quantity * multiplier,
            "notional": notional,
            "leverage": risk.leverage,
            "reason": f"{why}: {action.value} {notional:.2f} notional{sized}",
        }
    )
