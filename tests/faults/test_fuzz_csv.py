"""Fuzzing the CSV candle reader: any file gives valid candles in time order, or a ReplayFileError — nothing else.

Rows are drawn from a vocabulary of plausible and broken fields (numbers, timestamps in ms, s and µs, NaN, text,
quotes, empty), so most examples get past the header into the row checks; raw bytes cover the rest. Examples:
100 a test by default, 10,000 with ``HYPOTHESIS_PROFILE=fuzz`` (tests/faults/conftest.py).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triplegain.clock import FakeClock
from triplegain.market.candle import EPOCH, Candle, ohlcv_problem
from triplegain.market.feeds.replay import HEADER, CandleFile, ReplayFeed, ReplayFileError

FIELDS = st.one_of(
    st.integers(min_value=1_704_067_200_000, max_value=1_704_067_200_000 + 50 * 300_000).map(str),
    st.floats(min_value=0.5, max_value=200).map(repr),
    st.sampled_from(["100", "101", "99", "0", "-1", "nan", "inf", "-inf", "1e400", "1_000", "1704067200", ""]),
    st.sampled_from(["1704067200000000", "1704067200000.5", "abc", " 100 ", '"100"', "١٠٠", "9" * 5000]),
    st.text(max_size=8),
)
ROWS = st.lists(st.lists(FIELDS, min_size=5, max_size=7).map(",".join), max_size=12)
HEADERS = st.sampled_from([",".join(HEADER), ",".join(HEADER).upper(), "time,open,high,low,close,volume", ""])
FILES = st.builds(lambda header, rows: "\n".join([header, *rows]).encode(), HEADERS, ROWS) | st.binary(max_size=400)


@pytest.fixture(scope="module")
def candle_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="triplegain-fuzz-") as folder:
        yield Path(folder) / "BTC_USDT-5m.csv"


async def read(path: Path) -> list[Candle]:
    feed = ReplayFeed([CandleFile.from_name(path)], clock=FakeClock(EPOCH))
    try:
        return [candle async for candle in feed]
    finally:
        await feed.aclose()


async def read_or_error(path: Path) -> list[Candle] | ReplayFileError:
    try:
        return await read(path)
    except ReplayFileError as error:
        return error


@settings(deadline=None)
@given(content=FILES)
def test_fuzz_candle_files(candle_file: Path, content: bytes) -> None:
    candle_file.write_bytes(content)
    candles = asyncio.run(read_or_error(candle_file))
    if isinstance(candles, ReplayFileError):
        message = str(candles)
        assert candles.exit_code == 2
        assert message.startswith(f"{candle_file}"), message  # the file, by the path it was given
        assert "\n" not in message, message
        return
    times = [candle.open_time for candle in candles]
    assert times == sorted(set(times))
    for candle in candles:
        assert ohlcv_problem(candle.open, candle.high, candle.low, candle.close, candle.volume) is None
