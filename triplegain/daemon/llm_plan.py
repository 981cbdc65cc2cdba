"""What a run may ask of LLM providers and what that may cost, settled before its first candle.

    plan = plan_llm(settings, replaying=True, environ=os.environ, max_llm_usd=None, answers=None)
    plan.settings        # providers without their API key replaced by the offline provider
    plan.paid            # the paid providers the run may call

- Masking: in a replay whose prompts go to a model over the network, prompts show no symbol, date or price level
  (``llm.mask_history``, ``llm.masking``): the run's candles are history a model may remember.
- Keys: a provider whose key is not set gives way to the offline provider (``daemon.keys``), except a provider
  an earlier run asked whose answers this run serves (``--answers-from``): it is kept, and never asked.
- The guard: a replay (or a synthetic run) that may call a paid provider (one with a price) must be bounded:
  ``--max-llm-usd`` caps what it spends, or ``--answers-from`` serves an earlier run's answers instead of asking
  (with ``--on-missing ask`` it may ask again, so it needs the cap too). Otherwise it is refused, exit 2, before
  anything starts, so no one spends money by accident. A live run is bounded by the providers' daily budgets.
- The estimate (``SpendEstimate``): an upper bound of the paid calls and their cost, printed at start. It is a
  bound, not a forecast: every trade decision a conflict, every provider of the resolver chain asked with every
  attempt (each failing over to the next), every agent review on every run, each billed for its longest prompt
  (``PROMPT_CHARS`` at ``CHARS_PER_TOKEN``) in and the provider's ``max_output_tokens`` out. A forecast would take
  an offline pass over the same candles (a second replay, writing a second run) and still be wrong, since a
  model's answers change the positions and with them the conflicts that follow; the bound is arithmetic on the
  settings and the candle count, instant, and ``--max-llm-usd`` is what actually caps the spend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from triplegain.agents.sources.items import SUMMARY_MAX_CHARS, TITLE_MAX_CHARS
from triplegain.config import Settings
from triplegain.coordinator.schedule import TaskName
from triplegain.daemon.keys import offline_where_keys_missing
from triplegain.errors import UserError
from triplegain.llm import RecordedAnswers
from triplegain.llm.budget import call_cost_usd
from triplegain.llm.masking import masks_history
from triplegain.market import Timeframe

PROMPT_CHARS = {TaskName.TECHNICAL: 3_500, TaskName.REGIME: 2_000, TaskName.TRADE_DECISION: 3_000}
"""The longest prompts (system and user) of each task, in characters, rounded up from the longest measured in an
offline replay of BTC_USDT-5m.csv with every review on: technical 3,246 (three timeframes), regime 1,799,
conflict resolution 2,225. A sentiment prompt is bounded by its settings (``sentiment_prompt_chars``)."""
SENTIMENT_PROMPT_CHARS = 1_500
"""A sentiment prompt without its items: both templates, the baseline's figures."""
ITEM_LINE_CHARS = 100
"""An item's line besides its title and summary: time, source, separators."""
CHARS_PER_TOKEN = 2
"""A bound: tokenizers take about 4 characters of English and 2.5 to 3 of JSON numbers per token."""


def used_providers(settings: Settings) -> list[str]:
    """The providers a run asks: the resolver chain's, then each agent's review's, each once."""
    agents = settings.agents
    names = [
        *settings.coordinator.resolver.providers,
        *(agents.technical.llm_provider, agents.regime.llm_provider, agents.sentiment.llm_provider),
    ]
    return list(dict.fromkeys(name for name in names if name is not None))


@dataclass(frozen=True)
class LLMPlan:
    """The settings to run with, the paid providers they may call, whether prompts are masked, and what to say at
    start."""

    settings: Settings
    paid: tuple[str, ...]
    mask_history: bool = False
    messages: tuple[str, ...] = field(default=())


