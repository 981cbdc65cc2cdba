"""Exchange feed faults: bad candles are rejected with reasons, network errors are ridden out, a stale feed
raises the degradation level, and no decision trades on stale data.

The live tests run the daemon's candle loop (``daemon.run.run_live``) over the real ccxt kraken client against
the stub exchange (``tests/stubs/exchange.py``), on a ``FakeClock`` that the feed's sleeps move forward: hours
of candles and polls take well under a second. The schedule's tasks are far apart, so APScheduler fires none;
the test runs the task bodies (technical view, trade decision, housekeeping) itself, at chosen moments.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.builders import rising_closes
from tests.stubs.exchange import KrakenStub, StubCandle
from tests.stubs.llm_server import refused_url
from tests.unit.test_consensus import view, views_of
from tests.unit.test_decision import context, decided
from triplegain.clock import FakeClock
from triplegain.config import Settings, load_settings
from triplegain.coordinator.degradation import DegradationSettings
from triplegain.coordinator.health import HealthMonitor
from triplegain.daemon.run import FeedErrors, StopRequest, run_live
from triplegain.market import Candle, Timeframe
from triplegain.market.feeds.ccxt_feed import CcxtFeed
from triplegain.market.settings import CcxtFeedSettings
from triplegain.model import AccountSnapshot, AgentName, Bias, DecisionAction, DegradationLevel
from triplegain.store import Database
from triplegain.system import TradingSystem, trading_system

pytestmark = pytest.mark.timeout(60)

START = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)
SYMBOL = "BTC/USD"
HISTORY = 80
"""Candles the stub exchange has: a steady uptrend, then nothing (the feed stops)."""
NOW = START + (HISTORY - 20) * STEP + timedelta(seconds=30)
"""When the daemon starts: 60 candles of warm-up are there, 20 more will close while it runs."""
MAX_AGE = 3.0

QUIET_SCHEDULE = """
coordinator:
  resolver: {providers: [offline]}
  schedule:
    jitter_seconds: 0.0
    technical: {interval_seconds: 86400}
    regime: {interval_seconds: 86400}
    sentiment: {interval_seconds: 86400}
    portfolio: {interval_seconds: 86400}
    trade_decision: {interval_seconds: 86400}
    housekeeping: {interval_seconds: 86400, run_at_start: false}
agents:
  technical: {timeframes: [5m]}
  regime: {timeframe: 5m}
"""
"""The schedule far apart (APScheduler fires nothing during a test) and one timeframe, so views lean early."""

FEED: dict[str, Any] = {
    "exchange": "kraken",
    "symbols": [SYMBOL],
    "timeframe": "5m",
    "warmup_candles": 60,
    "poll_interval_seconds": 60,
    "publish_delay_seconds": 2,
    "rate_limit_ms": 1,
    "max_attempts": 3,
    "retry_initial_seconds": 1,
    "retry_max_seconds": 4,
    "request_timeout_seconds": 2,
}


def account(now: datetime) -> AccountSnapshot:
    return AccountSnapshot(equity=10_000.0, cash=10_000.0, now=now)


# ------------------------------------------------------------------------------------------ the pure parts


def test_a_feed_that_never_delivers_is_stale_three_intervals_after_start() -> None:
    """The monitor knows the feed's interval from the configured timeframe, before any candle arrived."""
    clock = FakeClock(START)
    monitor = HealthMonitor(DegradationSettings(), clock=clock, symbols=[SYMBOL], interval=STEP)
    clock.advance(3 * STEP - timedelta(seconds=1))
    assert monitor.refresh(clock.now()) is None
    age = monitor.market_data_age(SYMBOL, clock.now())
    assert age is not None
    assert age == pytest.approx(3 - 1 / 300)
    clock.advance(timedelta(seconds=1))
    transition = monitor.refresh(clock.now())
    assert transition is not None
    assert transition.to_level is DegradationLevel.EMERGENCY
    assert [(cause.signal, cause.value) for cause in transition.causes] == [("market_data_stale_intervals", 3.0)]
    assert monitor.market_data_age("ETH/USD", clock.now()) is None, "a symbol not traded is not measured"


