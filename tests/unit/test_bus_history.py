"""latest() and history(), keyed by (topic, symbol) (docs/ARCHITECTURE.md, bus rule 9)."""

from datetime import timedelta

from triplegain.bus import Message, MessageBus, Topic
from triplegain.bus.settings import BusSettings, TopicSettings, TopicsSettings
from triplegain.clock import FakeClock


def make_bus(clock: FakeClock) -> MessageBus:
    topics = TopicsSettings(ta_signals=TopicSettings(ttl_seconds=60))
    return MessageBus(BusSettings(history_size=3, topics=topics), clock=clock)


def ta(bus: MessageBus, n: int, symbol: str | None = "BTC", ttl: float | None = None) -> Message:
    return bus.message(
        Topic.TA_SIGNALS, {"n": n}, source="ta", symbol=symbol, ttl=None if ttl is None else timedelta(seconds=ttl)
    )


async def test_latest_is_per_topic_and_symbol() -> None:
    clock = FakeClock()
    async with make_bus(clock) as bus:
        btc, eth, unscoped = ta(bus, 1), ta(bus, 2, symbol="ETH"), ta(bus, 3, symbol=None)
        regime = bus.message(Topic.REGIME_UPDATES, {"regime": "ranging"}, source="regime", symbol="BTC")
        for message in (btc, eth, unscoped, regime):
            await bus.publish(message)

        assert bus.latest(Topic.TA_SIGNALS, "BTC") == btc
        assert bus.latest(Topic.TA_SIGNALS, "ETH") == eth
        assert bus.latest(Topic.TA_SIGNALS) == unscoped
        assert bus.latest(Topic.REGIME_UPDATES, "BTC") == regime
        assert bus.latest(Topic.REGIME_UPDATES, "ETH") is None
        assert bus.latest(Topic.RISK_ALERTS) is None


async def test_latest_is_the_newest_and_none_once_it_has_expired() -> None:
    clock = FakeClock()
    async with make_bus(clock) as bus:
        long_lived = ta(bus, 1, ttl=600)
        await bus.publish(long_lived)
        newest = ta(bus, 2, ttl=10)
        await bus.publish(newest)
        assert bus.latest(Topic.TA_SIGNALS, "BTC") == newest

        clock.advance(10)
        # The expired newest is not replaced by the older, still valid one: it was superseded.
        assert bus.latest(Topic.TA_SIGNALS, "BTC") is None
        assert bus.history(Topic.TA_SIGNALS, "BTC") == [long_lived, newest]
        # A reader that tells stale from missing asks for it anyway, and reads when it expired.
        assert bus.latest(Topic.TA_SIGNALS, "BTC", include_expired=True) == newest
        assert bus.expires_at(newest) == newest.created_at + timedelta(seconds=10)
        assert bus.expires_at(long_lived) == long_lived.created_at + timedelta(seconds=600)
        assert bus.latest(Topic.TA_SIGNALS, "ETH", include_expired=True) is None


async def test_expires_at_falls_back_to_the_topics_ttl() -> None:
    async with make_bus(FakeClock()) as bus:
        message = ta(bus, 1)
        assert bus.expires_at(message) == message.created_at + timedelta(seconds=60)


async def test_history_keeps_the_last_history_size_messages_oldest_first() -> None:
    clock = FakeClock()
    async with make_bus(clock) as bus:
        published = [ta(bus, n) for n in range(5)]
        for message in published:
            await bus.publish(message)
        await bus.publish(ta(bus, 99, symbol="ETH"))

        assert bus.history(Topic.TA_SIGNALS, "BTC") == published[-3:]
        assert [m.payload["n"] for m in bus.history(Topic.TA_SIGNALS, "ETH")] == [99]  # type: ignore[index]
        assert bus.history(Topic.TA_SIGNALS, "XRP") == []


async def test_history_is_kept_with_or_without_subscribers() -> None:
    clock = FakeClock()
    async with make_bus(clock) as bus:
        await bus.publish(ta(bus, 1))

        async def ignore(message: Message) -> None:
            return None

        await bus.subscribe(Topic.TA_SIGNALS, ignore, name="late", filter=lambda message: False)
        await bus.publish(ta(bus, 2))

        assert [m.payload["n"] for m in bus.history(Topic.TA_SIGNALS, "BTC")] == [1, 2]  # type: ignore[index]
