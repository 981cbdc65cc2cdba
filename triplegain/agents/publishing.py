"""Putting an agent's output on the bus: its topic, its symbol, and a TTL equal to how long the view is valid."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from triplegain.agents.base import AgentOutput, BodyT
from triplegain.bus import Message, MessageBus, Priority, Topic
from triplegain.model import AgentName

AGENT_TOPICS: Mapping[AgentName, Topic] = {
    AgentName.TECHNICAL: Topic.TA_SIGNALS,
    AgentName.REGIME: Topic.REGIME_UPDATES,
    AgentName.SENTIMENT: Topic.SENTIMENT_UPDATES,
    AgentName.PORTFOLIO: Topic.PORTFOLIO_UPDATES,
}
"""The bus topic each agent publishes on."""


async def publish_output(
    bus: MessageBus,
    output: AgentOutput[BodyT],
    *,
    ttl: timedelta,
    priority: Priority = Priority.NORMAL,
    as_formed: bool = False,
) -> Message:
    """Publish ``output`` on its agent's topic, keyed by its symbol, expiring after ``ttl``; returns the message.

    ``ttl`` is normally the agent's ``valid_for``. The output's id is the message's correlation id, so a
    decision that used the message can be traced back to the output (and to its LLM call). ``as_formed``: the
    message is dated when the view was formed rather than now (a stored view put back after a restart expires
    when it would have).
    """
    message = bus.message(
        AGENT_TOPICS[output.agent],
        output,
        source=f"agents.{output.agent.value}",
        priority=priority,
        ttl=ttl,
        correlation_id=output.id,
        symbol=output.symbol,
    )
    if as_formed:
        message = message.replace(created_at=output.timestamp)
    await bus.publish(message)
    return message
