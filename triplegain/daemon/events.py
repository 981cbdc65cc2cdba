"""What the daemon hears on the bus: candles taken in, decisions, orders and fills, breaker trips, state and level
changes. The status panel and the run's summary read them from here, so every topic the system publishes has a
reader in the daemon (docs/ARCHITECTURE.md, the table of topics)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from triplegain.bus import Message, MessageBus, Overflow, Topic
from triplegain.clock import WallClock
from triplegain.market import Candle
from triplegain.model import (
    BreakerTripped,
    DecisionAction,
    DecisionMade,
    FillRow,
    LevelChanged,
    OrderRow,
    StateChanged,
)

SUBSCRIBER = "daemon.events"
RECENT_EVENTS = 20
"""Breaker trips, state and level changes kept for the panel (all of them are counted and stored)."""


@dataclass
class RunEvents:
    """Counts and the latest of each kind, as delivered (a bus handler per topic appends here)."""

    candles: int = 0
    first_close: dict[str, float] = field(default_factory=dict)
    last_close: dict[str, float] = field(default_factory=dict)
    last_candle_close: datetime | None = None
    last_decision: DecisionMade | None = None
    decisions: Counter[DecisionAction] = field(default_factory=Counter)
    orders_placed: int = 0
    fills: int = 0
    breaker_trips: int = 0
    state_changes: int = 0
    level_changes: int = 0
    recent: deque[BreakerTripped | StateChanged | LevelChanged] = field(
        default_factory=lambda: deque(maxlen=RECENT_EVENTS)
    )
    wall: WallClock = field(default_factory=WallClock)
    last_candle_monotonic: float | None = None
    """When the last candle was heard, on the wall clock's monotonic time (the feed's staleness)."""

    async def subscribe(self, bus: MessageBus) -> None:
        """Start hearing the market, trade intent, execution, risk and system topics of ``bus``."""
        handlers: dict[Topic, Callable[[Message], Awaitable[None]]] = {
            Topic.MARKET_DATA: self._on_candle,
            Topic.TRADE_INTENTS: self._on_decision,
            Topic.EXECUTION_EVENTS: self._on_execution,
            Topic.RISK_ALERTS: self._on_risk_alert,
            Topic.SYSTEM_EVENTS: self._on_system_event,
        }
        for topic, handler in handlers.items():
            # every candle counts here: this reader never drops one for a newer
            await bus.subscribe(topic, handler, name=f"{SUBSCRIBER}.{topic.value}", overflow=Overflow.BLOCK)

    async def _on_candle(self, message: Message) -> None:
        candle = message.payload
        if isinstance(candle, Candle):
            self.candles += 1
            self.first_close.setdefault(candle.symbol, candle.close)
            self.last_close[candle.symbol] = candle.close
            self.last_candle_close = candle.close_time
            self.last_candle_monotonic = self.wall.monotonic()

    async def _on_decision(self, message: Message) -> None:
        decision = message.payload
        if isinstance(decision, DecisionMade):
            self.last_decision = decision
            self.decisions[decision.action] += 1

    async def _on_execution(self, message: Message) -> None:
        if isinstance(message.payload, OrderRow):
            self.orders_placed += 1
        elif isinstance(message.payload, FillRow):
            self.fills += 1

    async def _on_risk_alert(self, message: Message) -> None:
        if isinstance(message.payload, BreakerTripped):
            self.breaker_trips += 1
            self.recent.append(message.payload)

    async def _on_system_event(self, message: Message) -> None:
        event = message.payload
        if isinstance(event, StateChanged):
            self.state_changes += 1
            self.recent.append(event)
        elif isinstance(event, LevelChanged):
            self.level_changes += 1
            self.recent.append(event)
