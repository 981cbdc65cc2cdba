"""Walking every matching row oldest first, a page at a time: keyset pagination on ``(time, …, id)``.

An export of any size holds one page in memory, and no transaction stays open while the caller writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

PAGE_SIZE = 500
"""Rows per page when walking every match (exports): bounded memory, few round trips."""

PageKey = tuple[Any, ...]
"""The ordering key (a time, maybe more, then the id) of the last row of a page: the next page starts after it."""
PageReader = Callable[[PageKey | None, int], Awaitable[list[dict[str, Any]]]]
"""``read(after, size)``: at most ``size`` rows after ``after`` (None: from the first) in key order."""


async def keyset_pages(
    read: PageReader, *, limit: int | None, page_size: int, key: tuple[str, ...]
) -> AsyncIterator[list[dict[str, Any]]]:
    """The pages ``read`` gives, each after the last row (its ``key`` columns, the last one unique: the id) of
    the one before, until a short page or ``limit`` rows in all (None: no limit)."""
    remaining = limit
    after: PageKey | None = None
    while remaining is None or remaining > 0:
        size = page_size if remaining is None else min(page_size, remaining)
        page = await read(after, size)
        if not page:
            return
        after = tuple(page[-1][column] for column in key)  # before the caller sees the page: it may change it
        yield page
        if remaining is not None:
            remaining -= len(page)
        if len(page) < size:
            return
