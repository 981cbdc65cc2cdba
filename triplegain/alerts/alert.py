"""What an event tells the operator: the pure map from the coordinator's and the daemon's events to alerts.

``alert_for(event)`` is the whole policy: a breaker trip, a halt, a degradation level reaching LIMITED or
EMERGENCY, a database outage and its end, and the daemon's stop each make one ``Alert``; every other event (a
pause, a level falling back to NORMAL or REDUCED, a decision) makes none.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from triplegain.model import (
    BreakerTripped,
    CoordinatorState,
    DaemonStopped,
    DatabaseOutage,
    DegradationLevel,
    LevelChanged,
    StateChanged,
)

ALERTING_LEVELS = frozenset({DegradationLevel.LIMITED, DegradationLevel.EMERGENCY})
"""A level change to one of these is an alert (LIMITED: no new positions; EMERGENCY: no new exposure)."""


class AlertKind(StrEnum):
    """What an alert is about; the values are those of ``alerts.kind``."""

    BREAKER_TRIPPED = "breaker_tripped"
    HALTED = "halted"
    LEVEL_CHANGED = "level_changed"
    DATABASE_OUTAGE = "database_outage"
    DATABASE_BACK = "database_back"
    DAEMON_STOPPED = "daemon_stopped"


class Alert(BaseModel, frozen=True):
    """One message to the operator: its kind, a line of text for a human, the event's fields, when it happened
    (the system's clock: candle time in a replay)."""

    kind: AlertKind
    text: str
    at: datetime
    payload: dict[str, Any]


def alert_for(event: BaseModel) -> Alert | None:
    """The alert ``event`` makes, or None."""
    match event:
        case BreakerTripped(rule=rule, action=action, reason=reason, until=until):
            until_text = f" until {until:%Y-%m-%d %H:%M} UTC" if until is not None else ""
            text = f"breaker {rule.value} tripped: {action.value}{until_text} — {reason}"
            return _alert(AlertKind.BREAKER_TRIPPED, text, event.at, event)
        case StateChanged(from_state=before, to_state=CoordinatorState.HALTED, by=by, reason=reason) if (
            before is not CoordinatorState.HALTED
        ):
            return _alert(AlertKind.HALTED, f"halted by {by} — {reason}", event.at, event)
        case LevelChanged(from_level=before, to_level=after, causes=causes) if after in ALERTING_LEVELS:
            because = f" — {'; '.join(causes)}" if causes else ""
            text = f"degradation level {before.name} → {after.name}{because}"
            return _alert(AlertKind.LEVEL_CHANGED, text, event.at, event)
        case DatabaseOutage(started=True, rows_held=held):
            text = f"database out of reach: writes held in memory ({held:,} rows) and retried; no new exposure"
            return _alert(AlertKind.DATABASE_OUTAGE, text, event.at, event)
        case DatabaseOutage(started=False, unreachable_seconds=seconds):
            text = f"database back after {seconds:,.0f} s out of reach"
            return _alert(AlertKind.DATABASE_BACK, text, event.at, event)
        case DaemonStopped(run_id=run_id, reason=reason):
            return _alert(AlertKind.DAEMON_STOPPED, f"daemon stopped (run {run_id}): {reason}", event.at, event)
    return None


def _alert(kind: AlertKind, text: str, at: datetime, event: BaseModel) -> Alert:
    return Alert(kind=kind, text=text, at=at, payload=event.model_dump(mode="json"))
