"""The shared vocabulary: the names, values and records that more than one layer uses.

This package sits at the bottom of the import layers (``docs/ARCHITECTURE.md``) beside ``clock``, ``errors`` and
``paths``: it imports nothing else of triplegain, so every layer above can speak it. Each idea is defined here once:

- ``names``: agents, biases, regimes, decision and order vocabulary, the coordinator's states and commands'
  verbs, degradation levels, breaker rules, task outcomes;
- ``control``: an operator command and the coordinator's state record (what the CLI submits, the store queues and
  the coordinator applies);
- ``account``: the paper account as the risk rules see it;
- ``orders``: orders, fills, positions and snapshots as the broker makes them and the store keeps them;
- ``events``: the typed payloads published on the bus's coordinator topics.
"""

from triplegain.model.account import ACCOUNT_NAME_PATTERN, AccountSnapshot, ClosedTrade, account_name
from triplegain.model.control import ARGUMENTS, Applied, Command, CommandError, Outcome, Refused, StateRecord
from triplegain.model.events import (
    BreakerTripped,
    DaemonStopped,
    DatabaseOutage,
    DecisionMade,
    LevelChanged,
    StateChanged,
)
from triplegain.model.names import (
    OPEN_STATUSES,
    AgentName,
    Bias,
    BreakerAction,
    BreakerRule,
    CoordinatorState,
    DecisionAction,
    DegradationLevel,
    Liquidity,
    OrderSide,
    OrderStatus,
    OrderType,
    RegimeName,
    ResolutionAction,
    TaskStatus,
    Verb,
)
from triplegain.model.orders import (
    CandleWrite,
    FillRow,
    MarkRow,
    OrderRow,
    OrderUpdate,
    PortfolioSnapshotRow,
    PositionRow,
    StoredFill,
)

__all__ = [
    "ACCOUNT_NAME_PATTERN",
    "ARGUMENTS",
    "OPEN_STATUSES",
    "AccountSnapshot",
    "AgentName",
    "Applied",
    "Bias",
    "BreakerAction",
    "BreakerRule",
    "BreakerTripped",
    "CandleWrite",
    "ClosedTrade",
    "Command",
    "CommandError",
    "CoordinatorState",
    "DaemonStopped",
    "DatabaseOutage",
    "DecisionAction",
    "DecisionMade",
    "DegradationLevel",
    "FillRow",
    "LevelChanged",
    "Liquidity",
    "MarkRow",
    "OrderRow",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Outcome",
    "PortfolioSnapshotRow",
    "PositionRow",
    "Refused",
    "RegimeName",
    "ResolutionAction",
    "StateChanged",
    "StateRecord",
    "StoredFill",
    "TaskStatus",
    "Verb",
    "account_name",
]
