"""Alerts without a network or a database: which event makes which alert, the webhook's URL kept secret in
settings, errors, logs and rows, the retry waits, and the daemon's outage watch telling an outage's start and end
once each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from triplegain.alerts.alert import AlertKind, alert_for
from triplegain.alerts.delivery import wait_seconds, worth_retrying
from triplegain.alerts.settings import AlertsRetrySettings, AlertsSettings
from triplegain.alerts.webhook import Webhook, redacted
from triplegain.clock import FakeClock
from triplegain.config import load_settings, settings_digest
from triplegain.daemon.outage import StoreWatch
from triplegain.errors import ConfigError
from triplegain.model import (
    BreakerAction,
    BreakerRule,
    BreakerTripped,
    CoordinatorState,
    DaemonStopped,
    DatabaseOutage,
    DecisionAction,
    DecisionMade,
    DegradationLevel,
    LevelChanged,
    StateChanged,
)

pytestmark = pytest.mark.timeout(10)

AT = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
TOKEN = "123456:AAE-secret"
TELEGRAM = f"https://api.telegram.org/bot{TOKEN}/sendMessage?chat_id=42"


def level(before: DegradationLevel, after: DegradationLevel) -> LevelChanged:
    return LevelChanged(account="a", from_level=before, to_level=after, causes=("llm: 4/5 failed",), at=AT)


def state(before: CoordinatorState | None, after: CoordinatorState) -> StateChanged:
    return StateChanged(account="a", from_state=before, to_state=after, by="operator", reason="checks", at=AT)


L = DegradationLevel
S = CoordinatorState
EVENTS: list[tuple[BaseModel, AlertKind | None]] = [
    (
        BreakerTripped(
            account="a",
            rule=BreakerRule.CONSECUTIVE_LOSSES,
            action=BreakerAction.PAUSE,
            reason="5 losses in a row",
            at=AT,
            until=AT + timedelta(hours=4),
        ),
        AlertKind.BREAKER_TRIPPED,
    ),
    (state(S.RUNNING, S.HALTED), AlertKind.HALTED),
    (state(S.PAUSED, S.HALTED), AlertKind.HALTED),
    (state(S.HALTED, S.HALTED), None),
    (state(S.RUNNING, S.PAUSED), None),
    (state(S.HALTED, S.RUNNING), None),
    (level(L.NORMAL, L.REDUCED), None),
    (level(L.REDUCED, L.LIMITED), AlertKind.LEVEL_CHANGED),
    (level(L.NORMAL, L.EMERGENCY), AlertKind.LEVEL_CHANGED),
    (level(L.EMERGENCY, L.LIMITED), AlertKind.LEVEL_CHANGED),
    (level(L.LIMITED, L.NORMAL), None),
    (DatabaseOutage(started=True, at=AT, unreachable_seconds=0, rows_held=3), AlertKind.DATABASE_OUTAGE),
    (DatabaseOutage(started=False, at=AT, unreachable_seconds=61, rows_held=0), AlertKind.DATABASE_BACK),
    (DaemonStopped(account="a", run_id=3, reason="replay finished", at=AT), AlertKind.DAEMON_STOPPED),
    (
        DecisionMade(
            decision_id="00000000-0000-0000-0000-000000000001",
            account="a",
            symbol="BTC/USDT",
            at=AT,
            action=DecisionAction.BUY,
            confidence=0.7,
            reason="r",
        ),
        None,
    ),
]


@pytest.mark.parametrize(("event", "kind"), EVENTS)
def test_which_event_makes_which_alert(event: BaseModel, kind: AlertKind | None) -> None:
    alert = alert_for(event)
    assert (alert.kind if alert is not None else None) == kind
    if alert is not None:
        assert alert.at == AT
        assert alert.payload == event.model_dump(mode="json")


def test_the_alerts_text_says_what_happened() -> None:
    texts = {kind: alert.text for event, kind in EVENTS if kind and (alert := alert_for(event))}
    assert texts[AlertKind.BREAKER_TRIPPED] == (
        "breaker consecutive_losses tripped: pause until 2024-01-01 14:00 UTC — 5 losses in a row"
    )
    assert texts[AlertKind.HALTED] == "halted by operator — checks"
    assert texts[AlertKind.LEVEL_CHANGED] == "degradation level EMERGENCY → LIMITED — llm: 4/5 failed"
    assert texts[AlertKind.DATABASE_BACK] == "database back after 61 s out of reach"
    assert texts[AlertKind.DAEMON_STOPPED] == "daemon stopped (run 3): replay finished"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (TELEGRAM, "https://api.telegram.org"),
        ("http://user:pw@hooks.example:8080/x/y?key=k#f", "http://hooks.example:8080"),
        ("http://[::1]:9000/hook", "http://[::1]:9000"),
    ],
)
def test_a_webhook_is_shown_as_its_scheme_and_host_only(url: str, shown: str) -> None:
    webhook = Webhook(url)
    assert redacted(url) == shown == webhook.shown
    assert repr(webhook) == f"Webhook({shown})"


def test_masking_takes_every_secret_part_out_of_a_text() -> None:
    webhook = Webhook("http://user:pw@hooks.example/hook/s3cr3t?key=k3y")
    text = webhook.mask("failed: url='http://user:pw@hooks.example/hook/s3cr3t?key=k3y' path /hook/s3cr3t key=k3y")
    assert "s3cr3t" not in text
    assert "k3y" not in text
    assert "pw" not in text
    assert text == "failed: url='http://hooks.example…' path … …"


def test_webhooks_are_secret_in_the_settings_and_their_errors() -> None:
    settings = load_settings(environ={"TRIPLEGAIN_ALERTS__WEBHOOKS": f"{TELEGRAM} http://127.0.0.1:9/h"})
    assert [url.get_secret_value() for url in settings.alerts.webhooks] == [TELEGRAM, "http://127.0.0.1:9/h"]
    assert TOKEN not in repr(settings)
    assert TOKEN not in settings.model_dump_json()
    other = load_settings(environ={"TRIPLEGAIN_ALERTS__WEBHOOKS": "http://a/1 http://b/2"})
    assert settings_digest(settings) == settings_digest(other)  # the digest a run records holds no URL
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"TRIPLEGAIN_ALERTS__WEBHOOKS": f"ftp://x/bot{TOKEN} https://:1/bot{TOKEN}"})
    assert caught.value.problems == [
        "alerts.webhooks.0: (hidden) — an http:// or https:// URL is allowed",
        "alerts.webhooks.1: (hidden) — an http(s) URL with a host and no spaces is allowed",
    ]


def test_retries_double_their_wait_up_to_the_bound_and_only_for_answers_that_may_change() -> None:
    retry = AlertsRetrySettings(max_attempts=6, backoff_initial_seconds=1.0, backoff_max_seconds=5.0)
    assert [wait_seconds(attempt, retry) for attempt in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    statuses = (200, 400, 401, 404, 408, 429, 500, 503)
    assert [status for status in statuses if worth_retrying(status)] == [408, 429, 500, 503]
    assert AlertsSettings().webhooks == ()


class _Never:
    def is_set(self) -> bool:
        return False


@dataclass
class _Holder:
    """Stands in for the writer, the broker and the coordinator: rows held and failures so far."""

    failures: int = 0
    held: int = 0
    overflowed: _Never = field(default_factory=_Never)

    def stats(self) -> _Holder:
        return self

    @property
    def buffered(self) -> int:
        return self.held

    @property
    def consecutive_failures(self) -> int:
        return self.failures


@dataclass
class _Quiet:
    write_failures: int = 0
    save_failures: int = 0
    unstored: int = 0
    unsaved_rows: int = 0
    overflowed: _Never = field(default_factory=_Never)


def test_the_outage_watch_tells_an_outage_start_and_end_once_each() -> None:
    writer, told = _Holder(), []
    clock = FakeClock(AT)
    watch = StoreWatch(
        writer,  # type: ignore[arg-type]
        _Quiet(),  # type: ignore[arg-type]
        _Quiet(),  # type: ignore[arg-type]
        clock,
        writer_bound=10,
        coordinator_bound=10,
        on_outage=told.append,
    )
    watch.observe()
    writer.failures, writer.held = 1, 4
    for _ in range(3):
        watch.observe()
        clock.advance(timedelta(seconds=30))
    writer.failures, writer.held = 0, 0
    watch.observe()
    watch.observe()
    assert told == [
        DatabaseOutage(started=True, at=AT, unreachable_seconds=0.0, rows_held=4),
        DatabaseOutage(started=False, at=AT + timedelta(seconds=90), unreachable_seconds=90.0, rows_held=0),
    ]
