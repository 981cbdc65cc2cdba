"""The ccxt feed with the real ccxt kraken client, against a local server that speaks Kraken's public REST API.

Time is a FakeClock shared by the feed and the stub exchange; the feed's sleep advances it, so polling an hour
of candles takes no real time. Only the request timeout test waits for real (the client's timeout, 0.3 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.fakes import ClockSleep
from tests.stubs.exchange import HANG, KrakenStub, StubCandle
from triplegain.clock import FakeClock
from triplegain.errors import UserError
from triplegain.market.candle import Candle
from triplegain.market.feeds import Feed, MarketDataError, Sleep
from triplegain.market.feeds.ccxt_feed import CcxtFeed, create_exchange
from triplegain.market.settings import CcxtFeedSettings

START = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)
NOW = START + 10 * STEP + timedelta(seconds=30)  # candle 10 is forming
SETTINGS: dict[str, Any] = {
    "exchange": "kraken",
    "symbols": ["BTC/USD"],
    "timeframe": "5m",
    "warmup_candles": 3,
    "poll_interval_seconds": 5,
    "publish_delay_seconds": 2,
    "rate_limit_ms": 1,
    "max_attempts": 3,
    "retry_initial_seconds": 1,
    "retry_max_seconds": 4,
    "request_timeout_seconds": 0.3,
}


def history(steps: range, *, skip: frozenset[int] = frozenset(), base: float = 40_000.0) -> list[StubCandle]:
    """Candles at START + step · 5 min with prices that tell the steps apart."""
    candles = []
    for step in steps:
        if step not in skip:
            price = base + 10 * step
            open_time_s = int((START + step * STEP).timestamp())
            candles.append(StubCandle(open_time_s, price, price + 8, price - 6, price + 4, 1.5 + step))
    return candles


def step_of(candle: Candle) -> int:
    return (candle.open_time - START) // STEP


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def stub(clock: FakeClock) -> AsyncIterator[KrakenStub]:
    async with KrakenStub(clock) as server:
        server.set_candles("BTC/USD", history(range(40)))
        server.set_candles("ETH/USD", history(range(40), base=2_000.0))
        yield server


@asynccontextmanager
async def kraken_feed(stub: KrakenStub, clock: FakeClock, sleep: Sleep, **overrides: Any) -> AsyncIterator[CcxtFeed]:
    settings = CcxtFeedSettings.model_validate(SETTINGS | overrides)
    feed = CcxtFeed(settings, clock=clock, sleep=sleep, api_url=stub.url)
    try:
        yield feed
    finally:
        await feed.aclose()


async def take(feed: CcxtFeed, count: int, clock: FakeClock) -> list[Candle]:
    """``count`` candles, checking each one had closed by the time it came out."""
    candles = []
    for _ in range(count):
        candle = await anext(feed)
        assert candle.close_time <= clock.now(), f"{candle.open_time} came out at {clock.now()}, before it closed"
        candles.append(candle)
    return candles


async def test_closed_candles_come_out_once_each_in_time_order(stub: KrakenStub, clock: FakeClock) -> None:
    async with kraken_feed(stub, clock, ClockSleep(clock), symbols=["BTC/USD", "ETH/USD"]) as feed:
        assert isinstance(feed, Feed)
        candles = await take(feed, 16, clock)
        # Warm-up: the 3 candles before the forming one; then each candle once it closed, symbols in turn.
        assert [(step_of(candle), candle.symbol) for candle in candles] == [
            (step, symbol) for step in range(7, 15) for symbol in ("BTC/USD", "ETH/USD")
        ]
        # Final values, never the forming candle's partial ones.
        assert [(candle.open, candle.high, candle.low, candle.close, candle.volume) for candle in candles[:2]] == [
            (40_070.0, 40_078.0, 40_064.0, 40_074.0, 8.5),
            (2_070.0, 2_078.0, 2_064.0, 2_074.0, 8.5),
        ]
        # One request per symbol and poll (the warm-up, then one per candle): the feed sleeps until a candle is due.
        requests = stub.ohlc_requests()
        assert len(requests) == 2 * 6
        assert requests[0] == {"pair": "XXBTZUSD", "interval": "5", "since": str(int((START + 6 * STEP).timestamp()))}
        stats = feed.stats()
        assert stats.emitted == 16
        assert stats.emitted_by_symbol == {"BTC/USD": 8, "ETH/USD": 8}
        assert stats.rejected == 0
        assert stats.gaps == 0
        assert stats.failed_requests == 0


async def test_without_warm_up_the_first_candle_is_the_one_forming_at_start(stub: KrakenStub, clock: FakeClock) -> None:
    sleep = ClockSleep(clock)
    async with kraken_feed(stub, clock, sleep, warmup_candles=0) as feed:
        first = await anext(feed)
        assert step_of(first) == 10
        # Nothing was due at start; the first wait reached candle 10's close plus the publish delay.
        assert sleep.waits == [4 * 60 + 30 + 2]
        assert clock.now() == START + 11 * STEP + timedelta(seconds=2)


async def test_missing_candles_are_reported_as_a_gap_not_filled(stub: KrakenStub, clock: FakeClock) -> None:
    stub.set_candles("BTC/USD", history(range(40), skip=frozenset({9, 12, 13})))
    sleep = ClockSleep(clock)
    async with kraken_feed(stub, clock, sleep, poll_interval_seconds=60) as feed:
        candles = await take(feed, 5, clock)
        assert [step_of(candle) for candle in candles] == [7, 8, 10, 11, 14]
        # While candle 12 was overdue, the feed asked again every poll interval until 14 closed.
        assert sleep.waits[-10:] == [60.0] * 10
        stats = feed.stats()
        assert (stats.gaps, stats.missing_candles) == (2, 3)
        assert stats.longest_gap is not None
        assert (stats.longest_gap.first_missing, stats.longest_gap.last_missing) == (
            START + 12 * STEP,
            START + 13 * STEP,
        )


async def test_bad_and_repeated_rows_are_rejected_and_counted(stub: KrakenStub, clock: FakeClock) -> None:
    broken = StubCandle(int((START + 8 * STEP).timestamp()), 100.0, 99.0, 98.0, 100.0, 1.0)  # high below the body
    repeated = history(range(9, 10))[0]
    stub.set_candles("BTC/USD", [*history(range(40), skip=frozenset({8})), broken, repeated])
    async with kraken_feed(stub, clock, ClockSleep(clock)) as feed:
        candles = await take(feed, 3, clock)
        assert [step_of(candle) for candle in candles] == [7, 9, 10]
        stats = feed.stats()
        assert stats.rejected_by_reason == {"high_below_body": 1, "duplicate": 1}
        assert "(kraken fetch_ohlcv): high_below_body" in stats.recent_rejections[0]
        assert (stats.gaps, stats.missing_candles) == (1, 1)


async def test_a_503_is_retried_with_backoff(stub: KrakenStub, clock: FakeClock) -> None:
    sleep = ClockSleep(clock)
    stub.fail_next(503, 503)
    async with kraken_feed(stub, clock, sleep) as feed:
        with capture_logs() as logs:
            candles = await take(feed, 3, clock)
        assert [step_of(candle) for candle in candles] == [7, 8, 9]
        assert len(stub.ohlc_requests()) == 3
        assert feed.stats().failed_requests == 2
        first_wait, second_wait = sleep.waits
        assert 1 <= first_wait <= 2
        assert 2 <= second_wait <= 3
        retries = [entry for entry in logs if entry["event"] == "exchange request failed; retrying"]
        assert [entry["attempt"] for entry in retries] == [1, 2]
        assert retries[0]["request"] == "fetch_ohlcv BTC/USD"
        assert "ExchangeNotAvailable" in retries[0]["error"]
        assert "503" in retries[0]["error"]


async def test_a_request_timeout_is_retried(stub: KrakenStub, clock: FakeClock) -> None:
    stub.fail_next(HANG)
    async with kraken_feed(stub, clock, ClockSleep(clock)) as feed:
        candles = await take(feed, 3, clock)
        assert [step_of(candle) for candle in candles] == [7, 8, 9]
        assert len(stub.ohlc_requests()) == 2
        assert feed.stats().failed_requests == 1


async def test_a_persistent_failure_is_a_clear_error_after_bounded_attempts(stub: KrakenStub, clock: FakeClock) -> None:
    stub.fail_next(503, 503, 503)
    async with kraken_feed(stub, clock, ClockSleep(clock)) as feed:
        with pytest.raises(MarketDataError) as raised:
            await anext(feed)
        message = str(raised.value)
        assert message.startswith("kraken: fetch_ohlcv BTC/USD failed after 3 attempts: ExchangeNotAvailable: ")
        assert "503" in message
        assert "\n" not in message
        assert len(stub.ohlc_requests()) == 3
        # The exchange is back: iterating again resumes after a poll interval.
        candles = await take(feed, 3, clock)
        assert [step_of(candle) for candle in candles] == [7, 8, 9]
        assert feed.stats().failed_requests == 3


async def test_a_failing_symbol_loses_no_candle_of_another(stub: KrakenStub, clock: FakeClock) -> None:
    stub.fail_next(503, 503, 503, symbol="ETH/USD")
    async with kraken_feed(stub, clock, ClockSleep(clock), symbols=["BTC/USD", "ETH/USD"]) as feed:
        with pytest.raises(MarketDataError, match="fetch_ohlcv ETH/USD failed after 3 attempts"):
            await anext(feed)
        candles = await take(feed, 6, clock)
        assert [(candle.symbol, step_of(candle)) for candle in candles] == [
            *[("BTC/USD", step) for step in (7, 8, 9)],
            *[("ETH/USD", step) for step in (7, 8, 9)],
        ]


async def test_aclose_interrupts_a_wait_and_closes_the_exchange(stub: KrakenStub, clock: FakeClock) -> None:
    asleep, never = asyncio.Event(), asyncio.Event()

    async def long_sleep(seconds: float) -> None:
        asleep.set()
        await never.wait()

    async with kraken_feed(stub, clock, long_sleep) as feed:
        await take(feed, 3, clock)
        assert feed.exchange.session is not None
        waiting = asyncio.create_task(anext(feed))
        await asleep.wait()  # the feed now waits for the next candle
        assert not waiting.done()
        await feed.aclose()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, timeout=5)
        assert feed.exchange.session is None
        with pytest.raises(StopAsyncIteration):
            await anext(feed)


async def test_an_unknown_symbol_or_exchange_is_a_user_error(stub: KrakenStub, clock: FakeClock) -> None:
    async with kraken_feed(stub, clock, ClockSleep(clock), symbols=["BTC/USD", "DOGE/EUR"]) as feed:
        with pytest.raises(UserError, match=r"kraken has no market 'DOGE/EUR'; its symbols look like BTC/USD, ETH/USD"):
            await anext(feed)
    with pytest.raises(UserError, match="exchange 'krakken' is not a ccxt exchange id"):
        create_exchange(CcxtFeedSettings(exchange="krakken"))


async def test_the_exchange_is_set_up_for_retries_in_one_place() -> None:
    exchange = create_exchange(CcxtFeedSettings(), api_url="http://127.0.0.1:9")
    try:
        assert exchange.enableRateLimit is True
        assert exchange.options["maxRetriesOnFailure"] == 0
        assert exchange.timeout == 10_000
        assert set(exchange.urls["api"].values()) == {"http://127.0.0.1:9"}
    finally:
        await exchange.close()
