"""The summary a run ends with: what it says beyond the figures every run has."""

from __future__ import annotations

from typing import Any

from triplegain.daemon.summary import ProviderUse, RunSummary


def summary(**changes: Any) -> RunSummary:
    figures: dict[str, Any] = {
        "run_id": 3,
        "account": "paper",
        "exit_reason": "replay finished",
        "candles": 100,
        "decisions": 40,
        "trades": 2,
        "llm_calls": {"deepseek": ProviderUse(calls=4, cost_usd=0.0123)},
        "starting_equity": 10_000.0,
        "final_equity": 10_050.0,
        "buy_and_hold_equity": 10_100.0,
        "max_drawdown_pct": 1.5,
        "wall_seconds": 2.0,
        "candles_per_second": 50.0,
    }
    return RunSummary(**(figures | changes))


def test_a_quiet_run_says_nothing_more() -> None:
    labels = [line.split()[0] for line in summary().lines()]
    assert labels == ["run", "account", "candles", "decisions", "trades", "LLM", "final", "buy", "max", "wall"]


def test_resolutions_cut_short_timeouts_and_refused_rows_are_reported() -> None:
    lines = summary(resolutions_cut_short=2, task_timeouts=3, rows_refused=1).lines()
    assert lines[-3:] == [
        "timed out     3 task runs",
        "cut short     2 resolutions (the task's timeout): stored as conservative holds",
        "not stored    1 log rows refused by the database (see the log)",
    ]
