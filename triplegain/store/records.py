"""The rows the batching writer stores, the tables they go to, and how a batch of them is inserted.

A batch of one table is copied (binary COPY) into a staging table, then moved with ``INSERT … SELECT``, which
makes it idempotent. COPY is the fastest here and costs the least client CPU (``benchmarks/store.py`` measures
it against ``executemany`` and a single ``INSERT … SELECT … FROM unnest($1::uuid[], …)``). The rows are handed
to COPY a slice at a time, letting other tasks run in between, so encoding a batch never holds the event loop
for long (awaited writes elsewhere, e.g. orders, would wait behind it).

Idempotent: a batch whose commit reached the server but whose answer did not can be sent again. Rows carry an
id made by the application, and a row whose key is already stored is skipped (``ON CONFLICT DO NOTHING``, or
``NOT EXISTS`` for a table without a unique key).

Long text (an LLM call's prompts) is compressed by the server as it is stored, which is most of the server's
work for an LLM call. Where the server has lz4 (``lz4_supported``), ``USE_LZ4`` in the transaction makes it
use lz4 instead of the default pglz: about a third less server time per LLM call, read back as usual.

The staging table is a temporary table of the connection (``pg_temp.incoming_<table>``, created when missing,
emptied at every commit), so inserting must happen inside a transaction. Its jsonb columns are text, cast when
moved: asyncpg's COPY is binary and the pool's jsonb codec has none. A row's values, JSON text included, are
computed when it is submitted, so a value that cannot be encoded fails in the caller. COPY straight into the
table would skip the staging table, but it measured no faster for LLM calls (compression and six indexes are
the server's work) and about a fifth faster for agent views only, while needing a binary jsonb codec the pool's
connections do not have and a second path for retries: not worth it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from triplegain.llm.models import LLMCallRecord
from triplegain.store import database

if TYPE_CHECKING:
    from triplegain.bus.dead_letters import DeadLetter

LZ4_SUPPORTED = "SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
USE_LZ4 = "SET LOCAL default_toast_compression = lz4"

# A slice is about 0.1 ms of client work for agent outputs, 0.5 ms for LLM calls with their prompts.
COPY_SLICE_ROWS = 25


@dataclass(frozen=True)
class Table:
    """A table the writer fills: its columns in insert order (name, Postgres type) and the key of a row.

    ``key_is_unique``: the key has a unique index, so a stored row is skipped with ``ON CONFLICT DO NOTHING``;
    otherwise the statement skips rows that ``NOT EXISTS`` finds (through an index on the key's first column).
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    key_is_unique: bool

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def describe(self, values: tuple[Any, ...]) -> str:
        """A row named by its key, for messages: ``llm_calls row (id=…)``."""
        names = self.column_names
        key = ", ".join(f"{column}={values[names.index(column)]}" for column in self.key)
        return f"{self.name} row ({key})"

    @property
    def staging_name(self) -> str:
        return f"incoming_{self.name}"

    @cached_property
    def create_staging_statement(self) -> str:
        columns = ", ".join(f"{name} {'text' if sql_type == 'jsonb' else sql_type}" for name, sql_type in self.columns)
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.staging_name} ({columns}) ON COMMIT DELETE ROWS"

    @cached_property
    def move_statement(self) -> str:
        """``INSERT … SELECT`` of the staged rows whose key is not stored yet."""
        selected = ", ".join(
            f"batch.{name}::jsonb" if sql_type == "jsonb" else f"batch.{name}" for name, sql_type in self.columns
        )
        statement = (
            f"INSERT INTO {self.name} ({', '.join(self.column_names)}) "
            f"SELECT {selected} FROM pg_temp.{self.staging_name} AS batch"
        )
        if self.key_is_unique:
            return f"{statement} ON CONFLICT ({', '.join(self.key)}) DO NOTHING"
        matches = " AND ".join(f"stored.{column} = batch.{column}" for column in self.key)
        return f"{statement} WHERE NOT EXISTS (SELECT FROM {self.name} AS stored WHERE {matches})"


async def insert_rows(connection: Any, table: Table, rows: list[tuple[Any, ...]]) -> int:
    """Insert ``rows`` (values in ``table.columns`` order) inside the caller's transaction; how many were new."""
    await connection.execute(table.create_staging_statement)
    await connection.copy_records_to_table(
        table.staging_name, schema_name="pg_temp", records=_yielding(rows), columns=table.column_names
    )
    status: str = await connection.execute(table.move_statement)
    return int(status.rsplit(" ", 1)[1])


async def lz4_supported(connection: Any) -> bool:
    """Whether the server was built with lz4, so that ``USE_LZ4`` works."""
    supported: bool = await connection.fetchval(LZ4_SUPPORTED)
    return supported


async def _yielding(rows: list[tuple[Any, ...]]) -> AsyncIterator[tuple[Any, ...]]:
    """The rows, with a turn for the event loop's other tasks after every ``COPY_SLICE_ROWS`` of them."""
    for number, row in enumerate(rows):
        if number and number % COPY_SLICE_ROWS == 0:
            await asyncio.sleep(0)
        yield row


def json_text(value: JsonValue) -> str | None:
    """A nullable jsonb value as JSON text (``store.database.json_text``); None stays NULL."""
    return None if value is None else database.json_text(value)


