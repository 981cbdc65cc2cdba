"""What LLM calls cost, and the ledger of what was spent: per provider and UTC day, and in all during a run.

Spend is money, so its day is the wall clock's UTC date, whatever a replay's simulated clock says. The process
keeps one ``SpendLedger``, shared by every gateway of a provider (an agent's review and the resolver chain may
both ask DeepSeek, against one budget), seeded at start from what the call log says was spent today, so a
restarted daemon goes on counting from there. A check is made before a call (whose cost is not known yet), so
the last call of a day may take the spend past the budget by its own cost (each call in flight at once, by its
own); after it, the provider is skipped until the next UTC day. The run budget (``--max-llm-usd``) works the
same way over every paid call of the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from triplegain.llm.settings import Prices

_TOKENS_PER_PRICE_UNIT = 1_000_000


class DailySpend(BaseModel):
    """USD spent on one provider on one UTC day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: date
    spent_usd: float = Field(default=0.0, ge=0)


def call_cost_usd(input_tokens: int, output_tokens: int, prices: Prices) -> float:
    return (
        input_tokens * prices.input_usd_per_million + output_tokens * prices.output_usd_per_million
    ) / _TOKENS_PER_PRICE_UNIT


def on_day(spend: DailySpend, day: date) -> DailySpend:
    """``spend`` if it is ``day``'s, else a fresh day with nothing spent."""
    return spend if spend.day == day else DailySpend(day=day)


def budget_allows(spend: DailySpend, budget_usd: float, day: date) -> bool:
    """Whether another call may be made on ``day``."""
    return on_day(spend, day).spent_usd < budget_usd


def add_cost(spend: DailySpend, cost_usd: float, day: date) -> DailySpend:
    """The spend after a call on ``day`` that cost ``cost_usd``."""
    today = on_day(spend, day)
    return today.model_copy(update={"spent_usd": today.spent_usd + cost_usd})


class SpendLedger:
    """What this process spent: each provider's spend on its latest wall-clock UTC day, and the run's in all.

    ``spent_today`` seeds the providers' spend of ``day`` (after a restart, summed from the call log);
    ``run_limit_usd`` is the run budget over every paid call (None: no run budget).
    """

    def __init__(
        self, day: date, spent_today: Mapping[str, float] | None = None, *, run_limit_usd: float | None = None
    ) -> None:
        if run_limit_usd is not None and not run_limit_usd >= 0:
            raise ValueError(f"run_limit_usd must be a number ≥ 0, got {run_limit_usd}")
        self._spent = {name: DailySpend(day=day, spent_usd=usd) for name, usd in (spent_today or {}).items()}
        self.run_limit_usd = run_limit_usd
        self.run_spent_usd = 0.0
        self.run_limit_reached_at: datetime | None = None
        """When (on the system's clock: candle time in a replay) a paid call was first refused for the run
        budget."""
        self.run_limit_skips = 0
        """Paid calls refused for the run budget."""

    def today(self, provider: str, day: date) -> DailySpend:
        """``provider``'s spend on ``day`` (nothing when its latest spend was on another day)."""
        return on_day(self._spent.get(provider, DailySpend(day=day)), day)

    def add(self, provider: str, cost_usd: float, day: date) -> None:
        """Count a call to ``provider`` made on ``day`` that cost ``cost_usd``."""
        self._spent[provider] = add_cost(self.today(provider, day), cost_usd, day)
        self.run_spent_usd += cost_usd

    def run_allows(self) -> bool:
        """Whether the run budget allows another paid call."""
        return self.run_limit_usd is None or self.run_spent_usd < self.run_limit_usd

    def refused_for_run(self, at: datetime) -> None:
        """Count a paid call refused for the run budget, made at ``at``."""
        self.run_limit_skips += 1
        if self.run_limit_reached_at is None:
            self.run_limit_reached_at = at
