"""Replay of candle CSV files, several symbols merged in time order.

File format: a header ``timestamp,open,high,low,close,volume``, then one candle per line; ``timestamp`` is the
candle's open time in milliseconds since the Unix epoch (UTC). Files are read lazily, one row at a time.

What is fatal and what is a rejection:

- fatal (``ReplayFileError``, a ``UserError`` naming the file by the path it was given: the file itself is wrong,
  so replaying it would mislead; ``check_files`` reads every row before a replay starts): a missing
  or unreadable file, a wrong header, a row with the wrong number of columns, a number that does not parse, a
  timestamp that is not whole milliseconds or looks like seconds (< 1e11) or microseconds (≥ 1e14).
- rejected, counted, and replay goes on (one bad candle in a real exchange's history): a row whose numbers fail
  the candle check (e.g. high below close, a zero price, NaN), a duplicate timestamp, a timestamp older than the
  previous row's.
- reported, not filled: gaps (missing candles), counted in ``stats()``.

Blank lines are skipped. Files with equal timestamps are merged in the order they were given.
"""

from __future__ import annotations

import asyncio
import csv
import heapq
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from triplegain.clock import Clock
from triplegain.errors import UserError
from triplegain.market.candle import Candle, Rejection, Timeframe, TimeframeError, candle_from_values
from triplegain.market.feeds import Sleep
from triplegain.market.feeds.monitor import FeedMonitor, FeedStats
from triplegain.market.feeds.pacing import Pacer
from triplegain.market.settings import ReplayFile, ReplaySettings

HEADER = ("timestamp", "open", "high", "low", "close", "volume")
_SMALLEST_MS = 100_000_000_000  # 1e11 ms is 1973-03-03; a smaller number is almost surely seconds
_LARGEST_MS = 100_000_000_000_000  # 1e14 ms is the year 5138; a larger number is almost surely microseconds
_FILE_NAME = re.compile(r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)-(?P<timeframe>[0-9]+[a-zA-Z])$")


class ReplayFileError(UserError):
    """A candle file that cannot be replayed; the message names the file, and the line and column if any."""


@dataclass(frozen=True)
class CandleFile:
    """A CSV file and the symbol and timeframe of its candles."""

    path: Path
    symbol: str
    timeframe: Timeframe

    @classmethod
    def from_name(cls, path: Path) -> CandleFile:
        """``BTC_USDT-5m.csv`` → BTC/USDT, 5m."""
        match = _FILE_NAME.match(path.stem)
        if match is None:
            raise ReplayFileError(
                f"{path}: cannot tell symbol and timeframe from the file name; name it like BTC_USDT-5m.csv "
                "or give symbol and timeframe"
            )
        try:
            timeframe = Timeframe(match["timeframe"])
        except ValueError:
            raise ReplayFileError(f"{path}: {TimeframeError(match['timeframe'])}") from None
        return cls(path, f"{match['base'].upper()}/{match['quote'].upper()}", timeframe)

    @classmethod
    def from_settings(cls, entry: ReplayFile) -> CandleFile:
        """The file as configured, with whatever is left out inferred from its name."""
        if entry.symbol is not None and entry.timeframe is not None:
            return cls(entry.path, entry.symbol, entry.timeframe)
        named = cls.from_name(entry.path)
        return cls(entry.path, entry.symbol or named.symbol, entry.timeframe or named.timeframe)


class ReplayFeed:
    """Candles from CSV files in time order, as fast as possible or paced (see the module docstring).

    Files are opened and their headers checked here, so a wrong file fails at start rather than mid-replay.
    """

    def __init__(
        self,
        files: Sequence[CandleFile],
        *,
        clock: Clock,
        speed: float | None = None,
        sleep: Sleep = asyncio.sleep,
        keep_recent: int = 100,
    ) -> None:
        if not files:
            raise UserError("replay: no candle files given")
        self._monitor = FeedMonitor(feed="replay", keep=keep_recent)
        self._pacer = Pacer(speed, clock, sleep)
        self._readers: list[_CsvReader] = []
        try:
            for candle_file in files:
                self._readers.append(_CsvReader(candle_file, self._monitor))
        except ReplayFileError:
            self._close_readers()
            raise
        streams = [reader.candles() for reader in self._readers]
        self._merged: Iterator[Candle] = heapq.merge(*streams, key=lambda candle: candle.open_time)
        self._closed = False

    @classmethod
    def from_settings(cls, settings: ReplaySettings, *, clock: Clock, sleep: Sleep = asyncio.sleep) -> ReplayFeed:
        files = [CandleFile.from_settings(entry) for entry in settings.files]
        return cls(files, clock=clock, speed=settings.speed, sleep=sleep)

    def __aiter__(self) -> ReplayFeed:
        return self

    async def __anext__(self) -> Candle:
        if self._closed:
            raise StopAsyncIteration
        candle = next(self._merged, None)
        if candle is None:
            await self.aclose()
            raise StopAsyncIteration
        await self._pacer.wait_for(candle.open_time)
        self._monitor.count_emitted(candle)
        return candle

    def stats(self) -> FeedStats:
        return self._monitor.snapshot()

    async def aclose(self) -> None:
        self._closed = True
        self._close_readers()

    def _close_readers(self) -> None:
        for reader in self._readers:
            reader.close()