def test_no_decision_trades_on_stale_market_data() -> None:
    """A buy and a spot exit that fresh data would make both hold once the symbol's data is too old."""
    fresh = dataclasses.replace(context(), market_data_age=MAX_AGE)
    assert decided(fresh).action is DecisionAction.BUY
    stale = dataclasses.replace(context(), market_data_age=MAX_AGE + 0.01)
    held = decided(stale)
    assert held.action is DecisionAction.HOLD
    assert held.reason.startswith("stale market data: the newest BTC/USDT candle closed 3.0 candle intervals ago")
    assert held.quantity == held.notional == 0.0

    leaning_short = views_of(view(AgentName.TECHNICAL, Bias.SHORT, 0.9))
    exit_now = dataclasses.replace(context(leaning_short), held=0.5, market_data_age=1.0)
    assert decided(exit_now).action is DecisionAction.SELL
    exit_stale = decided(dataclasses.replace(exit_now, market_data_age=4.0))
    assert (exit_stale.action, exit_stale.closes_position) == (DecisionAction.HOLD, True)
    assert exit_stale.reason.startswith("stale market data")


# ------------------------------------------------------------------------------------------ the live loop


def history(*, bad: dict[int, StubCandle] | None = None) -> list[StubCandle]:
    """``HISTORY`` rising candles from ``START``; ``bad`` replaces some steps' rows."""
    rows = []
    for step, close in enumerate(rising_closes(HISTORY, start=40_000.0)):
        previous = close / (1.003 if step % 4 else 0.999)
        open_time_s = int((START + step * STEP).timestamp())
        candle = StubCandle(open_time_s, previous, max(previous, close) * 1.001, min(previous, close) * 0.999, close, 5)
        rows.append((bad or {}).get(step, candle))
    return rows


def quiet_settings(tmp_path: Path) -> Settings:
    path = tmp_path / "quiet.yaml"
    path.write_text(QUIET_SCHEDULE)
    return load_settings(path, environ={})


