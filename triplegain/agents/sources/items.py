"""``TextItem``: one headline or post, as every source hands it over. Its text is untrusted."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

TITLE_MAX_CHARS = 500
SUMMARY_MAX_CHARS = 2000
_WHITESPACE = re.compile(r"\s+")


def item_id(source: str, title: str, published_at: datetime) -> str:
    """A stable id for an item that came without one: a digest of its source, time and title."""
    digest = hashlib.sha256(f"{source}\n{published_at.isoformat()}\n{title}".encode()).hexdigest()
    return f"sha256:{digest[:32]}"


class TextItem(BaseModel):
    """A headline or social post. Text is whitespace-collapsed and cut to a bounded length."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=500, description="unique within its source (guid, entry id or digest)")
    source: str = Field(min_length=1, max_length=200, description="where it came from")
    title: str = Field(min_length=1, description="the headline or the post's text")
    summary: str = Field(default="", description="a longer description, when the source gives one")
    published_at: AwareDatetime = Field(description="when it was published")
    symbols: tuple[str, ...] = Field(default=(), description="asset or symbol tags, e.g. BTC, XRP/USDT, Bitcoin")
    url: str | None = Field(default=None, description="link to the full text")

    @field_validator("title", "summary", mode="before")
    @classmethod
    def _collapse(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, str):
            return value
        limit = TITLE_MAX_CHARS if info.field_name == "title" else SUMMARY_MAX_CHARS
        return _WHITESPACE.sub(" ", value).strip()[:limit]

    @field_validator("symbols", mode="before")
    @classmethod
    def _clean_tags(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(tag.strip() for tag in value if isinstance(tag, str) and tag.strip())
        return value
