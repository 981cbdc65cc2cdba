"""A decision as the rows that store it: the decision with every number behind it, its conflicts, its order.

Pure: ``decision_write`` only maps. The columns (``decisions``, ``conflicts``, ``orders``):

    consensus_inputs   each fresh view that counted: agent, output id, direction, confidence, weight, stance
    consensus_terms    base confidence, support, opposition, neutrality, boost, penalty, unbounded, the constants
    consensus_result   direction and the bounded confidence
    risk_checks        the risk rules' decision the action rests on (every rule's verdict and numbers), the one
                       before a resolver changed the proposal, and the level's size multiplier applied after
    intent             entry, stop, target, base confidence, and how the stop was chosen
    resolution         who resolved, the bounded answer, what was clamped, and every attempt (llm_calls ids)
    effects            the degradation level's effects, as applied
    conflicts          one row per rule that fired, settled with the resolver's action and who answered
    order              a market order for a buy or sell, its client id derived from the decision's id; an entry
                       carries the intent's stop and target for the position, an exit none, with the
                       intent's stop and target (the broker attaches them to the position the order opens)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import JsonValue

from triplegain.coordinator.decision import Decision
from triplegain.model import DecisionAction, OrderRow
from triplegain.store.decisions import ConflictRow, DecisionRow, DecisionWrite

ORDER_QUANTITY_DIGITS = 12
"""Significant digits an order quantity keeps (the broker applies each market's own precision)."""


def client_order_id_for(decision_id: uuid.UUID) -> str:
    """The client order id of the order a decision makes: one decision, at most one order, ever."""
    return f"tg-{decision_id}"


def decision_write(
    decision: Decision, *, decision_id: uuid.UUID, account: str, run_id: int | None, now: datetime
) -> DecisionWrite:
    """The rows of ``decision``; ``now`` dates the order."""
    consensus = decision.consensus
    terms: dict[str, JsonValue] = {
        "base_confidence": consensus.base_confidence,
        "support": consensus.support,
        "opposition": consensus.opposition,
        "neutrality": consensus.neutrality,
        "boost": consensus.boost,
        "penalty": consensus.penalty,
        "unbounded": consensus.unbounded,
        "absent": [agent.value for agent in consensus.absent],
        "views_used": [agent.value for agent in decision.views_used],
        "settings": consensus.settings.model_dump(mode="json"),
    }
    risk: dict[str, JsonValue] = {
        "decision": decision.risk.model_dump(mode="json") if decision.risk is not None else None,
        "before_resolution": (
            decision.risk_before_resolution.model_dump(mode="json")
            if decision.risk_before_resolution is not None
            else None
        ),
        "size_multiplier": decision.size_multiplier,
        "quantity": decision.quantity,
        "notional": decision.notional,
        "leverage": decision.leverage,
    }
    resolution = decision.resolution
    # model_construct for the decision and its conflicts: every value comes from the validated ``Decision`` (the
    # JSON ones from model_dump), and validating each JSON value again was half the CPU of this function.
    row = DecisionRow.model_construct(
        id=decision_id,
        run_id=run_id,
        account=account,
        symbol=decision.symbol,
        ts=decision.at,
        action=decision.action,
        confidence=decision.confidence,
        consensus_inputs=[entry.model_dump(mode="json") for entry in consensus.inputs],
        consensus_terms=terms,
        consensus_result={"direction": consensus.direction.value, "confidence": consensus.confidence},
        risk_checks=risk,
        degradation_level=decision.level,
        coordinator_state=decision.state,
        reason=decision.reason,
        intent=decision.intent.model_dump(mode="json"),
        resolution=resolution.model_dump(mode="json") if resolution is not None else None,
        effects=decision.effects.model_dump(mode="json"),
    )
    conflicts = tuple(
        ConflictRow.model_construct(
            id=uuid.uuid5(decision_id, conflict.rule.value),
            decision_id=decision_id,
            ts=decision.at,
            rule=conflict.rule.value,
            details={**conflict.details, "severity": conflict.severity, "summary": conflict.summary},
            resolution=resolution.resolution.action if resolution is not None else None,
            resolved_by=resolution.resolved_by if resolution is not None else None,
        )
        for conflict in decision.conflicts
    )
    order = None
    if decision.action is not DecisionAction.HOLD:
        order = OrderRow(
            id=uuid.uuid5(decision_id, "order"),
            client_order_id=client_order_id_for(decision_id),
            account=account,
            decision_id=decision_id,
            symbol=decision.symbol,
            side=decision.action.value,
            type="market",
            qty=round(Decimal(repr(decision.quantity)), ORDER_QUANTITY_DIGITS),
            price=None,
            status="pending",
            created_at=now,
            updated_at=now,
            reason=decision.reason,
            stop_price=None if decision.closes_position else Decimal(repr(decision.intent.stop_price)),
            target_price=None if decision.closes_position else Decimal(repr(decision.intent.target_price)),
        )
    return DecisionWrite(decision=row, conflicts=conflicts, order=order)
