"""What each scheduled task does: the agents' analyses, the trade decision and housekeeping.

The level's effects are read when a run starts: at a level without LLM refinement the agents keep their
deterministic baseline, and at a level without sentiment the sentiment task does not run (``pipeline.skipped``
counts it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from triplegain.agents.pipeline import AgentPipeline
from triplegain.coordinator.coordinator import Coordinator
from triplegain.coordinator.degradation import LevelEffects
from triplegain.coordinator.runner import TaskFn
from triplegain.coordinator.schedule import TaskName


def scheduled_tasks(
    pipeline: AgentPipeline, coordinator: Coordinator, effects: Callable[[], LevelEffects]
) -> Mapping[TaskName, TaskFn]:
    """The body of every task in ``TaskName``."""

    async def trade_decision(symbol: str | None, now: datetime) -> None:
        await coordinator.decide(symbol, now)

    return {
        **agent_tasks(pipeline, effects),
        TaskName.TRADE_DECISION: trade_decision,
        TaskName.HOUSEKEEPING: coordinator.housekeeping,
    }


def agent_tasks(pipeline: AgentPipeline, effects: Callable[[], LevelEffects]) -> dict[TaskName, TaskFn]:
    """The bodies of the four agents' tasks."""

    def per_symbol(symbol: str | None, task: TaskName) -> str:
        if symbol is None:
            raise ValueError(f"the {task.value} task runs per symbol")
        return symbol

    async def technical(symbol: str | None, _now: datetime) -> None:
        await pipeline.run_technical(per_symbol(symbol, TaskName.TECHNICAL), allow_llm=effects().allow_llm_refinement)

    async def regime(symbol: str | None, _now: datetime) -> None:
        await pipeline.run_regime(per_symbol(symbol, TaskName.REGIME), allow_llm=effects().allow_llm_refinement)

    async def sentiment(symbol: str | None, _now: datetime) -> None:
        level_effects = effects()
        if not level_effects.allow_sentiment:
            pipeline.skipped["sentiment: not at this degradation level"] += 1
            return
        await pipeline.run_sentiment(
            per_symbol(symbol, TaskName.SENTIMENT), allow_llm=level_effects.allow_llm_refinement
        )

    async def portfolio(symbol: str | None, _now: datetime) -> None:
        await pipeline.run_portfolio(per_symbol(symbol, TaskName.PORTFOLIO))

    return {
        TaskName.TECHNICAL: technical,
        TaskName.REGIME: regime,
        TaskName.SENTIMENT: sentiment,
        TaskName.PORTFOLIO: portfolio,
    }
