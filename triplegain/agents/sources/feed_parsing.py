"""Feed documents to items: RSS 2.0 and Atom through the stdlib ``xml.etree``, and JSON Feed 1.x.

Everything in a feed is untrusted. The XML parser (expat) refuses entity-expansion bombs and never fetches
external entities; the caller bounds the document's size. HTML in descriptions is reduced to its text. An entry
without a title (JSON Feed: without any text) or without a readable date is skipped and counted, not guessed
at; a date without a time zone is taken as UTC.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import ValidationError

from triplegain.agents.sources.items import TextItem, item_id
from triplegain.errors import TriplegainError

ATOM = "{http://www.w3.org/2005/Atom}"
DUBLIN_CORE = "{http://purl.org/dc/elements/1.1/}"
_TAG = re.compile(r"<[^>]*>")


class SourceError(TriplegainError):
    """A source could not be read this time (network, HTTP status, size, format); the message names it."""


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    items: tuple[TextItem, ...]
    skipped: int
    """Entries left out: no title, no readable date, or a field that does not validate."""


@dataclass(frozen=True, slots=True)
class _Entry:
    title: str | None
    summary: str | None
    published: datetime | None
    guid: str | None
    url: str | None
    tags: tuple[str, ...]


def parse_feed(document: bytes, source: str) -> ParsedFeed:
    """The items of an RSS 2.0, Atom or JSON Feed document, told apart by its content."""
    head = document.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        return _items(_json_feed_entries(head, source), source)
    try:
        root = ET.fromstring(document)
    except ET.ParseError as error:
        raise SourceError(f"{source}: not a feed document: {error}") from None
    if root.tag == "rss":
        return _items(_rss_entries(root), source)
    if root.tag == f"{ATOM}feed":
        return _items(_atom_entries(root), source)
    raise SourceError(f"{source}: <{root.tag}> is not a feed; expected RSS 2.0, Atom or JSON Feed")


def _items(entries: Iterable[_Entry], source: str) -> ParsedFeed:
    items: list[TextItem] = []
    skipped = 0
    for entry in entries:
        item = _item(entry, source)
        if item is None:
            skipped += 1
        else:
            items.append(item)
    return ParsedFeed(tuple(items), skipped)


def _item(entry: _Entry, source: str) -> TextItem | None:
    title = _plain_text(entry.title)
    if not title or entry.published is None:
        return None
    try:
        return TextItem(
            id=entry.guid or entry.url or item_id(source, title, entry.published),
            source=source,
            title=title,
            summary=_plain_text(entry.summary),
            published_at=entry.published,
            symbols=entry.tags,
            url=entry.url,
        )
    except ValidationError:
        return None


def _plain_text(text: str | None) -> str:
    """Text with HTML tags removed and entities decoded."""
    if not text:
        return ""
    return html.unescape(_TAG.sub(" ", text)).strip()


def _rss_entries(root: ET.Element) -> Iterable[_Entry]:
    channel = root.find("channel")
    for element in channel.findall("item") if channel is not None else []:
        published = _rfc822(element.findtext("pubDate")) or _iso(element.findtext(f"{DUBLIN_CORE}date"))
        yield _Entry(
            title=element.findtext("title"),
            summary=element.findtext("description"),
            published=published,
            guid=_stripped(element.findtext("guid")),
            url=_stripped(element.findtext("link")),
            tags=tuple(tag for node in element.findall("category") if (tag := _stripped(node.text))),
        )


def _atom_entries(root: ET.Element) -> Iterable[_Entry]:
    for element in root.findall(f"{ATOM}entry"):
        link = next(
            (
                node.get("href")
                for node in element.findall(f"{ATOM}link")
                if node.get("rel", "alternate") == "alternate"
            ),
            None,
        )
        yield _Entry(
            title=element.findtext(f"{ATOM}title"),
            summary=element.findtext(f"{ATOM}summary") or element.findtext(f"{ATOM}content"),
            published=_iso(element.findtext(f"{ATOM}published")) or _iso(element.findtext(f"{ATOM}updated")),
            guid=_stripped(element.findtext(f"{ATOM}id")),
            url=_stripped(link),
            tags=tuple(tag for node in element.findall(f"{ATOM}category") if (tag := _stripped(node.get("term")))),
        )


def _json_feed_entries(document: bytes, source: str) -> Iterable[_Entry]:
    try:
        feed = json.loads(document)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SourceError(f"{source}: not a JSON document: {error}") from None
    entries = feed.get("items") if isinstance(feed, dict) else None
    if not isinstance(entries, list):
        raise SourceError(f"{source}: a JSON Feed is an object with an items list")
    for entry in entries:
        if isinstance(entry, dict):
            yield _json_entry(entry)
        else:
            yield _Entry(None, None, None, None, None, ())


def _json_entry(entry: dict[str, Any]) -> _Entry:
    text = _string(entry.get("content_text")) or _plain_text(_string(entry.get("content_html")))
    summary = _string(entry.get("summary"))
    title = _string(entry.get("title")) or summary or text
    raw_id = entry.get("id")
    return _Entry(
        title=title,
        summary=summary if summary and summary != title else text if text != title else None,
        published=_iso(_string(entry.get("date_published")) or _string(entry.get("date_modified"))),
        guid=str(raw_id) if isinstance(raw_id, str | int) and str(raw_id) else None,
        url=_string(entry.get("url")),
        tags=_json_tags(entry.get("tags")),
    )


def _json_tags(tags: object) -> tuple[str, ...]:
    if not isinstance(tags, list):
        return ()
    return tuple(tag.strip() for tag in tags if isinstance(tag, str) and tag.strip())


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _stripped(text: str | None) -> str | None:
    return text.strip() or None if text is not None else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _rfc822(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _utc(parsedate_to_datetime(text.strip()))
    except (TypeError, ValueError, IndexError):
        return None


def _iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        return None
