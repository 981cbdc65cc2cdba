"""``JetStreamSource``: a ``WorkSource`` whose workers are ``triplegain worker`` processes on any machine, taking
runs from a JetStream work-queue stream, against the same PostgreSQL (``TRIPLEGAIN_DATABASE_URL``).

Subjects (``<prefix>`` is ``bus.nats.subject_prefix``, ``<stream>`` is ``bus.nats.stream``), apart from the
deployment's own stream (``<prefix>.>``):

- ``<prefix>_sweep.runs.<sweep>``: each ``SweepRun`` as JSON (message id ``<sweep>-<n>``) on the stream
  ``<stream>_SWEEP_RUNS`` (``workqueue`` retention: a run is taken once, by one worker, through the workers'
  shared durable consumer, never delivered again: ``max_deliver`` 1);
- ``<prefix>_sweep.events.<sweep>``: the workers' ``WorkerEvent``\\s (a run started on ``host:pid``, still alive
  every ``HEARTBEAT_SECONDS``, its outcome) on ``<stream>_SWEEP_EVENTS``, read by the sweep from its start;
- ``<prefix>_sweep.stop.<sweep>``: a stop, kept on the events stream: each worker running one of the sweep's runs
  stops it as the daemon stops on SIGTERM (a second one: at once), and a worker that takes one of its runs after
  the stop leaves it.

A run whose worker stops sending its heartbeat for ``heartbeat_timeout_seconds`` is failed, naming the worker
(``worker host:1234 stopped answering (no heartbeat for 30 s)``); its ``daemon_runs`` row is ended by
``run_sweep``. On ``stop`` the runs no worker took are removed from the stream (``not started``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict

from triplegain.bus.jetstream import MSG_ID, JetStreamLink, connect_jetstream, ensure_stream
from triplegain.bus.settings import NatsSettings
from triplegain.sweep.work import Listener, RunOutcome, RunStarted, SweepRun
from triplegain.sweep.worker import execute
from triplegain.waiting import unless_set

logger = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 2.0
"""How often a worker says its run is alive."""
KEEP_EVENTS_SECONDS = 7 * 86_400.0
"""How long the events stream keeps a sweep's events."""
FETCH_WAIT_SECONDS = 1.0
"""How long a worker waits for a run before it looks at its stop again."""


class WorkerEvent(BaseModel):
    """What a worker tells the sweep about one run."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["started", "alive", "outcome"]
    index: int
    worker: str
    outcome: RunOutcome | None = None


def _names(settings: NatsSettings, sweep_id: str = "*") -> dict[str, str]:
    # Not under <prefix>.>: the deployment's stream holds every subject there (streams' subjects may not overlap).
    prefix = f"{settings.subject_prefix}_sweep"
    return {
        "runs_stream": f"{settings.stream}_SWEEP_RUNS",
        "events_stream": f"{settings.stream}_SWEEP_EVENTS",
        "runs": f"{prefix}.sweep.runs.{sweep_id}",
        "events": f"{prefix}.sweep.events.{sweep_id}",
        "stop": f"{prefix}.sweep.stop.{sweep_id}",
        "consumer": f"{settings.stream}_sweep_workers",
    }


async def _ensure_streams(link: JetStreamLink, settings: NatsSettings) -> None:
    names = _names(settings)
    for stream, subjects, retention in (
        (names["runs_stream"], [names["runs"]], "workqueue"),
        (names["events_stream"], [names["events"], names["stop"]], "limits"),
    ):
        await ensure_stream(
            link,
            name=stream,
            subjects=subjects,
            max_age_seconds=KEEP_EVENTS_SECONDS,
            max_bytes=settings.max_bytes,
            duplicate_window_seconds=settings.duplicate_window_seconds,
            retention="workqueue" if retention == "workqueue" else "limits",
        )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JetStreamSource:
    """Publishes a sweep's runs to the work queue and collects the workers' events (see the module docstring)."""

    def __init__(
        self,
        settings: NatsSettings,
        sweep_id: str,
        *,
        heartbeat_timeout_seconds: float = 30.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = settings
        self._names = _names(settings, sweep_id)
        self._sweep_id = sweep_id
        self._timeout = heartbeat_timeout_seconds
        self._environ = environ
        self._stops = 0
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stops += 1
        self._stopped.set()

    async def run(self, runs: Sequence[SweepRun], listener: Listener) -> list[RunOutcome]:
        events: asyncio.Queue[WorkerEvent] = asyncio.Queue()

        async def received(message: Msg) -> None:
            events.put_nowait(WorkerEvent.model_validate_json(message.data))

        outcomes: dict[int, RunOutcome] = {}
        alive: dict[int, tuple[str, float]] = {}
        stops_sent = 0
        async with connect_jetstream(self._settings, name="triplegain sweep", environ=self._environ) as link:
            await _ensure_streams(link, self._settings)
            subscription = await link.js.subscribe(self._names["events"], cb=received, ordered_consumer=True)
            try:
                for run in runs:
                    identity = {MSG_ID: f"{self._sweep_id}-{run.index}"}
                    await link.js.publish(self._names["runs"], run.model_dump_json().encode(), headers=identity)
                by_index = {run.index: run for run in runs}
                while len(outcomes) < len(runs):
                    if stops_sent < self._stops:
                        if stops_sent == 0:
                            await link.js.purge_stream(self._names["runs_stream"], subject=self._names["runs"])
                            for index in by_index.keys() - alive.keys() - outcomes.keys():
                                outcomes[index] = RunOutcome(
                                    index=index, status="not started", error="the sweep stopped first"
                                )
                                listener(outcomes[index])
                        stops_sent = self._stops
                        await link.js.publish(self._names["stop"], str(stops_sent).encode())
                        self._stopped.clear()
                        continue
                    event = await self._next(events, alive)
                    if event is None:
                        self._fail_silent(alive, outcomes, listener)
                        continue
                    if event.index in outcomes or event.index not in by_index:
                        continue
                    if event.kind == "outcome" and event.outcome is not None:
                        alive.pop(event.index, None)
                        outcomes[event.index] = event.outcome
                        listener(event.outcome)
                        continue
                    if event.kind == "started":
                        listener(RunStarted(index=event.index, worker=event.worker))
                    alive[event.index] = (event.worker, time.monotonic())
            finally:
                await subscription.unsubscribe()
        return [outcomes[run.index] for run in runs]

    async def _next(
        self, events: asyncio.Queue[WorkerEvent], alive: Mapping[int, tuple[str, float]]
    ) -> WorkerEvent | None:
        """The next event; None when a run's heartbeat is overdue or a stop was asked first."""
        deadline = min((seen + self._timeout for _, seen in alive.values()), default=None)
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        getting = await unless_set(events.get(), self._stopped, give_up_after=wait)
        return None if getting.cancelled() else getting.result()

    def _fail_silent(
        self, alive: dict[int, tuple[str, float]], outcomes: dict[int, RunOutcome], listener: Listener
    ) -> None:
        now = time.monotonic()
        for index, (worker, seen) in list(alive.items()):
            if now - seen >= self._timeout:
                del alive[index]
                error = f"worker {worker} stopped answering (no heartbeat for {self._timeout:g} s)"
                outcomes[index] = RunOutcome(index=index, status="failed", error=error, worker=worker)
                listener(outcomes[index])


