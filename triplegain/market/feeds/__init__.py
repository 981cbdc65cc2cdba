"""Candle feeds: one interface over live exchange candles, file replay and seeded synthetic candles.

Every feed is an async iterator of validated, closed candles in time order (``async for candle in feed``), with
``stats()`` (emitted, rejected by reason, gaps) and ``aclose()``. Feeds wait only through an injected ``Sleep``,
so tests and replays never wait in real time.

Modules: ``replay`` (CSV files), ``synthetic`` (seeded generator), ``ccxt_feed`` (live, imports ccxt, which
takes about a second: import it only where it is used), ``monitor`` (the shared counters and order check),
``pacing`` (replay speed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from triplegain.errors import TriplegainError
from triplegain.market.candle import Candle
from triplegain.market.feeds.monitor import FeedStats

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given seconds; ``asyncio.sleep`` in production, a clock-advancing fake in tests."""


class MarketDataError(TriplegainError):
    """A live feed's exchange did not deliver candles: retries ran out, or it answered with a non-transient error.

    The feed stays usable: iterating again resumes polling. Defined here, not with the ccxt feed, so that callers
    can catch it without importing ccxt.
    """


@runtime_checkable
class Feed(Protocol):
    """A source of candles; iterating ends when the source is exhausted or the feed is closed."""

    def __aiter__(self) -> Feed: ...

    async def __anext__(self) -> Candle: ...

    def stats(self) -> FeedStats:
        """A snapshot of the feed's counters."""
        ...

    async def aclose(self) -> None:
        """Release files or connections; afterwards iteration ends. Safe to call more than once."""
        ...


__all__ = ["Feed", "FeedStats", "MarketDataError", "Sleep"]
