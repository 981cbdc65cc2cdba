"""Where the sentiment agent's text comes from: feeds (RSS 2.0, Atom, JSON Feed) and JSONL replay files.

``build_sources`` turns the configured ``SentimentSettings.sources`` into sources; ``ItemPool`` reads them at
most once per poll interval for all symbols. ``FeedSource`` lives in ``triplegain.agents.sources.feeds`` and
is imported only when a feed is configured (it brings in aiohttp).
"""

from __future__ import annotations

from collections.abc import Sequence

from triplegain.agents.settings import FeedSourceSettings, SourceSettings
from triplegain.agents.sources.feed_parsing import ParsedFeed, SourceError, parse_feed
from triplegain.agents.sources.items import TextItem, item_id
from triplegain.agents.sources.pool import ItemPool, SourceStats, TextSource
from triplegain.agents.sources.replay import JsonlReplaySource, SourceFileError, load_jsonl_items


def build_sources(configured: Sequence[SourceSettings]) -> list[TextSource]:
    """One source per configured entry; replay files are read (and checked) now."""
    sources: list[TextSource] = []
    for settings in configured:
        if isinstance(settings, FeedSourceSettings):
            from triplegain.agents.sources.feeds import FeedSource

            sources.append(FeedSource(settings))
        else:
            sources.append(JsonlReplaySource(settings.path, name=settings.name))
    return sources


__all__ = [
    "ItemPool",
    "JsonlReplaySource",
    "ParsedFeed",
    "SourceError",
    "SourceFileError",
    "SourceStats",
    "TextItem",
    "TextSource",
    "build_sources",
    "item_id",
    "load_jsonl_items",
    "parse_feed",
]
