"""The alert dispatcher against a local webhook (``tests.stubs.alert_receiver``) and a real PostgreSQL.

The coordinator's events go through a real bus, the daemon's own (a database outage and its end, the stop) through
``notify`` as the daemon hands them over. Retries wait nothing (no backoff); the tests follow the webhook's
requests and the bus's drain, never a clock.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from tests.stubs.alert_receiver import SECRET_TOKEN, AlertReceiver
from triplegain.alerts.dispatcher import AlertDispatcher, alert_dispatcher
from triplegain.alerts.settings import AlertsSettings
from triplegain.bus import MessageBus, Topic
from triplegain.clock import FakeClock, WallClock
from triplegain.errors import DatabaseError
from triplegain.model import (
    BreakerAction,
    BreakerRule,
    BreakerTripped,
    CoordinatorState,
    DaemonStopped,
    DatabaseOutage,
    DegradationLevel,
    LevelChanged,
    StateChanged,
)
from triplegain.store import Database
from triplegain.store.alerts import AlertRow, list_alerts

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(30)]

T0 = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
ACCOUNT = "paper"


def alerts_settings(*urls: str, **overrides: Any) -> AlertsSettings:
    retry = {"max_attempts": 3, "backoff_initial_seconds": 0.0, "backoff_max_seconds": 0.0}
    return AlertsSettings.model_validate({"webhooks": list(urls), "retry": retry, **overrides})


def coordinator_events() -> list[tuple[Topic, BaseModel]]:
    """Six coordinator events: four make an alert (a trip, a halt, LIMITED, EMERGENCY), a pause and REDUCED none."""
    level = DegradationLevel
    return [
        (Topic.SYSTEM_EVENTS, _level(level.NORMAL, level.REDUCED, 1)),
        (Topic.SYSTEM_EVENTS, _level(level.REDUCED, level.LIMITED, 2)),
        (
            Topic.RISK_ALERTS,
            BreakerTripped(
                account=ACCOUNT,
                rule=BreakerRule.DAILY_LOSS,
                action=BreakerAction.HALT,
                reason="daily loss 6.1% ≥ 5%",
                at=T0 + timedelta(minutes=3),
                until=None,
            ),
        ),
        (Topic.SYSTEM_EVENTS, _state(CoordinatorState.RUNNING, CoordinatorState.PAUSED, 4)),
        (Topic.SYSTEM_EVENTS, _state(CoordinatorState.PAUSED, CoordinatorState.HALTED, 5)),
        (Topic.SYSTEM_EVENTS, _level(level.LIMITED, level.EMERGENCY, 6)),
    ]


def _level(before: DegradationLevel, after: DegradationLevel, minutes: int) -> LevelChanged:
    at = T0 + timedelta(minutes=minutes)
    return LevelChanged(account=ACCOUNT, from_level=before, to_level=after, causes=("db: 3 failed writes",), at=at)


def _state(before: CoordinatorState, after: CoordinatorState, minutes: int) -> StateChanged:
    at = T0 + timedelta(minutes=minutes)
    return StateChanged(account=ACCOUNT, from_state=before, to_state=after, by="breaker:daily_loss", reason="r", at=at)


def daemon_events() -> list[BaseModel]:
    return [
        DatabaseOutage(started=True, at=T0 + timedelta(minutes=7), unreachable_seconds=0.0, rows_held=12),
        DatabaseOutage(started=False, at=T0 + timedelta(minutes=9), unreachable_seconds=95.0, rows_held=0),
        DaemonStopped(account=ACCOUNT, run_id=1, reason="signal SIGTERM", at=T0 + timedelta(minutes=10)),
    ]


ALL_KINDS = [
    "level_changed",
    "breaker_tripped",
    "halted",
    "level_changed",
    "database_outage",
    "database_back",
    "daemon_stopped",
]


@pytest.fixture
async def receiver() -> AsyncIterator[AlertReceiver]:
    async with AlertReceiver() as receiver:
        yield receiver


@pytest.fixture
async def bus() -> AsyncIterator[MessageBus]:
    async with MessageBus(clock=FakeClock(T0)) as bus:
        yield bus


async def raise_every_event(alerts: AlertDispatcher, bus: MessageBus) -> None:
    await alerts.follow(bus)
    for topic, event in coordinator_events():
        await bus.publish(bus.message(topic, event, source="coordinator"))
    await bus.drain()
    for event in daemon_events():
        alerts.notify(event)


async def stored(database_url: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT *, t::text AS whole FROM alerts t ORDER BY raised_at, finished_at")
        return [dict(row) for row in rows]
    finally:
        await connection.close()


def refused_url() -> str:
    """A URL on a port nobody listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"https://127.0.0.1:{port}/bot{SECRET_TOKEN}/sendMessage"


