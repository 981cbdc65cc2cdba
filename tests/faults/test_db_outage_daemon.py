"""The daemon through a PostgreSQL outage: a TCP proxy in front of the test server refuses connections mid-run.

The daemon runs in this process (``run_daemon``) on a paced synthetic replay, its database URL pointing at the
proxy. The test follows it through its log events (a structlog processor that wakes the test), never by
sleeping: it cuts the database after some decisions, waits until the level is EMERGENCY and some candles were
taken in meanwhile (the outage spans ticks: minutes of candle time), and restores it — or, with tiny bounds,
waits for the daemon to stop by itself.
"""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from tests.conftest import TEST_DATABASE_CONFIG
from tests.faults.postgres_proxy import PostgresProxy
from triplegain.config import Settings, load_settings
from triplegain.daemon.outage import OUTAGE_EXIT_CODE, DatabaseOutageStop
from triplegain.daemon.run import RunOptions, run_daemon
from triplegain.daemon.status import StatusBoard
from triplegain.daemon.summary import RunSummary
from triplegain.store import open_database_at
from triplegain.store.runs import DaemonAlreadyRunning, account_lock, daemon_running

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(40)]

WAIT_SECONDS = 15.0
CANDLE = timedelta(minutes=5)
EVERY_TICK = ("technical", "trade_decision", "housekeeping")
CONFIG = """
market:
  synthetic: {{symbols: {{BTC/USDT: 40000.0}}, count: {count}}}
database:
  connect_timeout_seconds: 1.0
  command_timeout_seconds: 2.0
  writer:
    flush_interval_seconds: 0.02
    retry_initial_seconds: 0.01
    retry_max_seconds: 0.05
    close_timeout_seconds: 1.0
    max_buffered_rows: {writer_rows}
coordinator:
  resolver: {{providers: [offline]}}
  snapshot_interval_seconds: 0.0
  max_unsaved_rows: {coordinator_rows}
  schedule: {{shutdown_timeout_seconds: 1.0}}
execution:
  max_unstored_candles: {broker_candles}
"""


