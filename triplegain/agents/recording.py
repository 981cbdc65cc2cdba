"""Every view the agents publish, stored: one bus subscriber per agent topic hands each view to the writer."""

from __future__ import annotations

from typing import Any

from triplegain.agents.base import AgentOutput
from triplegain.agents.publishing import AGENT_TOPICS
from triplegain.bus import Message, MessageBus, Subscription
from triplegain.store import AgentOutputRecord, PostgresAgentOutputLog


def output_record(output: AgentOutput[Any], *, run_id: int | None) -> AgentOutputRecord:
    """The ``agent_outputs`` row of one view."""
    return AgentOutputRecord(
        id=output.id,
        run_id=run_id,
        agent=output.agent.value,
        symbol=output.symbol,
        ts=output.timestamp,
        confidence=output.confidence,
        body=output.body.model_dump(mode="json"),
        reasoning=output.reasoning,
        llm_call_id=output.llm_call_id,
    )


async def record_agent_views(
    bus: MessageBus, log: PostgresAgentOutputLog, *, run_id: int | None = None
) -> list[Subscription]:
    """Subscribe to the agents' topics and record every view published there.

    A message on those topics that is not an agent's view fails its delivery (a dead letter naming it)."""

    async def record(message: Message) -> None:
        output = message.payload
        if not isinstance(output, AgentOutput):
            raise TypeError(f"{message.topic.value} carried a {type(output).__name__}, not an agent's view")
        await log.record(output_record(output, run_id=run_id))

    return [await bus.subscribe(topic, record, name=f"store.{topic.value}") for topic in AGENT_TOPICS.values()]
