"""The market as the technical and regime agents see it: per (symbol, timeframe), the recent closed candles and
the indicator snapshot after each.

A ``FrameBook`` is fed the closed candles of one base timeframe (the feed's) in time order. It keeps an
``IndicatorSet`` per (symbol, timeframe) and builds the candles of longer timeframes by aggregating base candles
(open of the first, high/low extremes, close of the last, summed volume; buckets aligned on the Unix epoch, so a
day starts at 00:00 UTC). A bucket is emitted as soon as its last base candle arrives; one left incomplete by a
gap in the feed is emitted when a later bucket starts, with the candles it got.

It also marks swing points as candles arrive: a candle whose high (low) is the highest (lowest) of the
``swing_width`` candles on each side of it, confirmed once those on its right have closed. Checking only the
newly confirmable candle keeps this O(width) per candle instead of rescanning the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from triplegain.agents.settings import AgentsSettings
from triplegain.market import Candle, IndicatorSet, IndicatorSettings, IndicatorSnapshot, Timeframe
from triplegain.market.candle import utc_from_ms


@dataclass(frozen=True, slots=True)
class Swing:
    """A confirmed swing high or low: the candle's open time and its high (or low)."""

    open_time: datetime
    price: float
    high: bool


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """The last closed candles of one (symbol, timeframe), the snapshot after each (aligned, oldest first), and
    the swing points confirmed among those candles, oldest first.

    Compared and hashed by identity: the book hands out the same frame until the next candle of its timeframe,
    so a reader can memoise its work per frame (the technical agent re-reads an hour frame at every 5m candle).
    """

    symbol: str
    timeframe: Timeframe
    candles: tuple[Candle, ...]
    snapshots: tuple[IndicatorSnapshot, ...]
    swings: tuple[Swing, ...] = ()

    @property
    def latest(self) -> IndicatorSnapshot:
        return self.snapshots[-1]


class CandleAggregator:
    """Candles of ``timeframe`` built from consecutive closed candles of one shorter timeframe that divides it."""

    __slots__ = ("_bucket_ms", "_close", "_high", "_low", "_open", "_start_ms", "_symbol", "_timeframe", "_volume")

    def __init__(self, symbol: str, timeframe: Timeframe) -> None:
        self._symbol = symbol
        self._timeframe = timeframe
        self._bucket_ms = timeframe.milliseconds
        self._start_ms: int | None = None
        self._open = self._high = self._low = self._close = self._volume = 0.0

    def add(self, candle: Candle) -> list[Candle]:
        """The candles of ``timeframe`` that ``candle`` completes: none, one, or two after a gap."""
        open_ms = candle.open_time_ms
        start_ms = open_ms - open_ms % self._bucket_ms
        done: list[Candle] = []
        if self._start_ms is not None and start_ms != self._start_ms:
            done.append(self._emit())
        if self._start_ms is None:
            self._start_ms = start_ms
            self._open, self._high, self._low = candle.open, candle.high, candle.low
            self._volume = candle.volume
        else:
            self._high = max(self._high, candle.high)
            self._low = min(self._low, candle.low)
            self._volume += candle.volume
        self._close = candle.close
        if open_ms + candle.timeframe.milliseconds >= start_ms + self._bucket_ms:
            done.append(self._emit())
        return done

    def _emit(self) -> Candle:
        assert self._start_ms is not None
        candle = Candle(
            symbol=self._symbol,
            timeframe=self._timeframe,
            open_time=utc_from_ms(self._start_ms),
            open=self._open,
            high=self._high,
            low=self._low,
            close=self._close,
            volume=self._volume,
        )
        self._start_ms = None
        return candle


class _Track:
    """One (symbol, timeframe): its indicators, recent candles, snapshots and swings, and their frame once asked for."""

    __slots__ = (
        "_frame",
        "_highs",
        "_lows",
        "_swing_width",
        "candles",
        "indicators",
        "snapshots",
        "swings",
        "symbol",
        "timeframe",
    )

    def __init__(
        self, symbol: str, timeframe: Timeframe, settings: IndicatorSettings, window: int, swing_width: int
    ) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.indicators = IndicatorSet(symbol, timeframe, settings)
        self.candles: deque[Candle] = deque(maxlen=window)
        self.snapshots: deque[IndicatorSnapshot] = deque(maxlen=window)
        self.swings: deque[Swing] = deque()
        self._swing_width = swing_width
        # The highs and lows of the last 2 · swing_width + 1 candles: a swing's neighbourhood, kept apart so that
        # confirming one is a max() and a min() over floats rather than a scan of candle models.
        self._highs: deque[float] = deque(maxlen=2 * swing_width + 1)
        self._lows: deque[float] = deque(maxlen=2 * swing_width + 1)
        self._frame: Frame | None = None

    def add(self, candle: Candle) -> None:
        self.snapshots.append(self.indicators.update(candle))
        self.candles.append(candle)
        self._highs.append(candle.high)
        self._lows.append(candle.low)
        self._confirm_swing()
        self._frame = None

    def _confirm_swing(self) -> None:
        """Mark the candle ``swing_width`` back as a swing if it is the extreme of its neighbourhood."""
        highs, lows, width, candles = self._highs, self._lows, self._swing_width, self.candles
        if len(candles) <= 2 * width:  # not yet (or never, in a window shorter than the neighbourhood)
            return
        if highs[width] >= max(highs):
            self.swings.append(Swing(candles[-1 - width].open_time, highs[width], high=True))
        if lows[width] <= min(lows):
            self.swings.append(Swing(candles[-1 - width].open_time, lows[width], high=False))
        oldest = candles[0].open_time
        while self.swings and self.swings[0].open_time < oldest:
            self.swings.popleft()

    def frame(self) -> Frame | None:
        """The same ``Frame`` until the next candle, so readers of a longer timeframe share one between closes."""
        if self._frame is None and self.snapshots:
            self._frame = Frame(
                self.symbol, self.timeframe, tuple(self.candles), tuple(self.snapshots), tuple(self.swings)
            )
        return self._frame