async def test_each_event_reaches_the_webhook_once_and_is_stored_delivered_without_the_token(
    receiver: AlertReceiver, bus: MessageBus, migrated_database: Database, migrated_database_url: str
) -> None:
    with capture_logs() as logs:
        async with alert_dispatcher(
            alerts_settings(receiver.url), migrated_database, account=ACCOUNT, run_id=None
        ) as alerts:
            await raise_every_event(alerts, bus)
            await receiver.until(len(ALL_KINDS))
    assert sorted(receiver.kinds()) == sorted(ALL_KINDS)  # each once (the two topics' order is their own)
    assert all(path == f"/bot{SECRET_TOKEN}/sendMessage?chat_id=42" for path in receiver.paths)
    [trip] = [body for body in receiver.bodies if body["kind"] == "breaker_tripped"]
    assert trip["text"] == "triplegain paper: breaker daily_loss tripped: halt — daily loss 6.1% ≥ 5%"
    assert trip["account"] == ACCOUNT
    assert trip["chat_id"] == "42"  # the URL's query, repeated in the body (Telegram reads chat_id there)
    assert trip["payload"]["rule"] == "daily_loss"
    assert trip["at"] == "2024-01-01T10:03:00+00:00"

    rows = await stored(migrated_database_url)
    assert sorted(row["kind"] for row in rows) == sorted(ALL_KINDS)
    assert {(row["outcome"], row["attempts"], row["status_code"]) for row in rows} == {("delivered", 1, 200)}
    assert {row["webhook"] for row in rows} == {f"http://127.0.0.1:{receiver.port}"}
    assert all(row["delivered_at"] is not None for row in rows)
    assert not any(SECRET_TOKEN in row["whole"] or "sendMessage" in row["whole"] for row in rows)
    assert logs
    assert not any(SECRET_TOKEN in str(entry) for entry in logs)
    listed = await list_alerts(migrated_database, account=ACCOUNT, limit=3)
    assert [alert.kind for alert in listed] == ["daemon_stopped", "database_back", "database_outage"]


async def test_a_failing_answer_is_retried_until_it_is_taken(
    receiver: AlertReceiver, bus: MessageBus, migrated_database: Database, migrated_database_url: str
) -> None:
    receiver.push(503, 429)
    async with alert_dispatcher(alerts_settings(receiver.url), migrated_database, account=ACCOUNT, run_id=None) as a:
        a.notify(daemon_events()[-1])
    assert receiver.kinds() == ["daemon_stopped"] * 3
    [row] = await stored(migrated_database_url)
    assert (row["outcome"], row["attempts"], row["status_code"], row["error"]) == ("delivered", 3, 200, None)


async def test_a_refusal_is_not_retried(
    receiver: AlertReceiver, migrated_database: Database, migrated_database_url: str
) -> None:
    receiver.push(404)
    async with alert_dispatcher(alerts_settings(receiver.url), migrated_database, account=ACCOUNT, run_id=None) as a:
        a.notify(daemon_events()[-1])
    [row] = await stored(migrated_database_url)
    assert (row["outcome"], row["attempts"], row["status_code"], row["error"]) == ("failed", 1, 404, "HTTP 404")


async def test_a_webhook_that_is_down_is_retried_and_stored_failed_without_its_token(
    migrated_database: Database, migrated_database_url: str
) -> None:
    url = refused_url()
    with capture_logs() as logs:
        async with alert_dispatcher(alerts_settings(url), migrated_database, account=ACCOUNT, run_id=None) as alerts:
            alerts.notify(daemon_events()[0])
    [row] = await stored(migrated_database_url)
    assert (row["outcome"], row["attempts"], row["status_code"]) == ("failed", 3, None)
    assert row["error"].startswith("ClientConnectorError")
    assert row["webhook"] == url.split("/bot")[0]
    assert SECRET_TOKEN not in row["whole"]
    assert [entry["event"] for entry in logs] == ["alert failed"]
    assert not any(SECRET_TOKEN in str(entry) for entry in logs)


