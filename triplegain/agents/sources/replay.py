"""Recorded items replayed from a JSONL file: one JSON object per line, read once, served by publication time.

A line holds ``title`` and ``published_at`` (ISO 8601 with a time zone) and may hold ``id``, ``source``,
``summary``, ``symbols`` and ``url``; a missing ``source`` is the configured one, a missing ``id`` a digest.
Blank lines are skipped. A line that is not such an object is a ``SourceFileError`` naming the file and line.
"""

from __future__ import annotations

import bisect
import json
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from triplegain.agents.sources.items import TextItem, item_id
from triplegain.errors import UserError

_NO_ID = "(none)"


class SourceFileError(UserError):
    """A replay file cannot be read, or one of its lines is not a valid item; the message names file and line."""


def load_jsonl_items(path: Path, default_source: str) -> list[TextItem]:
    """Every item of ``path``, oldest first."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceFileError(f"{path}: file not found") from None
    except OSError as error:
        raise SourceFileError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SourceFileError(f"{path}: not UTF-8 text") from None
    items = [
        _item_of_line(line, path, number, default_source)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    items.sort(key=lambda item: item.published_at)
    return items


def _item_of_line(line: str, path: Path, number: int, default_source: str) -> TextItem:
    where = f"{path} line {number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise SourceFileError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(data, dict):
        raise SourceFileError(f"{where}: a JSON object is expected, got {type(data).__name__}")
    data.setdefault("source", default_source)
    try:
        # An item without an id gets a digest of its validated fields; a placeholder stands in until then.
        item = TextItem.model_validate({"id": _NO_ID, **data})
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "(item)"
        raise SourceFileError(f"{where}: {field}: {problem['msg']}") from None
    if "id" not in data:
        item = item.model_copy(update={"id": item_id(item.source, item.title, item.published_at)})
    return item


class JsonlReplaySource:
    """Items of a JSONL file, each available once the clock reaches its ``published_at``."""

    def __init__(self, path: Path, *, name: str = "replay") -> None:
        """Reads and checks the whole file now, so a bad line stops the start rather than a later analysis."""
        self.name = name
        self._items = load_jsonl_items(path, name)
        self._times = [item.published_at for item in self._items]

    async def fetch(self, since: datetime, now: datetime) -> tuple[TextItem, ...]:
        """Items published after ``since`` and at or before ``now``."""
        start = bisect.bisect_right(self._times, since)
        end = bisect.bisect_right(self._times, now)
        return tuple(self._items[start:end])

    async def aclose(self) -> None:
        return None
