"""Sweep runs across processes through a JetStream work queue: two ``triplegain worker`` processes take the runs
of ``triplegain sweep --work nats`` (each run once) against the same PostgreSQL; one, SIGKILLed in the middle of
its run, is reported by the sweep once it has not been heard of for ``--worker-timeout``: its run failed (and ended
in ``daemon_runs``), while the other worker runs the rest and stops on SIGTERM (exit 0)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.cli import start_cli
from triplegain.bus.jetstream import connect_jetstream, ensure_stream
from triplegain.bus.settings import NatsSettings

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

CONFIG = """
bus: {{nats: {{stream: {stream}, subject_prefix: {subject_prefix}}}}}
market: {{synthetic: {{symbols: {{BTC/USDT: 40000.0}}, start: 2024-01-01T00:00:00Z}}}}
"""


@pytest.fixture
def env(tmp_path: Path, empty_database_url: str, nats_url: str, nats_names: dict[str, str]) -> dict[str, str]:
    config = tmp_path / "triplegain.yaml"
    config.write_text(CONFIG.format(**nats_names))
    return {
        "TRIPLEGAIN_DATABASE_URL": empty_database_url,
        "TRIPLEGAIN_CONFIG": str(config),
        "TRIPLEGAIN_NATS_URL": nats_url,
    }


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[list[subprocess.Popen[str]]]:
    started = [start_cli("worker", env=env) for _ in range(2)]
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=30)


async def test_workers_take_the_runs_and_a_killed_one_fails_its_run(
    env: dict[str, str], workers: list[subprocess.Popen[str]], empty_database_url: str, nats_names: dict[str, str]
) -> None:
    # The deployment's own stream (<prefix>.>) is there, as beside an agents service: the sweep's do not overlap it.
    nats = NatsSettings(url=env["TRIPLEGAIN_NATS_URL"], **nats_names)
    async with connect_jetstream(nats, name="test") as link:
        await ensure_stream(
            link, name=nats.stream, subjects=[f"{nats.subject_prefix}.>"], max_age_seconds=60, max_bytes=2**20,
            duplicate_window_seconds=60,
        )  # fmt: skip
    sweep = start_cli(
        "sweep", "--source", "synthetic", "--set", "market.synthetic.count=null,60,60", "--work", "nats",
        "--worker-timeout", "3", "-f", "json", env=env,
    )  # fmt: skip
    try:
        assert sweep.stderr is not None
        seen = []
        for line in sweep.stderr:  # the first run has no end: its worker is killed while it runs
            seen.append(line)
            if line.startswith("#1 ") and ": started (worker " in line:
                killed = line.rsplit("(worker ", 1)[1].rstrip(")\n")
                os.kill(int(killed.rsplit(":", 1)[1]), signal.SIGKILL)
                break
        else:
            pytest.fail(f"the first run never started: {seen}")
        stdout, stderr = sweep.communicate(timeout=150)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.communicate()
    assert sweep.returncode == 1, stderr  # a run failed
    first, second, third = json.loads(stdout)["runs"]
    assert (first["status"], first["error"]) == ("failed", f"worker {killed} stopped answering (no heartbeat for 3 s)")
    assert [(run["status"], run["candles"]) for run in (second, third)] == [("finished", 60)] * 2
    connection = await asyncpg.connect(empty_database_url)
    try:
        still_open = await connection.fetchval("SELECT count(*) FROM daemon_runs WHERE ended_at IS NULL")
    finally:
        await connection.close()
    assert still_open == 0

    [survivor] = [process for process in workers if process.poll() is None]
    survivor.send_signal(signal.SIGTERM)
    _, said = survivor.communicate(timeout=60)
    assert survivor.returncode == 0, said
    assert "waiting for sweep runs" in said
    assert "worker stopped after 2 runs" in said
    assert "Traceback" not in said
