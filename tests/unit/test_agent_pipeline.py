"""The pipeline: candles taken in, and its refusal to value a portfolio with prices missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from triplegain.agents import AgentsSettings
from triplegain.agents.pipeline import AgentPipeline
from triplegain.bus import MessageBus, Topic
from triplegain.clock import FakeClock
from triplegain.market import Candle, Timeframe

T = datetime(2024, 1, 1, tzinfo=UTC)


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
        pipeline.ingest(candle("BTC/USDT", 55, 40_000.0))
        assert pipeline.last_close("BTC/USDT") == 40_000.0
        await pipeline.run_portfolio("BTC/USDT")  # XRP has no price yet
        assert pipeline.skipped == {"portfolio: an asset has no price yet": 1}
        assert bus.latest(Topic.PORTFOLIO_UPDATES, "BTC/USDT") is None
        pipeline.ingest(candle("XRP/USDT", 55, 0.5))
        await pipeline.run_portfolio("XRP/USDT")
        assert bus.latest(Topic.PORTFOLIO_UPDATES, "XRP/USDT") is not None
        await pipeline.aclose()
