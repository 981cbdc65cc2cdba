"""Writing review rows as JSON Lines, CSV or Parquet, a page at a time.

The writers take the pages that ``decision_pages`` / ``llm_call_pages`` yield and never hold more than one,
so an export of any size runs in bounded memory. One row per decision (or LLM call). JSON Lines keeps the jsonb
columns as nested JSON; CSV and Parquet carry them as JSON text in one column each, so every format has the
same columns in the same order. Times are UTC ISO 8601 text (JSON Lines, CSV) or UTC timestamps (Parquet).

A file is written next to its destination and renamed into place at the end (``atomic_path``): an export that
fails half way leaves no half file that looks complete.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

from triplegain.review.call_queries import LLM_CALL_EXPORT_COLUMNS
from triplegain.review.decision_queries import DECISION_EXPORT_COLUMNS

Pages = AsyncIterator[list[dict[str, Any]]]


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


class Kind(StrEnum):
    """How a column is written in each format."""

    TEXT = "text"
    ID = "id"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    TIME = "time"
    JSON = "json"


Column = tuple[str, Kind]
Converters = Mapping[Kind, Callable[[Any], Any]]

_DECISION_KINDS: Mapping[str, Kind] = {
    "id": Kind.ID,
    "run_id": Kind.INT,
    "ts": Kind.TIME,
    "confidence": Kind.FLOAT,
    "conflict_rules": Kind.JSON,
    "llm_calls": Kind.INT,
    "llm_cost_usd": Kind.FLOAT,
    "intent": Kind.JSON,
    "consensus_inputs": Kind.JSON,
    "consensus_terms": Kind.JSON,
    "consensus_result": Kind.JSON,
    "risk_checks": Kind.JSON,
    "resolution": Kind.JSON,
    "effects": Kind.JSON,
}
_LLM_CALL_KINDS: Mapping[str, Kind] = {
    "id": Kind.ID,
    "request_id": Kind.ID,
    "decision_id": Kind.ID,
    "run_id": Kind.INT,
    "attempt": Kind.INT,
    "step": Kind.INT,
    "cached": Kind.BOOL,
    "input_tokens": Kind.INT,
    "output_tokens": Kind.INT,
    "cost_usd": Kind.FLOAT,
    "latency_ms": Kind.FLOAT,
    "started_at": Kind.TIME,
    "wall_started_at": Kind.TIME,
    "served_from_run": Kind.INT,
    "parsed": Kind.JSON,
}

DECISION_COLUMNS: tuple[Column, ...] = tuple(
    (name, _DECISION_KINDS.get(name, Kind.TEXT)) for name in DECISION_EXPORT_COLUMNS
)
LLM_CALL_COLUMNS: tuple[Column, ...] = tuple(
    (name, _LLM_CALL_KINDS.get(name, Kind.TEXT)) for name in LLM_CALL_EXPORT_COLUMNS
)


async def write_jsonl(pages: Pages, columns: Sequence[Column], out: TextIO) -> int:
    """One JSON object per line, the jsonb columns nested; how many rows were written."""
    count = 0
    for_json: Converters = {Kind.TIME: _iso, Kind.ID: _text}
    async for page in pages:
        lines = []
        for row in page:
            values = {name: _convert(row[name], for_json.get(kind)) for name, kind in columns}
            lines.append(json.dumps(values, ensure_ascii=False, allow_nan=False))
        if lines:
            out.write("\n".join(lines) + "\n")
        count += len(page)
    out.flush()
    return count


async def write_csv(pages: Pages, columns: Sequence[Column], out: TextIO) -> int:
    """A header, then one line per row; jsonb columns as JSON text, an absent value as an empty field."""
    writer = csv.writer(out)
    writer.writerow([name for name, _ in columns])
    count = 0
    for_csv: Converters = {Kind.TIME: _iso, Kind.ID: _text, Kind.JSON: _json_text, Kind.BOOL: _bool_text}
    async for page in pages:
        writer.writerows([[_csv_value(row[name], for_csv.get(kind)) for name, kind in columns] for row in page])
        count += len(page)
    out.flush()
    return count


async def write_parquet(pages: Pages, columns: Sequence[Column], path: Path) -> int:
    """A Parquet file with one row group per page; jsonb columns as JSON text, times as UTC timestamps."""
    import pyarrow as pa  # imported here: it takes a while, and only exports to Parquet need it
    import pyarrow.parquet as pq

    types = {
        Kind.TEXT: pa.string(),
        Kind.ID: pa.string(),
        Kind.INT: pa.int64(),
        Kind.FLOAT: pa.float64(),
        Kind.BOOL: pa.bool_(),
        Kind.TIME: pa.timestamp("us", tz="UTC"),
        Kind.JSON: pa.string(),
    }
    schema = pa.schema([(name, types[kind]) for name, kind in columns])
    for_parquet: Converters = {Kind.ID: _text, Kind.JSON: _json_text, Kind.TIME: _utc}
    count = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        async for page in pages:
            data = {name: [_convert(row[name], for_parquet.get(kind)) for row in page] for name, kind in columns}
            writer.write_table(pa.table(data, schema=schema))
            count += len(page)
    return count


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block succeeds, else removed."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _convert(value: Any, convert: Callable[[Any], Any] | None) -> Any:
    return value if value is None or convert is None else convert(value)


def _csv_value(value: Any, convert: Callable[[Any], Any] | None) -> Any:
    return "" if value is None else _convert(value, convert)


def _iso(value: datetime) -> str:
    return _utc(value).isoformat()


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _text(value: UUID | str) -> str:
    return str(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _bool_text(value: bool) -> str:
    return "true" if value else "false"
