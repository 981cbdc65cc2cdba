"""What a run may ask of LLM providers, settled before it starts: the keys, the guard against unbounded paid
replays, and the bound of what a replay may cost."""

from __future__ import annotations

from typing import Any

import pytest

from triplegain.config import Settings
from triplegain.daemon.llm_plan import estimate_spend, plan_llm, runs_of
from triplegain.errors import UserError
from triplegain.llm import RecordedAnswers
from triplegain.market import Timeframe

KEYS = {"DEEPSEEK_API_KEY": "sk-d", "ANTHROPIC_API_KEY": "sk-a"}


def plan(settings: Settings | None = None, **options: Any) -> Any:
    values: dict[str, Any] = {"replaying": True, "environ": KEYS, "max_llm_usd": None, "answers": None} | options
    return plan_llm(settings or Settings(), **values)


def test_a_replay_that_may_pay_without_a_cap_or_answers_is_refused_in_one_line() -> None:
    with pytest.raises(UserError) as refused:
        plan()
    assert str(refused.value) == (
        "run: this replay may call paid LLM providers (deepseek, anthropic): pass --max-llm-usd USD to cap it, "
        "or --answers-from RUN to reuse a run's answers"
    )
    assert refused.value.exit_code == 2


def test_a_cap_a_live_run_or_no_keys_let_it_run() -> None:
    assert plan(max_llm_usd=1.0).paid == ("deepseek", "anthropic")
    assert plan(replaying=False).paid == ("deepseek", "anthropic")
    keyless = plan(environ={})
    assert keyless.paid == ()
    assert keyless.settings.coordinator.resolver.providers == ["offline"]
    assert keyless.messages == (
        "no API key for anthropic (ANTHROPIC_API_KEY), deepseek (DEEPSEEK_API_KEY): using the offline provider "
        "instead",
    )


def test_answers_from_a_run_asks_nothing_unless_told_to_ask() -> None:
    answers = RecordedAnswers(4, [], on_missing="conservative")
    assert plan(answers=answers).paid == ()
    asking = RecordedAnswers(4, [], on_missing="ask")
    with pytest.raises(UserError, match=r"pass --max-llm-usd USD to cap it, or --on-missing conservative$"):
        plan(answers=asking)


def test_a_task_runs_at_most_once_a_candle_or_once_an_interval() -> None:
    assert runs_of(1000, Timeframe.M5, 300) == 1000
    assert runs_of(1000, Timeframe.M5, 900) == 335
    assert runs_of(1000, Timeframe.M1, 300) == 201
    assert runs_of(0, Timeframe.M5, 300) == 0


def test_the_estimate_bounds_every_decision_a_conflict_and_every_attempt_billed() -> None:
    """DeepSeek: 2 attempts × 1,000 decisions, 1,500 prompt tokens (3,000 chars) in and 1,024 out at 0.28 and
    0.42 USD a million; Claude the same at 3 and 15."""
    estimate = estimate_spend(Settings(), {"BTC/USDT": 1000}, Timeframe.M5)
    [deepseek, claude] = estimate.providers
    assert (deepseek.provider, deepseek.calls) == ("deepseek", 2000)
    assert deepseek.usd == pytest.approx(2000 * (1500 * 0.28 + 1024 * 0.42) / 1e6)
    assert (claude.provider, claude.calls) == ("anthropic", 2000)
    assert claude.usd == pytest.approx(2000 * (1500 * 3 + 1024 * 15) / 1e6)
    assert estimate.line(2.0).startswith(f"LLM cost at most ${estimate.usd:,.2f} for 4,000 paid calls (deepseek 2,000")
