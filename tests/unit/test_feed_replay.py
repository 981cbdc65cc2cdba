from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fakes import ClockSleep
from triplegain.clock import FakeClock
from triplegain.errors import UserError
from triplegain.market.candle import Timeframe, utc_from_ms
from triplegain.market.feeds import Feed
from triplegain.market.feeds.replay import CandleFile, ReplayFeed, ReplayFileError
from triplegain.market.settings import ReplayFile, ReplaySettings

HEADER = "timestamp,open,high,low,close,volume"
T0 = 1_672_677_900_000  # 2023-01-02 16:45 UTC
FIVE_MINUTES = 300_000


def row(step: int, close: float = 100.0, *, start: int = T0) -> str:
    return f"{start + step * FIVE_MINUTES},{close},{close * 1.01},{close * 0.99},{close},2.5"


def write(path: Path, *lines: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


async def collect(feed: ReplayFeed) -> list[tuple[str, int]]:
    return [(candle.symbol, candle.open_time_ms) async for candle in feed]


async def test_files_merge_in_time_order_and_equal_times_keep_the_given_order(tmp_path: Path) -> None:
    btc = write(tmp_path / "BTC_USDT-5m.csv", row(0), row(2), row(3))
    eth = write(tmp_path / "ETH_BTC-5m.csv", row(1, 0.07), row(2, 0.07), row(4, 0.07))
    feed = ReplayFeed([CandleFile.from_name(btc), CandleFile.from_name(eth)], clock=FakeClock())
    assert isinstance(feed, Feed)
    assert await collect(feed) == [
        ("BTC/USDT", T0),
        ("ETH/BTC", T0 + FIVE_MINUTES),
        ("BTC/USDT", T0 + 2 * FIVE_MINUTES),
        ("ETH/BTC", T0 + 2 * FIVE_MINUTES),
        ("BTC/USDT", T0 + 3 * FIVE_MINUTES),
        ("ETH/BTC", T0 + 4 * FIVE_MINUTES),
    ]
    stats = feed.stats()
    assert stats.emitted == 6
    assert stats.emitted_by_symbol == {"BTC/USDT": 3, "ETH/BTC": 3}
    assert stats.rejected == 0
    assert stats.failed_requests == 0
    assert stats.gaps == 2
    assert stats.missing_candles == 2


async def test_candles_carry_the_file_values(tmp_path: Path) -> None:
    path = write(tmp_path / "prices.csv", f"{T0},16727.3,16728.8,16726.0,16726.1,691.508")
    feed = ReplayFeed([CandleFile(path, "BTC/USDT", Timeframe.M5)], clock=FakeClock())
    candle = await anext(feed)
    assert (candle.symbol, candle.timeframe, candle.open_time) == (
        "BTC/USDT",
        Timeframe.M5,
        datetime(2023, 1, 2, 16, 45, tzinfo=UTC),
    )
    assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == (
        16727.3,
        16728.8,
        16726.0,
        16726.1,
        691.508,
    )
    with pytest.raises(StopAsyncIteration):
        await anext(feed)


@pytest.mark.parametrize(
    ("name", "symbol", "timeframe"),
    [("BTC_USDT-5m.csv", "BTC/USDT", Timeframe.M5), ("xrp_eth-1m.csv", "XRP/ETH", Timeframe.M1)],
)
def test_symbol_and_timeframe_come_from_the_file_name(name: str, symbol: str, timeframe: Timeframe) -> None:
    assert CandleFile.from_name(Path("data") / name) == CandleFile(Path("data") / name, symbol, timeframe)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("candles.csv", "cannot tell symbol and timeframe from the file name; name it like BTC_USDT-5m.csv"),
        ("BTC_USDT-7m.csv", "timeframe '7m' is not supported; allowed: 1m, 5m, 15m, 1h, 4h, 1d"),
    ],
)
def test_a_file_name_that_says_nothing_usable_is_a_clear_error(name: str, message: str) -> None:
    with pytest.raises(ReplayFileError, match=message):
        CandleFile.from_name(Path(name))


