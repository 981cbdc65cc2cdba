"""Message: immutable, payload deep-frozen, TTL defaulting to the topic's."""

import copy
import json
import random
import re
import uuid
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
    with pytest.raises(AttributeError, match="frozen"):
        message.source = "someone else"
    with pytest.raises(AttributeError, match="frozen"):
        del message.symbol
    assert message.source == "test"
    assert copy.copy(message) is message
    assert copy.deepcopy({"kept": message})["kept"] is message


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
    with pytest.raises(ValueError, match=r"MutableCandle is not frozen; declare model_config = ConfigDict\(frozen"):
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
    with pytest.raises(ValueError, match=problem):
        make(payload)
    with pytest.raises(ValidationError, match=problem):
        Message.from_wire(make({}).to_wire() | {"payload": payload})


def test_created_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="created_at"):
        Message(topic=Topic.MARKET_DATA, source="test", payload={}, created_at=datetime(2024, 1, 1))


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1)])
def test_ttl_must_be_positive(ttl: timedelta) -> None:
    with pytest.raises(ValueError, match="ttl"):
        make({}, ttl=ttl)


@pytest.mark.parametrize("ttl", [timedelta.max, timedelta(days=3_000_000)])
def test_a_ttl_whose_deadline_cannot_be_represented_is_refused_when_the_message_is_built(ttl: timedelta) -> None:
    with pytest.raises(
        ValueError, match=rf"ttl {re.escape(repr(ttl))} is too long: created_at 2024-01-01T00:00:00\+00:00"
    ):
        make({}, ttl=ttl)


async def test_publish_refuses_a_deadline_past_the_last_representable_time_before_keeping_anything() -> None:
    clock = FakeClock(datetime.max.replace(tzinfo=UTC) - timedelta(seconds=1))
    received: list[Message] = []

    async def receive(message: Message) -> None:
        received.append(message)

    async with MessageBus(clock=clock) as bus:
        await bus.subscribe(Topic.TA_SIGNALS, receive, name="ta")
        message = bus.message(Topic.TA_SIGNALS, {}, source="ta")  # no ttl of its own: the topic's 300 s apply
        with pytest.raises(ValueError, match="is too long"):
            await bus.publish(message)
        await bus.drain()

        assert (bus.history(Topic.TA_SIGNALS), bus.latest(Topic.TA_SIGNALS), received) == ([], None, [])
        stats = bus.stats()
        assert (stats.published, stats.enqueued, stats.accounted) == (0, 0, 0)


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
    again = Message.from_wire(json.dumps(message.to_wire()))
    assert again == message
    assert message.to_wire()["payload"] == {"levels": [1.0, {"kind": "support"}]}


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


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"topic": "market_data"}, r"topic: 'market_data' is not a Topic"),
        ({"id": "0" * 32}, r"id: '0{32}' is not a UUID"),
        ({"priority": 7}, r"priority: 7 is not a Priority"),
        ({"ttl": 5}, r"ttl: must be a positive timedelta, got 5"),
        ({"created_at": "2024-01-01T00:00:00Z"}, r"created_at: '2024-01-01T00:00:00Z' is not a timezone-aware"),
    ],
)
def test_what_is_cheap_to_check_is_checked_naming_the_field(fields: dict[str, object], problem: str) -> None:
    built = {
        "topic": Topic.MARKET_DATA,
        "source": "test",
        "payload": {},
        "created_at": datetime(2024, 1, 1, tzinfo=UTC),
    }
    with pytest.raises(ValueError, match=problem):
        Message(**(built | fields))  # type: ignore[arg-type]


def test_a_priority_given_as_its_number_is_the_priority() -> None:
    assert make({}, priority=2).priority is Priority.HIGH


def test_ids_are_fresh_random_version_4_uuids_whoever_seeds_random() -> None:
    random.seed(7)
    first = make({}).id
    random.seed(7)
    ids = {first} | {make({}).id for _ in range(10_000)}
    assert len(ids) == 10_001
    assert {(identifier.version, identifier.variant) for identifier in ids} == {(4, uuid.RFC_4122)}
    assert all(uuid.UUID(str(identifier)) == identifier for identifier in ids)


def test_replace_keeps_the_identity_and_checks_the_new_fields() -> None:
    message = make({"close": 1.0}, ttl=timedelta(seconds=5))
    later = message.replace(created_at=datetime(2024, 1, 2, tzinfo=UTC))
    assert (later.id, later.payload, later.created_at) == (
        message.id,
        message.payload,
        datetime(2024, 1, 2, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="is too long"):
        message.replace(created_at=datetime.max.replace(tzinfo=UTC))


def test_from_wire_keeps_every_field_and_validates_them() -> None:
    message = make({"close": "1.5"}, ttl=timedelta(seconds=90), correlation_id=uuid.uuid4(), symbol="BTC")
    wire = message.to_wire()
    assert wire["ttl"] == "PT1M30S"
    assert Message.from_wire(wire) == Message.from_wire(json.dumps(wire).encode()) == message

    for missing in ("id", "created_at"):
        with pytest.raises(ValidationError, match=missing):
            Message.from_wire({key: value for key, value in wire.items() if key != missing})
    with pytest.raises(ValidationError, match=r"ttl\n.*is too long"):
        Message.from_wire(wire | {"ttl": "P999999999D"})
    with pytest.raises(ValidationError, match="topic"):
        Message.from_wire(wire | {"topic": "gossip"})
