"""The names every layer shares: who formed a view, which way it leans, what a decision or an order does, and
the states the coordinator and the system can be in. Values are those stored in the database and shown to users.
"""

from __future__ import annotations

from enum import StrEnum


class AgentName(StrEnum):
    TECHNICAL = "technical"
    REGIME = "regime"
    SENTIMENT = "sentiment"
    PORTFOLIO = "portfolio"


class Bias(StrEnum):
    """Which way a view leans."""

    LONG = "long"
    SHORT = "short"
    NEUTRAL = "neutral"


class RegimeName(StrEnum):
    TRENDING_BULL = "trending_bull"
    TRENDING_BEAR = "trending_bear"
    RANGING = "ranging"
    VOLATILE_BULL = "volatile_bull"
    VOLATILE_BEAR = "volatile_bear"
    CHOPPY = "choppy"
    BREAKOUT_POTENTIAL = "breakout_potential"


class DecisionAction(StrEnum):
    """What a decision does; the values are those of ``decisions.action``."""

    BUY = "buy"
    SELL = "sell"
    HOLD = "hold"


class ResolutionAction(StrEnum):
    """What a conflict resolver answered; the values are those of ``conflicts.resolution``."""

    PROCEED = "proceed"
    MODIFY = "modify"
    WAIT = "wait"
    ABORT = "abort"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


class OrderStatus(StrEnum):
    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


OPEN_STATUSES: tuple[OrderStatus, ...] = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
"""Orders the broker holds, waiting for their candle."""


class Liquidity(StrEnum):
    """Which side of the book a fill took: the fee it pays depends on it."""

    MAKER = "maker"
    TAKER = "taker"


class CoordinatorState(StrEnum):
    """What the coordinator may do; the values are those of ``coordinator_state.state``."""

    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    HALTED = "HALTED"


class Verb(StrEnum):
    """An operator command; the values are those of ``coordinator_commands.verb``."""

    PAUSE = "pause"
    RESUME = "resume"
    HALT = "halt"


class DegradationLevel(StrEnum):
    """How degraded the system is; later members are worse. Stored by name (``NORMAL``…)."""

    NORMAL = "normal"
    REDUCED = "reduced"
    LIMITED = "limited"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        """0 for NORMAL up to 3 for EMERGENCY."""
        return _LEVELS.index(self)


_LEVELS = tuple(DegradationLevel)


class BreakerRule(StrEnum):
    DAILY_LOSS = "daily_loss"
    WEEKLY_LOSS = "weekly_loss"
    MAX_DRAWDOWN = "max_drawdown"
    CONSECUTIVE_LOSSES = "consecutive_losses"


class BreakerAction(StrEnum):
    PAUSE = "pause"
    HALT = "halt"


class TaskStatus(StrEnum):
    """How a scheduled task's run ended; the values are those of ``task_runs.status``."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
