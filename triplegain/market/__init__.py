"""Market data: the candle model, candle feeds, and technical indicators.

- ``candle``: ``Candle`` (frozen, validated), ``Timeframe`` and ``parse_timeframe``, ``candle_from_values``
  (the cheap check used by feeds: a candle or a ``Rejection``), ``CandleRejects`` (counts by reason).
- ``feeds``: the ``Feed`` interface (``async for candle in feed``, ``stats()``, ``aclose()``) and three feeds:
  ``ReplayFeed`` (CSV files), ``SyntheticFeed`` (seeded generator) and ``CcxtFeed`` (live, in
  ``triplegain.market.feeds.ccxt_feed``; not imported here because importing ccxt takes about a second).
- ``indicators``: incremental O(1) classes, and ``IndicatorSet`` which keeps every indicator of one (symbol,
  timeframe) and returns an ``IndicatorSnapshot`` per candle.
- ``settings``: the settings sections of the feeds and indicators.
"""


from triplegain.market.candle import (
    Candle,
    CandleRejects,
    Rejection,
    RejectReason,
    Timeframe,
    TimeframeError,
    candle_from_values,
    parse_timeframe,
)
from triplegain.market.feeds import Feed, Sleep
from triplegain.market.feeds.monitor import FeedStats, Gap
from triplegain.market.feeds.replay import CandleFile, ReplayFeed, ReplayFileError
from triplegain.market.feeds.synthetic import SyntheticFeed
from triplegain.market.indicators import IndicatorSet, IndicatorSnapshot
from triplegain.market.settings import (
    CcxtFeedSettings,
    IndicatorSettings,
    ReplayFile,
    ReplaySettings,
    SyntheticSettings,
)

__all__ = [
    "Candle",
    "CandleFile",
    "CandleRejects",
    "CcxtFeedSettings",
    "Feed",
    "FeedStats",
    "Gap",
    "IndicatorSet",
    "IndicatorSettings",
    "IndicatorSnapshot",
    "RejectReason",
    "Rejection",
    "ReplayFeed",
    "ReplayFile",
    "ReplayFileError",
    "ReplaySettings",
    "Sleep",
    "SyntheticFeed",
    "SyntheticSettings",
    "Timeframe",
    "TimeframeError",
    "candle_from_values",
    "parse_timeframe",
]

