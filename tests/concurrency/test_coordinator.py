"""The coordinator under concurrency, against a real PostgreSQL: commands racing decisions, symbols deciding side
by side, and a degradation escalation racing a decision that waits for the resolver."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest

from tests.coordinator_harness import ACCOUNT, Harness, coordinator_harness
from tests.fakes import InMemoryCallLog
from tests.stubs.llm_server import STUB_KEYS, Answer, Hang, LLMStubServer, stub_providers
from tests.unit.test_consensus import T0, regime_view, view
from triplegain.clock import FakeClock
from triplegain.config import Settings
from triplegain.coordinator.consensus import AgentView
from triplegain.coordinator.degradation import DegradationSettings, effects
from triplegain.coordinator.resolver import ConflictResolver, ResolverSettings, build_resolver_gateways
from triplegain.coordinator.state import apply_command
from triplegain.llm import LLMSettings
from triplegain.model import AgentName, Bias, Command, CoordinatorState, DegradationLevel, RegimeName, StateRecord, Verb
from triplegain.store import Database
from triplegain.store.coordinator_state import INITIAL_CHANGED_BY, INITIAL_REASON

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


AUDIT_ORDERS = """
CREATE TABLE order_audit (client_order_id text PRIMARY KEY, state text NOT NULL);
CREATE FUNCTION audit_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_audit SELECT NEW.client_order_id, state FROM coordinator_state WHERE account = NEW.account;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_order AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit_order();
"""
"""Records, inside each order's own transaction, the coordinator state committed when the order was inserted."""


@pytest.fixture
async def harness(migrated_database: Database) -> AsyncIterator[Harness]:
    async with coordinator_harness(migrated_database) as made:
        yield made


def agreeing(symbol: str, bias: Bias, confidence: float = 0.9) -> tuple[AgentView, ...]:
    return (
        view(AgentName.TECHNICAL, bias, confidence, symbol=symbol),
        regime_view(RegimeName.TRENDING_BULL if bias is Bias.LONG else RegimeName.TRENDING_BEAR, confidence, symbol),
        view(AgentName.SENTIMENT, bias, confidence, symbol=symbol),
    )


def serial_outcome(rows: Sequence[dict[str, object]]) -> tuple[CoordinatorState, list[str]]:
    """The final state and each row's status when the commands are applied one by one in id order."""
    record = StateRecord(CoordinatorState.RUNNING, T0, INITIAL_CHANGED_BY, INITIAL_REASON)
    statuses = []
    for row in rows:
        args = row["args"]
        assert isinstance(args, dict)
        command = Command.parse(str(row["verb"]), args, requested_by=str(row["requested_by"]))
        outcome = apply_command(record, command, T0)
        if hasattr(outcome, "record"):
            record = outcome.record
            statuses.append("applied")
        else:
            statuses.append("refused")
    return record.state, statuses


async def test_commands_racing_decisions_end_as_a_serial_order_would_and_no_order_escapes_a_pause(
    harness: Harness, migrated_database: Database
) -> None:
    db = migrated_database
    await db.pool.execute(AUDIT_ORDERS)
    symbols = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    for symbol in symbols:
        await harness.publish(*agreeing(symbol, Bias.LONG))
    rng = random.Random(20261122)
    choices = [
        Command(verb=Verb.PAUSE, reason="operator pause"),
        Command(verb=Verb.RESUME),
        Command(verb=Verb.RESUME, force=True),
        Command(verb=Verb.HALT, reason="operator halt"),
    ]
    times = [T0 + timedelta(seconds=n) for n in range(1, 31)]  # distinct task times: distinct decisions
    commands: list[Command] = []

    async def operator(command: Command) -> None:
        await harness.coordinator.submit(command, T0)

    for at in times:  # each round: every symbol decides while one or two operators give commands
        issued = [rng.choice(choices) for _ in range(rng.randint(1, 2))]
        commands += issued
        racers = [operator(command) for command in issued]
        racers += [harness.coordinator.decide(symbol, at) for symbol in symbols]
        rng.shuffle(racers)
        await asyncio.gather(*racers)
    await harness.coordinator.housekeeping(None, T0)  # applies what is left; holds are stored with its snapshot

    rows = [dict(row) for row in await db.pool.fetch("SELECT * FROM coordinator_commands ORDER BY id")]
    assert len(rows) == len(commands)
    final, statuses = serial_outcome(rows)
    assert [row["status"] for row in rows] == statuses
    assert await db.pool.fetchval("SELECT state FROM coordinator_state WHERE account = $1", ACCOUNT) == final.value
    assert harness.coordinator.state is final

    audited = await db.pool.fetch("SELECT state FROM order_audit")
    assert {row["state"] for row in audited} <= {"RUNNING"}, "an order was inserted while PAUSED or HALTED"
    decisions = await db.pool.fetch(
        """
        SELECT d.action, d.coordinator_state, d.reason, count(o.id) AS orders
        FROM decisions d LEFT JOIN orders o ON o.decision_id = d.id GROUP BY d.id
        """
    )
    assert len(decisions) == len(times) * len(symbols), "a decision was lost"
    for decision in decisions:
        if decision["coordinator_state"] == "RUNNING":
            assert (decision["action"], decision["orders"]) == ("buy", 1), decision["reason"]
        else:
            assert (decision["action"], decision["orders"]) == ("hold", 0)
    assert len(audited) == sum(decision["orders"] for decision in decisions)
    assert 0 < len(audited) < len(decisions), "the race should leave both kinds of decision"


