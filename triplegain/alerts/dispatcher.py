"""The alert dispatcher: events in (from the bus, or handed over by the daemon), one POST per webhook out, every
alert stored with what became of it. Trading never waits for it.

    async with AlertDispatcher(settings.alerts, store=..., account=account, run_id=run_id, wall=WallClock()) as alerts:
        await alerts.follow(system.bus)           # risk_alerts and system_events
        alerts.notify(DatabaseOutage(...))        # the daemon's own events
        ...
        alerts.notify(DaemonStopped(...))
    # closing gives alerts being sent ``stop_grace_seconds``, then stores the rest as undelivered

``notify`` never waits: it maps the event (``alert.alert_for``) and puts the alert in each webhook's queue (one
queue and one task per webhook, so a webhook that is down delays only its own alerts). A full queue
(``max_pending``) does not take the alert: it is stored as ``dropped`` and counted. Each webhook's task sends its
alerts in order (``delivery.deliver``: retried with backoff); the outcome goes to a list that a task of its own
stores (``store``, the ``alerts`` table), trying again while the database is out of reach, so neither a webhook
nor the database holds the other up. With no webhook set, the dispatcher does nothing at all.

The body of each POST (JSON) is Telegram's ``sendMessage`` shape with the alert's fields beside it, after the
webhook URL's own query parameters (``?chat_id=42`` puts ``"chat_id": "42"`` in the body)::

    {"chat_id": "42", "text": "triplegain paper: breaker daily_loss tripped: halt — …", "kind": "breaker_tripped",
     "account": "paper", "run_id": 12, "at": "2024-01-01T10:05:00+00:00", "payload": {…the event's fields…}}
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any
from uuid import uuid4

import aiohttp
import structlog
from pydantic import BaseModel

from triplegain.alerts.alert import Alert, alert_for
from triplegain.alerts.delivery import Attempts, Sleep, deliver
from triplegain.alerts.settings import AlertsSettings
from triplegain.alerts.webhook import Webhook
from triplegain.bus import Message, MessageBus, Subscription, Topic
from triplegain.clock import Clock, WallClock
from triplegain.errors import DatabaseError
from triplegain.store import Database
from triplegain.store.alerts import AlertOutcome, AlertRow, store_alerts

logger = structlog.get_logger(__name__)

StoreAlerts = Callable[[list[AlertRow]], Awaitable[None]]
FOLLOWED_TOPICS = (Topic.RISK_ALERTS, Topic.SYSTEM_EVENTS)
STORE_RETRY_INITIAL_SECONDS = 0.5
STORE_RETRY_MAX_SECONDS = 15.0
STORE_AT_CLOSE_SECONDS = 5.0
"""The last try at storing the outcomes when the dispatcher closes: a database still gone does not hold the
daemon's exit up longer."""
MAX_UNSTORED_ROWS = 10_000
"""Alert rows kept while the database is out of reach; past it the oldest is let go, counted and logged (alerts
are a handful an hour: this is an outage of days)."""


@dataclass
class AlertStats:
    """Counts since the dispatcher started, per alert and webhook (``raised`` counts alerts)."""

    raised: int = 0
    delivered: int = 0
    failed: int = 0
    undelivered: int = 0
    dropped: int = 0
    stored: int = 0
    not_stored: int = 0


@dataclass
class _Pending:
    alert: Alert
    raised_at: datetime
    attempts: Attempts = field(default_factory=Attempts)


@dataclass
class _Lane:
    """One webhook: its queue and the task sending from it."""

    webhook: Webhook
    queue: asyncio.Queue[_Pending]
    worker: asyncio.Task[None] | None = None
    sending: bool = False


