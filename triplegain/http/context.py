"""What every route of the HTTP surface reads: the database, the daemon's live status and its command hook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from triplegain.clock import Clock, WallClock
from triplegain.coordinator.controls import ApplyCommands
from triplegain.http.live import LiveSource, LiveStatus
from triplegain.http.settings import HttpSettings
from triplegain.store.database import Database


@dataclass
class HttpContext:
    settings: HttpSettings
    db: Database
    account: str
    live: LiveSource
    apply: ApplyCommands | None
    """The daemon's ``Coordinator.apply_commands``: a command sent over HTTP is applied at once."""
    results_inputs: dict[str, Any]
    """What the results need of the broker's settings (``review.cli.results_inputs``)."""
    token: str | None
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the server stops: live streams end."""
    clock: Clock = field(default_factory=WallClock)
    _reads: asyncio.Semaphore | None = None
    _status: tuple[float, LiveStatus] | None = None

    def status(self) -> LiveStatus:
        """The daemon's status, taken at most ``settings.status_max_age_seconds`` ago (many clients asking at once
        share one snapshot)."""
        now = self.clock.monotonic()
        if self._status is None or now - self._status[0] > self.settings.status_max_age_seconds:
            self._status = (now, self.live())
        return self._status[1]

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Database]:
        """The database, for at most ``settings.max_database_reads`` requests at once: the others wait here, so
        HTTP clients never hold more of the pool than that and trading always finds a connection."""
        if self._reads is None:
            self._reads = asyncio.Semaphore(self.settings.max_database_reads)
        async with self._reads:
            yield self.db
