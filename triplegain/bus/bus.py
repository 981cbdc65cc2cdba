"""``MessageBus``: fan-out of published messages to per-subscription queues, each drained by its own worker."""

from __future__ import annotations

import asyncio
import math
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from contextvars import ContextVar
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any
from uuid import UUID

import structlog
from pydantic import BaseModel

from triplegain.bus.dead_letters import DeadLetter, DeadLetterBox, DeadLetterHook, DeadLetterReason, LogThinner
from triplegain.bus.message import Message, Priority, Topic, new_message, too_long
from triplegain.bus.queue import Envelope, SubscriptionQueue
from triplegain.bus.settings import BusSettings, Overflow, TopicSettings
from triplegain.bus.stats import BusStats, Counters, LatencySummary, SubscriptionStats
from triplegain.clock import Clock, WallClock
from triplegain.errors import ResourceClosed

logger = structlog.get_logger(__name__)

Handler = Callable[[Message], Awaitable[None]]
MessageFilter = Callable[[Message], bool]

# The bus whose worker runs this task, in a worker and in every task started from one (they inherit the context,
# ``asyncio.wait_for``'s included). A publish made there must not wait for room, or two handlers publishing into
# each other's full queues would deadlock; and drain() or aclose() of that bus would wait for the handler itself.
_delivering: ContextVar[MessageBus | None] = ContextVar("triplegain_bus_delivering", default=None)

# A handler that raises one of these fails its message like any error, then the error propagates and the worker
# stops: Ctrl-C or sys.exit() in a handler still stops the program, and a worker whose coroutine is being closed
# (GeneratorExit) lets it close.
_STOPS_THE_WORKER = (KeyboardInterrupt, SystemExit, GeneratorExit)

# Reading the wall clock (``now()``) for every delivery costs more than the rest of a no-op delivery, so a
# message's deadline is also put on the clock's cheap ``monotonic()`` scale, through a pair of readings of both
# clocks taken at most ``CALIBRATION_INTERVAL`` seconds before publish (monotonic first: time passing between the
# two readings can only move deadlines earlier). A worker reads ``now()`` only from ``EXPIRY_MARGIN`` seconds plus
# ``WALL_CLOCK_DRIFT`` of the distance to that pair before the deadline: the drift covers NTP slewing one clock
# against the other (at most 500 ppm). So a message is never delivered at or past its deadline, unless the wall
# clock is *stepped* forward after the pair was read.
CALIBRATION_INTERVAL = 1.0
EXPIRY_MARGIN = 0.001
WALL_CLOCK_DRIFT = 0.001
_DRIFTED = 1 - WALL_CLOCK_DRIFT  # a positive distance to a deadline, less the drift allowance

_OUTCOME_OF: Mapping[DeadLetterReason, str] = {
    DeadLetterReason.EXPIRED: "expired",
    DeadLetterReason.HANDLER_ERROR: "failed",
    DeadLetterReason.FILTER_ERROR: "failed",
    DeadLetterReason.DROPPED: "dropped",
    DeadLetterReason.UNSUBSCRIBED: "discarded",
    DeadLetterReason.CLOSED: "discarded",
}


class BusClosed(ResourceClosed):
    """The bus was closed: it accepts no more publishes or subscriptions."""


