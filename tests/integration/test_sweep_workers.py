"""Local sweep workers against a real PostgreSQL: a worker process killed with SIGKILL in the middle of its run is
reported (its pid and the signal), its run failed and never left open in ``daemon_runs``, and the sweep goes on
with a new worker for the runs left. The kill is sent when the run is handed over (``RunStarted`` names the
pid); the killed run has no end (endless synthetic candles), so it cannot finish first."""

from __future__ import annotations

import os
import signal

import asyncpg
import pytest

from triplegain.config import Settings
from triplegain.sweep.grid import build_grid, parse_override
from triplegain.sweep.local import LocalProcesses
from triplegain.sweep.sweep import SweepOptions, plan_runs, run_sweep
from triplegain.sweep.work import RunOutcome, RunStarted, WorkEvent

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]


async def test_a_killed_worker_fails_its_run_and_the_sweep_goes_on(
    migrated_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", migrated_database_url)
    settings = Settings.model_validate(
        {"market": {"synthetic": {"symbols": {"BTC/USDT": 40_000.0}, "start": "2024-01-01T00:00:00Z"}}}
    )
    overrides = [parse_override("market.synthetic.count=null,200,150")]
    options = SweepOptions(sweep_id="kill01", source="synthetic")
    runs = plan_runs(settings, overrides, build_grid(overrides, [], [None]), options, os.environ)
    events: list[WorkEvent] = []
    killed: list[int] = []

    def listener(event: WorkEvent) -> None:
        events.append(event)
        if isinstance(event, RunStarted) and event.index == 1:
            assert event.pid is not None
            os.kill(event.pid, signal.SIGKILL)
            killed.append(event.pid)

    outcomes = await run_sweep(settings, runs, LocalProcesses(2, environ=dict(os.environ)), listener)

    first, second, third = outcomes
    assert (first.status, first.error) == ("failed", f"worker {killed[0]} died (killed by SIGKILL)")
    assert first.summary is None
    assert [(o.status, o.summary and o.summary.candles) for o in (second, third)] == [
        ("finished", 200),
        ("finished", 150),
    ]
    assert sorted(event.index for event in events if isinstance(event, RunOutcome)) == [1, 2, 3]
    started = [event for event in events if isinstance(event, RunStarted)]
    assert [event.index for event in started] == [1, 2, 3]
    assert started[2].pid != killed[0]  # a new worker took the place of the dead one
    connection = await asyncpg.connect(migrated_database_url)
    try:
        open_runs = await connection.fetchval("SELECT count(*) FROM daemon_runs WHERE ended_at IS NULL")
        died = await connection.fetch("SELECT exit_reason FROM daemon_runs WHERE account = 'sweep-kill01-1'")
    finally:
        await connection.close()
    assert open_runs == 0
    assert [row["exit_reason"] for row in died] in ([], [first.error])  # ended for it, if it had begun
