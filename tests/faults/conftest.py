"""Shared by the bad-input and security tests: the CLI run in-process, and the hypothesis profiles.

``invoke_cli`` runs ``triplegain.cli.main`` (the console script's own entry point, so the one-line error
handling is what a user gets) inside click's isolation: stdout and stderr captured, the environment patched, about
a millisecond a command instead of the ~1.2 s of a process. Logging set up by a command is put back afterwards.

Hypothesis profiles: the default keeps hypothesis's own settings (100 examples a test: fast); ``fuzz`` runs
10,000 examples per fuzz test with no deadline. Pick one with the environment::

    HYPOTHESIS_PROFILE=fuzz pytest tests/faults -k fuzz
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import pytest
import structlog
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

from tests.faults.postgres_proxy import PostgresProxy
from triplegain.cli import main
from triplegain.store import Database, open_database_at
from triplegain.store.settings import DatabaseSettings

FUZZ_PROFILE = "fuzz"
FUZZ_EXAMPLES = 10_000
REFUSED_DATABASE_URL = "postgresql://u:x@127.0.0.1:9/none"
"""A server nobody listens on: a command that gets as far as the database fails at once (exit 1), never starts
an embedded server."""

settings.register_profile(
    FUZZ_PROFILE,
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@dataclass(frozen=True)
class CliOutcome:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.splitlines()


InvokeCli = Callable[..., CliOutcome]


def run_main(*args: str, env: Mapping[str, str | None] | None = None) -> CliOutcome:
    """``triplegain ARGS`` in this process: exit code, stdout, stderr. No ``TRIPLEGAIN_CONFIG`` unless given."""
    structlog_config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    environment: dict[str, str | None] = {"TRIPLEGAIN_CONFIG": None, "COLUMNS": "200", **(env or {})}
    try:
        with CliRunner().isolation(env=environment) as (stdout, stderr, _):
            try:
                main(list(args))
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            return CliOutcome(code, stdout.getvalue().decode(), stderr.getvalue().decode())
    finally:
        structlog.configure(**structlog_config)
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def invoke_cli() -> InvokeCli:
    """``run_main`` as a fixture."""
    return run_main


PROXIED_CONFIG = DatabaseSettings(
    pool_min_size=1, pool_max_size=3, connect_timeout_seconds=2.0, command_timeout_seconds=2.0
)
"""Short timeouts, so a test's outage is noticed at once."""


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[PostgresProxy]:
    """A TCP proxy in front of the test server, that a test turns into an outage."""
    async with PostgresProxy.running(postgres_url) as proxy:
        yield proxy


@pytest.fixture
async def proxied_database(proxy: PostgresProxy, migrated_database_url: str) -> AsyncIterator[Database]:
    """The test's database, reached through the proxy."""
    async with open_database_at(proxy.url(migrated_database_url), PROXIED_CONFIG) as db:
        yield db
