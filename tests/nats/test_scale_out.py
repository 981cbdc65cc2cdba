"""One ``triplegain agents`` process and two ``triplegain run --agents remote`` processes on two accounts, over a
real NATS server and PostgreSQL, with a synthetic feed paced on the wall clock: both accounts decide exactly as a
single-process run over the same candles does (rows compared), every view reaches both, and each agent's LLM
review (the offline provider, counted) is made once, by the agents service, whatever the number of accounts."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.nats.processes import (
    agent_llm_calls,
    agents_service,
    event_named,
    finished,
    remote_coordinator,
    role_env,
    single_process,
    trading_rows,
    wait_for_decisions,
    write_config,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]

CANDLES = 96  # per symbol: 8 hours of 5-minute candles
SPEED = "3600"  # an hour of candles a second: the replay takes 8 s of wall time


async def test_two_accounts_decide_on_one_agents_service_as_one_process_does(
    migrated_database_url: str, nats_url: str, nats_names: dict[str, str], tmp_path: Path
) -> None:
    env = role_env(migrated_database_url, write_config(tmp_path, nats_names, count=CANDLES), nats_url)
    reference = single_process(env, "reference")
    finished(reference, within=120)
    expected = await trading_rows(migrated_database_url, "reference")
    last_time = expected["decisions"][-1][1]
    before_the_last = sum(1 for row in expected["decisions"] if row[1] < last_time)
    assert any(row[2] != "hold" for row in expected["decisions"]), "the replay must trade to compare orders"

    coordinators = {account: remote_coordinator(env, account) for account in ("left", "right")}
    agents = agents_service(env, speed=SPEED)
    summary = finished(agents, within=120)
    assert summary["candles"] == 2 * CANDLES
    assert summary["duplicates"] == 0

    for process in coordinators.values():
        # The last time's decisions run when the stream's next candle arrives, or at the stop.
        wait_for_decisions(process, before_the_last, within=60)
        process.send(signal.SIGTERM)
    for account, process in coordinators.items():
        finished(process, within=60)
        taken = event_named(process, "nats ingress closed")
        assert taken["taken"] == summary["published"], account
        assert (taken["expired"], taken["duplicates"], taken["rejected"]) == (0, 0, 0), account
        assert await trading_rows(migrated_database_url, account) == expected, account

    calls = await agent_llm_calls(migrated_database_url)
    assert calls.get(None, 0) == calls["reference"] > 0
    assert calls.get("left", 0) == calls.get("right", 0) == 0
