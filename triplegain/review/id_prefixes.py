"""Finding a decision or an LLM call by the first hex digits of its id, as the lists print them."""

from __future__ import annotations

import re
from uuid import UUID

from triplegain.store.database import Database

ID_PREFIX_MIN = 8
"""Hex digits an id prefix needs: 8 digits make a clash between two ids of one database very unlikely."""

_ID_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]*")
_MATCH_DECISION_PREFIX = "SELECT id FROM decisions WHERE id::text LIKE $1 ORDER BY id LIMIT $2"
_MATCH_CALL_PREFIX = "SELECT id FROM llm_calls WHERE id::text LIKE $1 ORDER BY id LIMIT $2"


async def decision_ids_starting_with(db: Database, prefix: str, limit: int = 2) -> list[UUID]:
    """Decisions whose id starts with ``prefix`` (hex digits and dashes, at least ``ID_PREFIX_MIN`` digits)."""
    pattern = _prefix_pattern(prefix)
    with db.errors(f"looking up decision {prefix}"):
        rows = await db.pool.fetch(_MATCH_DECISION_PREFIX, pattern, limit)
    return [row["id"] for row in rows]


async def llm_call_ids_starting_with(db: Database, prefix: str, limit: int = 2) -> list[UUID]:
    """LLM calls whose id starts with ``prefix``; see ``decision_ids_starting_with``."""
    pattern = _prefix_pattern(prefix)
    with db.errors(f"looking up LLM call {prefix}"):
        rows = await db.pool.fetch(_MATCH_CALL_PREFIX, pattern, limit)
    return [row["id"] for row in rows]


def _prefix_pattern(prefix: str) -> str:
    """A LIKE pattern for an id prefix; the prefix is checked, so it holds no wildcard."""
    prefix = prefix.lower()
    digits = prefix.replace("-", "")
    if not _ID_PREFIX.fullmatch(prefix) or len(digits) < ID_PREFIX_MIN or len(prefix) > 36:
        raise ValueError(f"not an id prefix: {prefix!r}")
    return f"{prefix}%"
