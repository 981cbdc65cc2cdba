from __future__ import annotations

from datetime import date

import pytest

from triplegain.llm import DailySpend, Prices
from triplegain.llm.budget import add_cost, budget_allows, call_cost_usd, on_day

DAY = date(2025, 3, 1)
NEXT_DAY = date(2025, 3, 2)


def test_cost_follows_the_price_per_million_tokens() -> None:
    prices = Prices(input_usd_per_million=3.0, output_usd_per_million=15.0)
    assert call_cost_usd(1_000_000, 0, prices) == pytest.approx(3.0)
    assert call_cost_usd(2_000, 500, prices) == pytest.approx(0.006 + 0.0075)
    assert call_cost_usd(10_000, 10_000, Prices()) == 0.0


def test_spend_adds_up_within_a_day() -> None:
    spend = add_cost(add_cost(DailySpend(day=DAY), 0.25, DAY), 0.5, DAY)
    assert spend == DailySpend(day=DAY, spent_usd=0.75)


def test_a_new_day_starts_from_zero() -> None:
    spend = DailySpend(day=DAY, spent_usd=4.0)
    assert on_day(spend, NEXT_DAY) == DailySpend(day=NEXT_DAY)
    assert add_cost(spend, 0.1, NEXT_DAY) == DailySpend(day=NEXT_DAY, spent_usd=0.1)


def test_calls_are_allowed_until_the_budget_is_reached() -> None:
    assert budget_allows(DailySpend(day=DAY, spent_usd=0.99), 1.0, DAY)
    assert not budget_allows(DailySpend(day=DAY, spent_usd=1.0), 1.0, DAY)
    assert not budget_allows(DailySpend(day=DAY, spent_usd=1.2), 1.0, DAY)
    assert budget_allows(DailySpend(day=DAY, spent_usd=1.2), 1.0, NEXT_DAY)


def test_a_zero_budget_allows_nothing() -> None:
    assert not budget_allows(DailySpend(day=DAY), 0.0, DAY)
