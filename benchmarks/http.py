"""The HTTP surface under load does not slow trading: a replay's wall time without HTTP, and with ``--http`` while
a slow client (never reading) and N concurrent API clients hammer it.

    python -m benchmarks.http [--candles N] [--clients N] [--tries N]

Each try runs ``triplegain run --source synthetic --seed 8 --speed max`` twice, back to back, on throwaway
databases on TRIPLEGAIN_DATABASE_URL's server (required): once plain, once with ``--http 127.0.0.1:0`` and the load
started the moment it listens (status, decision lists, metrics and a decision's page, in a loop, from
``--clients`` connections; plus one client that asks for a large page and never reads, and one that never finishes
its request). Which of the two runs first alternates between tries, so a machine slowing down or speeding up
during the benchmark does not count as overhead. Prints one JSON document: the runs' ``wall_seconds`` (the
daemon's own figure, trading only), the overhead of each try and their median in % (target: at most 10 %), the
daemon's CPU time overhead (median), the requests served during the loaded runs, and whether the two runs'
decisions, orders and fills were equal. The load runs in this process: on a small machine its CPU competes with
the daemon's, so the overhead is an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from benchmarks.figures import positive
from triplegain.store.database import url_with_database

TARGET_OVERHEAD_PCT = 10.0
"""The replay's wall time with HTTP under load, at most this much above the plain run's (issue 17)."""
TOKEN = "benchmark-token"
SEED = "8"
ROW_QUERIES = {
    "decisions": "SELECT id, symbol, ts, action, confidence, reason, consensus_result, risk_checks FROM decisions"
    " ORDER BY id",
    "orders": "SELECT client_order_id, symbol, side, type, qty, status FROM orders ORDER BY client_order_id",
    "fills": "SELECT client_fill_id, ts, qty, price, fee FROM fills ORDER BY client_fill_id",
}


def triplegain_executable() -> str:
    """The console script beside this interpreter (the virtualenv's)."""
    return str(Path(sys.executable).with_name("triplegain"))


@dataclass
class Load:
    """What the clients did."""

    requests: int = 0
    errors: list[str] = field(default_factory=list)


async def hammer(url: str, token: str, clients: int, stop: asyncio.Event) -> Load:
    """``clients`` connections asking in a loop until ``stop``, beside a slow reader and a stalled request.

    aiohttp, not httpx: httpx's pool spends milliseconds of CPU per request when 200 requests share it, and on a
    2-core machine the load's own CPU would be counted as the daemon's slowdown."""
    load = Load()
    headers = {"Authorization": f"Bearer {token}"}
    paths = ["/api/status", "/api/decisions?limit=50", "/metrics", "/api/runs", "/healthz"]
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector, timeout=timeout) as session:

        async def one(index: int) -> None:
            n = index
            while not stop.is_set():
                path = paths[n % len(paths)]
                try:
                    async with session.get(path) as answer:
                        body = await answer.read()
                except (aiohttp.ClientError, TimeoutError):
                    return  # the daemon stopped serving: its replay ended
                if answer.status == 503 and not path.startswith("/healthz"):
                    return  # the daemon is stopping: its replay ended
                if answer.status == 500 and answer.content_type == "application/json":
                    load.errors.append(body[:200].decode(errors="replace"))  # a handler failed, not a cut request
                load.requests += 1
                n += 1

        async with slow_clients(url, token):
            await asyncio.gather(*(one(index) for index in range(clients)))
    return load


@contextlib.asynccontextmanager
async def slow_clients(url: str, token: str) -> AsyncIterator[None]:
    """A client that asks for the largest page of decisions and never reads a byte, and one that sends half a
    request and nothing more, open while the block runs."""
    host, port = url.removeprefix("http://").split(":")
    never_reads = socket.create_connection((host, int(port)))
    never_reads.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    never_reads.sendall(
        f"GET /api/decisions?limit=500 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode() * 50
    )
    half = socket.create_connection((host, int(port)))
    half.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")
    try:
        yield
    finally:
        never_reads.close()
        half.close()


