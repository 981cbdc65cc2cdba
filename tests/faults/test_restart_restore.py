"""What a restarted daemon takes over from the stored rows, piece by piece (the crash test's findings, pinned down).

- the agents' latest views go back on the bus dated when they were formed, and the regime agent's hysteresis
  with them (without them, the decisions after a restart lacked the regime and sentiment views for up to an
  interval of those tasks, and the regime started its hysteresis over);
- an agent's task counts as run only up to its latest stored view (views are batched: a crash loses the newest);
- the breaker ignores an equity update dated before the day it tracks (candles taken in again after a restart
  used to reset the day's baseline).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.unit.test_agent_regime import SETTINGS, flat_then_up, regime_frames
from triplegain.agents import AgentsSettings, RegimeContext
from triplegain.agents.pipeline import AgentPipeline
from triplegain.agents.recording import output_from_record, output_row
from triplegain.agents.regime import RegimeAgent, RegimeOutput
from triplegain.bus import MessageBus, Topic
from triplegain.clock import FakeClock
from triplegain.coordinator import breaker
from triplegain.coordinator.schedule import TaskName
from triplegain.market import Timeframe
from triplegain.store.coordinator_snapshot import TaskRunRow
from triplegain.store.records import AGENT_OUTPUTS, AgentOutputRecord
from triplegain.system import restored_last_runs

SYMBOL = "BTC/USDT"
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def stored_and_read_back(output: RegimeOutput) -> RegimeOutput:
    """``output`` through its ``agent_outputs`` row, its body as JSON text as jsonb keeps it."""
    row = output_row(output, run_id=1)
    columns = dict(zip(AGENT_OUTPUTS.column_names, row.values(), strict=True))
    stored = AgentOutputRecord(**{**columns, "body": json.loads(row.body_json)})
    restored = output_from_record(stored)
    assert isinstance(restored, RegimeOutput)
    return restored


async def test_a_stored_regime_view_restores_the_view_and_the_hysteresis_after_it() -> None:
    frames = regime_frames(SYMBOL, flat_then_up())
    uninterrupted = RegimeAgent(SETTINGS, clock=FakeClock(T0))
    for frame in frames[:200]:
        last = await uninterrupted.analyze(RegimeContext(SYMBOL, frame))
    restored = stored_and_read_back(last)
    assert restored == last

    clock = FakeClock(T0 - timedelta(days=1))  # a replay restarts at its first candle, before the view
    async with MessageBus(clock=clock) as bus:
        pipeline = AgentPipeline(AgentsSettings(regime=SETTINGS), bus=bus, clock=clock, base_timeframe=Timeframe.M5)
        await pipeline.restore([restored])
        message = bus.latest(Topic.REGIME_UPDATES, SYMBOL, include_expired=True)
        assert message is not None
        assert message.payload == last
        assert message.created_at == last.timestamp
        assert bus.expires_at(message) == last.timestamp + pipeline.regime.valid_for
        assert pipeline.regime.state_of(SYMBOL) == uninterrupted.state_of(SYMBOL)
        for frame in frames[200:]:
            after = await pipeline.regime.analyze(RegimeContext(SYMBOL, frame))
            assert after.body == (await uninterrupted.analyze(RegimeContext(SYMBOL, frame))).body
        await pipeline.aclose()


async def test_an_agent_task_counts_as_run_up_to_its_latest_stored_view() -> None:
    ran = (("technical", SYMBOL), ("regime", SYMBOL), ("trade_decision", SYMBOL), ("housekeeping", None))
    runs = [
        TaskRunRow(task=task, symbol=symbol, started_at=T0, finished_at=T0, status="succeeded") for task, symbol in ran
    ]
    frame = regime_frames(SYMBOL, flat_then_up(flat_count=60, up_count=0))[-1]
    earlier = await RegimeAgent(SETTINGS, clock=FakeClock(T0 - timedelta(minutes=15))).analyze(
        RegimeContext(SYMBOL, frame)
    )
    assert restored_last_runs(runs, [earlier]) == {
        (TaskName.REGIME, SYMBOL): T0 - timedelta(minutes=15),  # its newest view was lost: it runs again
        (TaskName.TRADE_DECISION, SYMBOL): T0,
        (TaskName.HOUSEKEEPING, None): T0,
    }  # technical: no view stored at all, so it runs from the start again
    assert restored_last_runs(runs, None) == {(TaskName(task), symbol): T0 for task, symbol in ran}


def test_an_equity_update_from_a_day_already_left_changes_nothing() -> None:
    settings = breaker.PortfolioBreakerSettings()
    state, _ = breaker.on_equity(breaker.PortfolioBreakerState(), 10_000.0, T0, settings)
    state, _ = breaker.on_equity(state, 9_900.0, T0 + timedelta(days=1), settings)
    again, trips = breaker.on_equity(state, 9_000.0, T0 + timedelta(hours=6), settings)  # a candle taken in again
    assert (again, trips) == (state, [])
    later, _ = breaker.on_equity(again, 9_800.0, T0 + timedelta(days=1, hours=1), settings)
    assert later.day_start_equity == 9_900.0  # the day's baseline is the first equity of that day, still
