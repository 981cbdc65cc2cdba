"""Seeded, reproducible made-up candles that behave roughly like a crypto market.

Each symbol follows its own random path: a Markov chain switches between four regimes (calm, bull, bear,
turbulent), each with its own annual drift and volatility; log returns are normal (prices log-normal); the
high and low extend past the candle's body by a random wick that scales with the regime's volatility; volume
rises with volatility and with the size of the candle's move. Candles of all symbols share one time grid and
come out in time order (symbols in the order configured). Nothing is missing, so there are no gaps.

The same seed gives the same candles. Each symbol's random numbers come from the seed and the symbol's name, so
adding a symbol does not change the others' paths.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np

from triplegain.clock import Clock
from triplegain.market.candle import SECONDS_PER_YEAR, Candle, Rejection, Timeframe, candle_from_values, ms_from_utc
from triplegain.market.feeds import Sleep
from triplegain.market.feeds.monitor import FeedMonitor, FeedStats
from triplegain.market.feeds.pacing import Pacer
from triplegain.market.settings import SyntheticSettings

_BLOCK = 256  # candles generated per symbol at a time (vectorised); part of what a seed reproduces
_NOTIONAL_PER_CANDLE = 1_000_000.0  # quote-currency value traded in a calm candle, on average
_WICK_SCALE = 0.6  # wick length in units of the candle's return standard deviation
_VOLUME_NOISE = 0.25  # standard deviation of the volume's log-normal noise


@dataclass(frozen=True)
class Regime:
    name: str
    annual_drift: float
    annual_volatility: float


REGIMES = (
    Regime("calm", annual_drift=0.0, annual_volatility=0.35),
    Regime("bull", annual_drift=1.5, annual_volatility=0.55),
    Regime("bear", annual_drift=-1.5, annual_volatility=0.65),
    Regime("turbulent", annual_drift=0.0, annual_volatility=1.4),
)
MEAN_REGIME_CANDLES = 150
"""Candles a regime lasts on average before the chain moves on."""
_MOVE_WEIGHTS = (  # where the chain goes when it leaves a regime (rows and columns in REGIMES order)
    (0.0, 0.35, 0.35, 0.30),
    (0.50, 0.0, 0.20, 0.30),
    (0.50, 0.20, 0.0, 0.30),
    (0.40, 0.30, 0.30, 0.0),
)


def _cumulative_transitions() -> list[list[float]]:
    """Per regime, the cumulative probabilities of the next candle's regime."""
    leave = 1.0 / MEAN_REGIME_CANDLES
    rows = []
    for current, weights in enumerate(_MOVE_WEIGHTS):
        row = [leave * weight for weight in weights]
        row[current] = 1.0 - leave
        rows.append(list(itertools.accumulate(row)))
    return rows


_CUMULATIVE_TRANSITIONS = _cumulative_transitions()
_DRIFTS = np.array([regime.annual_drift for regime in REGIMES])
_VOLATILITIES = np.array([regime.annual_volatility for regime in REGIMES])


class _SymbolPath:
    """One symbol's random walk, produced a block of candles at a time."""

    def __init__(self, symbol: str, start_price: float, timeframe: Timeframe, seed: int) -> None:
        self._rng = np.random.default_rng([seed, zlib.crc32(symbol.encode())])
        self._price = start_price
        self._regime = 0
        self._years_per_candle = timeframe.seconds / SECONDS_PER_YEAR
        self._calm_volume = _NOTIONAL_PER_CANDLE / start_price

    def block(self) -> Iterator[tuple[float, float, float, float, float]]:
        """The next ``_BLOCK`` candles' (open, high, low, close, volume)."""
        rng = self._rng
        switch_draws = rng.random(_BLOCK).tolist()
        shocks = rng.standard_normal(_BLOCK)
        wicks = np.abs(rng.standard_normal((2, _BLOCK)))
        volume_noise = rng.standard_normal(_BLOCK)

        regimes = np.empty(_BLOCK, dtype=np.intp)
        state = self._regime
        for index, draw in enumerate(switch_draws):
            # min(): rounding can leave a row's last cumulative probability a hair below 1.
            state = min(bisect.bisect_right(_CUMULATIVE_TRANSITIONS[state], draw), len(REGIMES) - 1)
            regimes[index] = state
        self._regime = state

        dt = self._years_per_candle
        volatility = _VOLATILITIES[regimes]
        sigma = volatility * math.sqrt(dt)
        log_returns = (_DRIFTS[regimes] - 0.5 * volatility**2) * dt + sigma * shocks
        closes = self._price * np.exp(np.cumsum(log_returns))
        opens = np.concatenate(([self._price], closes[:-1]))
        highs = np.maximum(opens, closes) * np.exp(_WICK_SCALE * sigma * wicks[0])
        lows = np.minimum(opens, closes) * np.exp(-_WICK_SCALE * sigma * wicks[1])
        mean_one_noise = np.exp(_VOLUME_NOISE * volume_noise - 0.5 * _VOLUME_NOISE**2)
        volumes = self._calm_volume * (volatility / _VOLATILITIES[0]) * (1 + np.abs(shocks)) * mean_one_noise
        self._price = float(closes[-1])
        return zip(opens.tolist(), highs.tolist(), lows.tolist(), closes.tolist(), volumes.tolist(), strict=True)

    def values(self) -> Iterator[tuple[float, float, float, float, float]]:
        while True:
            yield from self.block()


def _generate(settings: SyntheticSettings) -> Generator[Candle | Rejection, None, None]:
    timeframe = settings.timeframe
    paths = [
        (symbol, _SymbolPath(symbol, price, timeframe, settings.seed).values())
        for symbol, price in settings.symbols.items()
    ]
    start_ms = ms_from_utc(settings.start)
    end_ms = ms_from_utc(settings.end) if settings.end is not None else None
    steps = range(settings.count) if settings.count is not None else itertools.count()
    for step in steps:
        open_ms = start_ms + step * timeframe.milliseconds
        if end_ms is not None and open_ms >= end_ms:
            return
        for symbol, values in paths:
            yield candle_from_values(symbol, timeframe, open_ms, *next(values), source="synthetic")


class SyntheticFeed:
    """The seeded candles of ``SyntheticSettings``, as fast as possible or paced."""

    def __init__(
        self, settings: SyntheticSettings, *, clock: Clock, sleep: Sleep = asyncio.sleep, keep_recent: int = 100
    ) -> None:
        self._candles = _generate(settings)
        self._monitor = FeedMonitor(feed="synthetic", keep=keep_recent)
        self._pacer = Pacer(settings.speed, clock, sleep)
        self._closed = False

    def __aiter__(self) -> SyntheticFeed:
        return self

    async def __anext__(self) -> Candle:
        while not self._closed:
            result = next(self._candles, None)
            if result is None:
                break
            if isinstance(result, Rejection):
                self._monitor.reject(result)
                continue
            if self._monitor.admit(result):
                await self._pacer.wait_for(result.open_time)
                self._monitor.count_emitted(result)
                return result
        await self.aclose()
        raise StopAsyncIteration

    def stats(self) -> FeedStats:
        return self._monitor.snapshot()

    async def aclose(self) -> None:
        self._closed = True
        self._candles.close()
