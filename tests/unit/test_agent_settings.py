"""The agents' settings sections, the protocol every agent meets, and publishing an output."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from triplegain.agents import (
    Agent,
    AgentOutput,
    AgentsSettings,
    Holdings,
    ItemPool,
    PortfolioAgent,
    PortfolioContext,
    PortfolioView,
    RegimeAgent,
    RegimeContext,
    RegimeSettings,
    RegimeView,
    SentimentAgent,
    SentimentContext,
    SentimentView,
    TechnicalAgent,
    TechnicalContext,
    TechnicalSettings,
    TechnicalView,
    TechnicalWeights,
)
from triplegain.agents.publishing import publish_output
from triplegain.bus import MessageBus, Priority, Topic
from triplegain.clock import FakeClock
from triplegain.market import Timeframe
from triplegain.model import AgentName


def every_field(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    found = []
    for name, field in model.model_fields.items():
        found.append((name, model))
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(every_field(annotation))
    return found


def test_every_setting_has_a_description() -> None:
    missing = [
        f"{model.__name__}.{name}"
        for name, model in every_field(AgentsSettings)
        if not model.model_fields[name].description
    ]
    assert missing == []


def test_timeframes_are_listed_once_shortest_first_each_a_multiple_of_the_first() -> None:
    assert TechnicalSettings(timeframes=["5m", "1h"]).timeframes == [Timeframe.M5, Timeframe.H1]
    for bad in (["1h", "5m"], ["5m", "5m"]):
        with pytest.raises(ValidationError, match="list each timeframe once, shortest first"):
            TechnicalSettings(timeframes=bad)
    with pytest.raises(ValidationError, match="at most 3 items"):
        TechnicalSettings(timeframes=["1m", "5m", "15m", "1h"])
    with pytest.raises(ValidationError, match="timeframe '2m' is not supported"):
        TechnicalSettings(timeframes=["2m"])


def test_an_unknown_llm_provider_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown LLM provider 'deepsek'; known: deepseek, anthropic"):
        AgentsSettings.model_validate({"sentiment": {"llm_provider": "deepsek"}})
    assert RegimeSettings(llm_provider="anthropic").llm_provider == "anthropic"


def test_a_weightless_technical_score_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least one weight must be > 0"):
        TechnicalWeights(ema_cross=0, macd=0, rsi=0, vwap=0)


def test_adx_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match=r"adx_ranging \(30.0\) must not exceed adx_trending \(25.0\)"):
        RegimeSettings(adx_ranging=30)


def test_a_source_is_a_feed_or_a_replay_file() -> None:
    settings = AgentsSettings.model_validate(
        {
            "sentiment": {
                "sources": [
                    {"kind": "feed", "name": "wire", "url": "https://news.example/rss"},
                    {"kind": "replay", "path": "news.jsonl"},
                ]
            }
        }
    )
    assert [source.kind for source in settings.sentiment.sources] == ["feed", "replay"]
    with pytest.raises(ValidationError, match="Input tag 'mqtt' found using 'kind' does not match"):
        AgentsSettings.model_validate({"sentiment": {"sources": [{"kind": "mqtt"}]}})
    with pytest.raises(ValidationError, match="String should match pattern"):
        AgentsSettings.model_validate({"sentiment": {"sources": [{"kind": "feed", "name": "x", "url": "file:///x"}]}})


def test_every_agent_meets_the_protocol() -> None:
    clock = FakeClock()
    settings = AgentsSettings()
    pool = ItemPool([], poll_interval=timedelta(0), lookback=timedelta(hours=1))
    technical: Agent[TechnicalContext, TechnicalView] = TechnicalAgent(settings.technical, clock=clock)
    regime: Agent[RegimeContext, RegimeView] = RegimeAgent(settings.regime, clock=clock)
    sentiment: Agent[SentimentContext, SentimentView] = SentimentAgent(settings.sentiment, clock=clock, pool=pool)
    portfolio: Agent[PortfolioContext, PortfolioView] = PortfolioAgent(settings.portfolio, clock=clock)
    agents = (technical, regime, sentiment, portfolio)
    assert [agent.name for agent in agents] == list(AgentName)
    assert [agent.valid_for for agent in agents] == [
        timedelta(seconds=300),
        timedelta(seconds=900),
        timedelta(seconds=3600),
        timedelta(seconds=7200),
    ]


async def test_an_output_is_published_on_its_topic_with_its_symbol_and_ttl() -> None:
    clock = FakeClock()
    agent = PortfolioAgent(AgentsSettings().portfolio, clock=clock)
    holdings = Holdings(balances={"BTC": 1.0, "USDT": 100.0}, prices={"BTC": 40_000.0, "XRP": 0.5})
    async with MessageBus(clock=clock) as bus:
        scoped = await agent.analyze(PortfolioContext("BTC/USDT", holdings))
        whole = await agent.analyze(PortfolioContext(None, holdings))
        first = await publish_output(bus, scoped, ttl=agent.valid_for)
        second = await publish_output(bus, whole, ttl=timedelta(minutes=1), priority=Priority.HIGH)
        assert (first.topic, first.symbol, first.ttl, first.payload) == (
            Topic.PORTFOLIO_UPDATES,
            "BTC/USDT",
            timedelta(hours=2),
            scoped,
        )
        assert (second.symbol, second.priority) == (None, Priority.HIGH)
        assert bus.latest(Topic.PORTFOLIO_UPDATES, "BTC/USDT") is first
        assert bus.latest(Topic.PORTFOLIO_UPDATES, None) is second
        clock.advance(timedelta(minutes=1))
        assert bus.latest(Topic.PORTFOLIO_UPDATES, None) is None
        assert bus.latest(Topic.PORTFOLIO_UPDATES, "BTC/USDT") is first


def test_an_output_is_frozen_and_bounded() -> None:
    view = PortfolioView(quote_asset="USDT", total_value=0.0, positions=(), proposals=(), skipped=())
    fields = {"agent": AgentName.PORTFOLIO, "symbol": None, "timestamp": FakeClock().now(), "body": view}
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        AgentOutput[PortfolioView](confidence=1.5, reasoning="", **fields)
    output = AgentOutput[PortfolioView](confidence=1.0, reasoning="", **fields)
    with pytest.raises(ValidationError, match="frozen"):
        output.confidence = 0.5  # type: ignore[misc]  # the point: a frozen model refuses it
