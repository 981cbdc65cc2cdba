"""The composition root: the trading system assembled from settings (``assembly``).

Everything below it (coordinator, agents, risk, execution, store, bus, llm, market) is built and wired here and
nowhere else; the daemon and the benchmarks start a system through ``trading_system``.
"""

from typing import TYPE_CHECKING

from triplegain.lazy import exported_lazily

if TYPE_CHECKING:
    from triplegain.system.assembly import TradingSystem, decision_rules, restored_last_runs, trading_system

__all__ = ["TradingSystem", "decision_rules", "restored_last_runs", "trading_system"]

__getattr__ = exported_lazily(
    __name__,
    {
        "triplegain.system.assembly": ("TradingSystem", "decision_rules", "restored_last_runs", "trading_system"),
    },
)
