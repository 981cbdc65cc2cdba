"""Many concurrent publishers: every message reaches each matching subscriber exactly once, in per-publisher
FIFO order within a priority, through queues small enough that publishers keep blocking on each other."""

import asyncio
import random
from collections import Counter, defaultdict

import pytest

from tests.concurrency.helpers import bus_config, fields, topic_settings
from triplegain.bus import Handler, Message, MessageBus, Priority, Topic
from triplegain.clock import FakeClock

pytestmark = pytest.mark.timeout(30)

PUBLISHERS = 200
MESSAGES_EACH = 500
SYMBOLS = ("BTC/USDT", "ETH/USDT")

Key = tuple[int, int, Priority]  # publisher, sequence number, priority


def plan(publisher: int) -> list[tuple[Priority, str]]:
    """A fixed random mix of priorities and symbols for one publisher."""
    rng = random.Random(publisher)
    return list(zip(rng.choices(tuple(Priority), k=MESSAGES_EACH), rng.choices(SYMBOLS, k=MESSAGES_EACH), strict=True))


async def test_200_publishers_500_messages_5_subscribers(clock: FakeClock) -> None:
    config = bus_config(ta_signals=topic_settings(ttl_seconds=3600, maxsize=64))
    filters = {
        "all": None,
        "urgent-and-high": lambda message: message.priority >= Priority.HIGH,
        "btc": lambda message: message.symbol == "BTC/USDT",
        "even-publishers": lambda message: fields(message)["publisher"] % 2 == 0,
        "all-small-queue": None,
    }
    received: dict[str, list[Key]] = {name: [] for name in filters}

    def recorder(into: list[Key]) -> Handler:
        async def handler(message: Message) -> None:
            payload = fields(message)
            into.append((payload["publisher"], payload["seq"], message.priority))

        return handler

    async with MessageBus(config, clock=clock) as bus:
        for name, message_filter in filters.items():
            await bus.subscribe(
                Topic.TA_SIGNALS,
                recorder(received[name]),
                name=name,
                filter=message_filter,
                maxsize=8 if name == "all-small-queue" else None,
            )
        expected: dict[str, Counter[Key]] = defaultdict(Counter)

        async def publisher(number: int) -> None:
            for seq, (priority, symbol) in enumerate(plan(number)):
                message = bus.message(
                    Topic.TA_SIGNALS, {"publisher": number, "seq": seq}, source="load", priority=priority, symbol=symbol
                )
                for name, message_filter in filters.items():
                    if message_filter is None or message_filter(message):
                        expected[name][(number, seq, priority)] += 1
                await bus.publish(message)

        await asyncio.gather(*(publisher(number) for number in range(PUBLISHERS)))
        await bus.drain()
        stats = bus.stats()

    for name, keys in received.items():
        assert Counter(keys) == expected[name], name  # exactly once each
        last_seq: dict[tuple[int, Priority], int] = {}
        for publisher_number, seq, priority in keys:
            assert last_seq.get((publisher_number, priority), -1) < seq, (name, publisher_number, priority)
            last_seq[(publisher_number, priority)] = seq
    assert stats.published == PUBLISHERS * MESSAGES_EACH
    assert stats.delivered == stats.enqueued == sum(len(keys) for keys in received.values())
    assert stats.subscription("all-small-queue").high_water == 8
