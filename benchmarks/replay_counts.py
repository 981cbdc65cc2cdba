"""What one replayed candle costs, counted: the daemon's own path (as ``benchmarks.replay`` runs it) on seeded
synthetic candles under cProfile, with the event loop's iterations and the tasks it created counted.

    python -m benchmarks.replay_counts [--candles-per-symbol N] [--symbols S] [--top K] [--save FILE]

Prints one JSON document: per candle, Python function calls (cProfile's count, C functions included), event-loop
iterations, tasks created, pydantic validations (calls of a schema validator: a model built or validated) and
calls into ``enum`` (a member's ``value`` or ``name``, its hash as a dict key); then the K functions with the most
own time. Counts, not speed: cProfile slows everything several times, so the wall time is left out.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from benchmarks.figures import positive, scratch_directory
from benchmarks.replay import BREAKER_PAUSES, scratch_database, settings_from, year_overlay
from triplegain.config import load_settings
from triplegain.daemon.run import RunOptions, run_daemon
from triplegain.daemon.status import StatusBoard
from triplegain.logs import configure_logging

VALIDATORS = ("validate_python", "validate_json", "validate_strings", "validate_assignment")
"""pydantic-core's ``SchemaValidator`` methods: each call is one validation."""


class LoopCounts:
    """Iterations of the running loop and the tasks created on it."""

    def __init__(self) -> None:
        self.iterations = 0
        self.tasks = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        counts = self
        run_once = loop._run_once  # type: ignore[attr-defined]

        def counted_run_once() -> None:
            counts.iterations += 1
            run_once()

        def counted_task(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
        ) -> asyncio.Task[Any]:
            counts.tasks += 1
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop._run_once = counted_run_once  # type: ignore[attr-defined]
        loop.set_task_factory(counted_task)  # type: ignore[arg-type]


def counted_calls(stats: pstats.Stats, matches: Any) -> int:
    """Calls of the profiled functions for which ``matches(file, name)`` holds."""
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    return sum(calls for (file, _, name), (_, calls, _, _, _) in entries.items() if matches(file, name))


async def profiled_replay(candles_per_symbol: int, symbols: int, scratch: Path) -> tuple[pstats.Stats, LoopCounts, int]:
    configure_logging(load_settings(None).logging.model_copy(update={"level": "warning"}))
    settings = settings_from(scratch, "counted", BREAKER_PAUSES, year_overlay(symbols, candles_per_symbol))
    counts = LoopCounts()
    counts.install(asyncio.get_running_loop())
    profile = cProfile.Profile()
    async with scratch_database(settings, scratch):
        profile.enable()
        summary = await run_daemon(
            settings, RunOptions(source="synthetic"), {}, StatusBoard(io.StringIO(), rich_panel=False)
        )
        profile.disable()
    return pstats.Stats(profile), counts, summary.candles


def figures(stats: pstats.Stats, counts: LoopCounts, candles: int, top: int) -> dict[str, Any]:
    def per_candle(value: int) -> float:
        return round(value / candles, 1)

    validations = counted_calls(stats, lambda file, name: any(f"'{method}'" in name for method in VALIDATORS))
    enum_calls = counted_calls(stats, lambda file, name: file.endswith("enum.py"))
    entries = stats.stats  # type: ignore[attr-defined]
    own_time = sorted(entries.items(), key=lambda item: -item[1][2])[:top]
    total_time = sum(entry[2] for entry in entries.values())
    return {
        "candles": candles,
        "per_candle": {
            "function_calls": per_candle(stats.total_calls),  # type: ignore[attr-defined]
            "event_loop_iterations": per_candle(counts.iterations),
            "tasks_created": per_candle(counts.tasks),
            "pydantic_validations": per_candle(validations),
            "enum_calls": per_candle(enum_calls),
        },
        "top_own_time": [
            {
                "function": f"{Path(file).name}:{line}({name})",
                "calls_per_candle": per_candle(calls),
                "share": round(own / total_time, 3),
            }
            for (file, line, name), (_, calls, own, _, _) in own_time
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay_counts", description=__doc__.splitlines()[0])
    parser.add_argument("--candles-per-symbol", type=positive, default=3_000)
    parser.add_argument("--symbols", type=positive, default=3)
    parser.add_argument("--top", type=positive, default=25, help="functions listed by their own time")
    parser.add_argument("--save", type=Path, help="also write the profile here (for pstats, snakeviz…)")
    arguments = parser.parse_args(argv)
    with scratch_directory() as scratch:
        stats, counts, candles = asyncio.run(profiled_replay(arguments.candles_per_symbol, arguments.symbols, scratch))
    if arguments.save is not None:
        stats.dump_stats(arguments.save)
    print(json.dumps(figures(stats, counts, candles, arguments.top), indent=2))


if __name__ == "__main__":
    main()