async def test_symbols_deciding_side_by_side_never_see_each_others_views(migrated_database: Database) -> None:
    defaults = Settings()
    shorting = defaults.model_copy(
        update={"execution": defaults.execution.model_copy(update={"allow_borrowing": True})}
    )
    async with coordinator_harness(migrated_database, settings=shorting) as harness:
        await decide_side_by_side(harness, migrated_database)


async def decide_side_by_side(harness: Harness, db: Database) -> None:
    leans = {"BTC/USDT": Bias.LONG, "ETH/USDT": Bias.SHORT}
    published: dict[str, set[str]] = {symbol: set() for symbol in leans}
    rounds = 25

    async def agents_of(symbol: str) -> None:
        for n in range(rounds):
            views = agreeing(symbol, leans[symbol], 0.6 + n / 100)
            published[symbol].update(str(output.id) for output in views)
            await harness.publish(*views)
            await harness.coordinator.decide(symbol, T0 + timedelta(seconds=n + 1))

    await asyncio.gather(*(agents_of(symbol) for symbol in leans))
    rows = await db.pool.fetch("SELECT symbol, action, consensus_inputs, intent FROM decisions")
    assert len(rows) == rounds * len(leans)
    for row in rows:
        symbol = row["symbol"]
        used = {entry["output_id"] for entry in row["consensus_inputs"]}
        assert used <= published[symbol]
        assert len(used) == 3
        assert row["intent"]["direction"] == leans[symbol].value
        assert row["action"] == ("buy" if leans[symbol] is Bias.LONG else "sell")


async def test_an_escalation_racing_a_decision_leaves_it_at_one_level(
    migrated_database: Database, llm_stub: LLMStubServer
) -> None:
    providers = stub_providers(llm_stub, 30.0, 30.0)
    gateways = build_resolver_gateways(
        ResolverSettings(),
        LLMSettings(providers=providers),
        call_log=InMemoryCallLog(),
        clock=FakeClock(T0),
        environ=STUB_KEYS,
    )
    llm_stub.openai.push(Hang())
    proceed = {"action": "proceed", "confidence": 0.8, "reasoning": "the trend is clear enough"}
    llm_stub.anthropic.push(Answer(json.dumps(proceed)))
    try:
        async with coordinator_harness(migrated_database, resolver=ConflictResolver(gateways)) as made:
            choppy = (
                view(AgentName.TECHNICAL, Bias.LONG, 0.95),
                regime_view(RegimeName.CHOPPY, 0.5),
                view(AgentName.SENTIMENT, Bias.LONG, 0.95),
            )
            await made.publish(*choppy)
            deciding = asyncio.create_task(made.coordinator.decide("BTC/USDT", T0))
            await asyncio.wait_for(llm_stub.openai.hanging.wait(), 10)  # the decision waits for DeepSeek

            for _ in range(DegradationSettings().db_consecutive_write_failures.at.__int__()):
                made.monitor.db_write(False)
            transition = await made.coordinator.refresh_level(T0)
            assert transition is not None
            assert transition.to_level is DegradationLevel.EMERGENCY
            llm_stub.release()
            stored = await asyncio.wait_for(deciding, 30)

            assert stored is not None
            decision = stored.write.decision
            assert decision.degradation_level is DegradationLevel.NORMAL
            assert decision.effects == effects(DegradationLevel.NORMAL, DegradationSettings()).model_dump(mode="json")
            assert decision.action == "buy"
            assert decision.risk_checks["size_multiplier"] == 1.0

            after = await made.coordinator.decide("BTC/USDT", T0 + timedelta(seconds=1))
            assert after is not None
            assert after.write.decision.degradation_level is DegradationLevel.EMERGENCY
            assert after.write.decision.action == "hold"
            assert after.write.decision.reason == "degradation EMERGENCY: no new exposure"
            levels = await migrated_database.pool.fetch("SELECT from_level, to_level FROM degradation_events")
            assert [(row["from_level"], row["to_level"]) for row in levels] == [("NORMAL", "EMERGENCY")]
    finally:
        for gateway in gateways:
            await gateway.aclose()
