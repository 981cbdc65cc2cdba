"""The store's command listener: notified of its account's commands only, and listening again after its connection
was lost (an outage takes the LISTEN with it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from triplegain.model import Command, Verb
from triplegain.store.command_listener import CommandListener
from triplegain.store.coordinator_state import submit_command
from triplegain.store.database import Database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(30)]

T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)
_LISTENING_BACKEND = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()
"""


async def test_it_hears_its_own_account_only(migrated_database: Database) -> None:
    heard: asyncio.Queue[None] = asyncio.Queue()
    async with CommandListener(migrated_database, "paper") as listener:
        await listener.start(lambda: heard.put_nowait(None))
        assert listener.listening
        await submit_command(migrated_database, "other", Command(Verb.PAUSE), T0)
        await submit_command(migrated_database, "paper", Command(Verb.PAUSE), T0)
        await asyncio.wait_for(heard.get(), timeout=10)
        # NOTIFYs arrive in commit order: had the other account's been heard, it would have come first
        assert heard.empty()
    assert not listener.listening


async def test_a_lost_connection_is_found_and_replaced(migrated_database: Database) -> None:
    heard: asyncio.Queue[None] = asyncio.Queue()
    async with CommandListener(migrated_database, "paper") as listener:
        await listener.start(lambda: heard.put_nowait(None))
        [backend] = await migrated_database.pool.fetch(_LISTENING_BACKEND)
        await migrated_database.pool.execute("SELECT pg_terminate_backend($1)", backend["pid"])
        await asyncio.wait_for(listener.lost.wait(), timeout=10)
        assert not listener.listening
        assert await listener.keep_listening()
        assert listener.listening
        await submit_command(migrated_database, "paper", Command(Verb.RESUME), T0)
        await asyncio.wait_for(heard.get(), timeout=10)
