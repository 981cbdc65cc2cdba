"""Message bus figures, with the same figures for baselines measured in the same run.

    python -m benchmarks.bus [--messages N] [--repeats K] [--loop uvloop] [--memory-messages M | --skip-memory]

Prints one JSON document. Each figure is the median of K runs.

- ``fan_out.<S>`` (S = 1 and 10 subscribers, no-op handlers):
  ``messages_per_s``: N messages, built beforehand, published back to back, until every subscriber has handled
  every one (queues bounded at ``BusSettings.default_maxsize``, so a fast publisher meets backpressure);
  ``delivery_latency_us``: publish() called to handler called, over ``--latency-messages`` messages sent one
  at a time (the next one once every handler has seen the previous one), so it measures the delivery path
  rather than time spent queued behind a burst.
- ``build_and_publish.<S>``: ``messages_per_s`` as above, but each message is built inside the publish loop, as
  producers do: ``bus.message(...)`` for the bus, a ``SeedMessage`` (a plain frozen dataclass) for
  ``inline_dataclass``, the inline bus with the seed system's messages.
- ``slow_handler``: how long ``publish()`` takes to return while one of two subscribers sleeps
  ``--slow-handler-ms`` in every call; the publisher yields to the loop between publishes.
- ``memory``: RSS after the first 10 % of ``--memory-messages`` market-data messages (built and published one
  by one, 10 symbols) and after all of them, through three subscribers: a no-op one, one that raises on every
  100th message and one stuck forever in its first call (its queue fills, then every message is dropped), so
  history, latency windows, dead letters and a full queue all reach their bounds within the first 10 %.
- ``targets``: each target (issue 6's, and the message-cost issue's) with the figure it is judged on and
  whether it is met.

Baselines (``benchmarks/baselines.py``): ``inline`` awaits each handler inside publish() (the design the bus
replaces); ``asyncio_queue`` is one bounded ``asyncio.Queue`` and consumer task per subscriber (the floor).
``ratios`` divide the bus's figure by the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.baselines import FanOut, InlineBus, QueueFanOut, SeedMessage
from benchmarks.figures import percentiles, positive, resident_bytes, use_uvloop
from triplegain.bus import Message, MessageBus, Topic
from triplegain.bus.settings import BusSettings
from triplegain.clock import WallClock
from triplegain.logs import LoggingSettings, configure_logging

TOPIC = Topic.TA_SIGNALS
MEMORY_TOPIC = Topic.MARKET_DATA  # drop_oldest_lowest: a stuck subscriber cannot hold the publisher back
SUBSCRIBER_COUNTS = (1, 10)
MAXSIZE = BusSettings().default_maxsize

Factory = Callable[[], FanOut]
FACTORIES: dict[str, Factory] = {
    "bus": lambda: MessageBus(BusSettings(close_timeout_seconds=0), clock=WallClock()),
    "inline": InlineBus,
    "asyncio_queue": lambda: QueueFanOut(MAXSIZE),
}
Build = Callable[[int], Any]


def bus_building() -> tuple[FanOut, Build]:
    """The bus, and its producers' way of building a message."""
    bus = MessageBus(BusSettings(close_timeout_seconds=0), clock=WallClock())
    return bus, lambda n: bus.message(TOPIC, {"n": n}, source="benchmark")


def seed_building() -> tuple[FanOut, Build]:
    """The seed system: the inline bus, and a plain frozen dataclass per message."""
    clock = WallClock()
    return InlineBus(), lambda n: SeedMessage(topic=TOPIC, source="benchmark", payload={"n": n}, created_at=clock.now())


BUILDERS: dict[str, Callable[[], tuple[FanOut, Build]]] = {"bus": bus_building, "inline_dataclass": seed_building}


async def ignore(message: Message) -> None:
    return None


def percentiles_us(seconds: Sequence[float], *fractions: float) -> dict[str, float]:
    return percentiles(seconds, fractions, scale=1e6, digits=2)