async def replay(
    database_url: str, home: Path, candles: int, *, clients: int | None, env: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], Load | None]:
    """One ``triplegain run`` at full speed; with ``clients``, served over HTTP under load. Its summary and load."""
    port = free_port()
    args = [triplegain_executable(), "run", "--source", "synthetic", "--seed", SEED, "--json-logs"]
    args += ["--http", f"127.0.0.1:{port}"] if clients is not None else []
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TRIPLEGAIN_")}
    environment |= {
        "TRIPLEGAIN_DATABASE_URL": database_url,
        "TRIPLEGAIN_HOME": str(home),
        "TRIPLEGAIN_MARKET__SYNTHETIC__COUNT": str(candles),
        "TRIPLEGAIN_HTTP_TOKEN": TOKEN,
        **(env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        *args, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    stop = asyncio.Event()
    loading = None
    if clients is not None:
        loading = asyncio.create_task(hammer_once_listening(f"http://127.0.0.1:{port}", clients, stop, process))
    last: dict[str, Any] = {}
    async for line in process.stdout:
        with contextlib.suppress(json.JSONDecodeError):
            last = json.loads(line)
    code = await process.wait()
    stop.set()
    load = await loading if loading is not None else None
    if code != 0 or "wall_seconds" not in last:
        raise RuntimeError(f"the run failed (exit {code}): {last}")
    return last, load


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def hammer_once_listening(
    url: str, clients: int, stop: asyncio.Event, process: asyncio.subprocess.Process
) -> Load:
    """``hammer`` from the moment the daemon accepts connections (asked every 10 ms; the runs log at their default
    level, so no log line says it)."""
    host, port = url.removeprefix("http://").split(":")
    while process.returncode is None:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        return await hammer(url, TOKEN, clients, stop)
    return Load()


async def stored_rows(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The run's decisions, orders and fills, in a stable order."""
    connection = await asyncpg.connect(database_url)
    try:
        return {name: [tuple(row) for row in await connection.fetch(query)] for name, query in ROW_QUERIES.items()}
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A new migrated-by-the-daemon database on ``server_url``'s server, dropped afterwards."""
    name = f"triplegain_http_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield url_with_database(server_url, name)
    finally:
        connection = await asyncpg.connect(server_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


def child_cpu_seconds() -> float:
    """CPU seconds (user and system) of this process's children that have ended: a run's daemon, once awaited."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Pair:
    """One try: the same replay plain and under load, run back to back (which first alternates between tries)."""

    plain_seconds: float
    loaded_seconds: float
    plain_cpu_seconds: float
    loaded_cpu_seconds: float

    @property
    def overhead_pct(self) -> float:
        return 100 * (self.loaded_seconds / self.plain_seconds - 1)

    @property
    def cpu_overhead_pct(self) -> float:
        return 100 * (self.loaded_cpu_seconds / self.plain_cpu_seconds - 1)


async def measure(server_url: str, candles: int, clients: int, tries: int) -> dict[str, Any]:
    pairs: list[Pair] = []
    requests, errors, equal = 0, [], True
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(tries):
            async with scratch_database(server_url) as plain_url, scratch_database(server_url) as loaded_url:
                figures: dict[bool, tuple[float, float]] = {}
                for loaded in (False, True) if index % 2 == 0 else (True, False):
                    before = child_cpu_seconds()
                    url, name = (loaded_url, "loaded") if loaded else (plain_url, "plain")
                    summary, load = await replay(
                        url, Path(scratch) / name, candles, clients=clients if loaded else None
                    )
                    figures[loaded] = (summary["wall_seconds"], child_cpu_seconds() - before)
                    if load is not None:
                        requests += load.requests
                        errors += load.errors
                pairs.append(Pair(figures[False][0], figures[True][0], figures[False][1], figures[True][1]))
                equal = equal and await stored_rows(plain_url) == await stored_rows(loaded_url)
    overheads = sorted(pair.overhead_pct for pair in pairs)
    return {
        "candles_per_symbol": candles,
        "clients": clients,
        "tries": tries,
        "plain_wall_seconds": [round(pair.plain_seconds, 3) for pair in pairs],
        "http_loaded_wall_seconds": [round(pair.loaded_seconds, 3) for pair in pairs],
        "overhead_pct": round(statistics.median(overheads), 1),
        "overhead_pct_of_each_try": [round(value, 1) for value in overheads],
        "target_overhead_pct": TARGET_OVERHEAD_PCT,
        "daemon_cpu_overhead_pct": round(statistics.median(pair.cpu_overhead_pct for pair in pairs), 1),
        "requests_served": requests,
        "server_errors": errors[:5],
        "rows_equal": equal,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candles", type=positive, default=1000, help="synthetic candles per symbol")
    parser.add_argument("--clients", type=positive, default=200)
    parser.add_argument("--tries", type=positive, default=8, help="pairs of runs (plain first in even tries)")
    options = parser.parse_args()
    server_url = os.environ.get("TRIPLEGAIN_DATABASE_URL", "").strip()
    if not server_url:
        sys.exit("set TRIPLEGAIN_DATABASE_URL to a PostgreSQL server the benchmark may create databases on")
    print(json.dumps(asyncio.run(measure(server_url, options.candles, options.clients, options.tries)), indent=2))


if __name__ == "__main__":
    main()