class Subscription:
    """One subscriber of one topic: its queue, its worker's counts, and ``unsubscribe()``."""

    def __init__(
        self,
        bus: MessageBus,
        *,
        name: str,
        topic: Topic,
        handler: Handler,
        message_filter: MessageFilter | None,
        overflow: Overflow,
        maxsize: int,
        latency_window: int,
    ) -> None:
        self.name = name
        self.topic = topic
        self.overflow = overflow
        self._bus = bus
        self._handler = handler
        self._filter = message_filter
        self._queue = SubscriptionQueue(maxsize)
        self._counts = Counters()
        self._latencies: deque[float] = deque(maxlen=latency_window)
        # The envelope the worker has taken and not yet given an outcome; a handler call is in progress meanwhile.
        self._in_hand: Envelope | None = None
        self._worker: asyncio.Task[None] | None = None
        self._error_log = LogThinner()
        # Why it stopped (unsubscribed or closed): also the fate of a message whose publisher was waiting for room.
        self._retired_as = DeadLetterReason.UNSUBSCRIBED

    @property
    def active(self) -> bool:
        """False once unsubscribed or the bus closed."""
        return not self._queue.closed

    async def unsubscribe(self) -> None:
        """Stop deliveries now; what is still queued is dead-lettered with reason ``unsubscribed``.

        A handler call already in progress is not interrupted: it finishes on its own (``drain()`` and
        ``aclose()`` wait for it). Returns without waiting for it, so a handler may unsubscribe any
        subscription, its own included. Unsubscribing twice does nothing.
        """
        self._bus._retire(self, DeadLetterReason.UNSUBSCRIBED)

    def stats(self) -> SubscriptionStats:
        return SubscriptionStats(
            name=self.name,
            topic=self.topic,
            overflow=self.overflow,
            maxsize=self._queue.maxsize,
            depth=len(self._queue),
            high_water=self._queue.high_water,
            running=self._in_hand is not None,
            latency=LatencySummary.of(self._latencies),
            **self._counts.snapshot(),
        )