def plan_llm(
    settings: Settings,
    *,
    replaying: bool,
    environ: Mapping[str, str],
    max_llm_usd: float | None,
    answers: RecordedAnswers | None,
) -> LLMPlan:
    """The plan; ``UserError`` when a replay could spend money unbounded (see the module docstring)."""
    fallback = offline_where_keys_missing(settings, environ, keep=answers.providers if answers is not None else ())
    settings = fallback.settings
    messages = [fallback.message] if fallback.message is not None else []
    paid = tuple(name for name in used_providers(settings) if settings.llm.provider(name).paid)
    if answers is not None:
        served = answers.providers & set(used_providers(settings))
        unasked = sorted(name for name in served if _keyless(settings, name, environ))
        if unasked:
            messages.append(
                f"no API key for {', '.join(unasked)}: only run {answers.run_id}'s answers are served from "
                "them; what it never asked gets the conservative answer"
            )
        paid = tuple(name for name in paid if not _keyless(settings, name, environ))
    asks = answers is None or answers.on_missing == "ask"
    if replaying and asks and paid and max_llm_usd is None:
        options = "--max-llm-usd USD to cap it" + (
            ", or --answers-from RUN to reuse a run's answers" if answers is None else ", or --on-missing conservative"
        )
        raise UserError(f"run: this replay may call paid LLM providers ({', '.join(paid)}): pass {options}")
    mask = masks_history(
        settings.llm.mask_history,
        replaying=replaying,
        providers=(settings.llm.provider(name) for name in used_providers(settings)),
    )
    if mask:
        messages.append("prompts are masked (llm.mask_history): no symbol, date or price level reaches a model")
    return LLMPlan(settings=settings, paid=paid if asks else (), mask_history=mask, messages=tuple(messages))


def _keyless(settings: Settings, name: str, environ: Mapping[str, str]) -> bool:
    variable = settings.llm.provider(name).api_key_env
    return variable is not None and not environ.get(variable, "").strip()


class ProviderEstimate(BaseModel):
    """At most this many paid calls to one provider, and at most what they cost."""

    model_config = ConfigDict(frozen=True)

    provider: str
    calls: int
    usd: float


class SpendEstimate(BaseModel):
    """The bound of a run's paid LLM calls, by provider."""

    model_config = ConfigDict(frozen=True)

    providers: tuple[ProviderEstimate, ...]

    @property
    def calls(self) -> int:
        return sum(provider.calls for provider in self.providers)

    @property
    def usd(self) -> float:
        return sum(provider.usd for provider in self.providers)

    def line(self, max_llm_usd: float | None) -> str:
        """One line for the start of a run."""
        each = ", ".join(f"{p.provider} {p.calls:,} (${p.usd:,.2f})" for p in self.providers)
        cap = f"; --max-llm-usd stops paid calls at ${max_llm_usd:,.2f}" if max_llm_usd is not None else ""
        return (
            f"LLM cost at most ${self.usd:,.2f} for {self.calls:,} paid calls ({each}): a bound, every decision a "
            f"conflict and every attempt billed in full{cap}"
        )


def runs_of(candles: int, timeframe: Timeframe, interval_seconds: float) -> int:
    """At most how many times a task of ``interval_seconds`` runs over ``candles`` candles of ``timeframe``: at
    each candle's close that reaches one of its boundaries."""
    if candles <= 0:
        return 0
    return min(candles, math.ceil(candles * timeframe.seconds / interval_seconds) + 1)


def estimate_spend(settings: Settings, candles: Mapping[str, int], timeframe: Timeframe) -> SpendEstimate:
    """The bound of the paid calls over ``candles`` (per symbol) of ``timeframe``; see the module docstring."""
    schedule = settings.coordinator.schedule
    calls: dict[str, int] = {}

    usd: dict[str, float] = {}

    def ask(provider: str | None, task: TaskName) -> None:
        spec = schedule.spec(task)
        if provider is None or not spec.enabled or not settings.llm.provider(provider).paid:
            return
        limits = settings.llm.provider(provider)
        runs = sum(runs_of(count, timeframe, spec.interval_seconds) for count in candles.values())
        made = runs * limits.retry.max_attempts
        tokens_in = math.ceil(prompt_chars(settings, task) / CHARS_PER_TOKEN)
        calls[provider] = calls.get(provider, 0) + made
        usd[provider] = usd.get(provider, 0.0) + made * call_cost_usd(
            tokens_in, limits.max_output_tokens, limits.prices
        )

    for name in settings.coordinator.resolver.providers:
        ask(name, TaskName.TRADE_DECISION)
    agents = settings.agents
    ask(agents.technical.llm_provider, TaskName.TECHNICAL)
    ask(agents.regime.llm_provider, TaskName.REGIME)
    ask(agents.sentiment.llm_provider, TaskName.SENTIMENT)
    return SpendEstimate(
        providers=tuple(ProviderEstimate(provider=name, calls=count, usd=usd[name]) for name, count in calls.items())
    )


def prompt_chars(settings: Settings, task: TaskName) -> int:
    """The longest prompt a task's LLM call sends, in characters (see ``PROMPT_CHARS``)."""
    if task is TaskName.SENTIMENT:
        items = settings.agents.sentiment.max_prompt_items
        return SENTIMENT_PROMPT_CHARS + items * (TITLE_MAX_CHARS + SUMMARY_MAX_CHARS + ITEM_LINE_CHARS)
    return PROMPT_CHARS[task]
