"""Technical indicators computed incrementally: one candle's values per ``update``, O(1) a candle, for an agent
that sees candles one at a time. ``update`` returns the new value, None during warm-up. ``IndicatorSet`` keeps
every indicator of one (symbol, timeframe) and returns an ``IndicatorSnapshot`` per candle.

The tests hold batch definitions over whole arrays (``tests/reference_indicators.py``); after warm-up the two
agree within a relative 1e-9 on random price series.

Warm-up, as the index of the first value when candles are counted from 0:

==========================  ==============================================================================
Sma(n), Bollinger(n)        n − 1
Ema(n)                      n − 1: the first value is the SMA of the first n values, then α = 2 / (n + 1)
Rsi(n), Atr(n)              n: both need n price changes; Wilder smoothing (α = 1 / n) seeded with a mean
Macd(f, s, g)               line s − 1; signal and histogram s + g − 2 (the signal is the EMA of the line)
Adx(n)                      +DI and −DI n; ADX 2n − 1 (Wilder smoothing of DX, seeded with the mean of n DX)
RealisedVolatility(n)       n: the sample standard deviation of the last n log returns
Vwap(n)                     n − 1; no value while the window's volume is zero
==========================  ==============================================================================

Recursive indicators (EMA, RSI, ATR, ADX, MACD) keep their last value. Windowed ones (SMA, Bollinger,
volatility, VWAP) keep a ring buffer and running sums, re-centred and recomputed exactly once per window length,
so rounding never accumulates over a long run (O(1) amortised).

Edge cases: RSI is 50 when prices did not move over the whole smoothing (no gains, no losses); +DI, −DI and DX
are 0 when the true range is 0.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime
from typing import NamedTuple

from triplegain.market.candle import SECONDS_PER_YEAR, Candle, Timeframe
from triplegain.market.settings import IndicatorSettings


def periods_per_year(timeframe: Timeframe) -> float:
    """Candles of ``timeframe`` in a year of continuous trading: multiply a variance by this to annualise it."""
    return SECONDS_PER_YEAR / timeframe.seconds


def _check_period(period: int, *, minimum: int = 1, name: str = "period") -> None:
    if period < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {period}")


def _check_macd_periods(fast: int, slow: int, signal: int) -> None:
    _check_period(fast, name="fast period")
    _check_period(signal, name="signal period")
    if fast >= slow:
        raise ValueError(f"the fast period ({fast}) must be less than the slow period ({slow})")


class _RollingWindow:
    """The last ``size`` values with their sum and sum of squares, in O(1) amortised per push.

    The sums are compensated (Neumaier), so adding and removing values of very different sizes loses nothing
    to rounding, and once per ``size`` pushes they are recomputed exactly. A ``centred`` window keeps them
    relative to a shift (its mean at the last recomputation), which keeps the variance accurate when it is
    small next to the mean; an uncentred one keeps plain sums, which suit a total (a shift would cancel there).
    """

    __slots__ = (
        "_centred",
        "_shift",
        "_since_exact",
        "_size",
        "_squares",
        "_squares_error",
        "_sum",
        "_sum_error",
        "_values",
    )

    def __init__(self, size: int, *, centred: bool) -> None:
        self._size = size
        self._centred = centred
        self._values: deque[float] = deque()
        self._shift = 0.0
        self._sum = self._sum_error = 0.0
        self._squares = self._squares_error = 0.0
        self._since_exact = 0

    @property
    def full(self) -> bool:
        return len(self._values) == self._size

    def push(self, value: float) -> None:
        # Four compensated additions (Neumaier): result = total + term, and the rounding error it made,
        # (total − result) + term when |total| ≥ |term| else (term − result) + total, added to the running error.
        # Written out rather than called: a window is pushed several times per candle and timeframe, and calls
        # returning tuples cost more than the arithmetic.
        values = self._values
        total, total_error = self._sum, self._sum_error
        squares, squares_error = self._squares, self._squares_error
        if len(values) == self._size:
            leaving = values.popleft() - self._shift
            term = -leaving
            result = total + term
            total_error += (total - result) + term if abs(total) >= abs(term) else (term - result) + total
            total = result
            term = -leaving * leaving
            result = squares + term
            squares_error += (squares - result) + term if abs(squares) >= abs(term) else (term - result) + squares
            squares = result
        values.append(value)
        term = value - self._shift
        result = total + term
        total_error += (total - result) + term if abs(total) >= abs(term) else (term - result) + total
        total = result
        term *= term
        result = squares + term
        squares_error += (squares - result) + term if abs(squares) >= abs(term) else (term - result) + squares
        squares = result
        self._sum, self._sum_error = total, total_error
        self._squares, self._squares_error = squares, squares_error
        self._since_exact += 1
        if self._since_exact >= self._size:
            self._recompute()

    def total(self) -> float:
        return self._shift * len(self._values) + (self._sum + self._sum_error)

    def mean(self) -> float:
        return self._shift + (self._sum + self._sum_error) / len(self._values)

    def variance(self, ddof: int = 0) -> float:
        count = len(self._values)
        total = self._sum + self._sum_error
        return max(0.0, (self._squares + self._squares_error - total * total / count) / (count - ddof))

    def _recompute(self) -> None:
        if self._centred:
            self._shift = math.fsum(self._values) / len(self._values)
        shifted = [value - self._shift for value in self._values]
        self._sum, self._sum_error = _exact_sum(shifted)
        self._squares, self._squares_error = _exact_sum([value * value for value in shifted])
        self._since_exact = 0


def _exact_sum(values: list[float]) -> tuple[float, float]:
    """The sum of ``values`` as a rounded total and the residual the rounding left out."""
    total = math.fsum(values)
    return total, math.fsum([*values, -total])


class _WilderAverage:
    """Wilder's smoothing: the mean of the first ``period`` values, then value = (value · (n − 1) + x) / n."""

    __slots__ = ("_count", "_period", "_seed_sum", "value")

    def __init__(self, period: int) -> None:
        self._period = period
        self._count = 0
        self._seed_sum = 0.0
        self.value: float | None = None

    def update(self, item: float) -> float | None:
        if self.value is not None:
            self.value = (self.value * (self._period - 1) + item) / self._period
        else:
            self._count += 1
            self._seed_sum += item
            if self._count == self._period:
                self.value = self._seed_sum / self._period
        return self.value