class LogEvents:
    """A structlog processor keeping every event dict (then dropping it) and waking whoever waits on them."""

    def __init__(self) -> None:
        self.events: list[MutableMapping[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        self.events.append(event)
        self._changed.set()
        raise structlog.DropEvent

    def named(self, name: str) -> list[MutableMapping[str, Any]]:
        return [event for event in self.events if event.get("event") == name]

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"waited {WAIT_SECONDS:g} s for {what}") from None


@pytest.fixture
def log_events() -> Iterator[LogEvents]:
    events = LogEvents()
    previous = structlog.get_config()
    structlog.configure(processors=[events], cache_logger_on_first_use=False)
    try:
        yield events
    finally:
        structlog.configure(**previous)


@pytest.fixture
def through_proxy(proxy: PostgresProxy, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The daemon's database is the test's, reached through the proxy."""
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", proxy.url(migrated_database_url))
    return migrated_database_url


def settings_for(
    tmp_path: Path,
    *,
    count: int,
    writer_rows: int = 50_000,
    coordinator_rows: int = 50_000,
    broker_candles: int = 50_000,
) -> Settings:
    config = tmp_path / "outage.yaml"
    config.write_text(
        CONFIG.format(
            count=count, writer_rows=writer_rows, coordinator_rows=coordinator_rows, broker_candles=broker_candles
        )
    )
    return load_settings(config, environ={})


def start(settings: Settings, speed: float) -> asyncio.Task[RunSummary]:
    board = StatusBoard(io.StringIO(), rich_panel=False)
    options = RunOptions(source="synthetic", speed=speed, status_interval_seconds=0.2)
    return asyncio.create_task(run_daemon(settings, options, {}, board))


def no_gaps(times: list[Any]) -> bool:
    """One row per candle interval from the first to the last."""
    return all(later - earlier == CANDLE for earlier, later in itertools.pairwise(times))


async def test_an_outage_spanning_ticks_degrades_to_emergency_and_loses_nothing_once_it_is_back(
    tmp_path: Path, proxy: PostgresProxy, through_proxy: str, log_events: LogEvents
) -> None:
    settings = settings_for(tmp_path, count=90)
    run = start(settings, speed=6_000.0)  # 50 ms a 5-minute candle

    await log_events.until(lambda: len(log_events.named("decision")) >= 10, "decisions before the outage")
    await proxy.refuse()
    decided_before = len(log_events.named("decision"))
    await log_events.until(
        lambda: any(e["to_level"] == "EMERGENCY" for e in log_events.named("degradation level changed")),
        "EMERGENCY",
    )
    await log_events.until(
        lambda: len(log_events.named("decision")) >= decided_before + 12,
        "decisions during the outage (an hour of candle time)",
    )
    await proxy.accept()
    summary = await asyncio.wait_for(run, WAIT_SECONDS)

    decisions_made = len(log_events.named("decision"))
    connection = await asyncpg.connect(through_proxy)
    try:
        assert summary.decisions == decisions_made  # every decision made, stored (ids are keys: at most once)
        assert summary.candles == 90
        levels = await connection.fetch("SELECT ts, from_level, to_level FROM degradation_events ORDER BY ts, id")
        into = [row["ts"] for row in levels if str(row["to_level"]) in ("EMERGENCY", "4")]
        assert into, f"no EMERGENCY stored: {levels}"
        out = [row["ts"] for row in levels if str(row["from_level"]) in ("EMERGENCY", "4")]
        until = out[0] if out else None
        entries = await connection.fetch(
            """
            SELECT d.ts, o.side FROM orders o JOIN decisions d ON d.id = o.decision_id
            WHERE o.side = 'buy' AND d.ts >= $1 AND ($2::timestamptz IS NULL OR d.ts < $2)
            """,
            into[0],
            until,
        )
        assert entries == []  # no new exposure at EMERGENCY
        snapshots = [r["ts"] for r in await connection.fetch("SELECT ts FROM portfolio_snapshots ORDER BY ts")]
        assert len(snapshots) == 90
        assert no_gaps(snapshots)
        last_runs = await connection.fetch("SELECT task, started_at, status FROM task_runs")
        assert {row["task"]: row["started_at"] for row in last_runs if row["task"] in EVERY_TICK} == dict.fromkeys(
            EVERY_TICK, snapshots[-1]
        )  # task_runs keeps each task's latest run: the last tick's, saved after the outage
        failed = [e["task"] for e in log_events.named("task failed")]
        assert "housekeeping" in failed  # it could not save while the database was gone, and went on
        views = [
            r["ts"]
            for r in await connection.fetch("SELECT ts FROM agent_outputs WHERE agent = 'technical' ORDER BY ts")
        ]
        assert len(views) >= 85
        assert no_gaps(views)
    finally:
        await connection.close()


async def test_an_outage_past_the_bound_stops_the_daemon_with_one_line_and_its_exit_code(
    tmp_path: Path, proxy: PostgresProxy, through_proxy: str, log_events: LogEvents
) -> None:
    settings = settings_for(tmp_path, count=400, broker_candles=6)
    run = start(settings, speed=6_000.0)

    await log_events.until(lambda: len(log_events.named("decision")) >= 5, "decisions before the outage")
    await proxy.refuse()
    with pytest.raises(DatabaseOutageStop) as stopped:
        await asyncio.wait_for(run, WAIT_SECONDS)
    decisions_made = len(log_events.named("decision"))
    await proxy.accept()

    message = str(stopped.value)
    assert stopped.value.exit_code == OUTAGE_EXIT_CODE != 2
    assert "\n" not in message
    assert "rows held in memory, the bound execution.max_unstored_candles = 6 reached" in message
    assert "are lost" in message
    assert "run again" in message
    connection = await asyncpg.connect(through_proxy)
    try:
        stored = await connection.fetchval("SELECT count(*) FROM decisions")
        committed = [e for e in log_events.named("decision") if e["action"] != "hold"]
        assert stored <= decisions_made  # nothing stored twice
        assert stored >= len(committed)  # every acknowledged (committed) decision is there
        candles = await connection.fetchval("SELECT count(*) FROM portfolio_snapshots")
        assert candles < 400  # it stopped early
    finally:
        await connection.close()


async def test_a_daemon_whose_lock_another_took_during_the_outage_stops_once_the_database_is_back(
    tmp_path: Path, proxy: PostgresProxy, through_proxy: str, log_events: LogEvents
) -> None:
    settings = settings_for(tmp_path, count=400)
    run = start(settings, speed=6_000.0)

    await log_events.until(lambda: len(log_events.named("decision")) >= 5, "decisions before the outage")
    await proxy.refuse()
    async with open_database_at(through_proxy, TEST_DATABASE_CONFIG) as direct, AsyncExitStack() as second:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:  # a second daemon, beside the proxy, once the server freed the first one's lock
                try:
                    await second.enter_async_context(account_lock(direct, "paper"))
                    break
                except DaemonAlreadyRunning:
                    continue
        await proxy.accept()
        with pytest.raises(DaemonAlreadyRunning, match="went with its connection in a database outage"):
            await asyncio.wait_for(run, WAIT_SECONDS)
        assert await daemon_running(direct, "paper"), "the second one keeps the account"
