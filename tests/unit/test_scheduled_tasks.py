"""The agents' tasks follow the degradation level: no LLM refinement where the level forbids it, no sentiment run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.builders import candles_from_closes, rising_closes
from tests.fakes import InMemoryCallLog
from triplegain.agents import AGENT_OFFLINE_RULES, AgentsSettings
from triplegain.agents.pipeline import AgentPipeline
from triplegain.bus import MessageBus, Topic
from triplegain.clock import FakeClock
from triplegain.coordinator.degradation import DegradationSettings, effects
from triplegain.coordinator.schedule import TaskName
from triplegain.coordinator.tasks import agent_tasks
from triplegain.llm import LLMSettings, build_gateway
from triplegain.market import Timeframe
from triplegain.model import DegradationLevel

pytestmark = pytest.mark.timeout(30)

HEADLINES = Path(__file__).resolve().parents[1] / "data" / "headlines.jsonl"
SYMBOL = "BTC/USDT"


@pytest.mark.parametrize(
    ("level", "reviewed", "sentiment_runs"),
    [(DegradationLevel.NORMAL, True, True), (DegradationLevel.REDUCED, False, False)],
)
async def test_the_level_decides_reviews_and_sentiment(
    level: DegradationLevel, reviewed: bool, sentiment_runs: bool
) -> None:
    candles = candles_from_closes(rising_closes(60))
    clock = FakeClock(candles[-1].close_time)
    log = InMemoryCallLog()
    gateway = build_gateway(
        "offline", LLMSettings(), call_log=log, clock=clock, offline_rules=AGENT_OFFLINE_RULES, environ={}
    )
    settings = AgentsSettings.model_validate(
        {
            "technical": {"timeframes": ["5m"], "llm_provider": "offline"},
            "sentiment": {"sources": [{"kind": "replay", "path": str(HEADLINES)}]},
        }
    )
    async with MessageBus(clock=clock) as bus:
        pipeline = AgentPipeline(
            settings, bus=bus, clock=clock, base_timeframe=Timeframe.M5, gateways={"offline": gateway}
        )
        for candle in candles:
            pipeline.ingest(candle)
        level_effects = effects(level, DegradationSettings())
        tasks = agent_tasks(pipeline, lambda: level_effects)
        await tasks[TaskName.TECHNICAL](SYMBOL, clock.now())
        await tasks[TaskName.SENTIMENT](SYMBOL, clock.now() + timedelta(minutes=30))
        assert bool(log.records) is reviewed
        assert (bus.latest(Topic.SENTIMENT_UPDATES, SYMBOL) is not None) is sentiment_runs
        assert (pipeline.skipped["sentiment: not at this degradation level"] == 0) is sentiment_runs
        await pipeline.aclose()
    await gateway.aclose()
