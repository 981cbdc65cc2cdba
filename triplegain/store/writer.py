"""The batching writer of bulk logs: ``submit`` returns at once, one background task writes batches.

    async with BatchWriter(db, WriterSettings(), clock=clock) as writer:
        writer.submit(AgentOutputRecord(...))      # never waits for the database
        await writer.flush()                       # when a caller needs its rows stored now

Batches
    A batch is written when it holds ``batch_size`` rows, ``flush_interval_seconds`` after its first row
    arrived, on ``flush()`` and on ``aclose()``: in one transaction, tables in ``FLUSH_ORDER`` (referenced rows
    first), each table's rows by ``records.insert_rows`` (COPY, then an idempotent ``INSERT … SELECT``), so
    retrying a batch whose commit did reach the server stores nothing twice (``already_stored`` counts them).

Nothing is lost
    Whatever goes wrong while writing keeps the rows in memory and the batch is tried again after a backoff
    (``retry_initial_seconds`` doubling up to ``retry_max_seconds``; ``flush()`` and ``aclose()`` cut a wait
    short). ``stats()`` and ``healthy`` show the failures for the degradation manager, ``stats().disconnected``
    whether the server is out of reach. When it is back, what waited is written, in submission order within a
    table; a batch whose commit reached the server before the connection dropped is simply sent again
    (idempotent, see ``records``).

The bound (buffer, never drop)
    At most ``max_buffered_rows`` rows wait in memory. Past the bound ``submit`` raises ``WriteBufferFull``
    (naming the bound and the rows held) rather than drop a row, and ``overflowed`` is set for good: the caller
    lost a row's log, so the daemon must stop (``await writer.overflowed.wait()``, then ``overflow_error`` is
    the message). The rows already held are still written when the server comes back, and ``aclose()`` reports
    any it could not write.

Rows the database refuses
    When Postgres blames the data (SQLSTATE class 22, data exception, or 23, integrity constraint violation),
    the batch is split in halves, and halves again, until each refused row is alone; the others are written.
    A refused row is counted, logged and kept in ``rejected()`` (the last ``rejected_limit``, with the error).
    Any other error (the server gone, a timeout, a missing table) is not the rows' fault: it is retried, never
    turned into rejections. One exception to refusing: a row that references a row not stored yet (foreign key
    violation: an LLM call whose decision is written later, by another path or batch) waits and joins a later
    batch, at most once per flush interval, until ``missing_parent_wait_seconds`` after it was submitted.

Accounting
    ``submitted == written + already_stored + rejected + buffered`` at all times. ``aclose()`` that cannot
    write everything within ``close_timeout_seconds`` raises ``RowsNotWritten``; the rows are still in
    ``unwritten()``, and submitting them to a writer again is safe.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict, Field

from triplegain.clock import Clock, WallClock
from triplegain.errors import DatabaseError, ResourceClosed, TriplegainError
from triplegain.store.database import Database, error_reason
from triplegain.store.records import FLUSH_ORDER, USE_LZ4, Row, insert_rows, lz4_supported
from triplegain.store.settings import WriterSettings

logger = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]

_RANK = {table.name: rank for rank, table in enumerate(FLUSH_ORDER)}
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class WriteBufferFull(TriplegainError):
    """``max_buffered_rows`` rows already wait for the database: the row is refused, not dropped.

    ``bound`` is ``max_buffered_rows``, ``held`` the rows in memory when the row was refused.
    """

    def __init__(self, message: str, *, bound: int, held: int) -> None:
        super().__init__(message)
        self.bound = bound
        self.held = held


class WriterClosed(ResourceClosed):
    """The writer was closed: it accepts no more rows."""


class RowsNotWritten(DatabaseError):
    """``flush()`` or ``aclose()`` ran out of time with rows still in memory (``rows`` of them)."""

    def __init__(self, message: str, rows: int) -> None:
        super().__init__(message)
        self.rows = rows


@dataclass(frozen=True)
class RejectedRow:
    """A row the database refused, with Postgres's error and when."""

    row: Row
    error: str
    sqlstate: str | None
    at: datetime


