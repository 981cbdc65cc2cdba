"""What travels on the bus: ``Message``, its ``Topic`` and ``Priority``, and the immutable payload rules.

A payload is shared by every subscriber of its topic, so it must not change after publishing: it is either a
frozen pydantic model or a JSON-like mapping that is deep-frozen when the message is built (mappings become
read-only ``MappingProxyType`` views over a private copy, lists become tuples).

``Message`` is a plain immutable value with slots. Producers inside the process build one per publish, with
values their types already vouch for, so its constructor checks only what is cheap (topic, priority, an aware
``created_at``, a positive TTL whose deadline can be represented, the payload's immutability) and costs a
fraction of a validating model. Data from outside the process (the network, a file) comes in through
``Message.from_wire``, which validates every field with pydantic (the ``_Wire`` schema, the fields' JSON form);
``to_wire`` writes that form.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from types import MappingProxyType
from typing import Annotated, Any, final

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    field_validator,
)
from pydantic_core import CoreSchema, core_schema

from triplegain.clock import Clock


class Priority(IntEnum):
    """Delivery order within a subscription queue: higher first."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    URGENT = 3


class Topic(StrEnum):
    """Bus topics; each value is also the field name of its settings in ``TopicsSettings``."""

    MARKET_DATA = "market_data"
    TA_SIGNALS = "ta_signals"
    REGIME_UPDATES = "regime_updates"
    SENTIMENT_UPDATES = "sentiment_updates"
    PORTFOLIO_UPDATES = "portfolio_updates"
    TRADE_INTENTS = "trade_intents"
    RISK_ALERTS = "risk_alerts"
    EXECUTION_EVENTS = "execution_events"
    SYSTEM_EVENTS = "system_events"


# Immutable leaves a JSON-like payload may hold besides nested mappings and sequences.
_FROZEN_SCALARS = (str, int, float, bool, type(None), Decimal, datetime, date, timedelta, uuid.UUID, Enum)
# The common leaves, tested by exact type first: one set lookup instead of a walk through the tuple above.
_PLAIN_SCALARS = frozenset({str, int, float, bool, type(None)})


def freeze_payload(value: object) -> BaseModel | Mapping[str, Any]:
    """A frozen pydantic model as is, or a deep-frozen copy of a JSON-like mapping; anything else is refused."""
    if isinstance(value, dict):  # the common case, before the checks against abstract classes below
        return _freeze_mapping(value, "payload")
    if isinstance(value, BaseModel):
        if not type(value).model_config.get("frozen", False):
            raise ValueError(
                f"payload model {type(value).__name__} is not frozen; declare "
                "model_config = ConfigDict(frozen=True) so no handler can change what others see"
            )
        return value
    if isinstance(value, Mapping):
        return _freeze_mapping(value, "payload")
    raise ValueError(f"payload is a {type(value).__name__}; a frozen pydantic model or a mapping is allowed")


def _freeze_mapping(mapping: Mapping[Any, Any], path: str) -> Mapping[str, Any]:
    frozen: dict[str, Any] = {}
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: key {key!r} is a {type(key).__name__}; keys must be strings")
        frozen[key] = item if type(item) in _PLAIN_SCALARS else _freeze(item, f"{path}.{key}")
    return MappingProxyType(frozen)


def _freeze(value: object, path: str) -> Any:
    """A value other than a plain scalar (the callers keep those as they are)."""
    if isinstance(value, dict):  # before the checks against abstract classes below, which cost more
        return _freeze_mapping(value, path)
    if isinstance(value, list | tuple):
        return _freeze_sequence(value, path)
    if isinstance(value, _FROZEN_SCALARS):
        return value
    if isinstance(value, Mapping):
        return _freeze_mapping(value, path)
    if isinstance(value, BaseModel) and type(value).model_config.get("frozen", False):
        return value
    raise ValueError(
        f"{path}: {type(value).__name__} is not allowed in a payload; use JSON-like values "
        "(mappings, lists, str, numbers, bool, None, Decimal, dates, UUIDs, enums) or frozen models"
    )


def _freeze_sequence(items: list[Any] | tuple[Any, ...], path: str) -> tuple[Any, ...]:
    return tuple(
        item if type(item) in _PLAIN_SCALARS else _freeze(item, f"{path}[{index}]") for index, item in enumerate(items)
    )


