"""All four agents, run by the pipeline over synthetic candles of two symbols, on a real bus with a fake clock.

On the coordinator's schedule in candle time: technical on every closed 5m candle, regime on every closed 15m
candle (with the symbol's latest TA view from the bus), sentiment every 30 minutes from the sample headlines
(reviewed by the offline provider, as is the regime), portfolio every hour. What subscribers receive must be
scoped by symbol, on the right topic, with the agent's TTL.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.agent_replay import replay_agents
from tests.fakes import InMemoryCallLog
from triplegain.agents import (
    AGENT_OFFLINE_RULES,
    AgentOutput,
    AgentsSettings,
    RegimeSettings,
    ReplaySourceSettings,
    SentimentSettings,
    TechnicalSettings,
)
from triplegain.agents.pipeline import AgentPipeline
from triplegain.agents.portfolio import PortfolioOutput
from triplegain.agents.publishing import AGENT_TOPICS
from triplegain.agents.sentiment import SentimentOutput
from triplegain.agents.technical import TechnicalOutput
from triplegain.bus import Message, MessageBus, Topic
from triplegain.clock import FakeClock
from triplegain.llm import LLMSettings, build_gateway
from triplegain.market import SyntheticFeed, SyntheticSettings, Timeframe

HEADLINES = Path(__file__).resolve().parents[1] / "data" / "headlines.jsonl"
START = datetime(2024, 1, 1, tzinfo=UTC)
CANDLES = 300
SYMBOLS = {"BTC/USDT": 40_000.0, "XRP/USDT": 0.6}
BTC_ITEMS = {"n01", "n02", "n03", "n06", "n07", "n10", "n13"}
XRP_ITEMS = {"n02", "n04", "n05", "n06", "n08", "n09", "n12"}


async def test_four_agents_publish_views_scoped_by_symbol() -> None:
    clock = FakeClock(START)
    settings = AgentsSettings(
        technical=TechnicalSettings(timeframes=[Timeframe.M5, Timeframe.M15, Timeframe.H1]),
        regime=RegimeSettings(timeframe=Timeframe.M15, llm_provider="offline"),
        sentiment=SentimentSettings(sources=[ReplaySourceSettings(path=HEADLINES)], llm_provider="offline"),
    )
    log = InMemoryCallLog()
    offline = build_gateway(
        "offline", LLMSettings(), call_log=log, clock=clock, offline_rules=AGENT_OFFLINE_RULES, environ={}
    )
    feed = SyntheticFeed(
        SyntheticSettings(symbols=SYMBOLS, timeframe=Timeframe.M5, count=CANDLES, start=START, seed=11), clock=clock
    )
    received: dict[Topic, list[Message]] = defaultdict(list)

    async def keep(message: Message) -> None:
        received[message.topic].append(message)

    async with MessageBus(clock=clock) as bus:
        pipeline = AgentPipeline(
            settings,
            bus=bus,
            clock=clock,
            base_timeframe=Timeframe.M5,
            gateways={"offline": offline},
            balances=lambda: {"BTC": 0.5, "XRP": 10_000.0, "USDT": 5_000.0},
        )
        valid_for = {
            agent.name: agent.valid_for
            for agent in (pipeline.technical, pipeline.regime, pipeline.sentiment, pipeline.portfolio)
        }
        for topic in AGENT_TOPICS.values():
            await bus.subscribe(topic, keep, name=f"test.{topic.value}")
        await replay_agents(pipeline, feed, list(SYMBOLS), clock)
        await bus.drain()

        counts = {topic: len(messages) for topic, messages in received.items()}
        assert counts == {
            Topic.TA_SIGNALS: 2 * CANDLES,
            Topic.REGIME_UPDATES: 2 * CANDLES // 3,
            Topic.SENTIMENT_UPDATES: 2 * CANDLES // 6,
            Topic.PORTFOLIO_UPDATES: 2 * CANDLES // 12,
        }
        outputs: list[AgentOutput[Any]] = []
        for topic, messages in received.items():
            for message in messages:
                output = message.payload
                assert isinstance(output, AgentOutput)
                outputs.append(output)
                assert AGENT_TOPICS[output.agent] is topic
                assert message.symbol == output.symbol
                assert message.symbol in SYMBOLS
                assert message.ttl == valid_for[output.agent]
                assert message.source == f"agents.{output.agent.value}"
                assert message.correlation_id == output.id
                assert output.timestamp == message.created_at
                assert 0.0 <= output.confidence <= 1.0

        for message in received[Topic.TA_SIGNALS]:
            assert isinstance(message.payload, TechnicalOutput)
            assert (message.payload.body.price > 1_000) == (message.symbol == "BTC/USDT")
        for message in received[Topic.SENTIMENT_UPDATES]:
            assert isinstance(message.payload, SentimentOutput)
            drivers = {driver.id for driver in message.payload.body.drivers}
            assert drivers <= (BTC_ITEMS if message.symbol == "BTC/USDT" else XRP_ITEMS)
        for message in received[Topic.PORTFOLIO_UPDATES]:
            assert isinstance(message.payload, PortfolioOutput)
            body, scope = message.payload.body, message.payload.symbol
            assert scope is not None
            assert {position.asset for position in body.positions} == {scope.split("/")[0], "USDT"}
            assert {proposal.symbol for proposal in body.proposals} <= {scope}

        reviewed = [output for output in outputs if output.llm_call_id is not None]
        assert {output.agent.value for output in reviewed} == {"regime", "sentiment"}
        succeeded = {record.id: record.served_id for record in log.records if record.succeeded}
        assert {output.llm_call_id: output.id for output in reviewed} == succeeded

        assert bus.stats().expired == 0
        clock.advance(timedelta(seconds=settings.technical.valid_seconds))
        for symbol in SYMBOLS:
            assert bus.latest(Topic.TA_SIGNALS, symbol) is None  # its TTL has passed
            latest_sentiment = bus.latest(Topic.SENTIMENT_UPDATES, symbol)
            assert latest_sentiment is not None
            assert latest_sentiment.symbol == symbol
    await pipeline.aclose()
