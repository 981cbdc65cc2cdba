"""Whether every task's LLM calls can finish inside the task's timeout: checked with the settings, before a run.

A task past its timeout is cancelled (``runner``). The trade decision waits for its whole resolver chain, an
agent's task for its LLM review: when the worst case of those calls is longer than the task may run, a provider
that hangs gets the task cancelled, and what it was doing is cut short. The worst case of one provider is
``llm.retry.call_worst_case_seconds`` (every attempt waiting out its timeout, every wait between attempts at its
longest, a 429's retry-after up to ``retry_after_cap_seconds`` included); a chain's is the sum over its providers,
asked one after another. ``TASK_MARGIN_SECONDS`` is added for what the task does besides asking: the decision's
assessment and the transaction that commits it, an agent's indicators and its view.

The batching writer keeps an LLM call whose decision is not stored yet for ``missing_parent_wait_seconds``: the
first attempt of a resolution waits for the decision's commit at the end of the task (or just after it, when the
task was cut short), so that wait may not be shorter than the task's timeout and the margin.

    problems = time_limit_problems(settings.coordinator.schedule, settings.coordinator.resolver, settings.agents,
                                   settings.llm, settings.database.writer)   # lines for a ConfigError
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from triplegain.agents.settings import AgentsSettings
from triplegain.coordinator.resolver import ResolverSettings
from triplegain.coordinator.schedule import ScheduleSettings, TaskName
from triplegain.llm.retry import call_worst_case_seconds
from triplegain.llm.settings import LLMSettings
from triplegain.store.settings import WriterSettings

TASK_MARGIN_SECONDS = 5.0
"""Time a task needs besides its LLM calls: a decision's assessment and its commit (a transaction holding the
state row, a round trip or two), an agent's indicators and publishing its view. 5 s is ample on a busy machine and
a remote database; a database slower than that is degraded anyway."""


class ChainWorstCase(BaseModel):
    """The longest the providers of a task may take in all, each provider's part, and the task's need."""

    model_config = ConfigDict(frozen=True)

    providers: tuple[tuple[str, float], ...]
    """Each provider asked, in order, with its worst case in seconds."""

    @property
    def seconds(self) -> float:
        """The chain's worst case and the margin: what the task's timeout must allow."""
        return sum(seconds for _, seconds in self.providers) + TASK_MARGIN_SECONDS

    def explain(self) -> str:
        """E.g. ``deepseek 50 s + anthropic 50 s + 5 s for the task itself``."""
        parts = [f"{name} {seconds:g} s" for name, seconds in self.providers]
        return " + ".join([*parts, f"{TASK_MARGIN_SECONDS:g} s for the task itself"])


def chain_worst_case(providers: Sequence[str], llm: LLMSettings) -> ChainWorstCase:
    """The worst case of asking ``providers`` one after another."""
    return ChainWorstCase(providers=tuple((name, call_worst_case_seconds(llm.provider(name))) for name in providers))


def time_limit_problems(
    schedule: ScheduleSettings,
    resolver: ResolverSettings,
    agents: AgentsSettings,
    llm: LLMSettings,
    writer: WriterSettings,
) -> list[str]:
    """One line per task whose LLM calls may outlast its timeout (``key: value — what is allowed``)."""
    problems = []
    decision = schedule.trade_decision
    chain = chain_worst_case(resolver.providers, llm)
    if decision.enabled and resolver.providers and chain.seconds > decision.timeout_seconds:
        problems.append(
            f"coordinator.schedule.trade_decision.timeout_seconds: {decision.timeout_seconds:g} — the resolver chain "
            f"({', '.join(resolver.providers)}) may take {chain.seconds:g} s ({chain.explain()}): raise it to at "
            f"least {chain.seconds:g}, or lower llm.providers.<name>.timeout_seconds or retry.max_attempts of a "
            f"provider, or shorten coordinator.resolver.providers"
        )
    for task, provider in (
        (TaskName.TECHNICAL, agents.technical.llm_provider),
        (TaskName.REGIME, agents.regime.llm_provider),
        (TaskName.SENTIMENT, agents.sentiment.llm_provider),
    ):
        spec = schedule.spec(task)
        if provider is None or not spec.enabled:
            continue
        review = chain_worst_case([provider], llm)
        if review.seconds > spec.timeout_seconds:
            problems.append(
                f"coordinator.schedule.{task.value}.timeout_seconds: {spec.timeout_seconds:g} — the {task.value} "
                f"agent's review by agents.{task.value}.llm_provider {provider} may take {review.seconds:g} s "
                f"({review.explain()}): raise it to at least {review.seconds:g}, or lower "
                f"llm.providers.{provider}.timeout_seconds or retry.max_attempts"
            )
    needed = decision.timeout_seconds + TASK_MARGIN_SECONDS
    if decision.enabled and writer.missing_parent_wait_seconds < needed:
        problems.append(
            f"database.writer.missing_parent_wait_seconds: {writer.missing_parent_wait_seconds:g} — a resolution's "
            f"LLM calls wait for their decision as long as coordinator.schedule.trade_decision.timeout_seconds "
            f"({decision.timeout_seconds:g}) and {TASK_MARGIN_SECONDS:g} s to store it: at least {needed:g}, or the "
            f"writer refuses them"
        )
    return problems
