"""A replay of synthetic candles through the whole system with the offline provider, and a restart after it.

Every stored decision must explain its numbers: the consensus recomputes from its stored inputs and constants,
each conflict row names its rule and how the resolver settled it, each resolver attempt is an ``llm_calls`` row
of that decision, the risk rules' verdicts are there, and an order exists exactly for each buy or sell. A second
system on the same database carries on from what the first committed and places no order twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.offline_replay import btc_partly_held, offline_replay_settings
from triplegain.agents.base import AgentOutput
from triplegain.bus import Topic
from triplegain.clock import FakeClock
from triplegain.config import Settings
from triplegain.coordinator.consensus import ConsensusInput, ConsensusSettings, Stance
from triplegain.coordinator.decision_rows import client_order_id_for
from triplegain.coordinator.schedule import TaskName
from triplegain.daemon.events import RunEvents
from triplegain.market import Candle, SyntheticFeed, SyntheticSettings, Timeframe
from triplegain.model import AgentName, Bias, DecisionMade, OrderRow
from triplegain.review.decision_queries import decision_record
from triplegain.store import Database
from triplegain.system import TradingSystem, trading_system

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

START = datetime(2024, 1, 1, tzinfo=UTC)
SYMBOLS = {"BTC/USDT": 40_000.0, "XRP/USDT": 0.6}
CANDLES = 240


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Offline reviews and resolver; a low risk-cut threshold and a held position make conflicts happen."""
    return offline_replay_settings(tmp_path)


def candles(clock: FakeClock, count: int = CANDLES, seed: int = 5) -> AsyncIterable[Candle]:
    settings = SyntheticSettings(symbols=SYMBOLS, timeframe=Timeframe.M5, count=count, start=START, seed=seed)
    return SyntheticFeed(settings, clock=clock)


def system(settings: Settings, db: Database, clock: FakeClock) -> Any:
    return trading_system(
        settings,
        db,
        clock=clock,
        symbols=list(SYMBOLS),
        base_timeframe=Timeframe.M5,
        account_source=btc_partly_held,
        replaying=True,
        environ={},
    )


async def replay(running: TradingSystem, clock: FakeClock) -> None:
    await running.replay(candles(clock))
    await running.bus.drain()
    await running.writer.flush()


def recomputed_confidence(terms: dict[str, Any], inputs: list[dict[str, Any]]) -> float:
    """The consensus formula over the stored inputs and constants (see coordinator.consensus)."""
    settings = ConsensusSettings.model_validate(terms["settings"])
    total = settings.weights.total
    views = [ConsensusInput.model_validate(entry) for entry in inputs]
    sums = {stance: sum(v.weight * v.confidence for v in views if v.stance is stance) / total for stance in Stance}
    boost = settings.agreement_boost * sums[Stance.AGREES]
    penalty = settings.disagreement_penalty * (sums[Stance.OPPOSES] + settings.neutral_weight * sums[Stance.NEUTRAL])
    assert terms["boost"] == pytest.approx(boost)
    assert terms["penalty"] == pytest.approx(penalty)
    return min(1.0, max(0.0, terms["base_confidence"] + boost - penalty))


async def test_a_replay_stores_decisions_that_explain_every_number(
    settings: Settings, migrated_database: Database
) -> None:
    db = migrated_database
    clock = FakeClock(START)
    async with system(settings, db, clock) as running:
        await replay(running, clock)
        assert running.runner.failures == 0
        assert running.writer.stats().rejected == 0, running.writer.rejected()[:3]
        assert running.bus.stats().failed == 0, running.bus.dead_letters()[:3]

    rows = await db.pool.fetch("SELECT id, action FROM decisions ORDER BY ts, symbol")
    assert len(rows) > 20
    actions = {row["action"] for row in rows}
    assert {"buy", "sell"} & actions, actions
    conflicted = 0
    for row in rows:
        details = await decision_record(db, row["id"])
        assert details is not None
        decision = details.decision
        inputs = decision.consensus_inputs
        assert isinstance(inputs, list)
        for entry in inputs:
            assert isinstance(entry, dict)
        assert decision.confidence == pytest.approx(recomputed_confidence(decision.consensus_terms, inputs))  # type: ignore[arg-type]
        assert decision.consensus_result["confidence"] == decision.confidence
        intent = decision.intent
        assert intent["direction"] in (Bias.LONG.value, Bias.SHORT.value)
        assert decision.effects["size_multiplier"] == decision.risk_checks["size_multiplier"]
        assert decision.reason
        if decision.action == "hold":
            assert details.orders == ()
        else:
            [placed] = details.orders
            order = placed.order
            assert order.client_order_id == client_order_id_for(decision.id)
            assert order.side == decision.action
            risk = decision.risk_checks["decision"]
            assert isinstance(risk, dict)
            assert risk["approved"] is True
            assert [outcome["rule"] for outcome in risk["outcomes"]][:4] == [  # type: ignore[index,union-attr]
                "cooldown",
                "min_confidence",
                "stop_loss",
                "reward_risk",
            ]
            assert float(order.qty) == pytest.approx(decision.risk_checks["quantity"], rel=1e-9)
        if details.conflicts:
            conflicted += 1
            resolution = decision.resolution
            assert resolution is not None
            assert resolution["resolved_by"] == "offline/offline-rules"
            for conflict in details.conflicts:
                assert conflict.resolved_by == "offline/offline-rules"
                assert conflict.resolution == resolution["resolution"]["action"]  # type: ignore[index,call-overload]
            attempts = resolution["attempts"]
            assert isinstance(attempts, list)
            assert {str(call.id) for call in details.llm_calls} == {a["call_id"] for a in attempts}  # type: ignore[index]
            assert all(call.purpose == "conflict_resolution" for call in details.llm_calls)
        else:
            assert decision.resolution is None
            assert details.llm_calls == ()
    assert conflicted > 0


