"""Shared fixtures: a PostgreSQL server for the session and a fresh database for each test that needs one.

The server is ``TRIPLEGAIN_TEST_DATABASE_URL`` when set (a database on it to connect to; each test's database is
created next to it and dropped afterwards), else an embedded server started once per session in a temporary
data directory and stopped at the end. Migrations are applied once per session to a template database; each
test that wants a migrated database gets a copy of it (``CREATE DATABASE … TEMPLATE``), which is much faster
than migrating again. Tests using these fixtures are marked ``@pytest.mark.postgres``.

Every test runs with ``TRIPLEGAIN_DATABASE_URL`` unset and ``TRIPLEGAIN_HOME`` inside the session's scratch
folder, so none can reach the developer's own database or data directory by accident.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from tests.e2e.cli import STARTED, kill_started
from tests.stubs.llm_server import LLMStubServer
from triplegain.store import Database, migrate, open_database_at
from triplegain.store.database import url_with_database
from triplegain.store.embedded import acquire_server, release_server
from triplegain.store.settings import DatabaseSettings

if TYPE_CHECKING:
    from tests.review_data import ReviewTemplate

TEST_DATABASE_URL_ENV = "TRIPLEGAIN_TEST_DATABASE_URL"
TEST_DATABASE_CONFIG = DatabaseSettings(pool_min_size=1, pool_max_size=4)
SERVER_START_TIMEOUT_SECONDS = 120.0


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` first, each kept in its order: under ``-n auto`` the workers start on the long
    ones together and finish on short ones, instead of one worker ending alone on a long test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def scratch_dir() -> Iterator[Path]:
    """A temporary folder under /var/tmp, removed at the end of the session.

    Run as root, the embedded server makes every parent of its data directory traversable by others: /var/tmp
    and / are already, whereas pytest's own temporary folder is private to its user on purpose.
    """
    parent = "/var/tmp" if os.path.isdir("/var/tmp") else None
    path = Path(tempfile.mkdtemp(prefix="triplegain-tests-", dir=parent))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_process_left_running() -> Iterator[None]:
    """A test that fails half-way (an agents service, a standby waiting) leaves none of its processes running to
    load the machine for the tests after it; processes of wider-scoped fixtures, started before, are left alone."""
    since = len(STARTED)
    yield
    kill_started(since)


@pytest.fixture(autouse=True)
def _isolated_from_real_database(monkeypatch: pytest.MonkeyPatch, scratch_dir: Path) -> None:
    monkeypatch.delenv("TRIPLEGAIN_DATABASE_URL", raising=False)
    monkeypatch.setenv("TRIPLEGAIN_HOME", str(scratch_dir / "home"))


@pytest.fixture(scope="session")
def postgres_url(scratch_dir: Path) -> Iterator[str]:
    """URL of a database on the test server from which to create and drop the tests' databases."""
    configured = os.environ.get(TEST_DATABASE_URL_ENV)
    if configured:
        yield configured
        return
    if importlib.util.find_spec("pgserver") is None:
        pytest.skip(f"no PostgreSQL: pgserver is not installed here and {TEST_DATABASE_URL_ENV} is not set")
    pgdata = scratch_dir / "server" / "pgdata"
    server = acquire_server(pgdata, SERVER_START_TIMEOUT_SECONDS)
    try:
        yield server.url("postgres")
    finally:
        release_server(pgdata, SERVER_START_TIMEOUT_SECONDS)


@pytest.fixture(scope="session")
def migrated_template(postgres_url: str) -> Iterator[str]:
    """Name of a database with every migration applied, from which each test's migrated database is copied."""
    name = unique_name("triplegain_template")
    asyncio.run(create_database(postgres_url, name, template="template0"))
    try:
        asyncio.run(_migrate(url_with_database(postgres_url, name)))
        yield name
    finally:
        asyncio.run(drop_database(postgres_url, name))


@pytest.fixture
async def empty_database_url(postgres_url: str) -> AsyncIterator[str]:
    """URL of a database created for this test, with nothing in it."""
    async with _fresh_database(postgres_url, template="template0") as url:
        yield url


@pytest.fixture
async def migrated_database_url(postgres_url: str, migrated_template: str) -> AsyncIterator[str]:
    """URL of a database created for this test, with every migration applied."""
    async with _fresh_database(postgres_url, template=migrated_template) as url:
        yield url


@pytest.fixture
async def migrated_database(migrated_database_url: str) -> AsyncIterator[Database]:
    """An open ``Database`` on a migrated database created for this test."""
    async with open_database_at(migrated_database_url, TEST_DATABASE_CONFIG) as db:
        yield db


@pytest.fixture
def migrated_pool(migrated_database: Database) -> Any:
    """The asyncpg pool of ``migrated_database``."""
    return migrated_database.pool


@asynccontextmanager
async def _fresh_database(postgres_url: str, *, template: str) -> AsyncIterator[str]:
    name = unique_name("test")
    await create_database(postgres_url, name, template=template)
    try:
        yield url_with_database(postgres_url, name)
    finally:
        await drop_database(postgres_url, name)


async def create_database(postgres_url: str, name: str, *, template: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await connection.close()


async def drop_database(postgres_url: str, name: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def _migrate(url: str) -> None:
    async with open_database_at(url, TEST_DATABASE_CONFIG) as db:
        await migrate(db)


@pytest.fixture
async def llm_stub() -> AsyncIterator[LLMStubServer]:
    """A local server speaking the OpenAI chat-completions and Anthropic messages wire formats."""
    async with LLMStubServer() as server:
        yield server


@pytest.fixture(scope="session")
def review_template(postgres_url: str, migrated_template: str) -> Iterator[ReviewTemplate]:
    """A database filled by a replay for the decision-review tests (``tests/review_data.py``), made once."""
    from tests.review_data import create_review_template  # it imports this module's helpers

    template = asyncio.run(create_review_template(postgres_url, migrated_template))
    yield template
    asyncio.run(drop_database(postgres_url, template.name))


@pytest.fixture(scope="session")
def nats_url(scratch_dir: Path) -> Iterator[str]:
    """A NATS server with JetStream: ``TRIPLEGAIN_TEST_NATS_URL`` when set, else one started for the session."""
    from tests.nats_server import TEST_NATS_URL_ENV, NatsServer

    configured = os.environ.get(TEST_NATS_URL_ENV)
    if configured:
        yield configured
        return
    server = NatsServer.start(scratch_dir / "nats")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def nats_names() -> dict[str, str]:
    """A stream and subject prefix of the test's own, so tests sharing a server never see each other's messages."""
    token = uuid.uuid4().hex[:10]
    return {"stream": f"TEST_{token}", "subject_prefix": f"t{token}"}
