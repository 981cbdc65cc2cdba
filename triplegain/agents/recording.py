"""Every view the agents publish, stored: one bus subscriber per agent topic hands each view to the writer; a
stored view read back as the agent's typed output (``output_from_record``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from triplegain.agents.base import AgentOutput
from triplegain.agents.portfolio import PortfolioOutput
from triplegain.agents.publishing import AGENT_TOPICS
from triplegain.agents.regime import RegimeOutput
from triplegain.agents.sentiment import SentimentOutput
from triplegain.agents.technical import TechnicalOutput
from triplegain.bus import Message, MessageBus, Subscription, Topic
from triplegain.model import AgentName
from triplegain.store import AgentOutputRecord, PostgresAgentOutputLog
from triplegain.store.database import json_text
from triplegain.store.records import AgentOutputRow


def output_row(output: AgentOutput[Any], *, run_id: int | None) -> AgentOutputRow:
    """The ``agent_outputs`` row of one view."""
    return AgentOutputRow(
        id=output.id,
        run_id=run_id,
        agent=output.agent.value,
        symbol=output.symbol,
        ts=output.timestamp,
        confidence=output.confidence,
        body_json=json_text(output.body.model_dump(mode="json")),
        reasoning=output.reasoning,
        llm_call_id=output.llm_call_id,
    )


_OUTPUT_TYPES: dict[AgentName, type[AgentOutput[Any]]] = {
    AgentName.TECHNICAL: TechnicalOutput,
    AgentName.REGIME: RegimeOutput,
    AgentName.SENTIMENT: SentimentOutput,
    AgentName.PORTFOLIO: PortfolioOutput,
}


def output_from_record(record: AgentOutputRecord) -> AgentOutput[Any]:
    """The typed output an ``agent_outputs`` row was made from (``output_row`` the other way)."""
    agent = AgentName(record.agent)
    return _OUTPUT_TYPES[agent].model_validate(
        {
            "id": record.id,
            "agent": agent,
            "symbol": record.symbol,
            "timestamp": record.ts,
            "confidence": record.confidence,
            "body": record.body,
            "reasoning": record.reasoning or "",
            "llm_call_id": record.llm_call_id,
        }
    )


async def record_agent_views(
    bus: MessageBus,
    log: PostgresAgentOutputLog,
    *,
    run_id: int | None = None,
    topics: Iterable[Topic] = AGENT_TOPICS.values(),
) -> list[Subscription]:
    """Subscribe to the agents' topics (or those of ``topics``) and record every view published there.

    A message on those topics that is not an agent's view fails its delivery (a dead letter naming it)."""

    async def record(message: Message) -> None:
        output = message.payload
        if not isinstance(output, AgentOutput):
            raise TypeError(f"{message.topic.value} carried a {type(output).__name__}, not an agent's view")
        await log.record(output_row(output, run_id=run_id))

    return [await bus.subscribe(topic, record, name=f"store.{topic.value}") for topic in topics]