def test_settings_give_a_file_as_a_bare_path_or_with_overrides(tmp_path: Path) -> None:
    path = write(tmp_path / "BTC_USDT-5m.csv", row(0))
    settings = ReplaySettings.model_validate(
        {"files": [str(path), {"path": str(path), "symbol": "BTC/USD"}], "speed": 10}
    )
    assert settings.files[0] == ReplayFile(path=path)
    assert CandleFile.from_settings(settings.files[1]) == CandleFile(path, "BTC/USD", Timeframe.M5)
    feed = ReplayFeed.from_settings(settings, clock=FakeClock())
    assert isinstance(feed, ReplayFeed)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "time,open,high,low,close,volume",
            "data.csv line 1: header is 'time,open,high,low,close,volume'; "
            "expected timestamp,open,high,low,close,volume",
        ),
        ("", "data.csv: empty file; expected the header timestamp,open,high,low,close,volume"),
    ],
)
def test_a_wrong_header_fails_at_start(tmp_path: Path, header: str, message: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(header, encoding="utf-8")
    with pytest.raises(ReplayFileError) as raised:
        ReplayFeed([CandleFile(path, "BTC/USDT", Timeframe.M5)], clock=FakeClock())
    assert str(raised.value) == f"{tmp_path}/{message}"  # the whole path, as given
    assert isinstance(raised.value, UserError)


def test_a_missing_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match=r"nope\.csv: cannot read \(No such file or directory\)"):
        ReplayFeed([CandleFile(tmp_path / "nope.csv", "BTC/USDT", Timeframe.M5)], clock=FakeClock())
    with pytest.raises(UserError, match="no candle files given"):
        ReplayFeed([], clock=FakeClock())


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (f"{T0 + 2 * FIVE_MINUTES},100,101,99,abc,2", "data.csv line 4, column close: 'abc' is not a number"),
        (f"{T0 + 2 * FIVE_MINUTES},100,101,99,100,", "data.csv line 4, column volume: '' is not a number"),
        (f"{T0 + 2 * FIVE_MINUTES},100,101,99,100", "data.csv line 4: 5 columns; expected 6"),
        ("1672678500,100,101,99,100,2", "data.csv line 4, column timestamp: 1672678500 looks like seconds"),
        ("1672678500000000,100,101,99,100,2", "column timestamp: 1672678500000000 looks like microseconds"),
        ("1672678500000.5,100,101,99,100,2", "column timestamp: '1672678500000.5' is not a whole number"),
        ("yesterday,100,101,99,100,2", "data.csv line 4, column timestamp: 'yesterday' is not a number"),
    ],
)
async def test_a_malformed_row_is_fatal_and_names_file_line_and_column(
    tmp_path: Path, bad_row: str, message: str
) -> None:
    path = write(tmp_path / "data.csv", row(0), row(1), bad_row, row(3))
    feed = ReplayFeed([CandleFile(path, "BTC/USDT", Timeframe.M5)], clock=FakeClock())
    # Rows are read lazily: the candles before the bad row come out first.
    assert (await anext(feed)).open_time_ms == T0
    with pytest.raises(ReplayFileError, match=message):
        await collect(feed)


async def test_a_timestamp_written_as_a_whole_float_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", f"{T0}.0,100,101,99,100,2")
    feed = ReplayFeed([CandleFile(path, "BTC/USDT", Timeframe.M5)], clock=FakeClock())
    assert await collect(feed) == [("BTC/USDT", T0)]


async def test_bad_candles_duplicates_and_older_rows_are_rejected_and_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "data.csv",
        row(0),
        row(1),
        row(1, 101.0),  # duplicate timestamp
        row(0),  # older than the previous row
        f"{T0 + 2 * FIVE_MINUTES},100,99,98,100,2",  # high below the body
        f"{T0 + 3 * FIVE_MINUTES},100,101,99,nan,2",  # not a finite number
        "",  # blank lines are skipped
        row(4),
    )
    feed = ReplayFeed([CandleFile(path, "BTC/USDT", Timeframe.M5)], clock=FakeClock())
    assert await collect(feed) == [
        ("BTC/USDT", T0),
        ("BTC/USDT", T0 + FIVE_MINUTES),
        ("BTC/USDT", T0 + 4 * FIVE_MINUTES),
    ]
    stats = feed.stats()
    assert stats.rejected == 4
    assert stats.rejected_by_reason == {"not_finite": 1, "high_below_body": 1, "duplicate": 1, "out_of_order": 1}
    assert stats.recent_rejections[0] == (
        "BTC/USDT 5m 2023-01-02T16:50:00+00:00 (data.csv line 4): duplicate — "
        "a candle with this open time was already passed on"
    )
    assert "(data.csv line 7): not_finite — close is nan" in stats.recent_rejections[3]
    # The two rejected candles leave a hole that consumers see: it is reported as a gap too.
    assert (stats.gaps, stats.missing_candles) == (1, 2)


async def test_gaps_are_reported_with_first_and_last_missing_time_not_filled(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", row(0), row(1), row(5), row(7), row(8))
    feed = ReplayFeed([CandleFile(path, "BTC/USDT", Timeframe.M5)], clock=FakeClock())
    assert len(await collect(feed)) == 5
    stats = feed.stats()
    assert (stats.gaps, stats.missing_candles) == (2, 4)
    assert stats.longest_gap is not None
    assert stats.longest_gap.first_missing == utc_from_ms(T0 + 2 * FIVE_MINUTES)
    assert stats.longest_gap.last_missing == utc_from_ms(T0 + 4 * FIVE_MINUTES)
    assert stats.longest_gap.missing == 3
    assert [gap.missing for gap in stats.recent_gaps] == [3, 1]


async def test_paced_replay_waits_candle_time_divided_by_speed(tmp_path: Path) -> None:
    btc = write(tmp_path / "BTC_USDT-5m.csv", row(0), row(1), row(3))
    eth = write(tmp_path / "ETH_USDT-5m.csv", row(1, 50.0))
    clock = FakeClock()
    sleep = ClockSleep(clock)
    files = [CandleFile.from_name(btc), CandleFile.from_name(eth)]
    feed = ReplayFeed(files, clock=clock, speed=60.0, sleep=sleep)
    await anext(feed)
    await anext(feed)
    await anext(feed)  # ETH at the same candle time as the BTC before it: no wait
    clock.advance(4.0)  # the consumer took 4 s of the next 10 s
    await anext(feed)
    assert sleep.waits == [5.0, 6.0]  # 300 s / 60; then 600 s / 60 less the 4 s already gone
    with pytest.raises(ValueError, match="speed must be > 0"):
        ReplayFeed(files, clock=clock, speed=0.0)


async def test_aclose_ends_the_replay(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", row(0), row(1), row(2))
    feed = ReplayFeed([CandleFile(path, "BTC/USDT", Timeframe.M5)], clock=FakeClock())
    await anext(feed)
    await feed.aclose()
    await feed.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(feed)
