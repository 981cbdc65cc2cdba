"""What travels on the bus: ``Message``, its ``Topic`` and ``Priority``, and the immutable payload rules.

A payload is shared by every subscriber of its topic, so it must not change after publishing: it is either a
frozen pydantic model or a JSON-like mapping that is deep-frozen when the message is built (mappings become
read-only ``MappingProxyType`` views over a private copy, lists become tuples).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    field_validator,
)

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
    """Plain dicts and lists again, for serialisation (``model_dump``, JSON)."""
    if isinstance(value, MappingProxyType):
        return {key: thaw_payload(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw_payload(item) for item in value]
    return value


Payload = Annotated[BaseModel | Mapping[str, Any], PlainValidator(freeze_payload), PlainSerializer(thaw_payload)]


class Message(BaseModel):
    """One immutable message. ``ttl`` None means the topic's default TTL from the bus config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
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
    def _positive_ttl(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError(f"must be positive, got {value}")
        return value

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
        return cls(
            topic=topic,
            source=source,
            payload=payload,
            priority=priority,
            created_at=clock.now(),
            ttl=ttl,
            correlation_id=correlation_id,
            symbol=symbol,
        )

    def expires_at(self, default_ttl: timedelta) -> datetime:
        """When the message stops being deliverable: ``created_at + (ttl or default_ttl)``."""
        return self.created_at + (self.ttl if self.ttl is not None else default_ttl)

    def __hash__(self) -> int:
        # The generated hash would hash the payload, and a frozen mapping is not hashable; the id is unique.
        return hash(self.id)
