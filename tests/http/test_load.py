"""A slow client (never reading), a stalled request and 200 concurrent API clients do not change what a replay
decides: its decisions, orders and fills are the rows of the same replay without HTTP. (Its wall time under the
same load is a figure of ``benchmarks/http.py``, not an assert.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.http import replay, stored_rows
from tests.conftest import create_database, drop_database, unique_name
from triplegain.store.database import url_with_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


async def test_http_clients_do_not_change_a_replays_rows(
    postgres_url: str, migrated_template: str, tmp_path: Path
) -> None:
    names = [unique_name("plain"), unique_name("loaded")]
    for name in names:
        await create_database(postgres_url, name, template=migrated_template)
    try:
        plain_url, loaded_url = (url_with_database(postgres_url, name) for name in names)
        _, (_, load) = await asyncio.gather(
            replay(plain_url, tmp_path / "plain", 150, clients=None),
            replay(loaded_url, tmp_path / "loaded", 150, clients=200),
        )
        assert load is not None
        assert load.requests > 0  # served while the replay ran (at most http.max_loop_share of its time)
        assert load.errors == []
        plain_rows, loaded_rows = await stored_rows(plain_url), await stored_rows(loaded_url)
        assert len(plain_rows["decisions"]) == 144
        assert plain_rows["fills"]
        assert loaded_rows == plain_rows
    finally:
        for name in names:
            await drop_database(postgres_url, name)