async def test_a_restarted_system_continues_from_what_was_committed(
    settings: Settings, migrated_database: Database
) -> None:
    db = migrated_database
    clock = FakeClock(START)
    async with system(settings, db, clock) as running:
        await replay(running, clock)
        last_runs = running.runner.last_runs
    orders_before = await db.pool.fetchval("SELECT count(*) FROM orders")
    decisions_before = await db.pool.fetchval("SELECT count(*) FROM decisions")
    assert orders_before > 0

    again = FakeClock(START)  # the same candles again, as after a crash that lost nothing committed
    async with system(settings, db, again) as restarted:
        assert restarted.runner.last_runs == last_runs
        assert restarted.runner.last_run(TaskName.TRADE_DECISION) == max(last_runs.values())
        await replay(restarted, again)
    assert await db.pool.fetchval("SELECT count(*) FROM orders") == orders_before
    assert await db.pool.fetchval("SELECT count(*) FROM decisions") == decisions_before

    later = FakeClock(START)
    async with system(settings, db, later) as continued:
        more = SyntheticSettings(symbols=SYMBOLS, timeframe=Timeframe.M5, count=CANDLES + 24, start=START, seed=5)
        await continued.replay(SyntheticFeed(more, clock=later))
        await continued.writer.flush()
    assert await db.pool.fetchval("SELECT count(*) FROM decisions") > decisions_before
    duplicates = await db.pool.fetchval(
        "SELECT count(*) FROM (SELECT decision_id FROM orders GROUP BY decision_id HAVING count(*) > 1) d"
    )
    assert duplicates == 0
    assert AgentName.TECHNICAL.value in {row["agent"] for row in await db.pool.fetch("SELECT agent FROM agent_outputs")}
    heartbeat = await db.pool.fetchval("SELECT last_heartbeat FROM coordinator_state")
    assert heartbeat is not None
    assert heartbeat <= START + timedelta(minutes=5 * (CANDLES + 24))


async def test_every_topic_has_a_publisher_and_a_reader_and_typed_payloads(
    settings: Settings, migrated_database: Database
) -> None:
    """The system reads every topic (the recorder, the daemon's ``RunEvents``) and publishes frozen typed models."""
    clock = FakeClock(START)
    async with system(settings, migrated_database, clock) as running:
        events = RunEvents()
        await events.subscribe(running.bus)
        assert {subscription.topic for subscription in running.bus.stats().subscriptions} == set(Topic)
        await replay(running, clock)
        payload_types = {
            topic: {type(message.payload) for message in running.bus.history(topic, symbol)}
            for topic in Topic
            for symbol in SYMBOLS
        }
    decisions = await migrated_database.pool.fetchval("SELECT count(*) FROM decisions")
    orders = await migrated_database.pool.fetchval("SELECT count(*) FROM orders")
    assert events.candles == CANDLES * len(SYMBOLS)
    assert set(events.last_close) == set(SYMBOLS)
    assert sum(events.decisions.values()) == decisions > 0
    assert events.orders_placed == orders > 0
    assert payload_types[Topic.MARKET_DATA] == {Candle}
    assert payload_types[Topic.TRADE_INTENTS] == {DecisionMade}
    assert payload_types[Topic.EXECUTION_EVENTS] == {OrderRow}
    for topic in (Topic.TA_SIGNALS, Topic.REGIME_UPDATES, Topic.SENTIMENT_UPDATES):  # portfolio: needs balances
        assert payload_types[topic]
        assert all(issubclass(kind, AgentOutput) for kind in payload_types[topic])
