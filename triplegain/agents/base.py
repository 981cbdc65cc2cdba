"""What every agent shares: its name, the ``Agent`` protocol, and the ``AgentOutput`` envelope of a view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, Protocol, TypeVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.model import AgentName, Bias


def bias_of(score: float, neutral_band: float) -> Bias:
    """Long at or above ``neutral_band``, short at or below its negative, neutral in between."""
    if score >= neutral_band:
        return Bias.LONG
    if score <= -neutral_band:
        return Bias.SHORT
    return Bias.NEUTRAL


BodyT = TypeVar("BodyT", bound=BaseModel)
ContextT_contra = TypeVar("ContextT_contra", contravariant=True)


class AgentOutput(BaseModel, Generic[BodyT]):
    """One agent's view of one symbol (``symbol`` None: a whole-portfolio view).

    ``id`` is also the ``served_id`` of the LLM call made for it, so every call can be joined to its output;
    ``llm_call_id`` is the call-log record of the successful refinement, None when the baseline stands alone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID = Field(default_factory=uuid4, description="this output's id")
    agent: AgentName = Field(description="which agent formed the view")
    symbol: str | None = Field(description="the market the view is about; None only for a whole-portfolio view")
    timestamp: AwareDatetime = Field(description="when the view was formed, from the injected clock")
    confidence: float = Field(ge=0, le=1, description="how far the view may be relied on, 0–1")
    body: BodyT = Field(description="the agent's typed view")
    reasoning: str = Field(description="how the view was reached, in words")
    llm_call_id: UUID | None = Field(default=None, description="call-log id of the LLM refinement that refined it")


class Agent(Protocol[ContextT_contra, BodyT]):
    """An analysis agent: a deterministic baseline, optionally refined by an LLM, as one ``AgentOutput``."""

    @property
    def name(self) -> AgentName: ...

    @property
    def valid_for(self) -> timedelta:
        """How long its views stay valid: the TTL to publish them with."""
        ...

    async def analyze(self, context: ContextT_contra) -> AgentOutput[BodyT]: ...


@dataclass(frozen=True, slots=True)
class Baseline(Generic[BodyT]):
    """What an agent's pure scoring returns: the body, its confidence and the reasoning behind both."""

    body: BodyT
    confidence: float
    reasoning: str