class _TrueRange:
    __slots__ = ("_previous_close",)

    def __init__(self) -> None:
        self._previous_close: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        previous, self._previous_close = self._previous_close, close
        if previous is None:
            return None
        return max(high - low, abs(high - previous), abs(low - previous))


class Sma:
    """Simple moving average of the last ``period`` values."""

    def __init__(self, period: int) -> None:
        _check_period(period)
        self._window = _RollingWindow(period, centred=True)
        self.value: float | None = None

    def update(self, value: float) -> float | None:
        self._window.push(value)
        if self._window.full:
            self.value = self._window.mean()
        return self.value


class Ema:
    """Exponential moving average, seeded with the SMA of the first ``period`` values."""

    def __init__(self, period: int) -> None:
        _check_period(period)
        self._period = period
        self._alpha = 2.0 / (period + 1)
        self._count = 0
        self._seed_sum = 0.0
        self.value: float | None = None

    def update(self, value: float) -> float | None:
        if self.value is not None:
            self.value += self._alpha * (value - self.value)
        else:
            self._count += 1
            self._seed_sum += value
            if self._count == self._period:
                self.value = self._seed_sum / self._period
        return self.value


class Rsi:
    """Relative strength index with Wilder smoothing."""

    def __init__(self, period: int = 14) -> None:
        _check_period(period)
        self._gains = _WilderAverage(period)
        self._losses = _WilderAverage(period)
        self._previous: float | None = None
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        previous, self._previous = self._previous, close
        if previous is None:
            return None
        change = close - previous
        gain = self._gains.update(change if change > 0 else 0.0)
        loss = self._losses.update(-change if change < 0 else 0.0)
        if gain is not None and loss is not None:
            moved = gain + loss
            self.value = 100.0 * (gain / moved) if moved > 0 else 50.0
        return self.value


class MacdValue(NamedTuple):
    line: float
    signal: float | None
    histogram: float | None


class Macd:
    """MACD line, signal line and histogram; ``update`` returns None until the line has a value."""

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        _check_macd_periods(fast, slow, signal)
        self._fast = Ema(fast)
        self._slow = Ema(slow)
        self._signal = Ema(signal)
        self.value: MacdValue | None = None

    def update(self, close: float) -> MacdValue | None:
        fast = self._fast.update(close)
        slow = self._slow.update(close)
        if fast is None or slow is None:
            return None
        line = fast - slow
        signal = self._signal.update(line)
        self.value = MacdValue(line, signal, line - signal if signal is not None else None)
        return self.value


