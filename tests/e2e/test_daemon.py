"""The daemon as a process against a real PostgreSQL, driven through the CLI as an operator would.

A paced synthetic replay runs; pause, halt and a refused resume go through `triplegain coordinator`; a second
daemon on the same account is turned away; the first is killed with SIGKILL mid-replay; a restarted daemon
keeps the halt, is resumed with --force and finishes the replay. Nothing acknowledged is lost or duplicated:
every buy or sell decision has exactly one order, every filled order its fills, each run its row.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.cli import run_cli, start_cli
from triplegain.clock import WallClock

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

CONFIG = """
market:
  synthetic:
    symbols: {BTC/USDT: 40000.0, ETH/USDT: 2500.0}
    count: 400
    start: 2024-01-01T00:00:00Z
coordinator:
  conflicts: {risk_cut_threshold: 0.3}
"""
WAIT_SECONDS = 60.0


@pytest.fixture
def env(empty_database_url: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "triplegain.yaml"
    config.write_text(CONFIG)
    return {"TRIPLEGAIN_DATABASE_URL": empty_database_url, "TRIPLEGAIN_CONFIG": str(config)}


def daemon(env: dict[str, str], speed: str) -> subprocess.Popen[str]:
    return start_cli("run", "--source", "synthetic", "--seed", "3", "--speed", speed, env=env)


def wait_until_running(env: dict[str, str], process: subprocess.Popen[str]) -> None:
    """Poll `coordinator status` (the operator's own check) until it says the daemon runs and has decided."""
    clock = WallClock()
    deadline = clock.monotonic() + WAIT_SECONDS
    while clock.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        status = run_cli("coordinator", "status", env=env)
        if "daemon       running" in status.stdout and "heartbeat    20" in status.stdout:
            return
    pytest.fail("the daemon did not start within the wait")


async def counts(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        return {
            "decisions": await connection.fetchval("SELECT count(*) FROM decisions"),
            "trading_decisions_without_one_order": await connection.fetchval(
                """
                SELECT count(*) FROM decisions d
                WHERE d.action <> 'hold' AND (SELECT count(*) FROM orders o WHERE o.decision_id = d.id) <> 1
                """
            ),
            "orders_of_holds": await connection.fetchval(
                "SELECT count(*) FROM orders o JOIN decisions d ON d.id = o.decision_id WHERE d.action = 'hold'"
            ),
            "filled_without_fills": await connection.fetchval(
                """
                SELECT count(*) FROM orders o WHERE o.status = 'filled'
                AND NOT EXISTS (SELECT FROM fills f WHERE f.order_id = o.id)
                """
            ),
            "runs": await connection.fetchval("SELECT count(*) FROM daemon_runs"),
            "ended_runs": await connection.fetchval("SELECT count(*) FROM daemon_runs WHERE ended_at IS NOT NULL"),
        }
    finally:
        await connection.close()


@pytest.mark.slow
async def test_operator_control_a_crash_and_a_restart_lose_and_duplicate_nothing(
    env: dict[str, str], empty_database_url: str
) -> None:
    first = daemon(env, "3000")  # 0.1 s per 5-minute candle: it runs while the operator acts
    try:
        wait_until_running(env, first)

        paused = run_cli("coordinator", "pause", "--reason", "e2e check", env=env)
        assert paused.returncode == 0, paused.stderr
        assert "RUNNING → PAUSED" in paused.stdout
        assert "state PAUSED" in paused.stdout

        second = run_cli("run", "--source", "synthetic", "--seed", "3", "--speed", "max", env=env, timeout=120)
        assert second.returncode == 1
        assert "another triplegain daemon is running for account 'paper'" in second.stderr
        assert "Traceback" not in second.stderr

        halted = run_cli("coordinator", "halt", "--reason", "e2e halt", env=env)
        assert halted.returncode == 0, halted.stderr
        assert "state HALTED" in halted.stdout
        refused = run_cli("coordinator", "resume", env=env)
        assert refused.returncode == 1
        assert "refused: resume from HALTED needs --force" in refused.stderr

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    before = await counts(empty_database_url)
    assert before["runs"] == 1
    assert before["ended_runs"] == 0  # killed: no exit recorded

    offline = run_cli("coordinator", "status", env=env)
    assert "daemon       not running" in offline.stdout
    assert "state        HALTED" in offline.stdout

    queued = run_cli("coordinator", "resume", "--force", "--reason", "after the crash", env=env)
    assert queued.returncode == 0, queued.stderr
    assert "no daemon is running for account 'paper': it will be applied at the next start" in queued.stdout

    restarted = run_cli("run", "--source", "synthetic", "--seed", "3", "--speed", "max", env=env, timeout=180)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert "candles" in restarted.stdout
    assert "\nequity        " in restarted.stdout
    after = await counts(empty_database_url)
    assert after["runs"] == 2
    assert after["ended_runs"] == 1
    assert after["decisions"] >= before["decisions"]
    assert after["trading_decisions_without_one_order"] == 0
    assert after["orders_of_holds"] == 0
    assert after["filled_without_fills"] == 0
    final = run_cli("coordinator", "status", env=env)
    assert "state        RUNNING" in final.stdout
    assert "after the crash" in final.stdout


@pytest.mark.slow
async def test_sigterm_stops_cleanly_and_a_second_signal_at_once(env: dict[str, str], empty_database_url: str) -> None:
    clean = daemon(env, "3000")
    wait_until_running(env, clean)
    clean.send_signal(signal.SIGTERM)
    out, err = clean.communicate(timeout=60)
    assert clean.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert "(signal SIGTERM)" in out
    assert "round trips   " in out

    hurried = daemon(env, "3000")
    wait_until_running(env, hurried)
    hurried.send_signal(signal.SIGTERM)
    assert hurried.stderr is not None
    seen = []
    for line in hurried.stderr:  # the kernel merges a signal sent again before the first is handled
        seen.append(line)
        if "stopping: finishing running tasks" in line:
            break
    hurried.send_signal(signal.SIGTERM)
    out, rest = hurried.communicate(timeout=60)
    err = "".join(seen) + rest
    assert hurried.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert "stopped at once" in err

    connection = await asyncpg.connect(empty_database_url)
    try:
        runs = await connection.fetch("SELECT exit_reason, ended_at FROM daemon_runs ORDER BY id")
    finally:
        await connection.close()
    assert [row["exit_reason"] for row in runs] == ["signal SIGTERM", "signal SIGTERM twice"]
    assert all(row["ended_at"] is not None for row in runs)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--speed", "fast"], "--speed"),
        (["--speed", "-3"], "--speed"),
        (["--replay", "no-such-file.csv"], "--replay"),
        (["--source", "replay", "--replay", "README.md", "--source", "synthetic"], "--source"),
        (["--source", "nowhere"], "--source"),
    ],
)
def test_a_bad_argument_is_a_usage_error_naming_it(args: list[str], named: str) -> None:
    result = run_cli("run", *args)
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr
