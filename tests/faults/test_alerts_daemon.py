"""Alerts from a real daemon run through a database outage, to a local webhook that holds its first POST.

The daemon runs in this process on a paced synthetic replay, its database behind the TCP proxy
(``test_db_outage_daemon``'s set-up). The webhook leaves its first alert unanswered while the database is cut:
decisions go on regardless. Once both are back, every alert the run raised reaches the webhook exactly once — the
outage, its end, each level change to LIMITED or EMERGENCY, the stop — and is stored delivered, without the
webhook's token anywhere in the table or the logs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from tests.faults.postgres_proxy import PostgresProxy
from tests.faults.test_db_outage_daemon import (  # the outage test's set-up, fixtures included
    WAIT_SECONDS,
    LogEvents,
    log_events,  # noqa: F401
    settings_for,
    start,
    through_proxy,  # noqa: F401
)
from tests.stubs.alert_receiver import SECRET_TOKEN, AlertReceiver
from triplegain.alerts.settings import AlertsSettings

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(40)]


async def test_a_daemon_alerts_each_event_of_an_outage_once_and_a_hanging_webhook_delays_no_decision(
    tmp_path: Path, proxy: PostgresProxy, through_proxy: str, log_events: LogEvents  # noqa: F811
) -> None:
    async with AlertReceiver() as receiver:
        alerts = AlertsSettings.model_validate(
            {"webhooks": [receiver.url], "timeout_seconds": 30, "retry": {"backoff_initial_seconds": 0}}
        )
        settings = settings_for(tmp_path, count=90).model_copy(update={"alerts": alerts})
        receiver.hang()
        run = start(settings, speed=6_000.0)  # 50 ms a 5-minute candle

        await log_events.until(lambda: len(log_events.named("decision")) >= 10, "decisions before the outage")
        await proxy.refuse()
        await receiver.until(1)  # the outage's alert (or a level change), unanswered from here on
        decided = len(log_events.named("decision"))
        await log_events.until(
            lambda: len(log_events.named("decision")) >= decided + 12, "decisions while the webhook hangs"
        )
        assert len(receiver.bodies) == 1  # the webhook's queue waits behind its first alert; trading does not
        await proxy.accept()
        receiver.release()
        summary = await asyncio.wait_for(run, WAIT_SECONDS)

    assert summary.candles == 90
    levels = [
        event["to_level"]
        for event in log_events.named("degradation level changed")
        if event["to_level"] in ("LIMITED", "EMERGENCY")
    ]
    assert "EMERGENCY" in levels
    kinds = Counter(receiver.kinds())
    assert kinds == Counter(
        {"database_outage": 1, "database_back": 1, "daemon_stopped": 1, "level_changed": len(levels)}
    )
    assert receiver.bodies[-1]["text"] == f"triplegain paper: daemon stopped (run {summary.run_id}): replay finished"
    connection = await asyncpg.connect(through_proxy)
    try:
        rows = await connection.fetch("SELECT kind, outcome, run_id, t::text AS whole FROM alerts t")
    finally:
        await connection.close()
    assert Counter(row["kind"] for row in rows) == kinds
    assert {(row["outcome"], row["run_id"]) for row in rows} == {("delivered", summary.run_id)}
    assert not any(SECRET_TOKEN in row["whole"] for row in rows)
    assert not any(SECRET_TOKEN in str(event) for event in log_events.events)
