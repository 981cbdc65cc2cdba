"""What a database outage takes with its connections and the daemon takes back: the account's coordinator lock
(unless another daemon took it meanwhile) and the LISTEN that applies commands at once."""

from __future__ import annotations

import asyncio

import pytest

from tests.coordinator_harness import ACCOUNT, coordinator_harness
from tests.faults.postgres_proxy import PostgresProxy
from tests.unit.test_consensus import T0
from triplegain.bus import Message, Topic
from triplegain.model import Command, CoordinatorState, StateChanged, Verb
from triplegain.store import Database
from triplegain.store.coordinator_state import submit_command
from triplegain.store.runs import DaemonAlreadyRunning, account_lock, daemon_running

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(30)]

async def freed(db: Database) -> None:
    """Wait until the server has noticed the cut connection and freed its lock (nothing to wait on but the
    server itself: ask it again, within a deadline; each question is a round trip)."""
    async with asyncio.timeout(10):
        while await daemon_running(db, "paper"):
            pass


async def test_the_lock_is_taken_again_once_the_database_is_back(
    proxy: PostgresProxy, proxied_database: Database, migrated_database: Database
) -> None:
    async with account_lock(proxied_database, "paper") as lock:
        assert await lock.reassert()
        await proxy.refuse()
        await freed(migrated_database)
        assert not await lock.reassert(), "out of reach: not held, nothing raised"
        await proxy.accept()
        assert await lock.reassert()
        assert await daemon_running(migrated_database, "paper"), "held again"


async def test_a_daemon_that_took_the_lock_meanwhile_keeps_it(
    proxy: PostgresProxy, proxied_database: Database, migrated_database: Database
) -> None:
    async with account_lock(proxied_database, "paper") as lock:
        await proxy.refuse()
        await freed(migrated_database)
        async with account_lock(migrated_database, "paper"):  # a second daemon, beside the outage
            await proxy.accept()
            with pytest.raises(DaemonAlreadyRunning, match="went with its connection in a database outage"):
                await lock.reassert()
            assert await daemon_running(migrated_database, "paper")


async def test_the_coordinator_listens_for_commands_again_after_an_outage(
    proxy: PostgresProxy, proxied_database: Database, migrated_database: Database
) -> None:
    async with coordinator_harness(proxied_database, snapshot_interval_seconds=3600.0) as harness:
        changes: asyncio.Queue[Message] = asyncio.Queue()

        async def on_event(message: Message) -> None:
            await changes.put(message)

        await harness.bus.subscribe(Topic.SYSTEM_EVENTS, on_event, name="test")
        await harness.coordinator.housekeeping(None, T0)  # saved now: no poll for the next hour
        await proxy.refuse()
        await proxy.accept()
        await harness.coordinator.housekeeping(None, T0)  # listens again; within the hour: no poll
        await submit_command(migrated_database, ACCOUNT, Command(verb=Verb.PAUSE, reason="test"), T0)
        async with asyncio.timeout(10):
            while not isinstance((await changes.get()).payload, StateChanged):
                pass
        assert harness.coordinator.state is CoordinatorState.PAUSED
