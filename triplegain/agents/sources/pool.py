"""``ItemPool``: the recent items of every source, read at most once per poll interval and shared by all symbols.

A source that fails is logged and counted, and the items it gave before are kept until they age out of the
lookback window: one bad fetch does not blank the sentiment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from triplegain.agents.settings import SentimentSettings
from triplegain.agents.sources.feed_parsing import SourceError
from triplegain.agents.sources.items import TextItem

_log = structlog.get_logger("triplegain.agents.sources")


class TextSource(Protocol):
    """Where items come from: a feed, a replay file."""

    @property
    def name(self) -> str: ...

    async def fetch(self, since: datetime, now: datetime) -> tuple[TextItem, ...]:
        """Items published after ``since`` and at or before ``now``; ``SourceError`` when it cannot say."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceStats:
    name: str
    polls: int
    failures: int
    items: int
    """Items fetched over all polls (repeats included)."""
    last_error: str | None


class _Tally:
    __slots__ = ("failures", "items", "last_error", "polls")

    def __init__(self) -> None:
        self.polls = self.failures = self.items = 0
        self.last_error: str | None = None


class ItemPool:
    """Items of ``sources`` within ``lookback`` of now, deduplicated by (source, id)."""

    def __init__(self, sources: Sequence[TextSource], *, poll_interval: timedelta, lookback: timedelta) -> None:
        self._sources = tuple(sources)
        self._poll_interval = poll_interval
        self._lookback = lookback
        self._items: dict[tuple[str, str], TextItem] = {}
        self._polled_at: datetime | None = None
        self._tallies = {source.name: _Tally() for source in self._sources}
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: SentimentSettings, sources: Sequence[TextSource]) -> ItemPool:
        return cls(
            sources,
            poll_interval=timedelta(seconds=settings.poll_interval_seconds),
            lookback=timedelta(hours=settings.lookback_hours),
        )

    async def items(self, now: datetime) -> tuple[TextItem, ...]:
        """The items published in (now − lookback, now], polling the sources first when the interval has passed."""
        async with self._lock:
            if self._polled_at is None or now - self._polled_at >= self._poll_interval:
                await self._poll(now)
        oldest = now - self._lookback
        return tuple(item for item in self._items.values() if oldest < item.published_at <= now)

    def stats(self) -> list[SourceStats]:
        return [
            SourceStats(name, tally.polls, tally.failures, tally.items, tally.last_error)
            for name, tally in self._tallies.items()
        ]

    async def aclose(self) -> None:
        for source in self._sources:
            await source.aclose()

    async def _poll(self, now: datetime) -> None:
        since = now - self._lookback
        results = await asyncio.gather(*(source.fetch(since, now) for source in self._sources), return_exceptions=True)
        for source, result in zip(self._sources, results, strict=True):
            tally = self._tallies[source.name]
            tally.polls += 1
            if isinstance(result, SourceError):
                tally.failures += 1
                tally.last_error = str(result)
                _log.warning("sentiment source failed", source=source.name, error=str(result))
                continue
            if isinstance(result, BaseException):
                raise result
            tally.items += len(result)
            for item in result:
                self._items[(item.source, item.id)] = item
        self._items = {key: item for key, item in self._items.items() if item.published_at > since}
        self._polled_at = now