def check_files(files: Sequence[CandleFile]) -> dict[str, int]:
    """Read every file whole before a replay starts: ``ReplayFileError`` for the first one that cannot be replayed
    (a row further down would otherwise stop the replay midway); how many rows hold a candle, per symbol."""
    rows: dict[str, int] = {}
    for candle_file in files:
        reader = _CsvReader(candle_file, FeedMonitor(feed="replay check", keep=0))
        rows[candle_file.symbol] = rows.get(candle_file.symbol, 0) + sum(1 for _ in reader.rows())
    return rows


class _CsvReader:
    """One open candle file; ``candles()`` yields its valid candles in order, row by row."""

    def __init__(self, candle_file: CandleFile, monitor: FeedMonitor) -> None:
        self._file = candle_file
        self._name = candle_file.path.name
        """How a candle's source names the file (``BTC_USDT-5m.csv line 4``); errors give the whole path."""
        self._path = str(candle_file.path)
        self._monitor = monitor
        try:
            self._handle = candle_file.path.open(newline="", encoding="utf-8")
        except OSError as exc:
            raise ReplayFileError(f"{candle_file.path}: cannot read ({exc.strerror})") from None
        self._rows = csv.reader(self._handle)
        try:
            self._check_header(self._read_header())
        except ReplayFileError:
            self._handle.close()
            raise

    def close(self) -> None:
        self._handle.close()

    def candles(self) -> Iterator[Candle]:
        symbol, timeframe, monitor = self._file.symbol, self._file.timeframe, self._monitor
        for source, (open_ms, open_, high, low, close, volume) in self.rows():
            result = candle_from_values(symbol, timeframe, open_ms, open_, high, low, close, volume, source=source)
            if isinstance(result, Rejection):
                monitor.reject(result)
            elif monitor.admit(result, source=source):
                yield result

    def rows(self) -> Iterator[tuple[str, tuple[int, float, float, float, float, float]]]:
        """Each row's place (``file line N``) and values, parsed; ``ReplayFileError`` at the first that does not
        parse. The file is closed at the end."""
        try:
            for row in self._rows:
                if not row:
                    continue
                yield f"{self._name} line {self._rows.line_num}", self._parse(row)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ReplayFileError(f"{self._path} line {self._rows.line_num}: not CSV text ({exc})") from None
        finally:
            self._handle.close()

    def _read_header(self) -> list[str] | None:
        try:
            return next(self._rows, None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ReplayFileError(f"{self._path} line 1: not CSV text ({exc})") from None

    def _check_header(self, header: list[str] | None) -> None:
        if header is None:
            raise ReplayFileError(f"{self._path}: empty file; expected the header {','.join(HEADER)}")
        if tuple(column.strip().lower() for column in header) != HEADER:
            raise ReplayFileError(f"{self._path} line 1: header is {','.join(header)!r}; expected {','.join(HEADER)}")

    def _parse(self, row: list[str]) -> tuple[int, float, float, float, float, float]:
        line = self._rows.line_num
        if len(row) != len(HEADER):
            raise ReplayFileError(
                f"{self._path} line {line}: {len(row)} columns; expected {len(HEADER)} ({','.join(HEADER)})"
            )
        open_ms = _parse_timestamp(f"{self._path} line {line}, column timestamp", row[0])
        open_, high, low, close, volume = (
            _parse_number(f"{self._path} line {line}, column {column}", text)
            for column, text in zip(HEADER[1:], row[1:], strict=True)
        )
        return open_ms, open_, high, low, close, volume


def _parse_number(where: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ReplayFileError(f"{where}: {text!r} is not a number") from None


def _parse_timestamp(where: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        number = _parse_number(where, text)
        if not number.is_integer():
            raise ReplayFileError(f"{where}: {text!r} is not a whole number of milliseconds") from None
        value = int(number)
    if value < _SMALLEST_MS:
        raise ReplayFileError(
            f"{where}: {text} looks like seconds (or is before 1973); timestamps must be milliseconds since the "
            "Unix epoch (UTC)"
        )
    if value >= _LARGEST_MS:
        raise ReplayFileError(
            f"{where}: {text} looks like microseconds; timestamps must be milliseconds since the Unix epoch (UTC)"
        )
    return value
