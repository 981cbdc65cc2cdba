"""The bridge against a real NATS server: every topic's message crosses as it left (typed payload included), a
resent message is stored and taken once, a message whose TTL passes in transit is never taken (counted and
dead-lettered), and a late reader starts from the newest message of each subject."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from tests.builders import candles_from_closes
from tests.nats.views import agent_messages
from tests.nats_server import free_port
from triplegain.bus import DeadLetterReason, Message, MessageBus, Priority, Topic
from triplegain.bus.bridge import Egress, EgressFull, Ingress, decode_message, encode
from triplegain.bus.jetstream import NATS_URL_ENV, JetStreamLink, NatsUnavailable, connect_jetstream, ensure_stream
from triplegain.bus.settings import BusSettings, NatsSettings
from triplegain.clock import FakeClock, WallClock
from triplegain.model import (
    BreakerAction,
    BreakerRule,
    BreakerTripped,
    CoordinatorState,
    DecisionAction,
    DecisionMade,
    DegradationLevel,
    FillRow,
    LevelChanged,
    Liquidity,
    OrderRow,
    OrderSide,
    OrderType,
    StateChanged,
)
from triplegain.system.payloads import PAYLOADS, decode_payload

pytestmark = [pytest.mark.timeout(60)]

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture
def nats(nats_url: str, nats_names: dict[str, str]) -> NatsSettings:
    return NatsSettings(url=nats_url, ack_timeout_seconds=2.0, **nats_names)


@pytest.fixture
async def link(nats: NatsSettings) -> AsyncIterator[JetStreamLink]:
    async with connect_jetstream(nats, name="test", environ={}) as link:
        await ensure_stream(
            link,
            name=nats.stream,
            subjects=[f"{nats.subject_prefix}.>"],
            max_age_seconds=600,
            max_bytes=64 * 1024 * 1024,
            duplicate_window_seconds=60,
        )
        yield link
        await link.js.delete_stream(nats.stream)


def as_json(_topic: Topic, body: bytes) -> Any:
    return json.loads(body)


def one_of_each(clock: WallClock) -> list[Message]:
    """A message of every other topic, each with every field set."""
    now = clock.now()
    order = OrderRow(
        id=uuid4(),
        client_order_id="c-1",
        account="a",
        decision_id=uuid4(),
        symbol="BTC/USDT",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        qty=Decimal("0.1"),
        price=Decimal("40000.5"),
        created_at=now,
        updated_at=now,
        reason="test",
        stop_price=Decimal("39000"),
        target_price=Decimal("42000"),
    )
    fill = FillRow(
        id=uuid4(),
        order_id=order.id,
        client_order_id="c-1",
        client_fill_id="c-1:1",
        account="a",
        symbol="BTC/USDT",
        side=OrderSide.BUY,
        qty=0.1,
        price=40_000.5,
        fee=1.6,
        fee_currency="USDT",
        liquidity=Liquidity.MAKER,
        ts=now,
    )
    payloads = [
        (Topic.TRADE_INTENTS, DecisionMade(
            decision_id=uuid4(), account="a", symbol="BTC/USDT", at=now, action=DecisionAction.BUY,
            confidence=0.7, reason="r", client_order_id="c-1",
        )),
        (Topic.RISK_ALERTS, BreakerTripped(
            account="a", rule=next(iter(BreakerRule)), action=next(iter(BreakerAction)), reason="r", at=now,
            until=now + timedelta(hours=1),
        )),
        (Topic.EXECUTION_EVENTS, order),
        (Topic.EXECUTION_EVENTS, fill),
        (Topic.SYSTEM_EVENTS, StateChanged(
            account="a", from_state=None, to_state=CoordinatorState.RUNNING, by="test", reason="r", at=now
        )),
        (Topic.SYSTEM_EVENTS, LevelChanged(
            account="a", from_level=DegradationLevel.NORMAL, to_level=DegradationLevel.REDUCED, causes=("x",), at=now
        )),
    ]
    return [
        Message.create(
            clock, topic=topic, source="test", payload=payload, priority=Priority.HIGH, ttl=timedelta(minutes=5),
            correlation_id=uuid4(), symbol="BTC/USDT",
        )
        for topic, payload in payloads
    ]


async def test_every_topic_round_trips_as_its_typed_model_through_the_wire_form() -> None:
    messages = [*await agent_messages(), *one_of_each(WallClock())]
    candle = candles_from_closes([100.0])[0]
    messages.append(
        Message.create(WallClock(), topic=Topic.MARKET_DATA, source="market", payload=candle, symbol=candle.symbol)
    )
    assert {message.topic for message in messages} == set(PAYLOADS)
    for message in messages:
        back = decode_message(*encode(message), decode_payload)
        assert back == message
        assert type(back.payload) is type(message.payload)


async def test_messages_cross_between_two_buses_keeping_every_field(nats: NatsSettings, link: JetStreamLink) -> None:
    clock = WallClock()
    messages = [message.replace(created_at=clock.now()) for message in await agent_messages()]
    async with MessageBus(clock=clock) as sender, MessageBus(clock=clock) as receiver:
        egress = Egress(link, sender, nats, [message.topic for message in messages])
        await egress.start()
        for message in messages:
            await sender.publish(message)
        await egress.flush()
        assert egress.stats().acknowledged == len(messages)
        ingress = Ingress(link, nats, decode_payload, topics=set(Topic), symbols=None, delivery="all")
        await ingress.start()
        taken = [await asyncio.wait_for(ingress.next(receiver), 10) for _ in messages]
        await ingress.aclose()
        await egress.aclose()
    assert sorted(taken, key=lambda m: m.topic) == sorted(messages, key=lambda m: m.topic)


async def test_a_message_sent_twice_is_stored_and_taken_once(nats: NatsSettings, link: JetStreamLink) -> None:
    clock = WallClock()
    first, second = one_of_each(clock)[:2]
    async with MessageBus(clock=clock) as bus:
        egress = Egress(link, bus, nats, [])
        await egress.start()
        for message in (first, first, second):
            egress.put(message)
        await egress.flush()
        assert egress.stats().duplicates == 1
        ingress = Ingress(link, nats, decode_payload, topics=set(Topic), symbols=None, delivery="all")
        await ingress.start()
        assert await asyncio.wait_for(ingress.next(bus), 10) == first
        assert await asyncio.wait_for(ingress.next(bus), 10) == second
        info = await link.js.stream_info(nats.stream)
        assert info.state.messages == 2
        await ingress.aclose()
        await egress.aclose()


async def test_a_message_whose_ttl_passes_in_transit_is_never_taken(nats: NatsSettings, link: JetStreamLink) -> None:
    sent_at = FakeClock(T0)
    received_at = FakeClock(T0 + timedelta(seconds=30))
    short, long = (
        Message.create(sent_at, topic=Topic.TA_SIGNALS, source="t", payload={"n": n}, ttl=timedelta(seconds=ttl),
                       symbol="BTC/USDT")
        for n, ttl in ((1, 10), (2, 60))
    )
    async with MessageBus(clock=sent_at) as sender, MessageBus(clock=received_at) as receiver:
        egress = Egress(link, sender, nats, [])
        await egress.start()
        egress.put(short)
        egress.put(long)
        await egress.flush()
        ingress = Ingress(link, nats, as_json, topics=set(Topic), symbols=None, delivery="all")
        await ingress.start()
        assert (await asyncio.wait_for(ingress.next(receiver), 10)).id == long.id
        assert ingress.stats().expired == 1
        [letter] = receiver.dead_letters()
        assert letter.message.id == short.id
        assert (letter.reason, letter.subscription) == (DeadLetterReason.EXPIRED, "nats.ingress")
        await ingress.aclose()
        await egress.aclose()


async def test_a_late_reader_starts_from_the_newest_message_of_each_subject(
    nats: NatsSettings, link: JetStreamLink
) -> None:
    clock = WallClock()
    made = [
        Message.create(clock, topic=Topic.TA_SIGNALS, source="t", payload={"n": n}, symbol=symbol)
        for n in range(3)
        for symbol in SYMBOLS
    ]
    async with MessageBus(clock=clock) as bus:
        egress = Egress(link, bus, nats, [])
        await egress.start()
        for message in made:
            egress.put(message)
        await egress.flush()
        ingress = Ingress(
            link, nats, as_json, topics={Topic.TA_SIGNALS}, symbols=None, delivery="last_per_subject"
        )
        await ingress.start()
        taken = {(await asyncio.wait_for(ingress.next(bus), 10)).id for _ in SYMBOLS}
        assert taken == {made[-1].id, made[-2].id}
        later = Message.create(clock, topic=Topic.TA_SIGNALS, source="t", payload={"n": 9}, symbol=SYMBOLS[0])
        egress.put(later)
        assert (await asyncio.wait_for(ingress.next(bus), 10)).id == later.id
        await ingress.aclose()
        await egress.aclose()


def test_settings_refuse_a_nats_url_with_a_password() -> None:
    with pytest.raises(ValueError, match="TRIPLEGAIN_NATS_URL"):
        BusSettings(nats=NatsSettings(url="nats://user:secret@host:4222"))


async def test_past_its_bound_the_outbox_refuses_a_message_and_says_it_overflowed(
    nats: NatsSettings, link: JetStreamLink
) -> None:
    bounded = nats.model_copy(update={"max_unacked_messages": 2})
    clock = WallClock()
    async with MessageBus(clock=clock) as bus:
        egress = Egress(link, bus, bounded, [])  # not started: nothing is sent, as while NATS is away
        first, second, third = one_of_each(clock)[:3]
        egress.put(first)
        egress.put(second)
        with pytest.raises(EgressFull, match=r"bus\.nats\.max_unacked_messages = 2"):
            egress.put(third)
        assert egress.overflowed.is_set()
        assert (egress.stats().held, egress.stats().refused) == (2, 1)


async def test_an_unreachable_server_is_one_line_naming_it_and_never_its_password() -> None:
    settings = NatsSettings(connect_timeout_seconds=1.0)
    closed = f"nats://someone:canary-password@127.0.0.1:{free_port()}"
    with pytest.raises(NatsUnavailable) as raised:
        async with connect_jetstream(settings, name="test", environ={NATS_URL_ENV: closed}):
            pass
    assert str(raised.value).startswith("cannot connect to NATS at 127.0.0.1:")
    assert "canary" not in str(raised.value)
    assert "\n" not in str(raised.value)