async def test_a_webhook_that_hangs_delays_no_event_and_its_alerts_are_stored_undelivered_at_the_stop(
    receiver: AlertReceiver, bus: MessageBus, migrated_database: Database, migrated_database_url: str
) -> None:
    receiver.hang()
    alerts = alert_dispatcher(alerts_settings(receiver.url), migrated_database, account=ACCOUNT, run_id=None)
    await alerts.follow(bus)
    first, *others = coordinator_events()[1:]
    await bus.publish(bus.message(first[0], first[1], source="coordinator"))
    await receiver.until(1)  # the webhook holds the first alert's POST unanswered from here on
    for topic, event in others:
        await bus.publish(bus.message(topic, event, source="coordinator"))
    await bus.drain()  # every event was handled meanwhile: the bus never waited for the webhook
    for event in daemon_events():
        alerts.notify(event)
    assert alerts.stats().raised == 7
    assert len(receiver.bodies) == 1
    await alerts.aclose(grace_seconds=0.0)

    rows = await stored(migrated_database_url)
    assert sorted((row["kind"], row["outcome"], row["attempts"]) for row in rows) == sorted(
        [("level_changed", "undelivered", 1), *[(kind, "undelivered", 0) for kind in ALL_KINDS[1:]]]
    )


async def test_a_full_queue_stores_the_alert_as_dropped(
    receiver: AlertReceiver, migrated_database: Database, migrated_database_url: str
) -> None:
    receiver.hang()
    settings = alerts_settings(receiver.url, max_pending=1)
    alerts = alert_dispatcher(settings, migrated_database, account=ACCOUNT, run_id=None)
    outage, back, stop = daemon_events()
    alerts.notify(outage)
    await receiver.until(1)
    alerts.notify(back)  # queued behind the outage's
    alerts.notify(stop)  # no room
    assert alerts.stats().dropped == 1
    receiver.release()
    await alerts.aclose()
    rows = await stored(migrated_database_url)
    assert sorted((row["kind"], row["outcome"]) for row in rows) == [
        ("daemon_stopped", "dropped"),
        ("database_back", "delivered"),
        ("database_outage", "delivered"),
    ]
    assert receiver.kinds() == ["database_outage", "database_back"]


async def test_without_webhooks_nothing_is_sent_or_stored(
    bus: MessageBus, migrated_database: Database, migrated_database_url: str
) -> None:
    async with alert_dispatcher(AlertsSettings(), migrated_database, account=ACCOUNT, run_id=None) as alerts:
        await raise_every_event(alerts, bus)
        assert alerts.stats().raised == 0
    assert await stored(migrated_database_url) == []


async def test_the_table_refuses_a_webhook_with_more_than_its_scheme_and_host(migrated_pool: Any) -> None:
    insert = """
        INSERT INTO alerts (id, account, kind, at, text, payload, webhook, outcome, attempts, raised_at, finished_at)
        VALUES (gen_random_uuid(), 'paper', 'halted', now(), 't', '{}', $1, 'failed', 1, now(), now())
    """
    await migrated_pool.execute(insert, "https://api.telegram.org")
    with pytest.raises(asyncpg.CheckViolationError):
        await migrated_pool.execute(insert, f"https://api.telegram.org/bot{SECRET_TOKEN}/sendMessage")


async def test_outcomes_wait_while_the_database_is_out_of_reach_and_are_stored_once(receiver: AlertReceiver) -> None:
    stored_rows: list[AlertRow] = []
    refusals = 2

    async def store(rows: list[AlertRow]) -> None:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise DatabaseError("storing failed on 127.0.0.1:5432/x: connection refused")
        stored_rows.extend(rows)

    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    with capture_logs() as logs:
        alerts = AlertDispatcher(
            alerts_settings(receiver.url), store=store, account=ACCOUNT, run_id=None, wall=WallClock(), sleep=no_wait
        )
        for event in daemon_events():
            alerts.notify(event)
        await receiver.until(3)
        await alerts.aclose()
    assert sorted(row.kind for row in stored_rows) == ["daemon_stopped", "database_back", "database_outage"]
    assert {row.outcome for row in stored_rows} == {"delivered"}
    assert [entry["event"] for entry in logs].count("storing alerts failed") == 2
    assert alerts.stats().stored == 3