LLM_CALLS = Table(
    name="llm_calls",
    columns=(
        ("id", "uuid"),
        ("request_id", "uuid"),
        ("decision_id", "uuid"),
        ("run_id", "bigint"),
        ("provider", "text"),
        ("model", "text"),
        ("purpose", "text"),
        ("symbol", "text"),
        ("answer_model", "text"),
        ("prompt_digest", "text"),
        ("system_prompt", "text"),
        ("user_prompt", "text"),
        ("raw_response", "text"),
        ("parsed", "jsonb"),
        ("validation_error", "text"),
        ("input_tokens", "integer"),
        ("output_tokens", "integer"),
        ("cost_usd", "numeric"),
        ("latency_ms", "double precision"),
        ("attempt", "integer"),
        ("step", "integer"),
        ("cached", "boolean"),
        ("error_class", "text"),
        ("error_message", "text"),
        ("started_at", "timestamptz"),
        ("wall_started_at", "timestamptz"),
        ("served_from_run", "bigint"),
    ),
    key=("id",),
    key_is_unique=True,
)

AGENT_OUTPUTS = Table(
    name="agent_outputs",
    columns=(
        ("id", "uuid"),
        ("run_id", "bigint"),
        ("agent", "text"),
        ("symbol", "text"),
        ("ts", "timestamptz"),
        ("confidence", "double precision"),
        ("body", "jsonb"),
        ("reasoning", "text"),
        ("llm_call_id", "uuid"),
    ),
    key=("id",),
    key_is_unique=True,
)

# dead_letters has an identity id and no unique key: a (message, subscription) pair is dead-lettered once, at
# one time, for one reason, so those four columns recognise a row already stored.
DEAD_LETTERS = Table(
    name="dead_letters",
    columns=(
        ("ts", "timestamptz"),
        ("topic", "text"),
        ("subscription", "text"),
        ("reason", "text"),
        ("message_id", "uuid"),
        ("message", "jsonb"),
        ("error", "text"),
        ("traceback", "text"),
    ),
    key=("message_id", "subscription", "reason", "ts"),
    key_is_unique=False,
)

# Referenced tables first: a flush writes them in this order, and a batch split in two keeps it.
FLUSH_ORDER: tuple[Table, ...] = (LLM_CALLS, AGENT_OUTPUTS, DEAD_LETTERS)


class Row(Protocol):
    """Anything the writer stores: its table, and its values in the order of the table's columns."""

    @property
    def table(self) -> Table: ...

    def values(self) -> tuple[Any, ...]: ...


@dataclass(frozen=True)
class LLMCallRow:
    """An ``llm_calls`` row: the call's record, the daemon run, and the decision it served (None for an agent's)."""

    call: LLMCallRecord
    run_id: int | None
    decision_id: UUID | None

    table: ClassVar[Table] = LLM_CALLS

    def values(self) -> tuple[Any, ...]:
        call = self.call
        return (
            call.id,
            call.request_id,
            self.decision_id,
            self.run_id,
            call.provider,
            call.model,
            call.purpose,
            None,  # symbol: LLMCallRecord does not carry one
            call.answer_model,
            call.prompt_digest,
            call.system_prompt,
            call.user_prompt,
            call.raw_response,
            json_text(call.parsed),
            call.validation_error,
            call.input_tokens,
            call.output_tokens,
            # asyncpg turns a float into its exact binary value (0.1 → 0.1000000000000000055…): use its repr.
            Decimal(repr(call.cost_usd)),
            call.latency_ms,
            call.attempt,
            call.step,
            call.cached,
            call.error_class,
            call.error_message,
            call.started_at,
            call.wall_started_at,
            call.served_from_run,
        )


class AgentOutputRecord(BaseModel):
    """One view an agent published, as stored in ``agent_outputs`` (the agents layer converts its outputs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID
    run_id: int | None = Field(description="the daemon run that produced it; None outside a daemon")
    agent: str = Field(description="technical, regime, sentiment or portfolio")
    symbol: str | None = Field(description="None for a view of the whole portfolio")
    ts: AwareDatetime
    confidence: float | None = Field(ge=0, le=1, description="None for views without one")
    body: dict[str, JsonValue] = Field(description="the typed output as JSON")
    reasoning: str | None
    llm_call_id: UUID | None = Field(description="the LLM call behind the view, if any")

    table: ClassVar[Table] = AGENT_OUTPUTS

    def values(self) -> tuple[Any, ...]:
        return AgentOutputRow(
            **{name: value for name, value in self if name != "body"}, body_json=json_text(self.body) or "null"
        ).values()


@dataclass(frozen=True)
class DeadLetterRow:
    """A ``dead_letters`` row: the bus's dead letter with its whole message as JSON."""

    letter: DeadLetter

    table: ClassVar[Table] = DEAD_LETTERS

    def values(self) -> tuple[Any, ...]:
        letter = self.letter
        return (
            letter.at,
            letter.message.topic.value,
            letter.subscription,
            letter.reason.value,
            letter.message.id,
            json_text(letter.message.to_wire()),
            letter.error,
            letter.traceback,
        )



@dataclass(frozen=True, slots=True)
class AgentOutputRow:
    """An ``agent_outputs`` row as the writer takes it: the columns of ``AgentOutputRecord``, the body as JSON text.

    The agents' views are stored in this form (``agents.recording.output_row``), several per candle: built from an
    ``AgentOutput``, already validated, it skips ``AgentOutputRecord``'s second check of every value in the body,
    and the body is encoded once, by ``store.database.json_text`` — about a third of the record form's CPU.
    """

    id: UUID
    run_id: int | None
    agent: str
    symbol: str | None
    ts: datetime
    confidence: float | None
    body_json: str
    reasoning: str | None
    llm_call_id: UUID | None

    table: ClassVar[Table] = AGENT_OUTPUTS

    def values(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.run_id,
            self.agent,
            self.symbol,
            self.ts,
            self.confidence,
            self.body_json,
            self.reasoning,
            self.llm_call_id,
        )
