"""A ``triplegain run --http 127.0.0.1:0`` process for the HTTP tests, on a database of its own.

    with web_daemon(postgres_url, template, tmp, ["--seed", "8"], token="t") as web:
        httpx.get(web.url + "/api/status", headers=web.headers)

The daemon listens on any free port and logs it (``http listening``); the test waits for that line, not a sleep.
The synthetic candles of seed 8 hold a conflict the offline provider resolves (an LLM call of a decision) near
the 108th candle of each symbol, and the first fills after the 130th.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import create_database, drop_database, unique_name
from tests.faults.daemon_process import DaemonProcess
from triplegain.store.database import url_with_database

TOKEN = "s3cret-http-token"
SEED = "8"


@dataclass
class WebDaemon:
    daemon: DaemonProcess
    url: str
    database_url: str
    env: dict[str, str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.env.get('TRIPLEGAIN_HTTP_TOKEN', '')}"}


def daemon_env(database_url: str, home: Path, candles: int, token: str | None = TOKEN) -> dict[str, str]:
    """The environment of a daemon on ``database_url`` replaying ``candles`` synthetic candles per symbol.

    Its requests still take turns but rest for none of the wall time (``http.max_loop_share`` 1): these tests ask
    one route after another, and what they check is the routes. The rests are checked in
    ``tests/unit/test_http_governor.py``, and the default share under a flood in ``test_load.py``."""
    env = {
        "TRIPLEGAIN_DATABASE_URL": database_url,
        "TRIPLEGAIN_HOME": str(home),
        "TRIPLEGAIN_MARKET__SYNTHETIC__COUNT": str(candles),
        "TRIPLEGAIN_HTTP__MAX_LOOP_SHARE": "1",
    }
    return env | ({"TRIPLEGAIN_HTTP_TOKEN": token} if token is not None else {})


@contextmanager
def fresh_database(postgres_url: str, template: str) -> Iterator[str]:
    name = unique_name("http")
    asyncio.run(create_database(postgres_url, name, template=template))
    try:
        yield url_with_database(postgres_url, name)
    finally:
        asyncio.run(drop_database(postgres_url, name))


@contextmanager
def web_daemon(database_url: str, env: dict[str, str], args: Sequence[str]) -> Iterator[WebDaemon]:
    """The daemon running ``args`` with ``--http 127.0.0.1:0``, until the block ends (SIGTERM, then reaped)."""
    daemon = DaemonProcess.start([*args, "--http", "127.0.0.1:0"], env=env)
    try:
        listening = daemon.wait_for(lambda event: event.get("event") == "http listening", within=60)
        yield WebDaemon(daemon, f"http://127.0.0.1:{listening['port']}", database_url, env)
    finally:
        if daemon.process.poll() is None:
            daemon.send(signal.SIGTERM)
        daemon.finish(within=60)
