"""The bridge's pure parts: a symbol as one subject token, each symbol its own; a schedule restricted to the tasks
a process runs; the NATS URL's settings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triplegain.bus import Topic
from triplegain.bus.bridge import NO_SYMBOL, subject, symbol_token
from triplegain.bus.settings import NatsSettings
from triplegain.coordinator.schedule import ScheduleSettings, TaskName


@pytest.mark.parametrize(
    ("symbol", "token"),
    [
        ("BTC/USDT", "BTC/USDT"),
        ("BTC/USDT:USDT", "BTC/USDT:USDT"),
        ("1000-PEPE_X/USDT", "1000-PEPE_X/USDT"),
        ("BTC.D", "BTC%2ED"),
        ("A*B>C D", "A%2AB%3EC%20D"),
        ("50%", "50%25"),
        ("€/USD", "%E2%82%AC/USD"),
        (None, NO_SYMBOL),
    ],
)
def test_a_symbol_is_one_subject_token(symbol: str | None, token: str) -> None:
    assert symbol_token(symbol) == token
    assert subject("triplegain", Topic.TA_SIGNALS, symbol) == f"triplegain.ta_signals.{token}"


@given(st.text(min_size=1), st.text(min_size=1))
def test_two_symbols_never_share_a_token_and_no_token_breaks_a_subject(first: str, second: str) -> None:
    for symbol in (first, second):
        token = symbol_token(symbol)
        assert token
        assert not any(char in token for char in ".*> \t\r\n")
        assert token != NO_SYMBOL
    assert (symbol_token(first) == symbol_token(second)) == (first == second)


def test_a_schedule_restricted_to_some_tasks_runs_only_those_and_waits_for_no_other() -> None:
    schedule = ScheduleSettings().restricted_to({TaskName.PORTFOLIO, TaskName.TRADE_DECISION, TaskName.HOUSEKEEPING})
    assert schedule.ordered() == [TaskName.PORTFOLIO, TaskName.TRADE_DECISION, TaskName.HOUSEKEEPING]
    assert schedule.trade_decision.depends_on == []
    agents = ScheduleSettings().restricted_to({TaskName.TECHNICAL, TaskName.REGIME, TaskName.SENTIMENT})
    assert agents.ordered() == [TaskName.TECHNICAL, TaskName.REGIME, TaskName.SENTIMENT]
    assert agents.regime.depends_on == [TaskName.TECHNICAL]


@pytest.mark.parametrize("url", ["nats://user:secret@host:4222", "nats://token@host:4222", "http://host:4222", "host"])
def test_a_nats_url_with_credentials_or_of_another_kind_is_refused_in_settings(url: str) -> None:
    with pytest.raises(ValueError, match=r"nats|TRIPLEGAIN_NATS_URL"):
        NatsSettings(url=url)
