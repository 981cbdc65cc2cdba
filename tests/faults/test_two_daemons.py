"""Two daemons on one account: the second takes over only once the first one's lock is gone.

The first daemon is frozen with SIGSTOP: it still holds the account's advisory lock (its connection is open),
so a second daemon is turned away with one line naming the account and the holder's run and pid. SIGKILL
closes the first one's connection; once PostgreSQL has noticed and freed the lock, a second daemon starts,
restores the account and finishes the replay. (tests/e2e/test_daemon.py checks the refusal of a second daemon
next to a running one; this is the takeover.)
"""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.cli import run_cli
from tests.faults.daemon_process import DaemonProcess
from triplegain.clock import WallClock

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

CONFIG = """
market:
  synthetic:
    symbols: {BTC/USDT: 40000.0, ETH/USDT: 2500.0}
    count: 150
    start: 2024-01-01T00:00:00Z
"""
ACCOUNT = "paper"
REPLAY = ("--source", "synthetic", "--seed", "5")
WAIT_SECONDS = 60.0

_LOCK_HOLDER = """
    SELECT l.pid FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('triplegain:' || $1, 0)
"""


@pytest.fixture
def env(empty_database_url: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "triplegain.yaml"
    config.write_text(CONFIG)
    return {"TRIPLEGAIN_DATABASE_URL": empty_database_url, "TRIPLEGAIN_CONFIG": str(config)}


async def lock_holder(url: str) -> int | None:
    """The server process holding the account's coordinator lock, or None when it is free."""
    connection = await asyncpg.connect(url)
    try:
        holder: int | None = await connection.fetchval(_LOCK_HOLDER, ACCOUNT)
    finally:
        await connection.close()
    return holder


async def wait_until_free(url: str) -> float:
    """Poll until the lock is free; how many seconds that took."""
    clock = WallClock()
    started = clock.monotonic()
    while await lock_holder(url) is not None:
        assert clock.monotonic() - started < WAIT_SECONDS, "the killed daemon's lock was never released"
    return clock.monotonic() - started


async def test_a_frozen_daemon_keeps_the_account_and_a_killed_one_hands_it_over(
    env: dict[str, str], empty_database_url: str
) -> None:
    first = DaemonProcess.start([*REPLAY, "--speed", "600"], env=env)  # 0.5 s per candle: it outlives the test
    try:
        first.wait_for(lambda event: event.get("event") == "coordinator started", within=WAIT_SECONDS)
        first.send(signal.SIGSTOP)
        assert await lock_holder(empty_database_url) is not None

        refused = run_cli("run", *REPLAY, env=env, timeout=WAIT_SECONDS)
        assert refused.returncode == 1, refused.stderr[-2000:]
        assert "Traceback" not in refused.stderr
        [line] = [line for line in refused.stderr.splitlines() if "another triplegain daemon" in line]
        assert f"another triplegain daemon is running for account '{ACCOUNT}'" in line
        assert f"(run 1, pid {first.pid} on " in line
        assert await lock_holder(empty_database_url) is not None  # the refusal took nothing away

        first.kill()  # a stopped process dies of SIGKILL too; the kernel closes its connections
    finally:
        first.kill()
    await wait_until_free(empty_database_url)

    second = DaemonProcess.start(REPLAY, env=env)
    assert second.finish(within=WAIT_SECONDS * 2) == 0, second.err()[-2000:]
    assert second.summary()["exit_reason"] == "replay finished"
    [started] = [event for event in second.events if event.get("event") == "paper broker started"]
    assert started["account"] == ACCOUNT

    connection = await asyncpg.connect(empty_database_url)
    try:
        runs = await connection.fetch("SELECT id, pid, exit_reason FROM daemon_runs ORDER BY id")
    finally:
        await connection.close()
    # The refused daemon never started a run; the killed one has no end; the one that took over ended normally.
    assert [(row["id"], row["pid"], row["exit_reason"]) for row in runs] == [
        (1, first.pid, None),
        (2, second.pid, "replay finished"),
    ]
