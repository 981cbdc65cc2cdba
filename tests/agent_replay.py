"""Replay candles through the agents alone, on the coordinator's schedule (no trade decisions, no housekeeping)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence

from triplegain.agents.pipeline import AgentPipeline
from triplegain.clock import FakeClock
from triplegain.coordinator.degradation import DegradationSettings
from triplegain.coordinator.replay import CandleReplay, ReplayProgress
from triplegain.coordinator.runner import TaskRunner
from triplegain.coordinator.schedule import ScheduleSettings
from triplegain.coordinator.tasks import agent_tasks
from triplegain.market import Candle

AGENTS_ONLY = ScheduleSettings().model_copy(
    update={
        "trade_decision": ScheduleSettings().trade_decision.model_copy(update={"enabled": False}),
        "housekeeping": ScheduleSettings().housekeeping.model_copy(update={"enabled": False}),
    }
)


async def replay_agents(
    pipeline: AgentPipeline, candles: AsyncIterable[Candle], symbols: Sequence[str], clock: FakeClock
) -> ReplayProgress:
    """Run the four agents' tasks at candle time over ``candles``; every run must succeed."""
    full = DegradationSettings().normal
    runner = TaskRunner(AGENTS_ONLY, agent_tasks(pipeline, lambda: full), symbols, clock=clock)

    async def ingest(candle: Candle) -> None:
        pipeline.ingest(candle)

    progress = await CandleReplay(AGENTS_ONLY, runner, clock=clock, ingest=ingest).run(candles)
    assert runner.failures == 0
    return progress