async def throughput(factory: Factory, subscribers: int, messages: Sequence[Message]) -> float:
    target = factory()
    for number in range(subscribers):
        await target.subscribe(TOPIC, ignore, name=f"noop-{number}")
    started = time.perf_counter()
    for message in messages:
        await target.publish(message)
    await target.drain()
    elapsed = time.perf_counter() - started
    await target.aclose()
    return len(messages) / elapsed


async def build_and_publish(building: Callable[[], tuple[FanOut, Build]], subscribers: int, count: int) -> float:
    """Messages per second when each one is built inside the publish loop."""
    target, build = building()
    for number in range(subscribers):
        await target.subscribe(TOPIC, ignore, name=f"noop-{number}")
    started = time.perf_counter()
    for n in range(count):
        await target.publish(build(n))
    await target.drain()
    elapsed = time.perf_counter() - started
    await target.aclose()
    return count / elapsed


async def delivery_latency(factory: Factory, subscribers: int, messages: Sequence[Message]) -> list[float]:
    target = factory()
    samples: list[float] = []
    publish_started = 0.0
    handled = 0
    all_handled = asyncio.Event()

    async def timed(message: Message) -> None:
        nonlocal handled
        samples.append(time.perf_counter() - publish_started)
        handled += 1
        if handled == subscribers:
            all_handled.set()

    for number in range(subscribers):
        await target.subscribe(TOPIC, timed, name=f"timed-{number}")
    for message in messages:
        handled = 0
        all_handled.clear()
        publish_started = time.perf_counter()
        await target.publish(message)
        await all_handled.wait()
    await target.aclose()
    return samples


async def publish_latency_with_slow_handler(
    factory: Factory, messages: Sequence[Message], slow_seconds: float
) -> list[float]:
    target = factory()

    async def slow(message: Message) -> None:
        await asyncio.sleep(slow_seconds)

    await target.subscribe(TOPIC, slow, name="slow")
    await target.subscribe(TOPIC, ignore, name="fast")
    samples: list[float] = []
    for message in messages:
        started = time.perf_counter()
        await target.publish(message)
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0)  # let the handlers run between publishes, as a real publisher would
    await target.aclose()
    return samples


