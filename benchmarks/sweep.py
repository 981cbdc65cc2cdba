"""A sweep's aggregate speed on one and on two worker processes, measured in the same run.

    python -m benchmarks.sweep [--runs N] [--candles-per-run N] [--rounds N]

The same grid (``--runs`` seeds of synthetic 5-minute BTC/USDT candles, ``--candles-per-run`` each, the
breaker pausing instead of halting as in ``benchmarks.replay``) is swept with ``triplegain sweep``'s own path
(``sweep.plan_runs``, ``sweep.run_sweep`` and ``LocalProcesses``: each run on the daemon's ``run_daemon`` in a
worker process) once per worker count, on a fresh database each time (``benchmarks.replay.scratch_database``:
embedded unless TRIPLEGAIN_DATABASE_URL is set). The database is opened and the fork server started before the
clock starts, so neither is counted; the workers' start is. ``--rounds`` repeats the pair (1 then 2 workers) to
see the spread on a busy machine. Prints one JSON document: per measurement the wall time, candles and aggregate
candles/s, the workers' CPU time (and the cores it amounts to over the wall time), the load average before and
after and how busy every core was (anything else running included), and the ratio of 2 workers to 1 (target
≥ 1.6 on 2 cores). On a machine others keep busy the ratio says how much CPU the sweep was given more than what it
costs; ``cpu_efficiency_2_over_1`` (candles per second of the workers' CPU, 2 workers over 1) says what running
side by side costs by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

from benchmarks.figures import positive, scratch_directory
from benchmarks.replay import BREAKER_PAUSES, scratch_database, settings_from, year_overlay
from triplegain.config import Settings, load_settings
from triplegain.logs import configure_logging
from triplegain.store import open_database
from triplegain.sweep.grid import build_grid
from triplegain.sweep.local import LocalProcesses
from triplegain.sweep.sweep import SweepOptions, plan_runs, run_sweep
from triplegain.sweep.work import RunOutcome, WorkEvent

TARGET_RATIO = 1.6
"""Two workers against one on this 2-core machine (issue 16)."""


async def measure(settings: Settings, scratch: Path, runs: int, workers: int) -> dict[str, Any]:
    """One sweep of ``runs`` seeds on ``workers`` processes, on a fresh database."""
    async with scratch_database(settings, scratch) as where:
        grid = build_grid([], [], list(range(1, runs + 1)))
        options = SweepOptions(sweep_id=f"bench{workers}", source="synthetic")
        planned = plan_runs(settings, [], grid, options, os.environ)
        async with open_database(settings.database):  # the server up (and the schema there) before the clock
            load_before = os.getloadavg()[0]
            with machine_busy() as busy:
                started = time.perf_counter()
                cpu = WorkerCpu()
                outcomes = await run_sweep(settings, planned, LocalProcesses(workers, dict(os.environ)), cpu.note)
                wall = time.perf_counter() - started
            load_after = os.getloadavg()[0]
    failed = [outcome.error for outcome in outcomes if outcome.status != "finished"]
    if failed:
        raise SystemExit(f"runs failed on {workers} workers: {failed}")
    candles = sum(outcome.summary.candles for outcome in outcomes if outcome.summary is not None)
    return {
        "workers": workers,
        "database": where,
        "runs": runs,
        "candles": candles,
        "wall_seconds": round(wall, 2),
        "candles_per_s": round(candles / wall, 1),
        "per_run_candles_per_s": [
            round(outcome.summary.candles_per_second, 1) for outcome in outcomes if outcome.summary is not None
        ],
        "load_average_1m": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "workers_cpu_seconds": round(cpu.seconds, 2),
        "workers_cores_used": round(cpu.seconds / wall, 2),
        "candles_per_worker_cpu_second": round(candles / cpu.seconds, 1) if cpu.seconds else None,
        "machine_cpu_busy": busy,
    }


@contextlib.contextmanager
def machine_busy() -> Iterator[dict[str, float]]:
    """Every core's busy share over the block (this sweep, its database server and anything else running on
    the machine), filled in when the block ends: how much of the machine the sweep could have had."""
    import psutil

    figures: dict[str, float] = {}
    before = psutil.cpu_times()
    try:
        yield figures
    finally:
        after = psutil.cpu_times()
        total = sum(after) - sum(before)
        idle = (after.idle + getattr(after, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
        figures["share"] = round(1 - idle / total, 3) if total > 0 else 0.0


class WorkerCpu:
    """The CPU time of the worker processes: each one's own, read as it hands in a run (it is alive then)."""

    def __init__(self) -> None:
        self._by_pid: dict[int, float] = {}

    def note(self, event: WorkEvent) -> None:
        import psutil

        if isinstance(event, RunOutcome) and event.worker is not None:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(int(event.worker)).cpu_times()
                self._by_pid[int(event.worker)] = times.user + times.system

    @property
    def seconds(self) -> float:
        return sum(self._by_pid.values())


async def run(arguments: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    configure_logging(load_settings(None).logging.model_copy(update={"level": "warning"}))
    settings = settings_from(scratch, "sweep", BREAKER_PAUSES, year_overlay(1, arguments.candles_per_run))
    forkserver.ensure_running()  # its start (importing the daemon once) is not counted in the first measurement
    rounds = []
    for _ in range(arguments.rounds):
        pair = {}
        for workers in (1, 2):
            pair[workers] = await measure(settings, scratch, arguments.runs, workers)
            print(json.dumps(pair[workers]), file=sys.stderr)  # kept if a later one fails
        rounds.append(pair)
    ratios = [pair[2]["candles_per_s"] / pair[1]["candles_per_s"] for pair in rounds]
    ratio = statistics.median(ratios)
    return {
        "benchmark": "sweep",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rounds": [{"1 worker": pair[1], "2 workers": pair[2]} for pair in rounds],
        "ratio_2_over_1": [round(value, 2) for value in ratios],
        "cpu_efficiency_2_over_1": [
            round(pair[2]["candles_per_worker_cpu_second"] / pair[1]["candles_per_worker_cpu_second"], 2)
            for pair in rounds
            if pair[1]["candles_per_worker_cpu_second"] and pair[2]["candles_per_worker_cpu_second"]
        ],
        "targets": {
            f"2 workers / 1 worker candles_per_s >= {TARGET_RATIO}": {
                "measured": round(ratio, 2),
                "met": ratio >= TARGET_RATIO,
            }
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive, default=4, help="runs in the grid (seeds 1..N)")
    parser.add_argument("--candles-per-run", type=positive, default=3_000, help="synthetic 5m candles per run")
    parser.add_argument("--rounds", type=positive, default=1, help="measure 1 then 2 workers this many times")
    arguments = parser.parse_args(argv)
    with scratch_directory() as scratch:
        print(json.dumps(asyncio.run(run(arguments, scratch)), indent=2))


if __name__ == "__main__":
    main()
