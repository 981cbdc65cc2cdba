"""The bridge between the in-process bus and NATS JetStream: not a second bus, a pair of pipes into it.

Egress forwards chosen local topics to the deployment's stream; ingress hands the stream's messages to the
local bus, so local readers (``latest()``, subscribers) work unchanged whether a message came from this process
or another.

Subjects
    ``<prefix>.<topic>.<symbol>``. A symbol keeps letters, digits and ``/ : _ -`` as they are (``BTC/USDT`` is
    ``triplegain.ta_signals.BTC/USDT``); any other character, ``.`` ``*`` ``>`` and spaces included, is written
    ``%XX`` per UTF-8 byte (``%`` itself too), so every symbol is one subject token and no two symbols share one.
    A message without a symbol is the token ``%`` alone, which no encoded symbol can be.

The wire
    Two headers: ``Nats-Msg-Id``, the message's id, which JetStream de-duplicates on (a message sent again after
    a lost acknowledgement is stored once within ``duplicate_window_seconds``); and ``Triplegain-Envelope``, the
    rest of the envelope as a JSON array: ``[topic, source, priority number, created_at (ISO 8601 with its
    offset), ttl in seconds or null (the topic's), correlation id or null, symbol or null]``. The body is the
    payload's JSON (a model's ``model_dump_json``). On the way in every field is parsed and checked and the payload
    is validated from its JSON text as its topic's model (``decode``, given by the layer that knows every payload
    type): pydantic's parser reads the bytes straight into the model, several times cheaper than reading a JSON
    envelope holding the payload first and validating the payload from it (``Message.from_wire``'s form), and
    one header costs nats-py far less to parse than one per field.

Egress
    One local subscription per forwarded topic puts each message in an outbox, in order, and returns; one sender
    publishes the outbox in batches, pipelined, and drops a batch only once JetStream acknowledged all of it. A
    batch that fails or is not acknowledged within ``ack_timeout_seconds`` is sent again, whole, once connected
    (the server stores each id once). While NATS is away the outbox grows up to ``max_unacked_messages``; one
    more is refused (its delivery fails, a dead letter) and ``overflowed`` is set: the process stops rather than
    drop anything. ``flush()`` returns once everything queued so far is acknowledged.

Ingress
    An ordered consumer on ``<prefix>.>``, from the newest message of every subject (``last_per_subject``: a
    process starting decides on the current views at once) or from the stream's start (``all``: a run that
    follows candle time reads the whole stream, in order). ``next(bus)`` returns the next message of a wanted
    topic and symbol, each id once; a message already past its TTL on the local bus's clock is never returned, but
    counted and kept as a dead letter (``expired``) of ``nats.ingress``, as the bus does at delivery; one older than
    the newest already taken for its (topic, symbol) is counted and skipped, so ``latest()`` never goes back.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import structlog
from nats.js.api import DeliverPolicy
from pydantic import BaseModel

from triplegain.bus.bus import MessageBus, Subscription
from triplegain.bus.dead_letters import DeadLetterReason, LogThinner
from triplegain.bus.jetstream import MSG_ID, JetStreamLink, ensure_stream
from triplegain.bus.message import Message, Priority, Topic, new_message, thaw_payload
from triplegain.bus.settings import NatsSettings, Overflow
from triplegain.errors import TriplegainError

logger = structlog.get_logger(__name__)

Decode = Callable[[Topic, bytes], BaseModel | Mapping[str, Any]]
"""A payload's JSON text as its topic's typed model (raises when it is not one)."""
Delivery = Literal["last_per_subject", "all"]

_KEPT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:_-")
NO_SYMBOL = "%"
_BATCH = 512
_SEEN_IDS = 200_000
_BUFFERED = 4096


class EgressFull(TriplegainError):
    """The outbox holds ``max_unacked_messages`` that NATS has not acknowledged: one more is refused."""


def symbol_token(symbol: str | None) -> str:
    """A symbol as one subject token (see the module docstring)."""
    if symbol is None:
        return NO_SYMBOL
    if all(char in _KEPT for char in symbol) and symbol:
        return symbol
    return "".join(char if char in _KEPT else "".join(f"%{b:02X}" for b in char.encode()) for char in symbol)


def subject(prefix: str, topic: Topic, symbol: str | None) -> str:
    """``<prefix>.<topic>.<symbol token>``."""
    return f"{prefix}.{topic.value}.{symbol_token(symbol)}"


ENVELOPE = "Triplegain-Envelope"
"""The header that carries a message's envelope: a JSON array (see the module docstring)."""


