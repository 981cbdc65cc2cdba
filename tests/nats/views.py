"""Real agents' views for the NATS tests: the newest of each agent, made over synthetic candles."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.agent_replay import replay_agents
from triplegain.agents.pipeline import AgentPipeline
from triplegain.agents.settings import AgentsSettings, PortfolioSettings, ReplaySourceSettings, SentimentSettings
from triplegain.bus import Message, MessageBus, Topic
from triplegain.clock import FakeClock, WallClock
from triplegain.market import SyntheticFeed, Timeframe
from triplegain.market.settings import SyntheticSettings

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HEADLINES = Path(__file__).resolve().parents[1] / "data" / "headlines.jsonl"


async def agent_messages() -> list[Message]:
    """The newest view of each agent topic, made by the real agents over synthetic candles."""
    clock = FakeClock(T0)
    synthetic = SyntheticSettings(symbols={"BTC/USDT": 40_000.0}, count=300, start=T0, timeframe=Timeframe.M5)
    settings = AgentsSettings(
        sentiment=SentimentSettings(sources=[ReplaySourceSettings(path=HEADLINES)]),
        portfolio=PortfolioSettings(target_allocation={"BTC": 0.5, "USDT": 0.5}),
    )
    async with MessageBus(clock=clock) as bus:
        pipeline = AgentPipeline(
            settings, bus=bus, clock=clock, base_timeframe=Timeframe.M5, balances=lambda: {"USDT": 1_000.0}
        )
        await replay_agents(pipeline, SyntheticFeed(synthetic, clock=WallClock()), ["BTC/USDT"], clock)
        topics = (Topic.TA_SIGNALS, Topic.REGIME_UPDATES, Topic.SENTIMENT_UPDATES, Topic.PORTFOLIO_UPDATES)
        found = [bus.latest(topic, "BTC/USDT", include_expired=True) for topic in topics]
        await pipeline.aclose()
    assert all(message is not None for message in found), (found, pipeline.skipped)
    return [message for message in found if message is not None]