class AdvancingSleep:
    """The feed's sleep: moves the fake clock instead of waiting, and asks the loop to stop at ``until``."""

    def __init__(self, clock: FakeClock, stop: StopRequest, until: datetime) -> None:
        self.clock = clock
        self.stop = stop
        self.until = until

    async def __call__(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if self.clock.now() >= self.until:
            self.stop.requested.set()
        await asyncio.sleep(0)


@asynccontextmanager
async def live_system(
    settings: Settings, db: Database, clock: FakeClock
) -> AsyncIterator[tuple[TradingSystem, list[Candle]]]:
    """The trading system as the daemon assembles it for ccxt; the candles it took in, in order."""
    taken: list[Candle] = []
    async with trading_system(
        settings,
        db,
        clock=clock,
        symbols=[SYMBOL],
        base_timeframe=Timeframe.M5,
        account_source=account,
        replaying=False,
        environ={},
    ) as system:
        yield system, taken


async def run_until(
    system: TradingSystem,
    taken: list[Candle],
    feed: CcxtFeed,
    stop: StopRequest,
    on_candle: Callable[[Candle], Any] | None = None,
) -> FeedErrors:
    """``run_live`` as the daemon calls it, each candle's new feed errors reported first (as ``_trade`` does)."""
    errors = FeedErrors(feed, system.monitor)

    async def hook(candle: Candle) -> None:
        errors.report(candle.close_time)
        taken.append(candle)
        if on_candle is not None:
            await on_candle(candle)

    system.candle_hook = hook
    await asyncio.wait_for(run_live(system, feed, stop, errors), 30)
    return errors


@pytest.mark.postgres
async def test_a_dead_exchange_stops_nothing_and_is_stale_after_three_intervals(
    migrated_database: Database, tmp_path: Path
) -> None:
    """Nothing listens at the exchange's address: every request is refused (a ccxt NetworkError)."""
    started = START + timedelta(seconds=30)  # off the day's boundary, so no task is due at start
    clock = FakeClock(started)
    stop = StopRequest()
    sleep = AdvancingSleep(clock, stop, until=started + 3 * STEP + timedelta(minutes=1))
    feed = CcxtFeed(CcxtFeedSettings.model_validate(FEED), clock=clock, sleep=sleep, api_url=refused_url())
    try:
        async with live_system(quiet_settings(tmp_path), migrated_database, clock) as (system, taken):
            errors = await run_until(system, taken, feed, stop)
            assert taken == []
            stats = feed.stats()
            assert stats.failed_requests >= 3 * 10, "a poll each minute, three attempts each, for 16 minutes"
            assert errors.report(clock.now()) == 0, "run_live reported every failed request as it happened"
            observed = system.monitor.observations(clock.now())
            assert observed.market_data_errors >= DegradationSettings().market_data_errors.at
            assert observed.market_data_stale_intervals > 3

            await system.coordinator.housekeeping(None, clock.now())
            assert system.monitor.level is DegradationLevel.EMERGENCY
    finally:
        await feed.aclose()
    [event] = await migrated_database.pool.fetch("SELECT from_level, to_level, cause FROM degradation_events")
    assert (event["from_level"], event["to_level"]) == ("NORMAL", "EMERGENCY")
    assert {cause["signal"] for cause in event["cause"]} == {"market_data_stale_intervals", "market_data_errors"}


@pytest.mark.postgres
async def test_bad_candles_are_rejected_failures_ridden_out_and_stale_data_never_traded(
    migrated_database: Database, tmp_path: Path
) -> None:
    clock = FakeClock(NOW)
    stop = StopRequest()
    last_close = START + HISTORY * STEP
    sleep = AdvancingSleep(clock, stop, until=last_close + MAX_AGE * STEP + timedelta(minutes=2))
    rows = history()
    bad = {
        62: dataclasses.replace(rows[62], close=float("nan")),
        64: dataclasses.replace(rows[64], low=-1.0),
        66: dataclasses.replace(rows[66], open=0.0),
    }
    served = [*history(bad=bad)[:70], rows[68], rows[71], rows[70], *rows[72:]]  # 68 again; 71 before 70
    fresh_decisions: list[str] = []
    async with KrakenStub(clock) as exchange:
        exchange.set_candles(SYMBOL, served, in_time_order=False)
        feed = CcxtFeed(CcxtFeedSettings.model_validate(FEED), clock=clock, sleep=sleep, api_url=exchange.url)
        try:
            async with live_system(quiet_settings(tmp_path), migrated_database, clock) as (system, taken):

                async def decide_on_fresh_data(candle: Candle) -> None:
                    if candle.open_time == START + 72 * STEP:
                        exchange.fail_next(503, 503, 503)  # the next poll fails past its retries
                    if candle.close_time == last_close:
                        await system.pipeline.run_technical(SYMBOL)
                        stored = await system.coordinator.decide(SYMBOL, clock.now())
                        assert stored is not None
                        fresh_decisions.append(stored.write.decision.action)

                errors = await run_until(system, taken, feed, stop, decide_on_fresh_data)

                steps = [(candle.open_time - START) // STEP for candle in taken]
                assert steps == [step for step in range(HISTORY) if step not in bad], "in order, none lost to a 503"
                stats = feed.stats()
                assert stats.rejected_by_reason == {"not_finite": 1, "non_positive_price": 2, "duplicate": 1}
                assert stats.failed_requests == 3
                assert errors.report(clock.now()) == 0, "each rejection and failure reported once, when it happened"
                assert system.pipeline.last_close(SYMBOL) == taken[-1].close

                # The feed has been silent for more than three intervals; the technical task still publishes a
                # view (of the old frames), but the decision holds on it.
                now = clock.now()
                assert (now - last_close) / STEP > MAX_AGE
                await system.pipeline.run_technical(SYMBOL)
                stored = await system.coordinator.decide(SYMBOL, now)
                assert stored is not None
                decision = stored.write.decision
                assert decision.action == "hold"
                assert decision.reason.startswith(f"stale market data: the newest {SYMBOL} candle closed 3.")
                assert stored.write.order is None
                assert decision.degradation_level is DegradationLevel.EMERGENCY
        finally:
            await feed.aclose()
    assert fresh_decisions == ["buy"], "on fresh data the same view trades: the hold is the data's age alone"
    orders = await migrated_database.pool.fetch("SELECT created_at FROM orders")
    assert [row["created_at"] for row in orders] == [last_close + timedelta(seconds=2)]
    causes = await migrated_database.pool.fetchval("SELECT cause FROM degradation_events WHERE to_level = 'EMERGENCY'")
    assert "market_data_stale_intervals" in {cause["signal"] for cause in causes}
