"""``triplegain sweep`` as a user runs it, against a real PostgreSQL: a grid of two settings over one small candle
file on two worker processes gives a table and JSON with both runs, each on its own account, and re-run with
``--answers-from`` serves the first sweep's answers; a bad value is named with its ``--set`` (exit 2); Ctrl-C
stops the run in progress cleanly (interrupted, its end recorded), starts no other and exits 130."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.cli import run_cli, start_cli
from tests.faults.conftest import run_main

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

BOOST = "coordinator.consensus.agreement_boost"
CANDLES = 300
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
FIVE_MINUTES_MS = 300_000


def candle_file(folder: Path) -> Path:
    """``CANDLES`` 5-minute BTC/USDT candles: a deterministic wave with a drift, enough to trade on."""
    path = folder / "BTC_USDT-5m.csv"
    lines = ["timestamp,open,high,low,close,volume"]
    close = 40_000.0
    for index in range(CANDLES):
        opened = close
        close = opened * (1 + 0.004 * math.sin(index / 7) + 0.0015 * math.sin(index / 2.3))
        high, low = max(opened, close) * 1.001, min(opened, close) * 0.999
        lines.append(f"{START_MS + index * FIVE_MINUTES_MS},{opened:.2f},{high:.2f},{low:.2f},{close:.2f},10")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def env(empty_database_url: str) -> dict[str, str]:
    return {"TRIPLEGAIN_DATABASE_URL": empty_database_url}


async def runs_of(url: str, prefix: str) -> list[tuple[str, bool, str | None]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT account, ended_at IS NOT NULL AS ended, exit_reason FROM daemon_runs "
            "WHERE account LIKE $1 ORDER BY account",
            f"{prefix}%",
        )
    finally:
        await connection.close()
    return [(row["account"], row["ended"], row["exit_reason"]) for row in rows]


@pytest.mark.slow
async def test_a_sweep_of_two_settings_on_two_workers_reports_both_runs(
    tmp_path: Path, env: dict[str, str], empty_database_url: str
) -> None:
    candles = candle_file(tmp_path)
    args = ["sweep", "--replay", str(candles), "--set", f"{BOOST}=0.05,0.3", "--workers", "2"]
    swept = run_cli(*args, "--format", "json", env=env, timeout=100)
    assert swept.returncode == 0, swept.stderr
    assert "2 runs on 2 workers" in swept.stderr
    table = json.loads(swept.stdout)
    sweep_id = table["sweep_id"]
    runs = table["runs"]
    assert [run["status"] for run in runs] == ["finished", "finished"]
    assert [run["account"] for run in runs] == [f"sweep-{sweep_id}-1", f"sweep-{sweep_id}-2"]
    assert [run["label"] for run in runs] == [f"{BOOST}=0.05 {candles.name}", f"{BOOST}=0.3 {candles.name}"]
    assert [run["candles"] for run in runs] == [CANDLES, CANDLES]
    assert len({run["run_id"] for run in runs}) == 2
    for run in runs:
        assert run["pnl"] == pytest.approx(run["final_equity"] - 10_000.0)
        assert None not in (run["trades"], run["fees"], run["max_drawdown_pct"])
    assert table["ranked_by"] == "pnl"
    by_pnl = sorted(runs, key=lambda run: (-run["pnl"], run["index"]))
    assert table["best"] == [run["index"] for run in by_pnl]
    assert await runs_of(empty_database_url, f"sweep-{sweep_id}-") == [
        (f"sweep-{sweep_id}-1", True, "replay finished"),
        (f"sweep-{sweep_id}-2", True, "replay finished"),
    ]

    asking = max(runs, key=lambda run: run["llm_calls"])
    assert asking["llm_calls"] > 0  # the conflicts' resolver (offline rules here)
    again = run_cli(
        "sweep", "--replay", str(candles), "--set", asking["label"].split()[0], "--answers-from", str(asking["run_id"]),
        env=env, timeout=100,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert any("P&L" in line and "max DD %" in line and "win rate" in line for line in lines)
    [row] = [line for line in lines if "finished" in line]
    assert f"0 ({asking['llm_calls']} served)" in row  # no LLM call made: every answer served from the run
    assert f"{asking['pnl']:+,.2f}" in row  # the same answers, the same trades
    assert any(line.startswith("best by P&L (final equity less starting equity, after fees): #1") for line in lines)


def test_bad_values_are_named_with_their_set_and_exit_2(tmp_path: Path) -> None:
    result = run_main(
        "sweep",
        "--replay",
        str(candle_file(tmp_path)),
        "--set",
        f"{BOOST}=0.1,abc",
        "--set",
        "coordinator.consensus.nope=1",
    )
    assert (result.code, result.stdout) == (2, ""), result
    assert "Traceback" not in result.stderr
    header, first, second = result.error_lines
    assert header == "--set: 2 problems"
    assert first.startswith(f"{BOOST}: 'abc' — input should be a valid number")
    assert first.endswith(f"(from --set {BOOST}=abc)")
    assert second.startswith("--set coordinator.consensus.nope=1: coordinator.consensus.nope is not a setting")


async def test_ctrl_c_interrupts_the_run_in_progress_and_exits_130(
    tmp_path: Path, env: dict[str, str], empty_database_url: str
) -> None:
    config = tmp_path / "endless.yaml"
    config.write_text("market: {synthetic: {symbols: {BTC/USDT: 40000.0}, count: null, start: 2024-01-01T00:00:00Z}}\n")
    process = start_cli(
        "--config", str(config), "sweep", "--source", "synthetic", "--seeds", "1,2", "--workers", "1", "-f", "json",
        env=env,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "#1 seed 1: started" in line:
                break
        else:
            pytest.fail(f"the first run never started: {seen}")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    table = json.loads(stdout)
    first, second = table["runs"]
    assert first["status"] == "interrupted"
    assert (second["status"], second["error"]) == ("not started", "the sweep stopped first")
    assert table["best"] == []
    recorded = await runs_of(empty_database_url, f"sweep-{table['sweep_id']}-")
    assert all(ended for _, ended, _ in recorded)  # the run in progress recorded its end (if it had begun)
    assert [account for account, _, _ in recorded] in ([], [first["account"]])