def encode(message: Message) -> tuple[dict[str, str], bytes]:
    """A message as a NATS message carries it: its envelope in headers, its payload's JSON as the body."""
    ttl = message.ttl
    correlation_id = message.correlation_id
    envelope = [
        message.topic.value,
        message.source,
        int(message.priority),
        message.created_at.isoformat(),
        None if ttl is None else ttl.total_seconds(),
        None if correlation_id is None else str(correlation_id),
        message.symbol,
    ]
    payload = message.payload
    body = (
        payload.model_dump_json().encode()
        if isinstance(payload, BaseModel)
        else json.dumps(thaw_payload(payload), separators=(",", ":")).encode()
    )
    return {MSG_ID: str(message.id), ENVELOPE: json.dumps(envelope, separators=(",", ":"))}, body


def decode_message(headers: Mapping[str, str], body: bytes, decode: Decode) -> Message:
    """The message ``headers`` and ``body`` carry, every field parsed and checked (``ValueError`` or
    ``TypeError`` naming what is wrong), the payload validated as its topic's model."""
    topic, source, priority, created_at, ttl, correlation_id, symbol = json.loads(headers[ENVELOPE])
    topic = Topic(topic)
    if not isinstance(source, str) or not (symbol is None or isinstance(symbol, str)):
        raise TypeError(f"source {source!r} and symbol {symbol!r} must be text")
    return new_message(
        topic,
        source,
        decode(topic, body),
        datetime.fromisoformat(created_at),
        Priority(priority),
        None if ttl is None else timedelta(seconds=ttl),
        None if correlation_id is None else UUID(correlation_id),
        symbol,
        UUID(headers[MSG_ID]),
    )


async def ensure_bus_stream(link: JetStreamLink, settings: NatsSettings) -> None:
    """The deployment's stream (``bus.nats.stream``) for every subject under ``subject_prefix``, as configured."""
    await ensure_stream(
        link,
        name=settings.stream,
        subjects=[f"{settings.subject_prefix}.>"],
        max_age_seconds=settings.max_age_seconds,
        max_bytes=settings.max_bytes,
        duplicate_window_seconds=settings.duplicate_window_seconds,
    )


@dataclass(frozen=True)
class EgressStats:
    held: int
    """Messages in the outbox: not acknowledged yet."""
    acknowledged: int
    duplicates: int
    """Acknowledgements that said the id was stored already (a batch sent again)."""
    resent_batches: int
    refused: int


