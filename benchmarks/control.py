"""Control latency: ``triplegain coordinator pause`` against a daemon replaying as fast as it can, and the
start-up of the CLI process.

    python -m benchmarks.control [--tries N] [--watch-seconds S] [--cli-tries N]

Starts ``triplegain run`` (a long seeded synthetic replay, ``--speed max``) as a process on a throwaway database,
then N times: resume it, let it trade for a moment, and pause it through the same code the CLI runs
(``coordinator.controls.submit_and_wait``), timing the pause from its start until it returns (the command row committed,
NOTIFY sent, the daemon applied it, the CLI saw it applied). After each pause returns, the orders table is
watched for ``--watch-seconds`` while the replay goes on: any entry order inserted then was placed after the
pause returned, and is counted (it must be none). PAUSED stops new entries only: exits, stops and targets go on
closing positions (README.md, "Controlling the running daemon"), so they are counted apart. Prints one JSON document.

Then the command line as an operator runs it: the wall time of the whole ``triplegain coordinator status`` and
``triplegain coordinator pause`` process (start, imports, the daemon's answer over its control socket; the daemon
still running), ``--cli-tries`` times each, beside ``python -c pass`` measured in the same run: p50 and p99, and
the p50 as a multiple of the bare interpreter's (target: at most 4×). The same status the database way (a global
``--config`` before ``coordinator`` keeps the quick way out: settings, the driver, a connection) is measured too,
for comparison.

The database is a throwaway one: on TRIPLEGAIN_DATABASE_URL's server when that is set, else on an embedded
server in a temporary data directory (started by the daemon; the benchmark connects to it once it runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.figures import percentiles, positive, scratch_directory
from benchmarks.replay import BREAKER_PAUSES, scratch_database
from triplegain.config import Settings, load_settings
from triplegain.coordinator.controls import submit_and_wait
from triplegain.model import Command, Verb
from triplegain.store import Database, open_database
from triplegain.store.runs import daemon_running

TARGET_P99_MS = 500.0
TARGET_CLI_MULTIPLE = 4.0
"""A control command's p50 wall time, at most this many times that of ``python -c pass`` (issue 13)."""


def daemon_config(path: Path) -> Path:
    """A replay long enough to outlast the tries: 3 symbols × 100,000 synthetic candles; the breaker pauses
    instead of halting (a halt would refuse the next pause)."""
    market = {
        "market": {
            "source": "synthetic",
            "synthetic": {"symbols": {"BTC/USDT": 40_000.0, "ETH/USDT": 2_500.0, "SOL/USDT": 100.0}, "count": 100_000},
        }
    }
    path.write_text(yaml.safe_dump({**market, **BREAKER_PAUSES}))
    return path


async def until_running(settings: Settings, daemon: asyncio.subprocess.Process, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if daemon.returncode is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode} before it ran")
        try:
            async with open_database(settings.database) as db:
                if await daemon_running(db, settings.coordinator.account):
                    return
        except Exception:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the daemon did not start within {within:g} s")


ENTRIES = "decision_id IS NOT NULL AND stop_price IS NOT NULL"
"""The coordinator's entry orders: an entry carries its stop, an exit none (``coordinator.decision_rows``)."""


async def count_orders(db: Database, where: str) -> int:
    return int(await db.pool.fetchval(f"SELECT count(*) FROM orders WHERE {where}"))


