"""What each topic carries, as the typed model a message from another process is validated into.

The one place that knows every payload type (the market's candles, the agents' views, the coordinator's events,
the broker's orders and fills); the bus's bridge is given ``decode_payload`` and knows none of them. A test
round-trips a message of every topic through the wire form and back to an equal typed payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter

from triplegain.agents.portfolio import PortfolioOutput
from triplegain.agents.regime import RegimeOutput
from triplegain.agents.sentiment import SentimentOutput
from triplegain.agents.technical import TechnicalOutput
from triplegain.bus import Topic
from triplegain.market import Candle
from triplegain.model import BreakerTripped, DecisionMade, FillRow, LevelChanged, OrderRow, StateChanged

PAYLOADS: Mapping[Topic, TypeAdapter[Any]] = {
    Topic.MARKET_DATA: TypeAdapter(Candle),
    Topic.TA_SIGNALS: TypeAdapter(TechnicalOutput),
    Topic.REGIME_UPDATES: TypeAdapter(RegimeOutput),
    Topic.SENTIMENT_UPDATES: TypeAdapter(SentimentOutput),
    Topic.PORTFOLIO_UPDATES: TypeAdapter(PortfolioOutput),
    Topic.TRADE_INTENTS: TypeAdapter(DecisionMade),
    Topic.RISK_ALERTS: TypeAdapter(BreakerTripped),
    Topic.EXECUTION_EVENTS: TypeAdapter(OrderRow | FillRow),
    Topic.SYSTEM_EVENTS: TypeAdapter(StateChanged | LevelChanged),
}
"""Every topic's payload model (docs/ARCHITECTURE.md's topic table)."""


def decode_payload(topic: Topic, data: bytes) -> BaseModel:
    """A payload's JSON text validated as ``topic``'s model."""
    payload: BaseModel = PAYLOADS[topic].validate_json(data)
    return payload
