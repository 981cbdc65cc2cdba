"""What a run checks and shows at start, without a database: the replay's continuity with its account, the candle
files read whole, and the progress line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from triplegain.clock import FakeClock
from triplegain.daemon.continuity import AccountAhead, check_continuity
from triplegain.daemon.status import progress
from triplegain.market import SyntheticFeed, SyntheticSettings
from triplegain.market.feeds import Feed
from triplegain.market.feeds.replay import CandleFile, ReplayFileError, check_files
from triplegain.model import MarkRow

START = datetime(2024, 1, 1, tzinfo=UTC)
SYNTHETIC = SyntheticSettings(symbols={"BTC/USDT": 40_000.0}, count=20, start=START, seed=3)


async def synthetic() -> Feed:
    return SyntheticFeed(SYNTHETIC, clock=FakeClock(START))


async def candles() -> list[tuple[datetime, float]]:
    return [(candle.open_time, candle.close) async for candle in await synthetic()]


def mark(at: datetime, price: float, symbol: str = "BTC/USDT") -> MarkRow:
    return MarkRow(account="paper", symbol=symbol, candle_open_time=at, price=price)


async def test_a_fresh_account_or_a_replay_after_its_marks_starts_without_a_word() -> None:
    first = await anext(await synthetic())
    assert await check_continuity("paper", [], first, synthetic) is None
    earlier = mark(START - timedelta(days=1), 1.0)
    assert await check_continuity("paper", [earlier], first, synthetic) is None


async def test_the_same_candles_again_carry_on_from_the_last_one_processed() -> None:
    first = await anext(await synthetic())
    at, close = (await candles())[12]
    said = await check_continuity("paper", [mark(at, close)], first, synthetic)
    assert said == (
        "account 'paper' has processed these candles up to 2024-01-01 01:00 UTC already: carrying on from there"
    )


async def test_other_candles_before_the_time_reached_are_refused_naming_account_time_and_remedy() -> None:
    first = await anext(await synthetic())
    at, close = (await candles())[12]
    for marks in ([mark(at, close + 1.0)], [mark(at + timedelta(days=400), 5.0)], [mark(at, close, "ETH/USDT")]):
        with pytest.raises(AccountAhead) as refused:
            await check_continuity("paper", marks, first, synthetic)
        message = str(refused.value)
        assert refused.value.exit_code == 2
        assert "\n" not in message
        reached = max(m.candle_open_time for m in marks)
        assert message.startswith(f"account 'paper' has already processed candles up to {reached:%Y-%m-%d %H:%M} UTC")
        assert "--account NAME" in message
        assert "triplegain account reset paper --yes" in message


def test_a_file_is_read_whole_before_the_run_and_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-5m.csv"
    rows = [f"{1_704_067_200_000 + step * 300_000},100,101,99,100,1" for step in range(5)]
    path.write_text("\n".join(["timestamp,open,high,low,close,volume", *rows]) + "\n")
    assert check_files([CandleFile.from_name(path)]) == {"BTC/USDT": 5}
    path.write_text("\n".join(["timestamp,open,high,low,close,volume", *rows, "1704068700000,100,101,99,n/a,1"]))
    with pytest.raises(ReplayFileError) as bad:
        check_files([CandleFile.from_name(path)])
    assert str(bad.value) == f"{path} line 7, column close: 'n/a' is not a number"
    path.write_text("")
    with pytest.raises(ReplayFileError) as empty:
        check_files([CandleFile.from_name(path)])
    assert str(empty.value) == f"{path}: empty file; expected the header timestamp,open,high,low,close,volume"


def test_progress_says_candle_n_of_m_the_share_the_rate_and_the_time_left() -> None:
    assert progress(2_500, 10_000, 5.0) == "candle 2,500 of 10,000 (25.0 %), 500 candles/s, ETA 15 s"
    assert progress(100, 100_000, 1.0) == "candle 100 of 100,000 (0.1 %), 100 candles/s, ETA 16 min 39 s"
    assert progress(1, 1_000_000, 0.5) == "candle 1 of 1,000,000 (0.0 %), 2 candles/s, ETA 138 h 53 min"
    assert progress(0, 10, 0.0) == "candle 0 of 10 (0.0 %), 0 candles/s, ETA -"
    assert progress(42, None, 2.0) == "42, 21 candles/s"