def thaw_payload(value: Any) -> Any:
    """Plain dicts and lists again, for serialisation (``to_wire``, JSON)."""
    if isinstance(value, MappingProxyType):
        return {key: thaw_payload(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw_payload(item) for item in value]
    return value


def deadline(created_at: datetime, ttl: timedelta) -> datetime:
    """``created_at + ttl``; ValueError naming both when the sum is past ``datetime.max``."""
    try:
        return created_at + ttl
    except OverflowError:
        raise too_long(created_at, ttl) from None


def too_long(created_at: datetime, ttl: timedelta) -> ValueError:
    """The error for a deadline past the last representable time."""
    return ValueError(
        f"ttl {ttl!r} is too long: created_at {created_at.isoformat()} + ttl is past the last representable time "
        f"({datetime.max.isoformat()})"
    )


# Message ids are random version-4 UUIDs, as ``uuid.uuid4()`` makes, for a small part of its cost. The bits come
# from a generator the OS seeds (reseeded in a forked child, so two processes never share a sequence) rather than
# a system call per id: an id must be unique, not secret, and a generator of our own means whoever seeds ``random``
# (tests do) cannot make ids repeat. A message keeps its id as the 128-bit number and makes the ``UUID`` when it is
# read (dead letters, logs, the store), filled in as ``UUID.__init__`` would, without its argument checks: a
# ``UUID`` object per message would cost more to build than the rest of the message and is one more object for the
# garbage collector to scan while the message waits in a queue.
_id_bits = random.Random()
os.register_at_fork(after_in_child=_id_bits.seed)
_random_bits = _id_bits.getrandbits
_VERSION_4_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4_BITS = (0x4000 << 64) | (0x8000 << 48)
_SAFE_UNKNOWN = uuid.SafeUUID.unknown
_UUID = uuid.UUID
_set = object.__setattr__
_new = object.__new__

_FIELDS = ("id", "topic", "source", "priority", "payload", "created_at", "ttl", "correlation_id", "symbol")
_NO_TIME = timedelta(0)
_NORMAL = Priority.NORMAL


class _Fields:
    """The slots of a message (``_id``: its id as a number); a ``_Draft`` while it is filled in, then a
    ``Message``."""

    __slots__ = ("_id", *_FIELDS[1:])

    _id: int
    topic: Topic
    source: str
    priority: Priority
    payload: BaseModel | Mapping[str, Any]
    created_at: datetime
    ttl: timedelta | None
    correlation_id: uuid.UUID | None
    symbol: str | None


class _Draft(_Fields):
    __slots__ = ()


@final
class Message(_Fields):
    """One immutable message. ``ttl`` None means the topic's default TTL from the bus config.

    Built with keywords (``id`` defaults to a fresh random UUID, ``priority`` to NORMAL, the rest to None), which
    raises ``ValueError`` naming the field for what it checks; ``source``, ``symbol`` and ``correlation_id`` are
    left to the type checker. Equal when every field is; hashed by ``id``.
    """

    __slots__ = ()

    @property
    def id(self) -> uuid.UUID:
        """The message's id (equal, not identical, from one read to the next)."""
        id = _new(_UUID)
        _set(id, "int", self._id)
        _set(id, "is_safe", _SAFE_UNKNOWN)
        return id

    def __new__(
        cls,
        *,
        topic: Topic,
        source: str,
        payload: BaseModel | Mapping[str, Any],
        created_at: datetime,
        id: uuid.UUID | None = None,
        priority: Priority = _NORMAL,
        ttl: timedelta | None = None,
        correlation_id: uuid.UUID | None = None,
        symbol: str | None = None,
    ) -> Message:
        return new_message(topic, source, payload, created_at, priority, ttl, correlation_id, symbol, id)

    @classmethod
    def create(
        cls,
        clock: Clock,
        *,
        topic: Topic,
        source: str,
        payload: BaseModel | Mapping[str, Any],
        priority: Priority = Priority.NORMAL,
        ttl: timedelta | None = None,
        correlation_id: uuid.UUID | None = None,
        symbol: str | None = None,
    ) -> Message:
        """A message stamped with ``clock.now()``."""
        return new_message(topic, source, payload, clock.now(), priority, ttl, correlation_id, symbol)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any] | str | bytes) -> Message:
        """Rebuild a message from data that comes from outside the process: its JSON text, or that JSON parsed.

        Every field is validated (``pydantic.ValidationError`` lists what is wrong); ``id`` and ``created_at``
        are required, so the message keeps its identity and its deadline.
        """
        wire = _Wire.model_validate_json(data) if isinstance(data, str | bytes) else _Wire.model_validate(data)
        return wire.message()

    def to_wire(self) -> dict[str, Any]:
        """The message as JSON values (what ``from_wire`` takes back): ids and times as strings, ``ttl`` as an ISO
        8601 duration, the payload as plain JSON."""
        return self._wire().model_dump(mode="json")

    def replace(self, **changes: Any) -> Message:
        """A copy with ``changes`` (field name to value), checked as a new message is."""
        fields: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        return Message(**(fields | changes))

    def expires_at(self, default_ttl: timedelta) -> datetime:
        """When the message stops being deliverable: ``created_at + (ttl or default_ttl)``; ValueError when that is
        past the last representable time."""
        return deadline(self.created_at, self.ttl if self.ttl is not None else default_ttl)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Message is frozen: cannot set {name!r}; use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Message is frozen: cannot delete {name!r}")

    def __copy__(self) -> Message:
        return self  # immutable, payload included

    def __deepcopy__(self, memo: dict[int, object]) -> Message:
        return self

    def __eq__(self, other: object) -> bool:
        if type(other) is not Message:
            return NotImplemented
        return self._id == other._id and all(getattr(self, name) == getattr(other, name) for name in _FIELDS[1:])

    def __hash__(self) -> int:
        # The payload may be a frozen mapping, which is not hashable; the id is unique.
        return hash(self._id)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"Message({fields})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[Any], handler: GetCoreSchemaHandler) -> CoreSchema:
        """As a field of a pydantic model (``DeadLetter.message``): a ``Message`` as is, or its wire form
        validated; written as its wire form."""
        from_wire = core_schema.no_info_after_validator_function(_Wire.message, handler.generate_schema(_Wire))
        return core_schema.json_or_python_schema(
            json_schema=from_wire,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_wire]),
            serialization=core_schema.plain_serializer_function_ser_schema(cls._wire),
        )

    def _wire(self) -> _Wire:
        return _Wire.model_construct(**{name: getattr(self, name) for name in _FIELDS})


