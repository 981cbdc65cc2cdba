"""The worst case of a task's LLM calls against the task's timeout, checked with the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from triplegain.config import load_settings
from triplegain.coordinator.time_limits import TASK_MARGIN_SECONDS, chain_worst_case
from triplegain.errors import ConfigError
from triplegain.llm import ProviderKind, ProviderSettings, RetrySettings
from triplegain.llm.retry import call_worst_case_seconds, longest_waits


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "triplegain.yaml"
    path.write_text(text)
    return path


def test_a_call_s_worst_case_is_every_attempt_timing_out_and_every_wait_at_its_longest() -> None:
    retry = RetrySettings(max_attempts=4, backoff_initial_seconds=1, backoff_max_seconds=3, retry_after_cap_seconds=2)
    assert longest_waits(retry) == [2.0, 2.0, 3.0], "a retry-after up to its cap, or the doubling backoff"
    provider = ProviderSettings(kind=ProviderKind.OFFLINE, model="m", timeout_seconds=10, retry=retry)
    assert call_worst_case_seconds(provider) == 4 * 10 + 7


def test_the_issue_s_chain_of_two_hanging_providers_is_refused_naming_both_numbers_and_the_keys(
    tmp_path: Path,
) -> None:
    """Timeouts of 2 s, 2 attempts each, backoff 0.5 s and a retry-after up to 10 s: 14 s a provider."""
    path = settings_file(
        tmp_path,
        "llm:\n  providers:\n"
        "    deepseek: {timeout_seconds: 2}\n"
        "    anthropic: {timeout_seconds: 2}\n"
        "coordinator:\n  schedule:\n    trade_decision: {timeout_seconds: 5}\n",
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})
    [problem] = raised.value.problems
    assert problem.startswith(
        "coordinator.schedule.trade_decision.timeout_seconds: 5 — the resolver chain (deepseek, anthropic) may take "
        "33 s (deepseek 14 s + anthropic 14 s + 5 s for the task itself): raise it to at least 33, "
        "or lower llm.providers.<name>.timeout_seconds or retry.max_attempts"
    ), problem


@pytest.mark.parametrize(
    "chain", [["deepseek", "anthropic"], ["deepseek", "ollama"], ["anthropic", "ollama"], ["ollama"], ["offline"]]
)
def test_the_default_providers_fit_the_default_decision_two_at_a_time(tmp_path: Path, chain: list[str]) -> None:
    path = settings_file(tmp_path, f"coordinator:\n  resolver: {{providers: [{', '.join(chain)}]}}\n")
    settings = load_settings(path, environ={})
    worst = chain_worst_case(chain, settings.llm)
    assert worst.seconds <= settings.coordinator.schedule.trade_decision.timeout_seconds


@pytest.mark.parametrize("provider", ["deepseek", "anthropic", "openai", "ollama", "offline"])
@pytest.mark.parametrize("agent", ["technical", "regime", "sentiment"])
def test_every_default_provider_fits_every_agent_s_task(tmp_path: Path, agent: str, provider: str) -> None:
    load_settings(settings_file(tmp_path, f"agents:\n  {agent}: {{llm_provider: {provider}}}\n"), environ={})


def test_an_agent_s_review_longer_than_its_task_is_refused(tmp_path: Path) -> None:
    path = settings_file(
        tmp_path,
        "agents:\n  regime: {llm_provider: ollama}\n"
        "llm:\n  providers:\n    ollama: {timeout_seconds: 120}\n",
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})
    [problem] = raised.value.problems
    assert problem.startswith("coordinator.schedule.regime.timeout_seconds: 90 — the regime agent's review by ")
    assert f"may take {120 + TASK_MARGIN_SECONDS:g} s" in problem


def test_the_writer_waits_for_a_decision_as_long_as_its_task_may_run(tmp_path: Path) -> None:
    path = settings_file(tmp_path, "database:\n  writer: {missing_parent_wait_seconds: 60}\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})
    [problem] = raised.value.problems
    assert problem.startswith("database.writer.missing_parent_wait_seconds: 60 — ")
