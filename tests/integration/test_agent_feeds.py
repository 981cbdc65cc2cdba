"""The sentiment feed reader against a local aiohttp server: RSS 2.0, Atom, JSON Feed, and failures."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from triplegain.agents import (
    FeedSourceSettings,
    ItemPool,
    SentimentAgent,
    SentimentContext,
    SentimentSettings,
    SourceError,
    build_sources,
)
from triplegain.agents.sources import parse_feed
from triplegain.agents.sources.feeds import FeedSource
from triplegain.clock import FakeClock
from triplegain.model import Bias

NOW = datetime(2024, 1, 2, 12, tzinfo=UTC)

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>Crypto wire</title>
    <item>
      <title>Bitcoin surges past $45,000 as ETF approval nears</title>
      <link>https://news.example/btc-surges</link>
      <guid>btc-surges-1</guid>
      <pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate>
      <description>&lt;p&gt;Traders &lt;b&gt;cheer&lt;/b&gt; the news &amp;amp; more.&lt;/p&gt;</description>
      <category>BTC</category>
      <category>Markets</category>
    </item>
    <item>
      <title>XRP slides after court delay</title>
      <link>https://news.example/xrp-slides</link>
      <dc:date>2024-01-02T09:30:00Z</dc:date>
    </item>
    <item>
      <title>An entry without a date</title>
    </item>
    <item>
      <title>Published tomorrow</title>
      <pubDate>Wed, 03 Jan 2024 10:00:00 GMT</pubDate>
    </item>
  </channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Chain news</title>
  <entry>
    <title>Ethereum upgrade boosts adoption</title>
    <id>urn:uuid:eth-upgrade</id>
    <updated>2024-01-02T08:00:00+01:00</updated>
    <link rel="alternate" href="https://chain.example/eth"/>
    <summary>Developers ship the upgrade.</summary>
    <category term="ETH"/>
  </entry>
</feed>
"""

JSON_FEED = json.dumps(
    {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Social",
        "items": [
            {"id": 42, "content_text": "not a crash, BTC is fine", "date_published": "2024-01-02T11:00:00Z"},
            {"id": "x", "title": "Ripple wins in court", "date_published": "2024-01-02T11:30:00Z", "tags": ["XRP"]},
            "not an object",
        ],
    }
).encode()


def free_port_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def responder(body: bytes, content_type: str, status: int = 200) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, status=status)

    return handle


@pytest.fixture
async def feed_server() -> AsyncIterator[str]:
    """A local server: /rss, /atom, /feed.json, /broken (500), /big (too large), /html (not a feed)."""
    app = web.Application()
    app.router.add_get("/rss", responder(RSS, "application/rss+xml"))
    app.router.add_get("/atom", responder(ATOM, "application/atom+xml"))
    app.router.add_get("/feed.json", responder(JSON_FEED, "application/feed+json"))
    app.router.add_get("/broken", responder(b"oops", "text/plain", status=500))
    app.router.add_get("/big", responder(b"<rss>" + b" " * 5000 + b"</rss>", "application/rss+xml"))
    app.router.add_get("/html", responder(b"<html><body>hello</body></html>", "text/html"))
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    sock = free_port_socket()
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


def source(base: str, path: str, **overrides: object) -> FeedSource:
    return FeedSource(FeedSourceSettings.model_validate({"name": path.strip("/"), "url": f"{base}{path}", **overrides}))


async def fetch(feed: FeedSource) -> list[tuple[str, str, tuple[str, ...]]]:
    try:
        items = await feed.fetch(NOW - timedelta(days=1), NOW)
    finally:
        await feed.aclose()
    return [(item.id, item.title, item.symbols) for item in items]