def new_message(
    topic: Topic,
    source: str,
    payload: BaseModel | Mapping[str, Any],
    created_at: datetime,
    priority: Priority,
    ttl: timedelta | None,
    correlation_id: uuid.UUID | None,
    symbol: str | None,
    id: uuid.UUID | None = None,
) -> Message:
    """``Message(...)`` with its fields in order, for producers on the hot path (``MessageBus.message``).

    A keyword call through ``type.__call__`` costs about a quarter of a message's build. The message is filled in
    as a ``_Draft`` (plain slot stores) and then made a ``Message``, whose ``__setattr__`` refuses every change:
    nine ``object.__setattr__`` calls would cost more than the rest of the build.
    """
    if type(topic) is not Topic:
        raise ValueError(f"topic: {topic!r} is not a Topic")
    if type(priority) is not Priority:
        priority = _priority(priority)
    if (type(created_at) is not datetime or created_at.tzinfo is not UTC) and (
        not isinstance(created_at, datetime) or created_at.utcoffset() is None
    ):
        raise ValueError(f"created_at: {created_at!r} is not a timezone-aware datetime")
    if ttl is not None:
        _check_ttl(created_at, ttl)
    if id is not None and not isinstance(id, _UUID):
        raise ValueError(f"id: {id!r} is not a UUID")
    draft = _new(_Draft)
    draft._id = _random_bits(128) & _VERSION_4_MASK | _VERSION_4_BITS if id is None else id.int
    draft.topic = topic
    draft.source = source
    draft.priority = priority
    draft.payload = _freeze_mapping(payload, "payload") if type(payload) is dict else freeze_payload(payload)
    draft.created_at = created_at
    draft.ttl = ttl
    draft.correlation_id = correlation_id
    draft.symbol = symbol
    _set(draft, "__class__", Message)
    return draft  # type: ignore[return-value]  # it is a Message now


def _priority(value: int) -> Priority:
    try:
        return Priority(value)
    except ValueError:
        raise ValueError(f"priority: {value!r} is not a Priority") from None


def _check_ttl(created_at: datetime, ttl: object) -> None:
    if not isinstance(ttl, timedelta) or ttl <= _NO_TIME:
        raise ValueError(f"ttl: must be a positive timedelta, got {ttl!r}")
    try:
        created_at + ttl
    except OverflowError:
        raise too_long(created_at, ttl) from None


Payload = Annotated[BaseModel | Mapping[str, Any], PlainValidator(freeze_payload), PlainSerializer(thaw_payload)]


class _Wire(BaseModel):
    """A message's fields as data from outside carries them, each validated (the JSON form of ``Message``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: uuid.UUID
    topic: Topic
    source: str
    priority: Priority = Priority.NORMAL
    payload: Payload
    created_at: AwareDatetime
    ttl: timedelta | None = None
    correlation_id: uuid.UUID | None = None
    symbol: str | None = None

    @field_validator("ttl")
    @classmethod
    def _possible_ttl(cls, value: timedelta | None, info: ValidationInfo) -> timedelta | None:
        created_at = info.data.get("created_at")
        if value is not None and created_at is not None:
            _check_ttl(created_at, value)
        return value

    def message(self) -> Message:
        return Message(**{name: getattr(self, name) for name in _FIELDS})