async def serve_runs(
    settings: NatsSettings, environ: Mapping[str, str], stopping: asyncio.Event, say: Callable[[str], None]
) -> int:
    """``triplegain worker``: take runs from the work queue one at a time until SIGINT or SIGTERM (between runs;
    during a run the daemon stops it cleanly, then the worker stops); ``say`` tells what it does; how many runs it
    ran."""
    me = worker_name()
    names = _names(settings)
    done = 0
    ours: list[bool] = []  # a SIGTERM this worker sent itself for a sweep's stop

    def signalled() -> None:
        if ours:
            ours.clear()
        else:
            stopping.set()

    async with connect_jetstream(settings, name=f"triplegain worker {me}", environ=environ) as link:
        await _ensure_streams(link, settings)
        queue = await link.js.pull_subscribe(
            names["runs"],
            durable=names["consumer"],
            stream=names["runs_stream"],
            config=ConsumerConfig(ack_wait=max(30.0, 4 * HEARTBEAT_SECONDS), max_deliver=1),
        )
        say(f"worker {me}: waiting for sweep runs on {link.server}")
        try:
            while not stopping.is_set():
                _on_signals(signalled)  # again after each run: the daemon's own handlers replaced these
                try:
                    [message] = await queue.fetch(1, timeout=FETCH_WAIT_SECONDS)
                except NatsTimeout:
                    continue
                run = SweepRun.model_validate_json(message.data)
                sweep_id = message.subject.rsplit(".", 1)[1]
                if await _stopped_already(link, settings, sweep_id):
                    await message.ack()
                    continue
                say(f"worker {me}: run #{run.index} of sweep {sweep_id} ({run.label}) on account {run.account}")
                outcome, asked = await _run_one(link, settings, run, sweep_id, me, message, ours)
                ours.clear()  # the daemon took the stop's SIGTERM
                done += 1
                say(f"worker {me}: run #{run.index} of sweep {sweep_id} {outcome.status}")
                if outcome.status == "interrupted" and not asked:
                    break  # a signal to this worker stopped its run: the worker stops too
        finally:
            await queue.unsubscribe()  # before the connection drains: a pull subscription's drain never ends
    return done


def _on_signals(handler: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handler)


async def _stopped_already(link: JetStreamLink, settings: NatsSettings, sweep_id: str) -> bool:
    """Whether the sweep asked its runs to stop (a run taken after that is left)."""
    names = _names(settings, sweep_id)
    try:
        await link.js.get_last_msg(names["events_stream"], names["stop"])
    except NotFoundError:
        return False
    return True


async def _run_one(
    link: JetStreamLink,
    settings: NatsSettings,
    run: SweepRun,
    sweep_id: str,
    me: str,
    message: Msg,
    ours: list[bool],
) -> tuple[RunOutcome, bool]:
    """Run ``run``, saying so on the sweep's events subject; its outcome, and whether the sweep asked it to stop."""
    names = _names(settings, sweep_id)
    asked: list[bytes] = []

    async def say(kind: Literal["started", "alive", "outcome"], outcome: RunOutcome | None = None) -> None:
        event = WorkerEvent(kind=kind, index=run.index, worker=me, outcome=outcome)
        await link.js.publish(names["events"], event.model_dump_json().encode())

    async def stop_asked(stop: Msg) -> None:
        asked.append(stop.data)
        ours.append(True)
        os.kill(os.getpid(), signal.SIGTERM)  # the daemon's own clean stop (a second one: at once)

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            with contextlib.suppress(Exception):  # a missed beat is only late: the next one may get through
                await say("alive")
                await message.in_progress()

    stops = await link.client.subscribe(names["stop"], cb=stop_asked)
    await say("started")
    heart = asyncio.create_task(beat())
    try:
        outcome = await execute(run, os.environ)
    finally:
        heart.cancel()
        await asyncio.gather(heart, return_exceptions=True)
        await stops.unsubscribe()
    outcome = outcome.model_copy(update={"worker": me})
    await say("outcome", outcome)
    await message.ack()
    return outcome, bool(asked)