class MessageBus:
    """In-process async priority message bus (see the package docstring for the semantics)."""

    def __init__(
        self,
        config: BusSettings | None = None,
        *,
        clock: Clock | None = None,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        self._config = config or BusSettings()
        self._clock: Clock = clock or WallClock()
        self._topic_settings: dict[Topic, TopicSettings] = {
            topic: getattr(self._config.topics, topic.value) for topic in Topic
        }
        self._routes = {
            topic: _Route(timedelta(seconds=settings.ttl_seconds)) for topic, settings in self._topic_settings.items()
        }
        self._subscriptions: dict[str, Subscription] = {}
        self._dead_letters = DeadLetterBox(self._config.dead_letter_limit, on_dead_letter)
        # Counts live on each subscription (one increment per pair, not two); the bus's totals add them up.
        # ``_retiring``: retired subscriptions whose worker may still count a handler call in progress; once
        # it has stopped, their counts move into ``_retired_counts``.
        self._retiring: set[Subscription] = set()
        self._retired_counts = Counters()
        self._published = 0
        self._monotonic = self._clock.monotonic
        self._calibrate()
        self._waiting_publishers = 0
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._workers: set[asyncio.Task[None]] = set()
        self._closed = False
        self._close_finished = asyncio.Event()

    async def __aenter__(self) -> MessageBus:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def clock(self) -> Clock:
        return self._clock

    def message(
        self,
        topic: Topic,
        payload: BaseModel | Mapping[str, Any],
        *,
        source: str,
        priority: Priority = Priority.NORMAL,
        ttl: timedelta | None = None,
        correlation_id: UUID | None = None,
        symbol: str | None = None,
    ) -> Message:
        """A new message stamped with this bus's clock."""
        return new_message(topic, source, payload, self._clock.now(), priority, ttl, correlation_id, symbol)

    async def publish(self, message: Message) -> None:
        """Put ``message`` in the queue of every matching subscription and return; never awaits a handler.

        Waits only for a full ``block`` queue (and never when called from a handler); if that subscription is
        unsubscribed meanwhile, the message is dead-lettered for it (``unsubscribed``) and publishing goes on.
        Raises ``BusClosed`` once ``aclose()`` has begun, including in a publisher that was waiting for room, and
        ``ValueError``, before keeping or counting anything, when the message's deadline (with its topic's TTL)
        is past the last representable time.
        """
        if self._closed:
            raise BusClosed(f"cannot publish {message.topic.value} message {message.id}: the bus is closed")
        route = self._routes[message.topic]
        ttl = message.ttl
        try:
            expires_at = message.created_at + (route.ttl if ttl is None else ttl)
        except OverflowError:
            raise too_long(message.created_at, route.ttl if ttl is None else ttl) from None
        self._published += 1
        history = route.history.get(message.symbol)
        if history is None:
            history = route.history[message.symbol] = deque(maxlen=self._config.history_size)
        history.append(message)
        subscriptions = route.subscriptions
        if not subscriptions:
            return
        published_at = self._monotonic()
        if published_at - self._calibrated_monotonic > CALIBRATION_INTERVAL:
            self._calibrate()
        # The deadline on the monotonic scale too, less a margin for how far the two clocks may have drifted apart.
        if message.created_at >= self._calibrated_now:
            # Created since the clocks were read, as messages mostly are: the deadline is at least the TTL after the
            # readings, so the TTL alone gives a check time that is, if anything, early (see _calibrate).
            check_expiry_at = (
                route.fresh_check_expiry_at if ttl is None else self._fresh_check_base + ttl.total_seconds() * _DRIFTED
            )
        else:
            until = (expires_at - self._calibrated_now).total_seconds()
            check_expiry_at = self._calibrated_monotonic + until - abs(until) * WALL_CLOCK_DRIFT - EXPIRY_MARGIN
        envelope = Envelope(message, expires_at, published_at, check_expiry_at)
        for subscription in subscriptions:
            if subscription._filter is not None and not self._accepts(subscription, message):
                continue
            if subscription._queue.offer(envelope):  # the common case; what _admit() does, inlined
                subscription._counts.enqueued += 1
            elif subscription._queue.closed:  # retired while this publisher waited for room in another queue
                continue
            elif subscription.overflow is Overflow.DROP_OLDEST_LOWEST:
                self._drop_for(subscription, envelope)
            elif _delivering.get() is not None:
                subscription._counts.overflow_admitted += 1
                self._admit(subscription, envelope)
            else:
                await self._admit_when_room(subscription, envelope)

    async def subscribe(
        self,
        topic: Topic,
        handler: Handler,
        *,
        name: str,
        filter: MessageFilter | None = None,
        maxsize: int | None = None,
        overflow: Overflow | None = None,
    ) -> Subscription:
        """Start delivering ``topic`` messages to ``handler`` (``async def handler(msg)``) from a worker task.

        ``name`` must be unique among active subscriptions. ``filter`` is a sync predicate applied at publish
        time. ``maxsize`` and ``overflow`` default to the topic's settings.
        """
        if self._closed:
            raise BusClosed(f"cannot subscribe {name!r}: the bus is closed")
        if name in self._subscriptions:
            raise ValueError(f"a subscription named {name!r} is already active")
        settings = self._topic_settings[topic]
        subscription = Subscription(
            self,
            name=name,
            topic=topic,
            handler=handler,
            message_filter=filter,
            overflow=settings.overflow if overflow is None else overflow,
            maxsize=maxsize if maxsize is not None else settings.maxsize or self._config.default_maxsize,
            latency_window=self._config.latency_window,
        )
        self._subscriptions[name] = subscription
        route = self._routes[topic]
        route.subscriptions = (*route.subscriptions, subscription)
        worker = asyncio.create_task(self._deliver(subscription), name=f"bus-worker:{name}")
        subscription._worker = worker
        self._workers.add(worker)
        worker.add_done_callback(lambda _: self._worker_stopped(subscription, worker))
        return subscription

    def latest(self, topic: Topic, symbol: str | None = None, *, include_expired: bool = False) -> Message | None:
        """The newest message published for (topic, symbol), or None if there is none or it has expired.

        Only the newest counts: an older message is never returned in place of an expired newer one.
        ``symbol=None`` means messages published without a symbol. ``include_expired``: the newest even if it
        has expired (a reader that tells "stale" from "missing" checks ``expires_at`` itself).
        """
        history = self._routes[topic].history.get(symbol)
        if not history:
            return None
        newest = history[-1]
        if not include_expired and self._clock.now() >= self.expires_at(newest):
            return None
        return newest

    def expires_at(self, message: Message) -> datetime:
        """When ``message`` expires: its own TTL, else its topic's."""
        return message.expires_at(self._routes[message.topic].ttl)

    def history(self, topic: Topic, symbol: str | None = None) -> list[Message]:
        """The last ``history_size`` messages published for (topic, symbol), oldest first, expired included."""
        return list(self._routes[topic].history.get(symbol, ()))

    def stats(self) -> BusStats:
        totals = Counters.total(
            self._retired_counts,
            *(subscription._counts for subscription in self._subscriptions.values()),
            *(subscription._counts for subscription in self._retiring),
        )
        return BusStats(
            published=self._published,
            dead_letters_kept=len(self._dead_letters),
            dead_letters_evicted=self._dead_letters.evicted,
            dead_letter_hook_errors=self._dead_letters.hook_errors,
            subscriptions=tuple(subscription.stats() for subscription in self._subscriptions.values()),
            **totals.snapshot(),
        )

    def dead_letter(self, message: Message, *, by: str, reason: DeadLetterReason) -> None:
        """Keep a message that was never published here as a dead letter of ``by`` (a bridge's ingress: a message
        from another process that expired in transit), handed to ``on_dead_letter`` like any other."""
        self._dead_letters.add(DeadLetter(message=message, subscription=by, reason=reason, at=self._clock.now()))

    def dead_letters(self) -> list[DeadLetter]:
        """The dead letters kept (the last ``dead_letter_limit``), oldest first."""
        return self._dead_letters.letters()

    async def drain(self) -> None:
        """Return once every queue is empty, no handler is running and no publisher waits for room.

        Messages that handlers publish meanwhile are waited for too. Must not be awaited by a handler of this
        bus, nor by a task one started (it would wait for itself): that raises ``RuntimeError`` at once.
        """
        self._refuse_from_handler("drain")
        loop = asyncio.get_running_loop()
        while not self._idle():
            idle = loop.create_future()
            self._idle_waiters.append(idle)
            await idle

    async def aclose(self) -> None:
        """Refuse new publishes (waiting publishers get ``BusClosed``), drain for up to
        ``close_timeout_seconds``, then stop the workers and dead-letter whatever is left with reason
        ``closed``. Afterwards ``stats().accounted == stats().enqueued``. Calling it again waits for the first.
        """
        self._refuse_from_handler("close")
        if self._closed:
            await self._close_finished.wait()
            return
        self._closed = True
        for subscription in self._subscriptions.values():
            subscription._queue.release_waiting()
        with suppress(TimeoutError):
            async with asyncio.timeout(self._config.close_timeout_seconds):
                await self.drain()
        workers = list(self._workers)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for subscription in list(self._subscriptions.values()):
            self._retire(subscription, DeadLetterReason.CLOSED)
        self._close_finished.set()

    async def _deliver(self, subscription: Subscription) -> None:
        """The worker: deliver one message at a time, highest priority first, until unsubscribed.

        Taking one message per turn of the loop (not a batch) keeps priority exact: an URGENT message published
        while a handler runs goes before everything still queued. Everything the loop uses per message is
        bound to a local first: this loop runs once per (message, subscription) pair. A message taken from the
        queue stays ``_in_hand`` until it has its outcome; if the worker stops before (cancelled by ``aclose()``),
        ``_worker_stopped`` gives it one.
        """
        _delivering.set(self)
        worker = asyncio.current_task()
        assert worker is not None
        cancelling = worker.cancelling
        queue, handler, counts = subscription._queue, subscription._handler, subscription._counts
        pop, record_latency = queue.pop, subscription._latencies.append
        monotonic, now = self._monotonic, self._clock.now
        while True:
            envelope = pop()
            if envelope is None:
                if queue.closed:
                    return
                if self._idle_waiters:
                    self._wake_idle()
                await queue.wait_for_item()
                continue
            # In hand until its outcome is counted (each path below clears it first, so that a dead-letter hook that
            # raises KeyboardInterrupt cannot leave it to be counted twice).
            subscription._in_hand = envelope
            taken_at = monotonic()
            if taken_at >= envelope.check_expiry_at and now() >= envelope.expires_at:
                subscription._in_hand = None
                self._reject(subscription, envelope.message, DeadLetterReason.EXPIRED)
            else:
                record_latency(taken_at - envelope.published_at)
                try:
                    await handler(envelope.message)
                except asyncio.CancelledError as exc:
                    if cancelling():
                        raise
                    # Not a request to stop this worker: the handler let a CancelledError of its own escape.
                    subscription._in_hand = None
                    self._reject(subscription, envelope.message, DeadLetterReason.HANDLER_ERROR, exc)
                except BaseException as exc:  # a library's own BaseException subclass too: it only fails its message
                    subscription._in_hand = None
                    self._reject(subscription, envelope.message, DeadLetterReason.HANDLER_ERROR, exc)
                    if isinstance(exc, _STOPS_THE_WORKER):
                        raise
                else:
                    subscription._in_hand = None
                    counts.delivered += 1
            if cancelling():
                raise asyncio.CancelledError("a handler swallowed the cancellation that stops this worker")

    def _calibrate(self) -> None:
        """Read both clocks together, to map wall-clock deadlines onto the monotonic clock: the monotonic one
        first, so that a pause between the readings makes deadlines early (a wall-clock read too many), not late
        (an expired message delivered)."""
        self._calibrated_monotonic = self._clock.monotonic()
        self._calibrated_now = self._clock.now()
        # For messages created since: a deadline at least ``ttl`` after the readings is checked from
        # ``_fresh_check_base + ttl * _DRIFTED``, worked out here once per topic for the topic's TTL.
        self._fresh_check_base = self._calibrated_monotonic - EXPIRY_MARGIN
        for route in self._routes.values():
            route.fresh_check_expiry_at = self._fresh_check_base + route.ttl.total_seconds() * _DRIFTED

    def _accepts(self, subscription: Subscription, message: Message) -> bool:
        assert subscription._filter is not None
        try:
            return subscription._filter(message)
        except BaseException as exc:  # as for a handler: a library's own BaseException subclass fails this pair only
            subscription._counts.enqueued += 1
            self._reject(subscription, message, DeadLetterReason.FILTER_ERROR, exc)
            if isinstance(exc, _STOPS_THE_WORKER):
                raise
            return False

    def _admit(self, subscription: Subscription, envelope: Envelope) -> None:
        subscription._queue.put(envelope)
        subscription._counts.enqueued += 1

    def _drop_for(self, subscription: Subscription, envelope: Envelope) -> None:
        """Full ``drop_oldest_lowest`` queue: either the incoming message is dropped, or a queued one is
        dropped and the incoming one takes its place."""
        dropped = subscription._queue.drop_oldest_lowest(envelope)
        subscription._counts.enqueued += 1
        self._reject(subscription, dropped.message, DeadLetterReason.DROPPED)

    async def _admit_when_room(self, subscription: Subscription, envelope: Envelope) -> None:
        if self._closed:
            raise BusClosed(f"publish of message {envelope.message.id} stopped: the bus is closed")
        self._waiting_publishers += 1
        try:
            if await subscription._queue.wait_for_room():
                self._admit(subscription, envelope)
            elif self._closed:
                raise BusClosed(f"publish of message {envelope.message.id} stopped: the bus is closed")
            else:  # the subscription was retired meanwhile: the message meets the fate of what it had queued
                subscription._counts.enqueued += 1
                self._reject(subscription, envelope.message, subscription._retired_as)
        finally:
            self._waiting_publishers -= 1
            if self._idle_waiters:
                self._wake_idle()

    def _reject(
        self,
        subscription: Subscription,
        message: Message,
        reason: DeadLetterReason,
        error: BaseException | None = None,
    ) -> None:
        """Count an undelivered pair under its outcome and keep it as a dead letter."""
        outcome = _OUTCOME_OF[reason]
        setattr(subscription._counts, outcome, getattr(subscription._counts, outcome) + 1)
        error_text = trace = None
        if error is not None:
            error_text = _describe(error)
            trace = "".join(traceback.format_exception(error))
            if subscription._error_log.due():
                logger.warning(
                    "message not delivered (the 1st, 10th, 100th… error of a subscription is logged; every one is "
                    "a dead letter)",
                    subscription=subscription.name,
                    reason=reason.value,
                    message_id=str(message.id),
                    error=error_text,
                    error_number=subscription._error_log.count,
                )
        self._dead_letters.add(
            DeadLetter(
                message=message,
                subscription=subscription.name,
                reason=reason,
                at=self._clock.now(),
                error=error_text,
                traceback=trace,
            )
        )

    def _retire(self, subscription: Subscription, reason: DeadLetterReason) -> None:
        """Remove an active subscription and dead-letter its queue."""
        if not subscription.active:
            return
        subscription._retired_as = reason
        del self._subscriptions[subscription.name]
        route = self._routes[subscription.topic]
        route.subscriptions = tuple(other for other in route.subscriptions if other is not subscription)
        for envelope in subscription._queue.close():
            self._reject(subscription, envelope.message, reason)
        self._retiring.add(subscription)
        if subscription._worker is None or subscription._worker.done():
            self._fold(subscription)

    def _worker_stopped(self, subscription: Subscription, worker: asyncio.Task[None]) -> None:
        """A worker has stopped: its subscription was retired, or ``aclose()`` cancelled it, or it stopped on its
        own (a handler's KeyboardInterrupt or SystemExit, a cancel from outside the bus, an error of the bus's own).
        The message it had in hand and, if the subscription is still active, its queue are dead-lettered
        (``closed``), so ``drain()`` never waits for a worker that is gone."""
        self._workers.discard(worker)
        # Retrieved here, or asyncio would log it again: a handler's KeyboardInterrupt or SystemExit is already on
        # its way out of the loop; anything else is the bus's own failure, logged.
        error = None if worker.cancelled() else worker.exception()
        if error is not None and not isinstance(error, _STOPS_THE_WORKER):
            logger.error("bus worker failed; its subscription closes", subscription=subscription.name, exc_info=error)
        in_hand, subscription._in_hand = subscription._in_hand, None
        if in_hand is not None:
            self._reject(subscription, in_hand.message, DeadLetterReason.CLOSED)
        if subscription.active:
            self._retire(subscription, DeadLetterReason.CLOSED)
        else:
            self._fold(subscription)
        if self._idle_waiters:
            self._wake_idle()

    def _fold(self, subscription: Subscription) -> None:
        """A retired subscription's worker has stopped: its counts are final."""
        if subscription in self._retiring:
            self._retiring.discard(subscription)
            self._retired_counts.add(subscription._counts)

    def _idle(self) -> bool:
        """Every queue empty, no handler running (retired subscriptions' included), no publisher waiting."""
        if self._waiting_publishers or self._retiring:
            return False
        return not any(
            subscription._in_hand is not None or len(subscription._queue)
            for subscription in self._subscriptions.values()
        )

    def _wake_idle(self) -> None:
        for idle in self._idle_waiters:
            if not idle.done():
                idle.set_result(None)
        self._idle_waiters.clear()

    def _refuse_from_handler(self, what: str) -> None:
        if _delivering.get() is self:
            raise RuntimeError(
                f"{what}() called from a bus handler would wait for that handler to return; "
                "call it from outside the bus's handlers"
            )


def _describe(error: BaseException) -> str:
    """``"Type: text"``; an error whose ``str()`` itself raises must still cost only its own message."""
    try:
        text = str(error)
    except Exception:
        text = "<str() failed>"
    return f"{type(error).__name__}: {text}"


class _Route:
    """Where a topic's messages go: its subscriptions, its default TTL and its history by symbol."""

    __slots__ = ("fresh_check_expiry_at", "history", "subscriptions", "ttl")

    def __init__(self, ttl: timedelta) -> None:
        self.ttl = ttl
        self.fresh_check_expiry_at = -math.inf  # see MessageBus._calibrate
        self.subscriptions: tuple[Subscription, ...] = ()
        self.history: dict[str | None, deque[Message]] = {}
