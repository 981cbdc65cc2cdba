"""A provider's daily spend, as pure functions: what a call costs, and whether today's budget allows another.

The day is the UTC date from the injected clock. The check is made before a call (whose cost is not known
yet), so the last call of a day may take the spend past the budget by its own cost; after it, the provider is
skipped until the next UTC day.
"""

from __future__ import annotations

from datetime import date

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
