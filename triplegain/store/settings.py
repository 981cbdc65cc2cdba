"""Settings of the PostgreSQL store: the connection pool and server, and the batching writer of bulk logs."""

from __future__ import annotations

from typing import Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from triplegain.section import Section


class WriterSettings(Section):
    """When batches are written, how long a database outage may last in memory, and what a caller waits for."""

    batch_size: int = Field(
        default=1000, ge=1, description="most rows written in one transaction; a batch this full is written at once"
    )
    flush_interval_seconds: float = Field(
        default=1.0, gt=0, description="a batch is written at the latest this long after its first row arrived"
    )
    max_buffered_rows: int = Field(
        default=50_000,
        ge=1,
        description=(
            "rows kept in memory while they cannot be written (a database outage; an LLM call is about 10 KB, an "
            "agent view about 2 KB); one more is refused with WriteBufferFull and the daemon stops rather than "
            "drop rows"
        ),
    )
    retry_initial_seconds: float = Field(
        default=0.5, gt=0, description="wait after a failed write before the next try; doubles with each failure"
    )
    retry_max_seconds: float = Field(default=15.0, gt=0, description="longest wait between two tries")
    missing_parent_wait_seconds: float = Field(
        default=180.0,
        ge=0,
        description=(
            "a row that references a row not stored yet (an LLM call's decision) is retried this long after it "
            "was submitted before it is rejected"
        ),
    )
    lz4_compression: bool = Field(
        default=True,
        description=(
            "compress long text (LLM prompts) with lz4 instead of pglz where the server has lz4 (not the "
            "embedded one): about a third less server time per LLM call; a copy of the data directory then "
            "needs a server with lz4 too (pg_dump output is plain text)"
        ),
    )
    rejected_limit: int = Field(
        default=1000,
        ge=1,
        description="rows the database refused that are kept for inspection; older ones are evicted (all are counted)",
    )
    flush_timeout_seconds: float = Field(
        default=30.0, gt=0, description="flush() raises when its rows are still not written after this long"
    )
    close_timeout_seconds: float = Field(
        default=30.0, gt=0, description="close() stops trying after this long and reports the rows not written"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.batch_size > self.max_buffered_rows:
            raise ValueError(
                f"batch_size ({self.batch_size}) must not exceed max_buffered_rows ({self.max_buffered_rows})"
            )
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ValueError(
                f"retry_max_seconds ({self.retry_max_seconds:g}) must be at least "
                f"retry_initial_seconds ({self.retry_initial_seconds:g})"
            )
        return self


class DatabaseSettings(Section):
    """PostgreSQL. The server is TRIPLEGAIN_DATABASE_URL when set, else an embedded one in TRIPLEGAIN_HOME."""

    pool_min_size: int = Field(default=1, ge=0, description="connections the pool keeps open")
    pool_max_size: int = Field(default=10, ge=1, description="most connections the pool opens")
    connect_timeout_seconds: float = Field(
        default=10.0, gt=0, description="give up connecting to the server after this long"
    )
    command_timeout_seconds: float = Field(default=30.0, gt=0, description="give up on one statement after this long")
    embedded_start_timeout_seconds: float = Field(
        default=60.0, gt=0, description="give up starting the embedded server after this long"
    )
    writer: WriterSettings = Field(
        default_factory=WriterSettings, description="the batching writer of bulk logs (agent views, LLM calls)"
    )

    @field_validator("pool_max_size")
    @classmethod
    def _pool_bounds(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("pool_min_size")
        if low is not None and value < low:
            raise ValueError(f"must be at least pool_min_size ({low})")
        return value
