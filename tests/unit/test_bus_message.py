"""Message: immutable, payload deep-frozen, TTL defaulting to the topic's."""

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from triplegain.bus import Message, MessageBus, Priority, Topic
from triplegain.bus.settings import BusSettings, TopicSettings, TopicsSettings
from triplegain.clock import FakeClock


class Candle(BaseModel):
    model_config = ConfigDict(frozen=True)

    close: float


class MutableCandle(BaseModel):
    close: float


def make(payload: object, **fields: object) -> Message:
    return Message(
        topic=Topic.MARKET_DATA,
        source="test",
        payload=payload,
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        **fields,
    )


def test_message_is_frozen() -> None:
    message = make({"close": 1.0})
    with pytest.raises(ValidationError, match="frozen"):
        message.source = "someone else"  # type: ignore[misc]


def test_mapping_payload_is_a_deep_frozen_copy() -> None:
    original = {"levels": [1.0, {"kind": "support"}], "meta": {"tags": ["a"]}}
    message = make(original)
    original["levels"].append(2.0)  # type: ignore[attr-defined]
    original["meta"]["tags"].append("b")  # type: ignore[index]

    payload = message.payload
    assert isinstance(payload, MappingProxyType)
    assert payload == {"levels": (1.0, {"kind": "support"}), "meta": {"tags": ("a",)}}
    with pytest.raises(TypeError):
        payload["new"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        payload["levels"][1]["kind"] = "resistance"
    assert isinstance(payload["levels"][1], MappingProxyType)


def test_frozen_model_payload_is_kept_as_is() -> None:
    candle = Candle(close=42.0)
    assert make(candle).payload is candle


def test_non_frozen_model_payload_is_refused_with_the_fix() -> None:
    with pytest.raises(
        ValidationError, match=r"MutableCandle is not frozen; declare model_config = ConfigDict\(frozen"
    ):
        make(MutableCandle(close=1.0))


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"levels": [1, {2, 3}]}, r"payload\.levels\[1\]: set is not allowed"),
        ({"when": object()}, r"payload\.when: object is not allowed"),
        ({"nested": {"inner": MutableCandle(close=1.0)}}, r"payload\.nested\.inner: MutableCandle is not allowed"),
        ({1: "x"}, r"payload: key 1 is a int; keys must be strings"),
        ([1, 2], r"payload is a list; a frozen pydantic model or a mapping is allowed"),
    ],
)
def test_payload_that_could_change_or_is_not_json_like_is_refused(payload: object, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        make(payload)


def test_created_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValidationError, match="created_at"):
        Message(topic=Topic.MARKET_DATA, source="test", payload={}, created_at=datetime(2024, 1, 1))


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1)])
def test_ttl_must_be_positive(ttl: timedelta) -> None:
    with pytest.raises(ValidationError, match="ttl"):
        make({}, ttl=ttl)


def test_create_stamps_the_clock_time_and_a_fresh_id() -> None:
    clock = FakeClock()
    first = Message.create(clock, topic=Topic.TA_SIGNALS, source="ta", payload={"bias": "long"}, symbol="BTC")
    clock.advance(5)
    second = Message.create(clock, topic=Topic.TA_SIGNALS, source="ta", payload={"bias": "long"})
    assert first.created_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert second.created_at == first.created_at + timedelta(seconds=5)
    assert first.id != second.id
    assert (first.priority, first.ttl, first.correlation_id, first.symbol) == (Priority.NORMAL, None, None, "BTC")


def test_message_is_hashable_and_round_trips_through_json() -> None:
    message = make({"levels": [1.0, {"kind": "support"}]}, symbol="BTC", priority=Priority.URGENT)
    assert len({message, message}) == 1
    again = Message.model_validate_json(message.model_dump_json())
    assert again == message
    assert message.model_dump(mode="json")["payload"] == {"levels": [1.0, {"kind": "support"}]}


def test_expires_at_uses_its_own_ttl_or_the_default() -> None:
    default = timedelta(seconds=60)
    assert make({}).expires_at(default) == datetime(2024, 1, 1, 0, 1, tzinfo=UTC)
    assert make({}, ttl=timedelta(seconds=5)).expires_at(default) == datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)


async def test_default_ttl_comes_from_the_topic_config() -> None:
    clock = FakeClock()
    topics = TopicsSettings(ta_signals=TopicSettings(ttl_seconds=5), regime_updates=TopicSettings(ttl_seconds=50))
    async with MessageBus(BusSettings(topics=topics), clock=clock) as bus:
        await bus.publish(bus.message(Topic.TA_SIGNALS, {}, source="ta"))
        await bus.publish(bus.message(Topic.REGIME_UPDATES, {}, source="regime"))
        clock.advance(timedelta(seconds=5) - timedelta(microseconds=1))
        assert bus.latest(Topic.TA_SIGNALS) is not None
        clock.advance(timedelta(microseconds=1))
        assert bus.latest(Topic.TA_SIGNALS) is None
        assert bus.latest(Topic.REGIME_UPDATES) is not None


def test_topics_match_the_config_sections_and_priorities_are_ordered() -> None:
    assert {topic.value for topic in Topic} == set(TopicsSettings.model_fields)
    assert Priority.LOW < Priority.NORMAL < Priority.HIGH < Priority.URGENT