async def memory_growth(total: int) -> dict[str, Any]:
    """RSS after the first 10 % of ``total`` messages and after all of them (see the module docstring)."""
    bus = MessageBus(BusSettings(close_timeout_seconds=0), clock=WallClock())
    never = asyncio.Event()

    async def fail_now_and_then(message: Message) -> None:
        if message.payload["n"] % 100 == 0:  # type: ignore[index]
            raise ValueError("a failing handler")

    async def stuck(message: Message) -> None:
        await never.wait()

    await bus.subscribe(MEMORY_TOPIC, ignore, name="noop")
    await bus.subscribe(MEMORY_TOPIC, fail_now_and_then, name="failing")
    await bus.subscribe(MEMORY_TOPIC, stuck, name="stuck", maxsize=1_000)
    symbols = [f"SYM{number}/USDT" for number in range(10)]
    checkpoint = max(1, total // 10)
    rss_at_checkpoint = 0
    started = time.perf_counter()
    for n in range(total):
        payload = {"n": n, "close": 100.0 + n % 7, "volume": 1.5}
        await bus.publish(bus.message(MEMORY_TOPIC, payload, source="benchmark", symbol=symbols[n % len(symbols)]))
        if n % 100 == 99:
            await asyncio.sleep(0)  # let the workers take what was published, as a real feed would
        if n + 1 == checkpoint:
            gc.collect()
            rss_at_checkpoint = resident_bytes()
    await asyncio.sleep(0)
    gc.collect()
    rss_at_end = resident_bytes()
    elapsed = time.perf_counter() - started
    stats = bus.stats()
    await bus.aclose()
    return {
        "messages": total,
        "seconds": round(elapsed, 2),
        "rss_mb_after_10_percent": round(rss_at_checkpoint / 2**20, 1),
        "rss_mb_after_all": round(rss_at_end / 2**20, 1),
        "rss_ratio": round(rss_at_end / rss_at_checkpoint, 3),
        "dead_letters_kept": stats.dead_letters_kept,
        "dead_letters_evicted": stats.dead_letters_evicted,
        "deepest_queue": max(subscription.high_water for subscription in stats.subscriptions),
    }


def target(goal: str, measured: Any, met: bool) -> dict[str, Any]:
    return {"target": goal, "measured": measured, "met": met}


def targets(
    fan_out: dict[str, Any], built: dict[str, Any], slow: dict[str, Any], memory: dict[str, Any] | None
) -> dict[str, Any]:
    """Issue 6's bus targets (1, and the bus half of 5) and the cheaper-messages ones, each with its figure from
    this run."""
    judged: dict[str, Any] = {}
    for subscribers, figures in built.items():
        versus_seed = figures["ratios"]["bus/inline_dataclass"]["messages_per_s"]
        judged[f"build_and_publish_{subscribers}_subscribers_vs_inline_dataclass"] = target(
            "bus/inline_dataclass msg/s >= 1.0", versus_seed, versus_seed >= 1.0
        )
    latency_ratio = fan_out["1"]["ratios"]["bus/asyncio_queue"]["delivery_latency_us"]["p50"]
    judged["delivery_latency_1_subscriber_p50_vs_asyncio_queue"] = target(
        "bus/asyncio_queue p50 <= 2.0", latency_ratio, latency_ratio <= 2.0
    )
    for subscribers, figures in fan_out.items():
        versus_inline = figures["ratios"]["bus/inline"]["messages_per_s"]
        versus_queue = figures["ratios"]["bus/asyncio_queue"]["messages_per_s"]
        latency = figures["bus"]["delivery_latency_us"]
        judged[f"throughput_{subscribers}_subscribers_vs_inline"] = target(
            "bus/inline msg/s >= 1.0", versus_inline, versus_inline >= 1.0
        )
        judged[f"throughput_{subscribers}_subscribers_vs_asyncio_queue"] = target(
            "within 3x of the asyncio.Queue fan-out: bus/asyncio_queue msg/s >= 0.333",
            versus_queue,
            versus_queue >= 1 / 3,
        )
        judged[f"delivery_latency_{subscribers}_subscribers_p50_us"] = target(
            "<= 30 with an idle bus", latency["p50"], latency["p50"] <= 30
        )
        judged[f"delivery_latency_{subscribers}_subscribers_p99_us"] = target(
            "<= 100 with an idle bus", latency["p99"], latency["p99"] <= 100
        )
    publish_p99 = slow["bus"]["publish_us"]["p99"]
    judged["publish_p99_us_while_a_handler_is_slow"] = target("<= 20", publish_p99, publish_p99 <= 20)
    if memory is not None:
        judged["rss_after_all_vs_after_10_percent"] = target(
            f"<= 1.10 over {memory['messages']:,} messages", memory["rss_ratio"], memory["rss_ratio"] <= 1.10
        )
    return judged


def median_of(runs: list[Any]) -> Any:
    """The median of each figure across runs (runs are numbers, or dicts of them, nested)."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: median_of([run[key] for run in runs]) for key in first}
    return round(statistics.median(runs), 2)


def ratios(figures: dict[str, Any], ours: str = "bus") -> dict[str, Any]:
    def divide(mine: Any, theirs: Any) -> Any:
        if isinstance(mine, dict):
            return {key: divide(mine[key], theirs[key]) for key in mine}
        return round(mine / theirs, 3) if theirs else None

    return {f"{ours}/{name}": divide(figures[ours], theirs) for name, theirs in figures.items() if name != ours}


async def measure(arguments: argparse.Namespace) -> dict[str, Any]:
    clock = WallClock()

    def build(count: int) -> list[Message]:
        return [Message.create(clock, topic=TOPIC, source="benchmark", payload={"n": n}) for n in range(count)]

    messages = build(arguments.messages)
    gc.collect()
    gc.freeze()  # the prepared messages live through every run: keep them out of the collector's scans
    latency_messages = messages[: arguments.latency_messages]
    slow_messages = messages[: arguments.slow_messages]
    slow_seconds = arguments.slow_handler_ms / 1000

    fan_out: dict[str, Any] = {}
    for subscribers in SUBSCRIBER_COUNTS:
        figures: dict[str, Any] = {}
        for name, factory in FACTORIES.items():
            runs = []
            for _ in range(arguments.repeats):
                gc.collect()
                rate = await throughput(factory, subscribers, messages)
                gc.collect()
                samples = await delivery_latency(factory, subscribers, latency_messages)
                runs.append(
                    {
                        "messages_per_s": rate,
                        "delivery_latency_us": percentiles_us(samples, 0.5, 0.99, 0.999),
                    }
                )
            figures[name] = median_of(runs)
        fan_out[str(subscribers)] = figures | {"ratios": ratios(figures)}

    built: dict[str, Any] = {}
    for subscribers in SUBSCRIBER_COUNTS:
        built_runs: dict[str, list[Any]] = {name: [] for name in BUILDERS}
        for _ in range(arguments.repeats):  # the contenders take turns, so a busy spell of the machine hits both
            for name, building in BUILDERS.items():
                gc.collect()
                rate = await build_and_publish(building, subscribers, arguments.messages)
                built_runs[name].append({"messages_per_s": rate})
        figures = {name: median_of(runs) for name, runs in built_runs.items()}
        built[str(subscribers)] = figures | {"ratios": ratios(figures)}

    slow: dict[str, Any] = {}
    for name, factory in FACTORIES.items():
        runs = []
        for _ in range(arguments.repeats):
            gc.collect()
            samples = await publish_latency_with_slow_handler(factory, slow_messages, slow_seconds)
            runs.append({"publish_us": percentiles_us(samples, 0.5, 0.99)})
        slow[name] = median_of(runs)

    memory = None if arguments.skip_memory else await memory_growth(arguments.memory_messages)
    return {
        "benchmark": "triplegain.bus",
        "python": platform.python_version(),
        "loop": arguments.loop,
        "messages": arguments.messages,
        "latency_messages": len(latency_messages),
        "slow_messages": len(slow_messages),
        "slow_handler_ms": arguments.slow_handler_ms,
        "repeats": arguments.repeats,
        "queue_maxsize": MAXSIZE,
        "fan_out": fan_out,
        "build_and_publish": built,
        "slow_handler": slow | {"ratios": ratios(slow)},
        "memory": memory,
        "targets": targets(fan_out, built, slow, memory),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bus", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=positive, default=100_000, help="messages per throughput run")
    parser.add_argument("--repeats", type=positive, default=3, help="runs per figure; the median is printed")
    parser.add_argument("--latency-messages", type=positive, default=10_000, help="messages per delivery-latency run")
    parser.add_argument("--slow-messages", type=positive, default=1_000, help="messages per slow-handler run")
    parser.add_argument("--slow-handler-ms", type=float, default=1.0, help="how long the slow handler sleeps")
    parser.add_argument(
        "--memory-messages", type=positive, default=1_000_000, help="messages through the bus for the RSS figures"
    )
    parser.add_argument("--skip-memory", action="store_true", help="leave out the memory section (about 20 s)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop to run on")
    arguments = parser.parse_args(argv)
    if arguments.loop == "uvloop":
        use_uvloop()
    configure_logging(LoggingSettings(level="error"))  # the memory run fails handlers on purpose; stdout is JSON
    print(json.dumps(asyncio.run(measure(arguments)), indent=2))


if __name__ == "__main__":
    main()
