"""Broken candle files (tests/faults/corpus/candles/<case>/): one line naming file, line, column and value, exit 2.

A problem with the file itself (name, header, a row that does not parse) is fatal: replaying it would mislead.
Every row is read before the database is opened, so a problem anywhere in the file stops the run before it
starts. A duplicate row is a bad candle, not a bad file (``market/feeds/replay.py``): it is rejected with its
line, counted, and the replay goes on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests.faults.conftest import REFUSED_DATABASE_URL, InvokeCli
from triplegain.clock import FakeClock
from triplegain.errors import UserError
from triplegain.market.candle import EPOCH
from triplegain.market.feeds.replay import CandleFile, ReplayFeed

CORPUS = Path(__file__).resolve().parent / "corpus" / "candles"


def corpus_file(case: str) -> Path:
    [path] = (CORPUS / case).glob("*.csv")
    return path


# case → what the one error line says (after "error: "), found before the database is opened.
FIRST_ROW_OR_NAME = {
    "bad_header": "BTC_USDT-5m.csv line 1: header is 'time,open,high,low,close,volume'; expected timestamp,open,",
    "missing_header": "BTC_USDT-5m.csv line 1: header is '1704067200000,100,101,99,100.5,10'; expected timestamp,",
    "empty_file": "BTC_USDT-5m.csv: empty file; expected the header timestamp,open,high,low,close,volume",
    "wrong_column_count": "BTC_USDT-5m.csv line 2: 5 columns; expected 6 (timestamp,open,high,low,close,volume)",
    "text_in_number": "BTC_USDT-5m.csv line 2, column close: 'abc' is not a number",
    "nul_byte": "BTC_USDT-5m.csv line 2, column volume: '1\\x000' is not a number",
    "timestamps_in_seconds": "BTC_USDT-5m.csv line 2, column timestamp: 1704067200 looks like seconds",
    "timestamps_in_microseconds": "BTC_USDT-5m.csv line 2, column timestamp: 1704067200000000 looks like microseconds",
    "fractional_timestamp": "BTC_USDT-5m.csv line 2, column timestamp: '1704067200000.5' is not a whole number",
    "not_text": "BTC_USDT-5m.csv line 1: not CSV text ('utf-8' codec can't decode byte 0xff",
    "unnamed": "candles.csv: cannot tell symbol and timeframe from the file name; name it like BTC_USDT-5m.csv",
    "unknown_timeframe": "BTC_USDT-7m.csv: timeframe '7m' is not supported; allowed: 1m, 5m, 15m, 1h, 4h, 1d",
}
MID_FILE = "BTC_USDT-5m.csv line 5, column close: 'n/a' is not a number"


def test_every_corpus_case_is_checked() -> None:
    cases = {path.name for path in CORPUS.iterdir()}
    assert cases == {*FIRST_ROW_OR_NAME, "text_mid_file", "duplicate_rows"}


async def read_all(path: Path) -> int:
    feed = ReplayFeed([CandleFile.from_name(path)], clock=FakeClock(EPOCH))
    try:
        return len([candle async for candle in feed])
    finally:
        await feed.aclose()


@pytest.mark.parametrize("case", [*FIRST_ROW_OR_NAME, "text_mid_file"])
async def test_the_reader_raises_a_user_error_naming_the_place(case: str) -> None:
    expected = FIRST_ROW_OR_NAME.get(case, MID_FILE)
    with pytest.raises(UserError) as caught:
        await read_all(corpus_file(case))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("case", list(FIRST_ROW_OR_NAME))
def test_the_daemon_refuses_the_file_before_opening_the_database(invoke_cli: InvokeCli, case: str) -> None:
    # A database nobody listens on: getting that far would exit 1 instead of 2.
    result = invoke_cli(
        "run", "--replay", str(corpus_file(case)), env={"TRIPLEGAIN_DATABASE_URL": REFUSED_DATABASE_URL}
    )
    assert (result.code, result.stdout) == (2, "")
    [line] = result.error_lines
    assert line.startswith("error: ")
    assert FIRST_ROW_OR_NAME[case] in line


async def test_a_duplicate_row_is_rejected_with_its_line_and_the_rest_is_replayed() -> None:
    feed = ReplayFeed([CandleFile.from_name(corpus_file("duplicate_rows"))], clock=FakeClock(EPOCH))
    candles = [candle async for candle in feed]
    stats = feed.stats()
    assert len(candles) == 4
    assert stats.rejected_by_reason == {"duplicate": 1}
    [rejection] = stats.recent_rejections
    assert "(BTC_USDT-5m.csv line 4): duplicate" in rejection


def test_a_bad_row_further_down_is_found_before_the_run_starts(invoke_cli: InvokeCli) -> None:
    # The whole file is read before the database is opened: no candle is traded, no run is recorded.
    path = corpus_file("text_mid_file")
    result = invoke_cli("run", "--replay", str(path), env={"TRIPLEGAIN_DATABASE_URL": REFUSED_DATABASE_URL})
    assert (result.code, result.stdout) == (2, "")
    assert result.error_lines == [f"error: {path.parent / MID_FILE}"]


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_the_daemon_replays_past_a_duplicate_row(invoke_cli: InvokeCli, migrated_database_url: str) -> None:
    result = invoke_cli(
        "run", "--replay", str(corpus_file("duplicate_rows")), env={"TRIPLEGAIN_DATABASE_URL": migrated_database_url}
    )
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    [warning] = [line for line in result.error_lines if "candle rejected" in line]
    assert "reason=duplicate" in warning
    assert "BTC_USDT-5m.csv line 4" in warning
    assert "candles       4" in result.stdout
    assert exit_reasons(migrated_database_url) == ["replay finished"]


def exit_reasons(url: str) -> list[str]:
    async def read() -> list[str]:
        connection = await asyncpg.connect(url)
        try:
            return [row["exit_reason"] for row in await connection.fetch("SELECT exit_reason FROM daemon_runs")]
        finally:
            await connection.close()

    return asyncio.run(read())


def test_a_symbol_quoted_in_another_asset_than_the_account_is_refused_before_opening_the_database(
    invoke_cli: InvokeCli, tmp_path: Path
) -> None:
    candles = tmp_path / "ETH_BTC-5m.csv"
    candles.write_text("timestamp,open,high,low,close,volume\n1704067200000,0.05,0.051,0.049,0.05,12.5\n")
    result = invoke_cli("run", "--replay", str(candles), env={"TRIPLEGAIN_DATABASE_URL": REFUSED_DATABASE_URL})
    assert (result.code, result.stdout) == (2, "")
    [line] = result.error_lines
    assert "ETH/BTC is quoted in BTC, but execution.quote_asset is USDT" in line
    assert "set both to BTC" in line