class Atr:
    """Average true range with Wilder smoothing."""

    def __init__(self, period: int = 14) -> None:
        _check_period(period)
        self._range = _TrueRange()
        self._average = _WilderAverage(period)
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        true_range = self._range.update(high, low, close)
        if true_range is not None:
            self.value = self._average.update(true_range)
        return self.value


class BollingerValue(NamedTuple):
    mid: float
    upper: float
    lower: float
    bandwidth: float


class Bollinger:
    """Bollinger bands: SMA ± ``width`` population standard deviations over ``period`` closes."""

    def __init__(self, period: int = 20, width: float = 2.0) -> None:
        _check_period(period)
        self._window = _RollingWindow(period, centred=True)
        self._width = width
        self.value: BollingerValue | None = None

    def update(self, close: float) -> BollingerValue | None:
        self._window.push(close)
        if self._window.full:
            mid = self._window.mean()
            offset = self._width * math.sqrt(self._window.variance())
            upper, lower = mid + offset, mid - offset
            self.value = BollingerValue(mid, upper, lower, (upper - lower) / mid)
        return self.value


class AdxValue(NamedTuple):
    plus_di: float
    minus_di: float
    adx: float | None


class Adx:
    """Average directional index with +DI and −DI; ``update`` returns None until ±DI have values."""

    def __init__(self, period: int = 14) -> None:
        _check_period(period)
        self._range = _TrueRange()
        self._average_range = _WilderAverage(period)
        self._plus_dm = _WilderAverage(period)
        self._minus_dm = _WilderAverage(period)
        self._adx = _WilderAverage(period)
        self._previous: tuple[float, float] | None = None
        self.value: AdxValue | None = None

    def update(self, high: float, low: float, close: float) -> AdxValue | None:
        true_range = self._range.update(high, low, close)
        previous, self._previous = self._previous, (high, low)
        if previous is None or true_range is None:
            return None
        up, down = high - previous[0], previous[1] - low
        average_range = self._average_range.update(true_range)
        plus_dm = self._plus_dm.update(up if up > down and up > 0 else 0.0)
        minus_dm = self._minus_dm.update(down if down > up and down > 0 else 0.0)
        if average_range is None or plus_dm is None or minus_dm is None:
            return None
        plus_di = 100.0 * (plus_dm / average_range) if average_range > 0 else 0.0
        minus_di = 100.0 * (minus_dm / average_range) if average_range > 0 else 0.0
        di_sum = plus_di + minus_di
        dx = 100.0 * (abs(plus_di - minus_di) / di_sum) if di_sum > 0 else 0.0
        self.value = AdxValue(plus_di, minus_di, self._adx.update(dx))
        return self.value


class RealisedVolatility:
    """Sample standard deviation of the last ``window`` log returns, × √periods_per_year if given."""

    def __init__(self, window: int = 20, periods_per_year: float | None = None) -> None:
        _check_period(window, minimum=2, name="window")
        self._window = _RollingWindow(window, centred=True)
        self._scale = math.sqrt(periods_per_year) if periods_per_year is not None else 1.0
        self._previous_log: float | None = None
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        log_close = math.log(close)
        previous, self._previous_log = self._previous_log, log_close
        if previous is None:
            return None
        self._window.push(log_close - previous)
        if self._window.full:
            self.value = math.sqrt(self._window.variance(ddof=1)) * self._scale
        return self.value


class Vwap:
    """Volume-weighted average of the typical price over the last ``window`` candles."""

    def __init__(self, window: int = 20) -> None:
        _check_period(window, name="window")
        self._weighted = _RollingWindow(window, centred=False)
        self._volumes = _RollingWindow(window, centred=False)
        self._trading: deque[bool] = deque(maxlen=window)
        self._trading_count = 0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float, volume: float) -> float | None:
        if len(self._trading) == self._trading.maxlen and self._trading[0]:
            self._trading_count -= 1
        self._trading.append(volume > 0)
        self._trading_count += volume > 0
        self._weighted.push((high + low + close) / 3.0 * volume)
        self._volumes.push(volume)
        if self._volumes.full:
            traded = self._volumes.total() if self._trading_count else 0.0
            self.value = self._weighted.total() / traded if traded > 0 else None
        return self.value


# --------------------------------------------------------------------------------------- a set per market