class WriterStats(BaseModel):
    """A snapshot of the writer. ``submitted == written + already_stored + rejected + buffered``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    submitted: int = Field(description="rows accepted by submit()")
    written: int = Field(description="rows inserted")
    already_stored: int = Field(description="rows skipped because a row with their key was stored (a retry)")
    rejected: int = Field(description="rows the database refused (the last ones are in rejected())")
    buffered: int = Field(description="rows in memory, not written yet")
    waiting_for_parent: int = Field(description="buffered rows that reference a row not stored yet")
    flushes: int = Field(description="transactions committed")
    failed_flushes: int = Field(description="writes that failed and were retried (not counting refused rows)")
    consecutive_failures: int = Field(description="failed writes since the last one that succeeded")
    failing_for_seconds: float | None = Field(
        description="since the first of the failed writes in a row; None while writes succeed"
    )
    disconnected: bool = Field(
        description="the last write failed because the server could not be reached or the connection was lost"
    )
    overflowed: bool = Field(description="a row was refused because max_buffered_rows rows were held (for good)")
    oldest_buffered_age_seconds: float | None = Field(description="how long the oldest buffered row has waited")
    last_error: str | None = Field(description="the most recent failure, even if writes succeed again since")
    healthy: bool = Field(description="the last write succeeded and the background task runs")


@dataclass(eq=False)
class _Item:
    seq: int
    row: Row
    values: tuple[Any, ...]
    submitted_at: float


class BatchWriter:
    """Writes rows in batches from one background task; see the module docstring for the guarantees."""

    def __init__(
        self,
        db: Database,
        settings: WriterSettings | None = None,
        *,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._db = db
        self._settings = settings or WriterSettings()
        self._clock: Clock = clock or WallClock()
        self._sleep = sleep
        self._pending: deque[_Item] = deque()
        self._in_flight: dict[int, _Item] = {}
        self._waiting: list[_Item] = []
        self._opened_at = 0.0  # when the first pending row arrived: the flush interval runs from here
        self._waiting_since = 0.0  # when rows last started waiting for a parent
        self._next_seq = 0
        self._flush_target = -1  # the newest row a flush() waits for
        self._hurry_waiting = False  # flush() or aclose(): try the rows waiting for a parent once, now
        self._rejected: deque[RejectedRow] = deque(maxlen=self._settings.rejected_limit)
        self._written = 0
        self._already_stored = 0
        self._rejected_count = 0
        self._flushes = 0
        self._failed_flushes = 0
        self._consecutive_failures = 0
        self._failing_since: float | None = None
        self._disconnected = False
        self._last_error: str | None = None
        self._overflowed = asyncio.Event()
        self._overflow_error: WriteBufferFull | None = None
        self._wake = asyncio.Event()  # a batch may be due: rows arrived, a batch filled, flush() or aclose()
        self._retry_now = asyncio.Event()  # flush() or aclose(): cut a backoff short
        self._progress = asyncio.Condition()  # rows left the buffer
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._use_lz4: bool | None = None  # asked of the server on the first write
        self._connected = False  # the last write got a connection from the pool

    async def __aenter__(self) -> BatchWriter:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start the background task (``async with`` does it)."""
        if self._task is not None or self._closing:
            raise RuntimeError("a BatchWriter starts once")
        self._task = asyncio.create_task(self._run(), name=f"batch writer {self._db.server}")
        self._task.add_done_callback(self._report_crash)

    def submit(self, row: Row) -> None:
        """Queue a row and return: no database round trip, never waits (so a sync hook may call it).

        Raises ``WriteBufferFull`` when ``max_buffered_rows`` rows wait already, ``WriterClosed`` after
        ``aclose()``, and whatever ``row.values()`` raises for a row that cannot be encoded.
        """
        if self._closing:
            raise WriterClosed(f"the batch writer for {self._db.server} is closed: {row.table.name} row refused")
        if row.table.name not in _RANK:
            raise ValueError(f"the batch writer does not write table {row.table.name}")
        if self._buffered() >= self._settings.max_buffered_rows:
            raise self._overflow(row)
        now = self._clock.monotonic()
        item = _Item(seq=self._next_seq, row=row, values=row.values(), submitted_at=now)
        self._next_seq += 1
        if not self._pending:
            self._opened_at = now
            self._wake.set()
        self._pending.append(item)
        if len(self._pending) == self._settings.batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Write every row submitted so far; raises ``RowsNotWritten`` after ``flush_timeout_seconds``.

        Rows the database refuses count as done (see ``rejected()``). Rows waiting for a parent row are not:
        they are tried once at once, then once per flush interval.
        """
        task = self._running_task()
        target = self._next_seq - 1
        if self._settled(target):
            return
        self._flush_target = max(self._flush_target, target)
        self._hurry_waiting = True
        self._wake.set()
        self._retry_now.set()
        timeout = self._settings.flush_timeout_seconds
        try:
            async with asyncio.timeout(timeout), self._progress:
                await self._progress.wait_for(lambda: self._settled(target) or task.done())
        except TimeoutError:
            left = sum(1 for item in self._buffered_items() if item.seq <= target)
            raise RowsNotWritten(
                f"flush: {left} rows not written to {self._db.server} within {timeout:g} s; they stay in "
                f"memory and the writer keeps trying; last error: {self._last_error or 'none'}",
                left,
            ) from None
        if not self._settled(target):
            if not task.cancelled():
                task.result()  # the task ended with rows left and was not cancelled by aclose(): it crashed
            raise WriterClosed(f"the batch writer for {self._db.server} was closed during flush()")

    async def aclose(self) -> None:
        """Write what is buffered and stop; raises ``RowsNotWritten`` for what is left after the timeout."""
        if self._closing:
            return
        self._closing = True
        self._hurry_waiting = True
        self._wake.set()
        self._retry_now.set()
        timeout = self._settings.close_timeout_seconds
        crash: BaseException | None = None
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            else:
                crash = self._task.exception()
        left = self._buffered()
        if left:
            raise RowsNotWritten(
                f"close: {left} rows could not be written to {self._db.server} (close_timeout_seconds "
                f"{timeout:g}); they are in unwritten(), and submitting them again is safe; "
                f"last error: {self._last_error or 'none'}",
                left,
            ) from crash
        if crash is not None:
            raise crash

    @property
    def overflowed(self) -> asyncio.Event:
        """Set (for good) when ``submit`` first refused a row for the bound: the daemon must stop."""
        return self._overflowed

    @property
    def overflow_error(self) -> WriteBufferFull | None:
        """The first refusal for the bound, whose message says what happened; None before."""
        return self._overflow_error

    @property
    def consecutive_failures(self) -> int:
        """Writes failed in a row (0 after a success): ``stats().consecutive_failures`` without building the
        stats, for callers that ask at every candle."""
        return self._consecutive_failures

    @property
    def healthy(self) -> bool:
        """The last write succeeded: False from a failed write until the next successful one, and for good
        once the background task has crashed."""
        crashed = self._task is not None and self._task.done() and not self._closing
        return self._consecutive_failures == 0 and not crashed

    def stats(self) -> WriterStats:
        # Pending rows arrive in order: only the first one can be the oldest.
        candidates = itertools.chain(self._waiting, self._in_flight.values(), itertools.islice(self._pending, 1))
        oldest = min((item.submitted_at for item in candidates), default=None)
        return WriterStats(
            submitted=self._next_seq,
            written=self._written,
            already_stored=self._already_stored,
            rejected=self._rejected_count,
            buffered=self._buffered(),
            waiting_for_parent=len(self._waiting),
            flushes=self._flushes,
            failed_flushes=self._failed_flushes,
            consecutive_failures=self._consecutive_failures,
            failing_for_seconds=None if self._failing_since is None else self._clock.monotonic() - self._failing_since,
            disconnected=self._disconnected,
            overflowed=self._overflowed.is_set(),
            oldest_buffered_age_seconds=None if oldest is None else self._clock.monotonic() - oldest,
            last_error=self._last_error,
            healthy=self.healthy,
        )

    def rejected(self) -> list[RejectedRow]:
        """The last ``rejected_limit`` rows the database refused, oldest first."""
        return list(self._rejected)

    def unwritten(self) -> list[Row]:
        """The rows in memory, in submission order."""
        return [item.row for item in sorted(self._buffered_items(), key=lambda item: item.seq)]

    def _overflow(self, row: Row) -> WriteBufferFull:
        """The error refusing ``row`` for the bound; the first one sets ``overflowed`` and is logged."""
        bound, held = self._settings.max_buffered_rows, self._buffered()
        error = WriteBufferFull(
            f"the write buffer for {self._db.server} is full: {held} rows held, the bound is {bound} rows "
            f"(max_buffered_rows); {row.table.name} row refused, not dropped — stop and write the held rows when "
            f"the database is back; last error: {self._last_error or 'none'}",
            bound=bound,
            held=held,
        )
        if self._overflow_error is None:
            self._overflow_error = error
            self._overflowed.set()
            logger.error("write buffer full", bound=bound, held=held, error=str(error))
        return error

    def _running_task(self) -> asyncio.Task[None]:
        if self._closing:
            raise WriterClosed(f"the batch writer for {self._db.server} is closed")
        if self._task is None:
            raise RuntimeError("start the BatchWriter first (async with BatchWriter(...) as writer)")
        return self._task

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "batch writer stopped",
                server=self._db.server,
                rows_in_memory=self._buffered(),
                exc_info=task.exception(),
            )

    def _buffered(self) -> int:
        return len(self._pending) + len(self._in_flight) + len(self._waiting)

    def _buffered_items(self) -> list[_Item]:
        return [*self._waiting, *self._in_flight.values(), *self._pending]

    def _settled(self, target: int) -> bool:
        """Every row up to ``target`` (a sequence number) is written or refused."""
        return all(item.seq > target for item in itertools.chain(self._waiting, self._in_flight.values())) and (
            not self._pending or self._pending[0].seq > target
        )

    async def _run(self) -> None:
        try:
            while (batch := await self._next_batch()) is not None:
                self._in_flight = {item.seq: item for item in batch}
                await self._write_in_flight()
                async with self._progress:
                    self._progress.notify_all()
        finally:
            async with self._progress:
                self._progress.notify_all()

    async def _next_batch(self) -> list[_Item] | None:
        """Wait until a batch is due and take it; None once closing with nothing left."""
        interval = self._settings.flush_interval_seconds
        while True:
            self._wake.clear()
            if not self._pending and not self._waiting:
                if self._closing:
                    return None
                await self._wake.wait()
                continue
            now = self._clock.monotonic()
            waiting_due = bool(self._waiting) and (self._hurry_waiting or now >= self._waiting_since + interval)
            if waiting_due or self._pending_due():
                return self._take(include_waiting=waiting_due)
            deadlines = [self._opened_at + interval] if self._pending else []
            deadlines += [self._waiting_since + interval] if self._waiting else []
            delay = min(deadlines) - now
            if delay <= 0 or await self._nap(delay, self._wake):
                return self._take(include_waiting=True)

    def _pending_due(self) -> bool:
        return bool(self._pending) and (
            len(self._pending) >= self._settings.batch_size
            or self._closing
            or self._pending[0].seq <= self._flush_target
        )

    def _take(self, *, include_waiting: bool) -> list[_Item]:
        size = self._settings.batch_size
        batch: list[_Item] = []
        if include_waiting:
            batch, self._waiting = self._waiting[:size], self._waiting[size:]
            self._hurry_waiting = False
        while len(batch) < size and self._pending:
            batch.append(self._pending.popleft())
        if self._pending:
            self._opened_at = self._pending[0].submitted_at
        batch.sort(key=lambda item: _RANK[item.row.table.name])
        return batch

    async def _nap(self, seconds: float, wake: asyncio.Event) -> bool:
        """Sleep ``seconds`` unless ``wake`` is set first; True when the whole time passed."""
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waker = asyncio.ensure_future(wake.wait())
        try:
            done, _ = await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
        return sleeper in done

    async def _write_in_flight(self) -> None:
        """Write the batch in hand, trying again after each failure until every row is written or set aside."""
        while self._in_flight:
            self._retry_now.clear()  # this attempt answers the flush() or aclose() that asked for one
            try:
                await self._write_splitting(list(self._in_flight.values()))
            except Exception as error:
                self._note_failure(error)
                await self._nap(self._backoff_seconds(), self._retry_now)
            else:
                self._note_success()

    async def _write_splitting(self, items: list[_Item]) -> None:
        """Write ``items`` in one transaction; when Postgres blames the data, split until each bad row is alone.

        Written and refused rows leave ``_in_flight`` as they go, so a retry after a failure resumes.
        """
        chunks = [items]
        while chunks:
            chunk = chunks.pop()
            try:
                inserted = await self._insert(chunk)
            except Exception as error:
                if not _is_the_rows_fault(error):
                    raise
                if len(chunk) > 1:
                    half = len(chunk) // 2
                    chunks += [chunk[half:], chunk[:half]]
                else:
                    self._set_aside(chunk[0], error)
                continue
            for item in chunk:
                del self._in_flight[item.seq]
            self._flushes += 1
            self._written += inserted
            self._already_stored += len(chunk) - inserted

    async def _insert(self, chunk: list[_Item]) -> int:
        inserted = 0
        pool = self._db.pool
        self._connected = False
        async with pool.acquire(timeout=self._db.command_timeout_seconds) as connection, connection.transaction():
            self._connected = True
            if self._use_lz4 is None:
                self._use_lz4 = self._settings.lz4_compression and await lz4_supported(connection)
            if self._use_lz4:
                await connection.execute(USE_LZ4)
            for table, items in itertools.groupby(chunk, key=lambda item: item.row.table):
                inserted += await insert_rows(connection, table, [item.values for item in items])
        return inserted

    def _set_aside(self, item: _Item, error: Exception) -> None:
        del self._in_flight[item.seq]
        row = item.row.table.describe(item.values)
        age = self._clock.monotonic() - item.submitted_at
        if isinstance(error, asyncpg.ForeignKeyViolationError) and age < self._settings.missing_parent_wait_seconds:
            logger.info("row waits for the row it references", row=row, error=_refusal(error))
            self._waiting.append(item)
            self._waiting_since = self._clock.monotonic()
            return
        reason, sqlstate = _refusal(error), getattr(error, "sqlstate", None)
        self._rejected_count += 1
        self._rejected.append(RejectedRow(row=item.row, error=reason, sqlstate=sqlstate, at=self._clock.now()))
        logger.error("row refused", server=self._db.server, row=row, sqlstate=sqlstate, reason=reason)

    def _note_failure(self, error: Exception) -> None:
        self._failed_flushes += 1
        self._consecutive_failures += 1
        if self._failing_since is None:
            self._failing_since = self._clock.monotonic()
        self._disconnected = not self._connected or _lost_the_server(error)
        self._last_error = error_reason(error, self._db.command_timeout_seconds)
        logger.warning(
            "write failed; trying again",
            rows=len(self._in_flight),
            server=self._db.server,
            failures_in_a_row=self._consecutive_failures,
            rows_in_memory=self._buffered(),
            retry_in_seconds=round(self._backoff_seconds(), 1),
            error=self._last_error,
            exc_info=not isinstance(error, _DATABASE_ERRORS),
        )

    def _note_success(self) -> None:
        if self._consecutive_failures:
            logger.info(
                "writes work again",
                server=self._db.server,
                failed_writes=self._consecutive_failures,
                failing_seconds=round(self._clock.monotonic() - (self._failing_since or 0.0), 1),
                rows_in_memory=self._buffered(),
            )
        self._consecutive_failures = 0
        self._failing_since = None
        self._disconnected = False

    def _backoff_seconds(self) -> float:
        settings = self._settings
        return min(settings.retry_max_seconds, settings.retry_initial_seconds * 2.0 ** (self._consecutive_failures - 1))


def _is_the_rows_fault(error: Exception) -> bool:
    """Postgres refused the data (class 22 or 23), or asyncpg could not encode a value (its client DataError)."""
    if isinstance(error, asyncpg.PostgresError):
        return str(error.sqlstate)[:2] in ("22", "23")
    return isinstance(error, asyncpg.InterfaceError) and isinstance(error, ValueError)


def _lost_the_server(error: Exception) -> bool:
    """The connection broke while writing: a socket error or timeout (TimeoutError is an OSError), a connection
    asyncpg found closed, SQLSTATE class 08 (connection exception) or 57 (operator intervention: shutdown)."""
    if isinstance(error, OSError | asyncpg.ConnectionDoesNotExistError):
        return True
    return isinstance(error, asyncpg.PostgresError) and str(error.sqlstate)[:2] in ("08", "57")


def _refusal(error: Exception) -> str:
    """Postgres's message and detail in one line, without a "Failing row contains (…)" detail (the whole row)."""
    text = str(error)
    if isinstance(error, asyncpg.PostgresError):
        detail = error.detail or ""
        text = (
            error.message if not detail or detail.startswith("Failing row contains") else f"{error.message}: {detail}"
        )
    return " ".join(text.split())
