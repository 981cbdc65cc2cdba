"""``FeedSource``: a news feed fetched over HTTP with aiohttp (imported only by whoever configures a feed)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import structlog

from triplegain.agents.settings import FeedSourceSettings
from triplegain.agents.sources.feed_parsing import SourceError, parse_feed
from triplegain.agents.sources.items import TextItem

_log = structlog.get_logger("triplegain.agents.sources")
_ACCEPT = "application/rss+xml, application/atom+xml, application/feed+json, application/json, application/xml;q=0.9"


class FeedSource:
    """One feed URL; each ``fetch`` downloads and parses the whole document (at most ``max_bytes``)."""

    def __init__(self, settings: FeedSourceSettings) -> None:
        self.name = settings.name
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self.skipped = 0
        """Entries left out so far (no title, no date, invalid)."""

    async def fetch(self, since: datetime, now: datetime) -> tuple[TextItem, ...]:
        """The feed's items published after ``since`` and at or before ``now``; ``SourceError`` on any failure."""
        document = await self._download()
        parsed = parse_feed(document, self.name)
        if parsed.skipped:
            self.skipped += parsed.skipped
            _log.warning("feed entries skipped", source=self.name, skipped=parsed.skipped)
        return tuple(item for item in parsed.items if since < item.published_at <= now)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _download(self) -> bytes:
        settings = self._settings
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"Accept": _ACCEPT})
        try:
            async with asyncio.timeout(settings.timeout_seconds), self._session.get(settings.url) as response:
                if response.status != 200:
                    raise SourceError(f"{self.name}: HTTP {response.status} from {settings.url}")
                if (response.content_length or 0) > settings.max_bytes:
                    raise self._too_large()
                document = bytearray()
                while len(document) <= settings.max_bytes:
                    chunk = await response.content.read(settings.max_bytes + 1 - len(document))
                    if not chunk:
                        return bytes(document)
                    document.extend(chunk)
                raise self._too_large()
        except TimeoutError:
            raise SourceError(
                f"{self.name}: no complete answer from {settings.url} within {settings.timeout_seconds:g} s"
            ) from None
        except aiohttp.ClientError as error:
            raise SourceError(f"{self.name}: cannot fetch {settings.url}: {error}") from None

    def _too_large(self) -> SourceError:
        return SourceError(f"{self.name}: {self._settings.url} is larger than {self._settings.max_bytes} bytes")