class Egress:
    """Local topics to JetStream (see the module docstring)."""

    def __init__(self, link: JetStreamLink, bus: MessageBus, settings: NatsSettings, topics: Iterable[Topic]) -> None:
        self._link = link
        self._bus = bus
        self._settings = settings
        self._topics = tuple(topics)
        self._outbox: deque[tuple[dict[str, str], str, bytes]] = deque()
        self._work = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self.overflowed = asyncio.Event()
        self._subscriptions: list[Subscription] = []
        self._sender: asyncio.Task[None] | None = None
        self._acknowledged = self._duplicates = self._resent = self._refused = 0
        self._failure_log = LogThinner()

    async def start(self) -> None:
        for topic in self._topics:
            # Block, never drop: a candle dropped here (market_data's own policy) would never reach the stream; the
            # handler only appends to the outbox, so a publisher waits at most for that.
            subscription = await self._bus.subscribe(
                topic, self._hold, name=f"nats.egress.{topic.value}", overflow=Overflow.BLOCK
            )
            self._subscriptions.append(subscription)
        self._sender = asyncio.create_task(self._send(), name="nats-egress")

    def stats(self) -> EgressStats:
        return EgressStats(len(self._outbox), self._acknowledged, self._duplicates, self._resent, self._refused)

    def down_seconds(self) -> float:
        return self._link.down_seconds()

    async def _hold(self, message: Message) -> None:
        self.put(message)

    def put(self, message: Message) -> None:
        """Queue ``message`` for the stream; ``EgressFull`` when the outbox is at its bound."""
        if len(self._outbox) >= self._settings.max_unacked_messages:
            self._refused += 1
            self.overflowed.set()
            raise EgressFull(
                f"{len(self._outbox):,} messages wait for NATS at {self._link.server}: the bound "
                f"bus.nats.max_unacked_messages = {self._settings.max_unacked_messages:,} is reached"
            )
        headers, body = encode(message)
        self._outbox.append((headers, subject(self._settings.subject_prefix, message.topic, message.symbol), body))
        self._empty.clear()
        self._work.set()

    async def flush(self) -> None:
        """Return once every message queued so far is acknowledged (local deliveries drained first), or the outbox
        overflowed (nothing more will be taken: the caller stops)."""
        await self._bus.drain()
        if self.overflowed.is_set():
            return
        emptied = asyncio.ensure_future(self._empty.wait())
        overflowed = asyncio.ensure_future(self.overflowed.wait())
        try:
            await asyncio.wait({emptied, overflowed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (emptied, overflowed):
                waiter.cancel()
            await asyncio.gather(emptied, overflowed, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop forwarding; wait up to ``ack_timeout_seconds`` for the outbox to empty, then stop the sender."""
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        if self._sender is None:
            return
        try:
            await asyncio.wait_for(self._empty.wait(), self._settings.ack_timeout_seconds)
        except TimeoutError:
            logger.warning("NATS egress closed with messages not acknowledged", held=len(self._outbox))
        self._sender.cancel()
        await asyncio.gather(self._sender, return_exceptions=True)

    async def _send(self) -> None:
        js = self._link.js
        while True:
            if not self._outbox:
                self._empty.set()
                self._work.clear()
                await self._work.wait()
                continue
            await self._link.connected.wait()
            batch = [self._outbox[index] for index in range(min(_BATCH, len(self._outbox)))]
            try:
                futures = [await js.publish_async(where, body, headers=headers) for headers, where, body in batch]
                async with asyncio.timeout(self._settings.ack_timeout_seconds):
                    acks = await asyncio.gather(*futures)
            except Exception as exc:  # whatever failed, the batch is sent again (ids dedupe it)
                self._resent += 1
                if self._failure_log.due():
                    logger.warning(
                        "NATS batch not acknowledged; sending it again",
                        server=self._link.server,
                        error=f"{type(exc).__name__}: {exc}",
                        held=len(self._outbox),
                        failure_number=self._failure_log.count,
                    )
                await asyncio.sleep(self._settings.reconnect_wait_seconds)
                continue
            for ack in acks:
                self._acknowledged += 1
                self._duplicates += bool(ack.duplicate)
            for _ in batch:
                self._outbox.popleft()


@dataclass(frozen=True)
class IngressStats:
    received: int
    taken: int
    expired: int
    superseded: int
    duplicates: int
    ignored: int
    """Messages of topics or symbols this process does not take."""
    rejected: int
    """Messages that did not decode (a dead letter would need a message: they are logged and counted)."""


class Ingress:
    """JetStream to the local bus's readers (see the module docstring)."""

    def __init__(
        self,
        link: JetStreamLink,
        settings: NatsSettings,
        decode: Decode,
        *,
        topics: Iterable[Topic],
        symbols: Iterable[str] | None,
        delivery: Delivery,
    ) -> None:
        self._link = link
        self._settings = settings
        self._decode = decode
        self._topics = frozenset(topics)
        self._symbols = None if symbols is None else frozenset(symbols)
        self._delivery = delivery
        self._subscription: Any = None
        # Received and not taken yet: filled by the client's callback, which waits while it holds _BUFFERED (so the
        # client's own queue and the consumer's flow control hold the rest back).
        self._arrived: deque[Any] = deque()
        self._arrival = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._newest: dict[tuple[Topic, str | None], Any] = {}
        self._received = self._taken = self._expired = self._superseded = 0
        self._duplicates = self._ignored = self._rejected = 0
        self._reject_log = LogThinner()

    async def start(self) -> None:
        policy = DeliverPolicy.LAST_PER_SUBJECT if self._delivery == "last_per_subject" else DeliverPolicy.ALL
        self._subscription = await self._link.js.subscribe(
            f"{self._settings.subject_prefix}.>",
            stream=self._settings.stream,
            ordered_consumer=True,
            deliver_policy=policy,
            idle_heartbeat=2.0,
            cb=self._arrive,
        )

    async def _arrive(self, raw: Any) -> None:
        self._arrived.append(raw)
        self._arrival.set()
        if len(self._arrived) >= _BUFFERED:
            self._room.clear()
            await self._room.wait()

    def stats(self) -> IngressStats:
        return IngressStats(
            self._received,
            self._taken,
            self._expired,
            self._superseded,
            self._duplicates,
            self._ignored,
            self._rejected,
        )

    def down_seconds(self) -> float:
        return self._link.down_seconds()

    async def next(self, bus: MessageBus | None = None) -> Message:
        """The next message to take in (waits for one); with ``bus``, only one that is still deliverable on its
        clock and newer than the last taken for its (topic, symbol) (see ``admit``)."""
        arrived = self._arrived
        while True:
            while not arrived:
                self._arrival.clear()
                await self._arrival.wait()
            raw = arrived.popleft()
            if not self._room.is_set() and len(arrived) < _BUFFERED // 2:
                self._room.set()
            self._received += 1
            message = self._accept(raw.headers or {}, raw.data)
            if message is not None and (bus is None or self.admit(message, bus)):
                self._taken += 1
                return message

    def admit(self, message: Message, bus: MessageBus) -> bool:
        """Whether ``message`` may go on ``bus``: not past its TTL on the bus's clock (else counted and kept as a
        dead letter of ``nats.ingress``), not older than the newest taken for its (topic, symbol)."""
        if bus.clock.now() >= bus.expires_at(message):
            self._expired += 1
            bus.dead_letter(message, by="nats.ingress", reason=DeadLetterReason.EXPIRED)
            return False
        slot = (message.topic, message.symbol)
        newest = self._newest.get(slot)
        if newest is not None and message.created_at < newest:
            self._superseded += 1
            return False
        self._newest[slot] = message.created_at
        return True

    def _accept(self, headers: Mapping[str, str], body: bytes) -> Message | None:
        try:
            message = decode_message(headers, body, self._decode)
        except Exception as exc:  # counted and logged: a bad message costs only itself
            self._rejected += 1
            if self._reject_log.due():
                logger.warning(
                    "NATS message refused", error=f"{type(exc).__name__}: {exc}"[:500], number=self._reject_log.count
                )
            return None
        if message.topic not in self._topics or (
            self._symbols is not None and message.symbol is not None and message.symbol not in self._symbols
        ):
            self._ignored += 1
            return None
        key = message.id.int
        if key in self._seen:
            self._duplicates += 1
            return None
        self._seen[key] = None
        if len(self._seen) > _SEEN_IDS:
            self._seen.popitem(last=False)
        return message

    async def aclose(self) -> None:
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as exc:  # a connection already gone: nothing to unsubscribe
                logger.debug("NATS unsubscribe failed", error=str(exc))