async def test_rss_items_with_categories_and_either_date(feed_server: str) -> None:
    feed = source(feed_server, "/rss")
    items = await feed.fetch(NOW - timedelta(days=1), NOW)
    await feed.aclose()
    assert [(item.id, item.title, item.symbols) for item in items] == [
        ("btc-surges-1", "Bitcoin surges past $45,000 as ETF approval nears", ("BTC", "Markets")),
        ("https://news.example/xrp-slides", "XRP slides after court delay", ()),
    ]
    assert items[0].summary == "Traders cheer the news & more."
    assert items[0].published_at == datetime(2024, 1, 2, 10, tzinfo=UTC)
    assert items[0].source == "rss"
    assert feed.skipped == 1  # the entry without a date; the future one is simply not yet due


async def test_atom_entries(feed_server: str) -> None:
    feed = source(feed_server, "/atom")
    [entry] = await feed.fetch(NOW - timedelta(days=1), NOW)
    await feed.aclose()
    assert (entry.id, entry.url, entry.symbols, entry.summary) == (
        "urn:uuid:eth-upgrade",
        "https://chain.example/eth",
        ("ETH",),
        "Developers ship the upgrade.",
    )
    assert entry.published_at == datetime(2024, 1, 2, 7, tzinfo=UTC)


async def test_json_feed_items(feed_server: str) -> None:
    assert await fetch(source(feed_server, "/feed.json")) == [
        ("42", "not a crash, BTC is fine", ()),
        ("x", "Ripple wins in court", ("XRP",)),
    ]


@pytest.mark.parametrize(
    ("path", "overrides", "message"),
    [
        ("/broken", {}, r"broken: HTTP 500 from http://127\.0\.0\.1:\d+/broken"),
        ("/big", {"max_bytes": 1024}, r"big: http://127\.0\.0\.1:\d+/big is larger than 1024 bytes"),
        ("/html", {}, r"html: <html> is not a feed; expected RSS 2\.0, Atom or JSON Feed"),
        ("/missing", {}, r"missing: HTTP 404"),
    ],
)
async def test_failures_are_source_errors_naming_the_source(
    feed_server: str, path: str, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        await fetch(source(feed_server, path, **overrides))


async def test_an_unreachable_feed_is_a_source_error() -> None:
    sock = free_port_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    with pytest.raises(SourceError, match=r"feed: cannot fetch http://127\.0\.0\.1:\d+/feed"):
        await fetch(source(url, "/feed"))


async def test_the_sentiment_agent_reads_configured_feeds(feed_server: str) -> None:
    settings = SentimentSettings(
        sources=[
            FeedSourceSettings(name="wire", url=f"{feed_server}/rss"),
            FeedSourceSettings(name="social", url=f"{feed_server}/feed.json"),
            FeedSourceSettings(name="down", url=f"{feed_server}/broken"),
        ]
    )
    pool = ItemPool.from_settings(settings, build_sources(settings.sources))
    agent = SentimentAgent(settings, clock=FakeClock(NOW), pool=pool)
    try:
        btc = await agent.analyze(SentimentContext("BTC/USDT"))
        xrp = await agent.analyze(SentimentContext("XRP/USDT"))
    finally:
        await pool.aclose()
    assert btc.body.bias is Bias.LONG
    assert {driver.source for driver in btc.body.drivers} == {"wire", "social"}
    assert {driver.title for driver in xrp.body.drivers} == {"XRP slides after court delay", "Ripple wins in court"}
    assert [(stats.name, stats.failures) for stats in pool.stats()] == [("wire", 0), ("social", 0), ("down", 1)]


def test_a_feed_that_is_not_xml_or_json_names_the_source() -> None:
    with pytest.raises(SourceError, match="wire: not a feed document"):
        parse_feed(b"<rss><channel>", "wire")
    with pytest.raises(SourceError, match="wire: a JSON Feed is an object with an items list"):
        parse_feed(b'{"title": "no items"}', "wire")


def test_entity_expansion_is_refused() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>
<rss><channel><item><title>&h;</title></item></channel></rss>"""
    with pytest.raises(SourceError, match="not a feed document"):
        parse_feed(bomb, "wire")