class _SymbolBook:
    __slots__ = ("aggregators", "tracks")

    def __init__(self, symbol: str, book: FrameBook) -> None:
        self.tracks = {
            timeframe: _Track(symbol, timeframe, book.indicators, book.window, book.swing_width)
            for timeframe in book.timeframes
        }
        self.aggregators = [
            CandleAggregator(symbol, timeframe) for timeframe in book.timeframes if timeframe != book.base
        ]


class FrameBook:
    """Frames of every symbol for ``timeframes``, fed with closed candles of ``base``, each symbol in time order."""

    def __init__(
        self,
        base: Timeframe,
        timeframes: Iterable[Timeframe],
        *,
        window: int,
        indicators: IndicatorSettings | None = None,
        swing_width: int = 2,
    ) -> None:
        """``window``: candles (and snapshots) kept per (symbol, timeframe) — the longest lookback of a reader;
        ``swing_width``: candles on each side a swing point must top (or undercut)."""
        wanted = tuple(sorted(set(timeframes), key=lambda timeframe: timeframe.seconds))
        if not wanted:
            raise ValueError("a frame book needs at least one timeframe")
        if window < 1:
            raise ValueError(f"window must be at least 1 candle, got {window}")
        if swing_width < 1:
            raise ValueError(f"swing_width must be at least 1 candle, got {swing_width}")
        unbuildable = [tf.value for tf in wanted if tf.seconds < base.seconds or tf.seconds % base.seconds]
        if unbuildable:
            raise ValueError(
                f"timeframes {', '.join(unbuildable)} cannot be built from {base.value} candles: each must be a "
                f"multiple of {base.value}"
            )
        self.base = base
        self.timeframes = wanted
        self.window = window
        self.indicators = indicators or IndicatorSettings()
        self.swing_width = swing_width
        self._symbols: dict[str, _SymbolBook] = {}

    @classmethod
    def for_agents(
        cls, base: Timeframe, agents: AgentsSettings, indicators: IndicatorSettings | None = None
    ) -> FrameBook:
        """The frames the technical and regime agents read, with history enough for their longest lookback."""
        technical, regime = agents.technical, agents.regime
        window = max(technical.swing_lookback, regime.squeeze_lookback, regime.slope_lookback + 1)
        return cls(
            base,
            [*technical.timeframes, regime.timeframe],
            window=window,
            indicators=indicators,
            swing_width=technical.swing_width,
        )

    def update(self, candle: Candle) -> tuple[Timeframe, ...]:
        """Feed one closed base candle; returns the timeframes that closed a candle with it, shortest first.

        Raises ValueError for a candle of another timeframe, or one not after its symbol's previous candle.
        """
        if candle.timeframe != self.base:
            raise ValueError(
                f"frame book fed with {self.base.value} candles got a {candle.timeframe.value} {candle.symbol} candle"
            )
        book = self._symbols.get(candle.symbol)
        if book is None:
            book = self._symbols[candle.symbol] = _SymbolBook(candle.symbol, self)
        base_track = book.tracks.get(self.base)
        closed: list[Timeframe] = []
        if base_track is not None:
            base_track.add(candle)
            closed.append(self.base)
        for aggregator in book.aggregators:
            for built in aggregator.add(candle):
                book.tracks[built.timeframe].add(built)
                if built.timeframe not in closed:
                    closed.append(built.timeframe)
        return tuple(closed)

    def frame(self, symbol: str, timeframe: Timeframe) -> Frame | None:
        """The frame of (symbol, timeframe), or None before its first candle; a KeyError for an untracked one."""
        book = self._symbols.get(symbol)
        if timeframe not in self.timeframes:
            raise KeyError(f"timeframe {timeframe.value} is not tracked (tracked: {self._tracked()})")
        return book.tracks[timeframe].frame() if book is not None else None

    def frames(self, symbol: str, timeframes: Iterable[Timeframe]) -> tuple[Frame, ...]:
        """The frames of ``symbol`` that have a candle yet, in the order of ``timeframes``."""
        return tuple([frame for timeframe in timeframes if (frame := self.frame(symbol, timeframe)) is not None])

    def _tracked(self) -> str:
        return ", ".join(timeframe.value for timeframe in self.timeframes)