class IndicatorSnapshot(NamedTuple):
    """Every indicator of one (symbol, timeframe) after one candle; a field is None during its warm-up.

    A named tuple rather than a pydantic model: one is built per candle and timeframe from numbers computed here
    out of validated candles, so there is nothing to validate, and a tuple costs a sixth of ``model_construct``.
    """

    symbol: str
    timeframe: Timeframe
    open_time: datetime
    close: float
    candles: int
    sma: float | None
    ema_fast: float | None
    ema_slow: float | None
    rsi: float | None
    macd: float | None
    macd_signal: float | None
    macd_histogram: float | None
    atr: float | None
    bollinger_mid: float | None
    bollinger_upper: float | None
    bollinger_lower: float | None
    bollinger_bandwidth: float | None
    adx: float | None
    plus_di: float | None
    minus_di: float | None
    volatility: float | None
    """Realised volatility of log returns, annualised for the timeframe."""
    vwap: float | None

    @property
    def warmed_up(self) -> bool:
        """True once every indicator has a value (a VWAP can go back to None after a window without trades)."""
        return all(getattr(self, name) is not None for name in _INDICATOR_FIELDS)


_INDICATOR_FIELDS = tuple(
    name for name in IndicatorSnapshot._fields if name not in {"symbol", "timeframe", "open_time", "close", "candles"}
)


class IndicatorSet:
    """All indicators of one (symbol, timeframe), updated together from each closed candle in time order."""

    def __init__(self, symbol: str, timeframe: Timeframe, settings: IndicatorSettings | None = None) -> None:
        periods = settings or IndicatorSettings()
        self.symbol = symbol
        self.timeframe = timeframe
        # With equal periods (the default) the SMA is the Bollinger mid, from an identical window: keep one.
        self._sma = Sma(periods.sma_period) if periods.sma_period != periods.bollinger_period else None
        self._ema_fast = Ema(periods.ema_fast_period)
        self._ema_slow = Ema(periods.ema_slow_period)
        self._rsi = Rsi(periods.rsi_period)
        self._macd = Macd(periods.macd_fast_period, periods.macd_slow_period, periods.macd_signal_period)
        self._atr = Atr(periods.atr_period)
        self._bollinger = Bollinger(periods.bollinger_period, periods.bollinger_width)
        self._adx = Adx(periods.adx_period)
        self._volatility = RealisedVolatility(periods.volatility_window, periods_per_year(timeframe))
        self._vwap = Vwap(periods.vwap_window)
        self._candles = 0
        self._last_open: datetime | None = None
        self.snapshot: IndicatorSnapshot | None = None

    def update(self, candle: Candle) -> IndicatorSnapshot:
        """Feed one candle; raises ValueError for another market's candle or one not after the previous."""
        if candle.symbol != self.symbol or candle.timeframe != self.timeframe:
            raise ValueError(
                f"indicator set of {self.symbol} {self.timeframe.value} got a {candle.symbol} "
                f"{candle.timeframe.value} candle"
            )
        if self._last_open is not None and candle.open_time <= self._last_open:
            raise ValueError(
                f"{self.symbol} {self.timeframe.value}: candle {candle.open_time.isoformat()} is not after "
                f"{self._last_open.isoformat()}"
            )
        self._last_open = candle.open_time
        self._candles += 1
        high, low, close = candle.high, candle.low, candle.close
        macd = self._macd.update(close)
        bands = self._bollinger.update(close)
        directional = self._adx.update(high, low, close)
        mid = bands.mid if bands else None
        self.snapshot = IndicatorSnapshot(
            symbol=self.symbol,
            timeframe=self.timeframe,
            open_time=candle.open_time,
            close=close,
            candles=self._candles,
            sma=self._sma.update(close) if self._sma is not None else mid,
            ema_fast=self._ema_fast.update(close),
            ema_slow=self._ema_slow.update(close),
            rsi=self._rsi.update(close),
            macd=macd.line if macd else None,
            macd_signal=macd.signal if macd else None,
            macd_histogram=macd.histogram if macd else None,
            atr=self._atr.update(high, low, close),
            bollinger_mid=mid,
            bollinger_upper=bands.upper if bands else None,
            bollinger_lower=bands.lower if bands else None,
            bollinger_bandwidth=bands.bandwidth if bands else None,
            adx=directional.adx if directional else None,
            plus_di=directional.plus_di if directional else None,
            minus_di=directional.minus_di if directional else None,
            volatility=self._volatility.update(close),
            vwap=self._vwap.update(high, low, close, candle.volume),
        )
        return self.snapshot
