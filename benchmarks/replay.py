"""The replay pipeline end to end: feeds → four agents → coordinator → risk → paper broker → PostgreSQL.

    python -m benchmarks.replay [--candles-per-symbol N] [--symbols S] [--shared-data DIR | --no-shared-data]
                                [--loop uvloop]

Runs the daemon's own path (``daemon.run.run_daemon``, offline LLM provider, every decision and LLM call stored)
on a fresh database per run: a year of seeded synthetic 5-minute candles for S symbols (105,000 each: 315,000
for 3), then each CSV file in ``--shared-data`` (real candles; a file quoted in BTC or ETH gets an account in that
asset). The breaker pauses instead of halting (``BREAKER_PAUSES``), so a drawdown does not turn the rest of the
year into holds. Prints one JSON document: for each run
``candles_per_s``, ``decisions_per_s``, ``rows_written_per_s`` (every row in every table afterwards, over the
wall time), the process's CPU time against the wall time, the share of wall time in each stage, and RSS after
the first 10 % of the candles and at the end.

Stages are timed by wrapping the methods that do them (``STAGES``); a stage's time includes the awaited
database writes it makes. The replay runs them one after another, so the shares add up to nearly the whole
run; what is left is the feed, the schedule and the batching writer's flushes between them.

The database is a throwaway one: on TRIPLEGAIN_DATABASE_URL's server when that is set (created and dropped),
else on an embedded server of its own in a temporary data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
import os
import platform
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.figures import positive, resident_bytes, scratch_directory, use_uvloop
from triplegain.agents.pipeline import AgentPipeline
from triplegain.config import Settings, load_settings
from triplegain.coordinator.coordinator import Coordinator
from triplegain.daemon.run import RunOptions, run_daemon
from triplegain.daemon.status import StatusBoard
from triplegain.execution import PaperBroker
from triplegain.logs import configure_logging
from triplegain.market import Candle
from triplegain.market.feeds.replay import CandleFile
from triplegain.store import open_database
from triplegain.store.database import DATABASE_URL_ENV, url_with_database
from triplegain.system import TradingSystem

YEAR_OF_5M_CANDLES = 105_000
SYMBOL_PRICES = {"BTC/USDT": 40_000.0, "ETH/USDT": 2_500.0, "SOL/USDT": 100.0, "XRP/USDT": 0.6, "ADA/USDT": 0.5}
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

STAGES: dict[str, tuple[type, str]] = {
    "technical_agent": (AgentPipeline, "run_technical"),
    "regime_agent": (AgentPipeline, "run_regime"),
    "sentiment_agent": (AgentPipeline, "run_sentiment"),
    "portfolio_agent": (AgentPipeline, "run_portfolio"),
    "decide (consensus, risk, resolver, store)": (Coordinator, "decide"),
    "housekeeping and snapshot": (Coordinator, "housekeeping"),
    "paper broker (fills, marks, store)": (PaperBroker, "on_candle"),
    "ingest (frames, freshness)": (AgentPipeline, "ingest"),
}


class StageClock:
    """Wall time spent inside each stage, nested calls counted once (in the outermost)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextmanager
    def wrapped(self) -> Iterator[None]:
        originals = {name: getattr(owner, method) for name, (owner, method) in STAGES.items()}
        try:
            for name, (owner, method) in STAGES.items():
                setattr(owner, method, self._timed(name, originals[name]))
            yield
        finally:
            for name, (owner, method) in STAGES.items():
                setattr(owner, method, originals[name])

    def _timed(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        clock = self

        if asyncio.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_coroutine(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    clock.seconds[name] += time.perf_counter() - started
                    clock.calls[name] += 1

            return timed_coroutine

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                clock.seconds[name] += time.perf_counter() - started
                clock.calls[name] += 1

        return timed


def rss_mib() -> float:
    return resident_bytes() / 2**20


class RssProbe:
    """RSS after the first 10 % of the candles, and at the end."""

    def __init__(self, total_candles: int) -> None:
        self.at_tenth_after = max(1, total_candles // 10)
        self.at_tenth: float | None = None
        self.candles = 0

    def install(self) -> Callable[[], None]:
        original = TradingSystem.ingest
        probe = self

        @functools.wraps(original)
        async def ingest(system: TradingSystem, candle: Candle) -> None:
            await original(system, candle)
            probe.candles += 1
            if probe.candles == probe.at_tenth_after:
                probe.at_tenth = rss_mib()

        TradingSystem.ingest = ingest  # type: ignore[method-assign,assignment]

        def uninstall() -> None:
            TradingSystem.ingest = original  # type: ignore[method-assign]

        return uninstall


BREAKER_PAUSES = {
    "coordinator": {
        "breaker": {"daily_loss_action": "pause", "weekly_loss_action": "pause", "max_drawdown_action": "pause"}
    }
}
"""A halted coordinator only holds: the breaker pauses instead, so the whole decision path runs all year."""

QUOTE_ACCOUNTS = {"BTC": (1.0, 0.0001), "ETH": (10.0, 0.001)}
"""Quote asset → starting balance and minimum order value, for the files not quoted in USDT."""


def settings_from(scratch: Path, name: str, *overlays: dict[str, Any]) -> Settings:
    """Settings as ``triplegain --config`` would load them from a file holding ``overlays`` merged."""
    merged: dict[str, Any] = {}
    for overlay in overlays:
        merged = _deep_merge(merged, overlay)
    path = scratch / f"{name}.yaml"
    path.write_text(yaml.safe_dump(merged))
    return load_settings(path)


def year_overlay(symbols: int, candles: int) -> dict[str, Any]:
    """Seeded synthetic 5-minute candles: ``candles`` per symbol for the first ``symbols`` of SYMBOL_PRICES."""
    prices = dict(list(SYMBOL_PRICES.items())[:symbols])
    return {"market": {"source": "synthetic", "synthetic": {"symbols": prices, "count": candles}}}


def quote_overlay(file: Path) -> dict[str, Any]:
    """An account in the file's quote asset when that is not USDT (the daemon refuses a mismatch)."""
    base_asset, _, quote = CandleFile.from_name(file).symbol.partition("/")
    if quote not in QUOTE_ACCOUNTS:
        return {}
    balance, min_notional = QUOTE_ACCOUNTS[quote]
    return {
        "execution": {
            "quote_asset": quote,
            "starting_balances": {quote: balance},
            "default_market": {"min_qty": 1e-8, "qty_step": 1e-8, "price_step": 1e-10, "min_notional": min_notional},
        },
        "agents": {"portfolio": {"quote_asset": quote, "target_allocation": {base_asset: 0.5, quote: 0.5}}},
        "risk": {"min_notional": min_notional},
    }


def _deep_merge(into: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(into)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@asynccontextmanager
async def scratch_database(settings: Settings, scratch: Path) -> AsyncIterator[str]:
    """A fresh database for one run: TRIPLEGAIN_DATABASE_URL set to a new database on that server (dropped
    afterwards), or TRIPLEGAIN_HOME set to an empty directory (a new embedded server). Yields what it is."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    saved = {key: os.environ.get(key) for key in (DATABASE_URL_ENV, "TRIPLEGAIN_HOME")}
    try:
        if not url:
            home = scratch / uuid.uuid4().hex[:8]
            os.environ["TRIPLEGAIN_HOME"] = str(home)
            yield "embedded"
            return
        name = f"triplegain_bench_{uuid.uuid4().hex[:12]}"
        async with open_database(settings.database) as server:
            await server.pool.execute(f'CREATE DATABASE "{name}"')
        os.environ[DATABASE_URL_ENV] = url_with_database(url, name)
        try:
            yield "server"
        finally:
            os.environ[DATABASE_URL_ENV] = url
            async with open_database(settings.database) as server:
                await server.pool.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def table_rows(settings: Settings) -> dict[str, int]:
    """Rows in every table of the run's database (migration bookkeeping left out)."""
    async with open_database(settings.database) as db:
        tables = await db.pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        counts = {}
        for row in tables:
            name = row["tablename"]
            counts[name] = await db.pool.fetchval(f'SELECT count(*) FROM "{name}"')
    return {name: count for name, count in sorted(counts.items()) if count}


async def measure_run(settings: Settings, options: RunOptions, expected_candles: int) -> dict[str, Any]:
    stages = StageClock()
    probe = RssProbe(expected_candles)
    uninstall = probe.install()
    board = StatusBoard(io.StringIO(), rich_panel=False)
    try:
        with stages.wrapped():
            cpu_started = time.process_time()
            started = time.perf_counter()
            summary = await run_daemon(settings, options, {}, board)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
    finally:
        uninstall()
    rss_end = rss_mib()
    rows = await table_rows(settings)
    written = sum(rows.values())
    return {
        "candles": summary.candles,
        "decisions": summary.decisions,
        "trades": summary.trades,
        "llm_calls": rows.get("llm_calls", 0),
        "final_equity": round(summary.final_equity, 2),
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "candles_per_s": round(summary.candles / wall, 1),
        "decisions_per_s": round(summary.decisions / wall, 1),
        "rows_written_per_s": round(written / wall, 1),
        "rows_written": rows,
        "stage_share_of_wall": {
            name: round(stages.seconds[name] / wall, 3)
            for name in sorted(stages.seconds, key=lambda n: -stages.seconds[n])
        },
        "stage_calls": dict(stages.calls),
        "rss_mib": {
            "after_first_10_percent": round(probe.at_tenth, 1) if probe.at_tenth is not None else None,
            "at_end": round(rss_end, 1),
            "end_over_first_10_percent": round(rss_end / probe.at_tenth, 3) if probe.at_tenth else None,
        },
    }


async def run(arguments: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    # As ``triplegain run`` logs a replay: warnings and worse, on stderr.
    configure_logging(load_settings(None).logging.model_copy(update={"level": "warning"}))
    runs: dict[str, Any] = {}
    synthetic = settings_from(
        scratch, "synthetic", BREAKER_PAUSES, year_overlay(arguments.symbols, arguments.candles_per_symbol)
    )
    async with scratch_database(synthetic, scratch) as where:
        runs["synthetic_year"] = await measure_run(
            synthetic, RunOptions(source="synthetic"), arguments.symbols * arguments.candles_per_symbol
        )
    print(json.dumps({"synthetic_year": runs["synthetic_year"]}), file=sys.stderr)  # kept if a later run fails
    files = sorted(arguments.shared_data.glob("*.csv")) if arguments.shared_data is not None else []
    # One run per file: their time windows do not overlap, so replayed together every symbol but one would be
    # stale (and the level at EMERGENCY) all along.
    for file in files:
        settings = settings_from(scratch, file.stem, BREAKER_PAUSES, quote_overlay(file))
        async with scratch_database(settings, scratch):
            options = RunOptions(source="replay", replay_files=(file,))
            runs[file.name] = await measure_run(settings, options, _rows(file))
            print(json.dumps({file.name: runs[file.name]}), file=sys.stderr)
    total_candles = sum(run["candles"] for run in runs.values())
    total_wall = sum(run["wall_seconds"] for run in runs.values())
    return {
        "benchmark": "replay",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "database": where,
        "loop": type(asyncio.get_running_loop()).__module__.partition(".")[0],
        "runs": runs,
        "total": {"candles": total_candles, "candles_per_s": round(total_candles / total_wall, 1)},
        "targets": {
            "candles_per_s >= 2500": {
                "measured": round(total_candles / total_wall, 1),
                "met": total_candles / total_wall >= 2_500,
            },
            "candles_per_s >= 5000": {
                "measured": round(total_candles / total_wall, 1),
                "met": total_candles / total_wall >= 5_000,
            },
        },
    }


def _rows(file: Path) -> int:
    """Candles in a CSV file (its lines less the header)."""
    with file.open() as lines:
        return sum(1 for _ in lines) - 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--candles-per-symbol", type=positive, default=YEAR_OF_5M_CANDLES, help="synthetic 5m candles per symbol"
    )
    parser.add_argument("--symbols", type=positive, default=3, choices=range(1, len(SYMBOL_PRICES) + 1))
    parser.add_argument("--shared-data", type=Path, default=SHARED_DATA, help="directory of real candle CSV files")
    parser.add_argument("--no-shared-data", dest="shared_data", action="store_const", const=None)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop to run on")
    arguments = parser.parse_args(argv)
    if arguments.loop == "uvloop":
        use_uvloop()
    with scratch_directory() as scratch:
        print(json.dumps(asyncio.run(run(arguments, scratch)), indent=2))


if __name__ == "__main__":
    main()
