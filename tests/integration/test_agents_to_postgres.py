"""Candles through all four agents onto the bus and into PostgreSQL, with the offline LLM provider.

One path for both runs: a feed's candles go to an ``AgentPipeline`` per timeframe, views are published on the
bus, ``record_agent_views`` hands them to the batching writer, and the reviewed agents' LLM calls go through
``PostgresCallLog``. What lands in ``agent_outputs`` and ``llm_calls`` must match what was published.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.agent_replay import replay_agents
from triplegain.agents import AGENT_OFFLINE_RULES, AgentOutput, AgentsSettings, ReplaySourceSettings
from triplegain.agents.pipeline import AgentPipeline
from triplegain.agents.publishing import AGENT_TOPICS
from triplegain.agents.recording import record_agent_views
from triplegain.bus import Message, MessageBus, Topic
from triplegain.clock import FakeClock
from triplegain.llm import LLMSettings, build_gateway
from triplegain.market import Candle, SyntheticFeed, SyntheticSettings, Timeframe
from triplegain.market.feeds.replay import CandleFile, ReplayFeed
from triplegain.store import BatchWriter, Database, PostgresAgentOutputLog, PostgresCallLog, agent_outputs_for
from triplegain.store.settings import WriterSettings

pytestmark = pytest.mark.postgres

HEADLINES = Path(__file__).resolve().parents[1] / "data" / "headlines.jsonl"
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
START = datetime(2024, 1, 1, tzinfo=UTC)


def reviewed_settings() -> AgentsSettings:
    """Regime and sentiment reviewed by the offline provider; sentiment reads the sample headlines."""
    return AgentsSettings.model_validate(
        {
            "regime": {"llm_provider": "offline"},
            "sentiment": {"sources": [ReplaySourceSettings(path=HEADLINES)], "llm_provider": "offline"},
        }
    )


Replay = tuple[AsyncIterable[Candle], list[str], Timeframe]
"""Candles of some symbols, all of one timeframe."""


async def run_into_postgres(db: Database, replays: Sequence[Replay], clock: FakeClock) -> Counter[str]:
    """Replay each of ``replays`` through the agents into ``db``, one after another, on the coordinator's
    schedule; returns how many views each agent published."""
    settings = reviewed_settings()
    published: Counter[str] = Counter()

    async def count(message: Message) -> None:
        assert isinstance(message.payload, AgentOutput)
        published[message.payload.agent.value] += 1

    async with BatchWriter(db, WriterSettings(), clock=clock) as writer, MessageBus(clock=clock) as bus:
        gateway = build_gateway(
            "offline",
            LLMSettings(),
            call_log=PostgresCallLog(writer, serves="agent_output"),
            clock=clock,
            offline_rules=AGENT_OFFLINE_RULES,
            environ={},
        )
        await record_agent_views(bus, PostgresAgentOutputLog(writer))
        for topic in AGENT_TOPICS.values():
            await bus.subscribe(topic, count, name=f"count.{topic.value}")
        try:
            for candles, symbols, timeframe in replays:
                pipeline = AgentPipeline(
                    settings,
                    bus=bus,
                    clock=clock,
                    base_timeframe=timeframe,
                    gateways={"offline": gateway},
                    balances=lambda: {"BTC": 0.2, "XRP": 5_000.0, "USDT": 4_000.0},
                )
                try:
                    await replay_agents(pipeline, candles, symbols, clock)
                finally:
                    await pipeline.aclose()
            await bus.drain()
            await writer.flush()
        finally:
            await gateway.aclose()
        assert bus.stats().failed == 0, bus.dead_letters()[:3]
        stats = writer.stats()
        assert stats.rejected == 0, writer.rejected()[:3]
        assert stats.buffered == 0
    return published


def first_open(candle_file: CandleFile) -> int:
    """The open time (ms) on the first data row of the file."""
    with candle_file.path.open() as lines:
        next(lines)
        return int(next(lines).split(",", 1)[0])


async def stored_views(db: Database) -> Counter[str]:
    rows = await db.pool.fetch("SELECT agent, count(*) AS n FROM agent_outputs GROUP BY agent")
    return Counter({row["agent"]: row["n"] for row in rows})


async def test_synthetic_candles_land_in_postgres(migrated_database: Database) -> None:
    clock = FakeClock(START)
    symbols = {"BTC/USDT": 42_000.0, "XRP/USDT": 0.55}
    feed = SyntheticFeed(
        SyntheticSettings(symbols=symbols, timeframe=Timeframe.M5, count=240, start=START, seed=3), clock=clock
    )
    published = await run_into_postgres(migrated_database, [(feed, list(symbols), Timeframe.M5)], clock)

    assert published == {"technical": 480, "regime": 160, "sentiment": 80, "portfolio": 40}
    assert await stored_views(migrated_database) == published
    pool: Any = migrated_database.pool
    per_symbol = await pool.fetch("SELECT symbol, count(*) AS n FROM agent_outputs GROUP BY symbol ORDER BY symbol")
    assert [(row["symbol"], row["n"]) for row in per_symbol] == [("BTC/USDT", 380), ("XRP/USDT", 380)]

    reviewed = await pool.fetch("SELECT agent, llm_call_id FROM agent_outputs WHERE llm_call_id IS NOT NULL")
    assert {row["agent"] for row in reviewed} == {"regime", "sentiment"}
    calls = await pool.fetch("SELECT id, provider, purpose, error_class, decision_id, parsed FROM llm_calls")
    assert {call["id"] for call in calls} == {row["llm_call_id"] for row in reviewed}, "one stored call per review"
    assert {(call["provider"], call["error_class"], call["decision_id"]) for call in calls} == {("offline", None, None)}
    assert {call["purpose"] for call in calls} == {"regime_refinement", "sentiment_refinement"}
    assert all(call["parsed"] for call in calls)

    btc = await agent_outputs_for(pool, "BTC/USDT", START)
    technical = [view for view in btc if view.agent == "technical"]
    assert technical[0].body["bias"] in {"long", "short", "neutral"}
    assert [view.ts for view in technical] == sorted(view.ts for view in technical)
    assert all(0.0 <= (view.confidence or 0.0) <= 1.0 for view in btc)


@pytest.mark.timeout(180)
@pytest.mark.slow
async def test_the_real_candles_replay_into_postgres_without_a_rejected_candle(migrated_database: Database) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the real candle files are not here: {SHARED_DATA} is absent")
    files = sorted(SHARED_DATA.glob("*.csv"))
    assert len(files) == 4
    clock = FakeClock(datetime(2018, 1, 1, tzinfo=UTC))
    candle_files = sorted((CandleFile.from_name(path) for path in files), key=first_open)  # the clock goes forward
    feeds = [ReplayFeed([candle_file], clock=clock) for candle_file in candle_files]
    replays: list[Replay] = [
        (feed, [candle_file.symbol], candle_file.timeframe)
        for feed, candle_file in zip(feeds, candle_files, strict=True)
    ]
    published = await run_into_postgres(migrated_database, replays, clock)

    emitted: Counter[str] = Counter()
    for feed in feeds:
        stats = feed.stats()
        assert stats.rejected == 0, stats.recent_rejections
        emitted.update(stats.emitted_by_symbol)
    assert emitted == {"BTC/USDT": 10_999, "XRP/USDT": 1_999, "ETH/BTC": 5_760, "XRP/ETH": 2_469}
    five_minute_candles = 10_999 + 1_999 + 5_760
    xrp_eth_five_minutes = await migrated_database.pool.fetchval(
        "SELECT count(*) FROM agent_outputs WHERE agent = 'technical' AND symbol = 'XRP/ETH'"
    )
    assert published["technical"] == five_minute_candles + xrp_eth_five_minutes
    # XRP/ETH is 1m: the technical task runs at each 5-minute boundary a candle reaches. 706 five-minute windows
    # hold its candles; across a gap, the missed boundaries coalesce into one run.
    assert 690 <= xrp_eth_five_minutes <= 706
    assert await stored_views(migrated_database) == published


async def test_a_message_that_is_not_a_view_is_dead_lettered_not_stored(migrated_database: Database) -> None:
    clock = FakeClock(START)
    async with BatchWriter(migrated_database, WriterSettings(), clock=clock) as writer, MessageBus(clock=clock) as bus:
        await record_agent_views(bus, PostgresAgentOutputLog(writer))
        await bus.publish(bus.message(Topic.TA_SIGNALS, {"bias": "long"}, source="impostor", symbol="BTC/USDT"))
        await bus.drain()
        await writer.flush()
        [letter] = bus.dead_letters()
        assert letter.subscription == "store.ta_signals"
        assert letter.error == "TypeError: ta_signals carried a mappingproxy, not an agent's view"
        assert writer.stats().submitted == 0
    assert await stored_views(migrated_database) == Counter()
