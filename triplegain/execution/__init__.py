"""Paper execution: simulated fills with fees and slippage, spot accounting, and the broker that stores them.

Functional core, imperative shell: ``fills`` (prices, slippage, fees, rounding, triggers), ``accounting``
(balances, positions, results) and ``exchange`` (orders at submission and at each candle, flatten, restore) are
pure functions over frozen models; ``PaperBroker`` (``broker``) does the I/O: it stores every order status, fill,
position and portfolio snapshot in PostgreSQL (``triplegain.store.execution``) before it acts on them.
``settings`` is the ``execution`` section of the config, market rules included.
"""


from triplegain.execution.accounting import FillEffect, Ledger, Position, apply_fill
from triplegain.execution.broker import BrokerUpdate, PaperBroker
from triplegain.execution.exchange import BrokerState, CandleOutcome
from triplegain.execution.fills import ExitKind
from triplegain.execution.settings import ExecutionSettings, FeeSchedule, MarketRules

__all__ = [
    "BrokerState",
    "BrokerUpdate",
    "CandleOutcome",
    "ExecutionSettings",
    "ExitKind",
    "FeeSchedule",
    "FillEffect",
    "Ledger",
    "MarketRules",
    "PaperBroker",
    "Position",
    "apply_fill",
]