async def measure(settings: Settings, tries: int, watch_seconds: float, trade_seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    late_orders = 0
    refused: list[str] = []
    async with open_database(settings.database) as db:
        for _ in range(tries):
            await submit_and_wait(db, settings.coordinator.account, Command(verb=Verb.RESUME), 5.0)
            await asyncio.sleep(trade_seconds)
            started = time.perf_counter()
            lines, ok = await submit_and_wait(
                db, settings.coordinator.account, Command(verb=Verb.PAUSE, reason="benchmark"), 5.0
            )
            latencies.append(time.perf_counter() - started)
            if not ok:
                refused.append(" / ".join(lines))
                continue
            before = await count_orders(db, ENTRIES)
            await asyncio.sleep(watch_seconds)
            late_orders += await count_orders(db, ENTRIES) - before
        entries = await count_orders(db, ENTRIES)
        exits = await count_orders(db, f"NOT ({ENTRIES})")
        decisions = int(await db.pool.fetchval("SELECT count(*) FROM decisions"))
    p = percentiles(latencies, (0.5, 0.9, 0.99), scale=1e3, digits=1)
    return {
        "tries": tries,
        "pause_ms": {**p, "max": round(max(latencies) * 1e3, 1)},
        "pauses_not_applied": refused,
        "entries_after_pause_returned": late_orders,
        "entry_orders_in_all": entries,
        "exit_stop_and_target_orders_in_all": exits,
        "decisions_in_all": decisions,
        "targets": {
            "pause p99 <= 500 ms": {"measured": p["p99"], "met": p["p99"] <= TARGET_P99_MS},
            "no entry after pause returned": {"measured": late_orders, "met": late_orders == 0},
        },
    }


def triplegain_executable() -> str:
    """The console script beside this interpreter (the virtualenv's), as an operator runs it."""
    beside = Path(sys.executable).with_name("triplegain")
    return str(beside) if beside.exists() else "triplegain"


async def process_seconds(command: list[str], env: dict[str, str]) -> float:
    """Wall time of one process from its start to its exit; it must succeed."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
    )
    _, err = await process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}: {err.decode()[-500:]}")
    return seconds


async def measure_cli(tries: int, config: Path) -> dict[str, Any]:
    """p50 and p99 wall time of ``coordinator status`` and ``coordinator pause`` processes and of
    ``python -c pass``, interleaved so that a busy moment of the machine weighs on all three alike."""
    env = {**os.environ, "TRIPLEGAIN_CONFIG": str(config)}
    cli = triplegain_executable()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "coordinator status": [cli, "coordinator", "status"],
        "coordinator pause": [cli, "coordinator", "pause", "--reason", "benchmark"],
        "coordinator status, the database way": [cli, "--config", str(config), "coordinator", "status"],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(tries):
        for name, command in commands.items():
            seconds[name].append(await process_seconds(command, env))
    figures = {name: percentiles(times, (0.5, 0.99), scale=1e3, digits=1) for name, times in seconds.items()}
    bare = figures["python -c pass"]["p50"]
    multiples = {name: round(figures[name]["p50"] / bare, 1) for name in ("coordinator status", "coordinator pause")}
    return {
        "cli_tries": tries,
        "cli_wall_ms": figures,
        "cli_p50_over_python_c_pass": multiples,
        "cli_targets": {
            f"{name} p50 <= {TARGET_CLI_MULTIPLE:g}x python -c pass": {
                "measured": multiple,
                "met": multiple <= TARGET_CLI_MULTIPLE,
            }
            for name, multiple in multiples.items()
        },
    }


async def run(arguments: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    settings = load_settings(None)
    async with scratch_database(settings, scratch) as where:
        config = daemon_config(scratch / "daemon.yaml")
        daemon = await asyncio.create_subprocess_exec(
            *[sys.executable, "-c", "from triplegain.cli import main; main()", "--config", str(config), "run"],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=dict(os.environ),
        )
        try:
            await until_running(settings, daemon)
            figures = await measure(settings, arguments.tries, arguments.watch_seconds, arguments.trade_seconds)
            figures |= await measure_cli(arguments.cli_tries, config)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(daemon.wait(), 60)
            except TimeoutError:
                daemon.kill()
                await daemon.wait()
    return {
        "benchmark": "control",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": where,
        **figures,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.control", description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=positive, default=50, help="pauses timed")
    parser.add_argument("--watch-seconds", type=float, default=0.5, help="how long to watch for orders after each")
    parser.add_argument("--trade-seconds", type=float, default=0.3, help="how long it runs between pauses")
    parser.add_argument("--cli-tries", type=positive, default=30, help="CLI processes timed, of each command")
    arguments = parser.parse_args(argv)
    with scratch_directory() as scratch:
        print(json.dumps(asyncio.run(run(arguments, scratch)), indent=2))


if __name__ == "__main__":
    main()
