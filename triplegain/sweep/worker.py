"""A sweep's worker: takes runs one at a time and replays each on the daemon's own path (``run_daemon``), as
``triplegain run --replay FILE --speed max --account NAME`` does, silently.

    outcome = asyncio.run(execute(run, os.environ))

A local worker process (``sweep.local``) runs ``serve``: it reads ``SweepRun``s from its end of a pipe until
``None`` and answers each with its ``RunOutcome``. It leaves the terminal's process group, so Ctrl-C reaches only
the sweep, which stops its runs with SIGTERM: the daemon's clean stop (a second one: at once).
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Mapping
from multiprocessing.connection import Connection

from triplegain.config import Settings
from triplegain.daemon.run import RunOptions, run_daemon
from triplegain.daemon.status import StatusBoard
from triplegain.errors import TriplegainError
from triplegain.logs import configure_logging
from triplegain.sweep.work import RunOutcome, SweepRun

FINISHED = "replay finished"
"""The exit reason of a run whose replay ended (``daemon.run``)."""


def options_for(run: SweepRun) -> RunOptions:
    """What ``triplegain run`` would be given for this run: a replay (or synthetic candles) as fast as possible."""
    if run.source == "replay":
        return RunOptions(
            source="replay",
            replay_files=() if run.replay_file is None else (run.replay_file,),
            answers_from=run.answers_from,
            on_missing=run.on_missing,
            max_llm_usd=run.max_llm_usd,
        )
    return RunOptions(
        source="synthetic",
        seed=run.seed,
        answers_from=run.answers_from,
        on_missing=run.on_missing,
        max_llm_usd=run.max_llm_usd,
    )


async def execute(run: SweepRun, environ: Mapping[str, str]) -> RunOutcome:
    """Replay ``run``; its outcome (never raises for the run's own errors)."""
    worker = str(os.getpid())
    board = StatusBoard(io.StringIO(), rich_panel=False)
    try:
        summary = await run_daemon(Settings.model_validate(run.settings), options_for(run), environ, board)
    except asyncio.CancelledError:
        return RunOutcome(index=run.index, status="interrupted", error="stopped at once", worker=worker)
    except TriplegainError as error:
        return RunOutcome(index=run.index, status="failed", error=str(error), worker=worker)
    except Exception as error:  # a bug in one run is that run's failure, not the sweep's
        return RunOutcome(index=run.index, status="failed", error=f"{type(error).__name__}: {error}", worker=worker)
    if summary.exit_reason == FINISHED:
        return RunOutcome(index=run.index, status="finished", summary=summary, worker=worker)
    return RunOutcome(index=run.index, status="interrupted", summary=summary, error=summary.exit_reason, worker=worker)


def serve(connection: Connection, environ: dict[str, str]) -> None:
    """A local worker process: runs from ``connection`` until ``None`` (or the sweep's end of it closes)."""
    os.setpgrp()
    os.environ.clear()
    os.environ.update(environ)
    while True:
        try:
            run = connection.recv()
        except (EOFError, OSError):
            return
        if run is None:
            return
        # As ``triplegain run`` logs a replay: warnings and worse, on stderr.
        logging = Settings.model_validate(run.settings).logging
        configure_logging(logging.model_copy(update={"level": "warning"}), stream=sys.stderr)
        connection.send(asyncio.run(execute(run, os.environ)))
