"""What the coordinator tells the rest of the system on the bus: the payloads of its topics, frozen and typed.

| topic              | payload                                  |
|--------------------|------------------------------------------|
| ``trade_intents``  | ``DecisionMade``                         |
| ``system_events``  | ``StateChanged``, ``LevelChanged``       |
| ``risk_alerts``    | ``BreakerTripped``                       |

The daemon's own events, ``DatabaseOutage`` and ``DaemonStopped``, do not travel on the bus: the daemon hands them
to the alert dispatcher (``triplegain.alerts``) directly (the bus is gone by the time the daemon stops).

(``execution_events`` carries the orders and fills themselves, ``OrderRow`` and ``FillRow``; the market and agent
topics carry ``Candle`` and the agents' ``AgentOutput``: see docs/ARCHITECTURE.md for the whole table.)
"""

from __future__ import annotations

from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict

from triplegain.model.names import BreakerAction, BreakerRule, CoordinatorState, DecisionAction, DegradationLevel


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DecisionMade(_Event):
    """A trade decision on a symbol, as stored (``decisions``); ``client_order_id`` of the order it placed, if any."""

    decision_id: UUID
    account: str
    symbol: str
    at: AwareDatetime
    action: DecisionAction
    confidence: float
    reason: str
    client_order_id: str | None = None


class StateChanged(_Event):
    """The coordinator's state changed: who asked and why (``from_state`` None: the account's first state)."""

    account: str
    from_state: CoordinatorState | None
    to_state: CoordinatorState
    by: str
    reason: str
    at: AwareDatetime


class LevelChanged(_Event):
    """The degradation level changed, with each cause as a line (signal, subject, value against threshold)."""

    account: str
    from_level: DegradationLevel
    to_level: DegradationLevel
    causes: tuple[str, ...]
    at: AwareDatetime


class BreakerTripped(_Event):
    """A circuit-breaker rule tripped: what it does (pause until ``until``, or halt) and why."""

    account: str
    rule: BreakerRule
    action: BreakerAction
    reason: str
    at: AwareDatetime
    until: AwareDatetime | None


class DatabaseOutage(_Event):
    """The database went out of reach (``started``) or came back; how long it was gone and what waits in memory."""

    started: bool
    at: AwareDatetime
    unreachable_seconds: float
    rows_held: int


class DaemonStopped(_Event):
    """The daemon stopped trading: why (the reason its ``daemon_runs`` row records)."""

    account: str
    run_id: int
    reason: str
    at: AwareDatetime
