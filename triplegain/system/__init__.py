"""The composition root: the trading system assembled from settings (``assembly``).

Everything below it (coordinator, agents, risk, execution, store, bus, llm, market) is built and wired here and
nowhere else; the daemon and the benchmarks start a system through ``trading_system``.
"""


from triplegain.system.assembly import TradingSystem, decision_rules, restored_last_runs, trading_system

__all__ = ["TradingSystem", "decision_rules", "restored_last_runs", "trading_system"]

