"""The pipeline's cadence rule and its refusal to value a portfolio with prices missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triplegain.agents import AgentsSettings
from triplegain.agents.pipeline import AgentPipeline, _crossed
from triplegain.bus import MessageBus, Topic
from triplegain.clock import FakeClock
from triplegain.market import Candle, Timeframe

HALF_HOUR = timedelta(minutes=30)
T = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("previous", "now", "expected"),
    [
        (None, T + timedelta(minutes=30), True),  # the first candle closes on a boundary
        (None, T + timedelta(minutes=35), False),
        (T + timedelta(minutes=25), T + timedelta(minutes=30), True),
        (T + timedelta(minutes=30), T + timedelta(minutes=35), False),
        (T + timedelta(minutes=20), T + timedelta(minutes=45), True),  # a gap across the boundary still counts
        (T + timedelta(minutes=35), T + timedelta(minutes=55), False),
    ],
)
def test_a_cadence_counts_when_a_close_crosses_its_boundary(
    previous: datetime | None, now: datetime, expected: bool
) -> None:
    assert _crossed(previous, now, HALF_HOUR) is expected


def candle(symbol: str, minutes: int, price: float) -> Candle:
    return Candle(
        symbol=symbol,
        timeframe=Timeframe.M5,
        open_time=T + timedelta(minutes=minutes),
        open=price,
        high=price,
        low=price,
        close=price,
        volume=1.0,
    )


async def test_the_portfolio_waits_for_a_price_of_every_asset() -> None:
    clock = FakeClock(T)
    async with MessageBus(clock=clock) as bus:
        pipeline = AgentPipeline(
            AgentsSettings(),
            bus=bus,
            clock=clock,
            base_timeframe=Timeframe.M5,
            balances=lambda: {"BTC": 1.0, "XRP": 100.0, "USDT": 1_000.0},
        )
        await pipeline.on_candle(candle("BTC/USDT", 55, 40_000.0))  # closes 01:00: portfolio due, XRP unpriced
        assert pipeline.skipped == {"portfolio: an asset has no price yet": 1}
        assert bus.latest(Topic.PORTFOLIO_UPDATES, "BTC/USDT") is None
        await pipeline.on_candle(candle("XRP/USDT", 55, 0.5))
        await pipeline.run_portfolio("XRP/USDT")
        assert bus.latest(Topic.PORTFOLIO_UPDATES, "XRP/USDT") is not None
        await pipeline.aclose()