class AlertDispatcher:
    """Sends alerts to the webhooks of ``settings`` and stores each one's outcome through ``store``."""

    def __init__(
        self,
        settings: AlertsSettings,
        *,
        store: StoreAlerts,
        account: str,
        run_id: int | None,
        wall: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._store = store
        self._account = account
        self._run_id = run_id
        self._wall = wall
        self._sleep = sleep
        self._stats = AlertStats()
        self._closed = False
        self._subscriptions: list[Subscription] = []
        self._unstored: list[AlertRow] = []
        self._stored_wake = asyncio.Event()
        self._lanes = [
            _Lane(Webhook(url.get_secret_value()), asyncio.Queue(settings.max_pending)) for url in settings.webhooks
        ]
        self._session: aiohttp.ClientSession | None = None
        self._storer: asyncio.Task[None] | None = None
        if self._lanes:
            self._session = aiohttp.ClientSession()
            self._storer = asyncio.create_task(self._store_loop(), name="alerts-store")
            for lane in self._lanes:
                lane.worker = asyncio.create_task(self._send_loop(lane), name=f"alerts-send:{lane.webhook.shown}")

    def stats(self) -> AlertStats:
        """A copy of the counts."""
        return AlertStats(**vars(self._stats))

    async def follow(self, bus: MessageBus) -> None:
        """Take the coordinator's events from ``bus`` (breaker trips, state and level changes)."""
        if not self._lanes:
            return
        for topic in FOLLOWED_TOPICS:
            self._subscriptions.append(await bus.subscribe(topic, self._on_message, name=f"alerts.{topic.value}"))

    async def _on_message(self, message: Message) -> None:
        if isinstance(message.payload, BaseModel):
            self.notify(message.payload)

    def notify(self, event: BaseModel) -> None:
        """Raise the alert ``event`` makes, if any, at every webhook; never waits."""
        if not self._lanes:
            return
        alert = alert_for(event)
        if alert is None:
            return
        if self._closed:
            logger.warning("alert raised after the dispatcher closed: not sent", kind=alert.kind.value)
            return
        self._stats.raised += 1
        raised_at = self._wall.now()
        for lane in self._lanes:
            pending = _Pending(alert, raised_at)
            try:
                lane.queue.put_nowait(pending)
            except asyncio.QueueFull:
                logger.warning(
                    "alert dropped: the webhook's queue is full",
                    webhook=lane.webhook.shown,
                    kind=alert.kind.value,
                    max_pending=self._settings.max_pending,
                    dropped=self._stats.dropped + 1,
                )
                self._finish(lane, pending, "dropped")

    async def _send_loop(self, lane: _Lane) -> None:
        assert self._session is not None
        while True:
            pending = await lane.queue.get()
            lane.sending = True
            try:
                delivered = await deliver(
                    self._session,
                    lane.webhook,
                    self._body(pending.alert, lane.webhook),
                    retry=self._settings.retry,
                    timeout_seconds=self._settings.timeout_seconds,
                    wall=self._wall,
                    sleep=self._sleep,
                    attempts=pending.attempts,
                )
            except asyncio.CancelledError:
                self._finish(lane, pending, "undelivered")
                raise
            finally:
                lane.sending = False
                lane.queue.task_done()
            self._finish(lane, pending, "delivered" if delivered else "failed")

    def _body(self, alert: Alert, webhook: Webhook) -> dict[str, Any]:
        return {
            **webhook.query_fields,
            "text": f"triplegain {self._account}: {alert.text}",
            "kind": alert.kind.value,
            "account": self._account,
            "run_id": self._run_id,
            "at": alert.at.isoformat(),
            "payload": alert.payload,
        }

    def _finish(self, lane: _Lane, pending: _Pending, outcome: AlertOutcome) -> None:
        """Count the outcome, log it and hand its row to the store task."""
        attempts, alert = pending.attempts, pending.alert
        setattr(self._stats, outcome, getattr(self._stats, outcome) + 1)
        fields = {"webhook": lane.webhook.shown, "kind": alert.kind.value, "attempts": attempts.count}
        if outcome == "delivered":
            logger.info("alert delivered", **fields)
        else:
            logger.warning(f"alert {outcome}", **fields, status_code=attempts.status_code, error=attempts.error)
        self._unstored.append(
            AlertRow(
                id=uuid4(),
                account=self._account,
                run_id=self._run_id,
                kind=alert.kind.value,
                at=alert.at,
                text=alert.text,
                payload=alert.payload,
                webhook=lane.webhook.shown,
                outcome=outcome,
                attempts=attempts.count,
                status_code=attempts.status_code,
                error=attempts.error,
                raised_at=pending.raised_at,
                delivered_at=attempts.delivered_at,
                finished_at=self._wall.now(),
            )
        )
        if len(self._unstored) > MAX_UNSTORED_ROWS:
            lost = self._unstored.pop(0)
            self._stats.not_stored += 1
            logger.error("alert row not stored: too many wait for the database", kind=lost.kind, webhook=lost.webhook)
        self._stored_wake.set()

    async def _store_loop(self) -> None:
        """Store the finished alerts as they come; while the database is out of reach, try again with backoff."""
        backoff = STORE_RETRY_INITIAL_SECONDS
        while True:
            await self._stored_wake.wait()
            self._stored_wake.clear()
            while self._unstored:
                if await self._store_unstored():
                    backoff = STORE_RETRY_INITIAL_SECONDS
                else:
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, STORE_RETRY_MAX_SECONDS)

    async def _store_unstored(self, timeout_seconds: float | None = None) -> bool:
        rows = list(self._unstored)
        try:
            await asyncio.wait_for(self._store(rows), timeout_seconds)
        except (DatabaseError, TimeoutError) as error:
            logger.warning("storing alerts failed", rows=len(rows), error=str(error) or type(error).__name__)
            return False
        del self._unstored[: len(rows)]
        self._stats.stored += len(rows)
        return True

    async def aclose(self, *, grace_seconds: float | None = None) -> None:
        """Stop taking alerts; give those queued or being sent ``grace_seconds`` (default ``stop_grace_seconds``),
        store the rest as undelivered, and store every outcome (once more if the database is still gone)."""
        if self._closed:
            return
        self._closed = True
        for subscription in self._subscriptions:
            if subscription.active:
                await subscription.unsubscribe()
        if not self._lanes:
            return
        grace = self._settings.stop_grace_seconds if grace_seconds is None else grace_seconds
        cancelled = False
        if any(lane.sending or not lane.queue.empty() for lane in self._lanes):
            sent = asyncio.gather(*(lane.queue.join() for lane in self._lanes))
            try:
                await asyncio.wait_for(sent, grace)
            except TimeoutError:
                logger.warning("alerts still being sent at the stop: stored as undelivered", grace_seconds=grace)
            except asyncio.CancelledError:  # stopping at once: what is left is stored as undelivered first
                cancelled = True
        workers = [lane.worker for lane in self._lanes if lane.worker is not None]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for lane in self._lanes:
            while not lane.queue.empty():
                self._finish(lane, lane.queue.get_nowait(), "undelivered")
        if self._session is not None:
            await self._session.close()
        if self._storer is not None:
            self._storer.cancel()
            await asyncio.gather(self._storer, return_exceptions=True)
        if self._unstored and not await self._store_unstored(STORE_AT_CLOSE_SECONDS):
            self._stats.not_stored += len(self._unstored)
            logger.error("alert rows not stored", rows=len(self._unstored))
            self._unstored.clear()
        if cancelled:
            raise asyncio.CancelledError

    async def __aenter__(self) -> AlertDispatcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def alert_dispatcher(settings: AlertsSettings, db: Database, *, account: str, run_id: int | None) -> AlertDispatcher:
    """A dispatcher storing into ``db``'s ``alerts`` table, on the wall clock (the daemon's)."""

    async def store(rows: list[AlertRow]) -> None:
        await store_alerts(db, rows)

    return AlertDispatcher(settings, store=store, account=account, run_id=run_id, wall=WallClock())
