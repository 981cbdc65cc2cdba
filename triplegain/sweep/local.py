"""``LocalProcesses``: a ``WorkSource`` of worker processes on this machine.

Each worker is a process of its own (``sweep.worker.serve``, started from a fork server that has imported the
daemon once), taking one run at a time over a pipe; a dispatcher thread hands the next run to whichever worker
answers, and waits on every pipe, every process's sentinel and a wake-up pipe at once (no polling):

- an outcome frees its worker for the next run;
- a process that ends without an outcome (killed, out of memory, ``os._exit``) fails its run, named with the
  worker's pid and how it ended (``listener`` hears it like any outcome), and a new worker takes its place
  while runs are left;
- ``stop`` wakes the dispatcher: no further run is handed out (those left end ``not started``) and every busy
  worker gets SIGTERM, the daemon's clean stop (its run ends ``interrupted``); a second ``stop`` sends another,
  which stops what is left at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from triplegain.sweep.work import Listener, RunOutcome, RunStarted, SweepRun
from triplegain.sweep.worker import serve

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["triplegain.sweep.worker"])


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection
    run: SweepRun | None = None
    stops_sent: int = 0


class LocalProcesses:
    """Runs a sweep on ``workers`` local processes (see the module docstring)."""

    def __init__(self, workers: int, environ: dict[str, str] | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._workers = workers
        self._environ = dict(os.environ) if environ is None else environ
        self._wake_reader, self._wake_writer = _CONTEXT.Pipe(duplex=False)
        self._stops = 0

    async def run(self, runs: Sequence[SweepRun], listener: Listener) -> list[RunOutcome]:
        return await asyncio.to_thread(self._dispatch, runs, listener)

    def stop(self) -> None:
        self._stops += 1
        with contextlib.suppress(OSError):
            self._wake_writer.send(self._stops)

    def _dispatch(self, runs: Sequence[SweepRun], listener: Listener) -> list[RunOutcome]:
        pending = deque(runs)
        outcomes: dict[int, RunOutcome] = {}
        busy: list[_Worker] = []
        stops_seen = 0

        def hand_out(worker: _Worker | None) -> None:
            if not pending or self._stops:
                if worker is not None:
                    _retire(worker)
                return
            worker = worker or self._start_worker()
            worker.run = pending.popleft()
            worker.connection.send(worker.run)
            busy.append(worker)
            listener(RunStarted(index=worker.run.index, worker=str(worker.process.pid), pid=worker.process.pid))

        def finish(outcome: RunOutcome) -> None:
            outcomes[outcome.index] = outcome
            listener(outcome)

        try:
            for _ in range(min(self._workers, len(pending))):
                hand_out(None)
            while busy:
                ready = wait([self._wake_reader, *(w.connection for w in busy), *(w.process.sentinel for w in busy)])
                if self._wake_reader in ready:
                    while self._wake_reader.poll():
                        self._wake_reader.recv()
                for worker in list(busy):
                    if stops_seen < self._stops:
                        _signal(worker, self._stops)
                    answered = _answer(worker)
                    if answered is None and worker.process.sentinel not in ready:
                        continue
                    busy.remove(worker)
                    assert worker.run is not None
                    if isinstance(answered, RunOutcome):
                        finish(answered)
                        hand_out(worker)
                    else:
                        finish(_died(worker, worker.run))
                        _retire(worker)
                        hand_out(None)
                stops_seen = self._stops
        finally:
            for worker in busy:
                worker.process.kill()
                _retire(worker)
        for run in pending:
            finish(RunOutcome(index=run.index, status="not started", error="the sweep stopped first"))
        return [outcomes[run.index] for run in runs]

    def _start_worker(self) -> _Worker:
        ours, theirs = _CONTEXT.Pipe()
        process = _CONTEXT.Process(target=serve, args=(theirs, self._environ), name="triplegain-sweep-worker")
        process.start()
        theirs.close()
        return _Worker(process, ours)


def _answer(worker: _Worker) -> RunOutcome | bool | None:
    """The worker's outcome when it sent one; None when it has not (yet); False when it never will (its end of
    the pipe closed: the process is ending)."""
    try:
        if not worker.connection.poll():
            return None
        answer = worker.connection.recv()
    except (EOFError, OSError):
        return False
    assert isinstance(answer, RunOutcome)
    return answer


def _signal(worker: _Worker, stops: int) -> None:
    """SIGTERM for each stop asked and not yet sent to this busy worker (the daemon's clean stop, then at once)."""
    while worker.stops_sent < stops:
        worker.stops_sent += 1
        with contextlib.suppress(ProcessLookupError):
            assert worker.process.pid is not None
            os.kill(worker.process.pid, signal.SIGTERM)


def _died(worker: _Worker, run: SweepRun) -> RunOutcome:
    """The outcome of a run whose worker ended without answering: failed, or interrupted when the stop's SIGTERM
    came before the daemon took its signals over."""
    worker.process.join()
    code = worker.process.exitcode
    pid = worker.process.pid
    if worker.stops_sent and code == -signal.SIGTERM:
        return RunOutcome(index=run.index, status="interrupted", error="stopped before it traded", worker=str(pid))
    if code is not None and code < 0:
        how = f"killed by {signal.Signals(-code).name}"
    else:
        how = f"exited with code {code} without an answer"
    return RunOutcome(index=run.index, status="failed", error=f"worker {pid} died ({how})", worker=str(pid))


def _retire(worker: _Worker) -> None:
    """Tell an idle worker to end, and wait for it (a dead one is only waited for)."""
    with contextlib.suppress(OSError, BrokenPipeError):
        worker.connection.send(None)
    worker.process.join()
    worker.connection.close()
