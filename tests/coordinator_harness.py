"""A coordinator on a real database and bus, for tests that drive it directly (no schedule, no agents)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tests.unit.test_consensus import T0
from triplegain.agents.publishing import publish_output
from triplegain.bus import MessageBus
from triplegain.clock import FakeClock
from triplegain.config import Settings
from triplegain.coordinator.consensus import AgentView
from triplegain.coordinator.coordinator import Coordinator
from triplegain.coordinator.health import HealthMonitor
from triplegain.coordinator.resolver import ConflictResolver
from triplegain.coordinator.snapshot import load_snapshot
from triplegain.model import AccountSnapshot
from triplegain.store import Database
from triplegain.store.command_listener import CommandListener
from triplegain.system import decision_rules

ACCOUNT = "paper"
VIEWS_VALID_FOR = timedelta(hours=6)


def rich_account(now: datetime) -> AccountSnapshot:
    """An account so large that the caps never cut a test's trade."""
    return AccountSnapshot(equity=1_000_000.0, cash=1_000_000.0, now=now)


@dataclass
class Harness:
    coordinator: Coordinator
    bus: MessageBus
    clock: FakeClock
    monitor: HealthMonitor

    async def publish(self, *views: AgentView) -> None:
        for output in views:
            await publish_output(self.bus, output, ttl=VIEWS_VALID_FOR)


@asynccontextmanager
async def coordinator_harness(
    db: Database,
    *,
    resolver: ConflictResolver | None = None,
    clock: FakeClock | None = None,
    settings: Settings | None = None,
    **coordinator_options: Any,
) -> AsyncIterator[Harness]:
    """A started coordinator for ``ACCOUNT``, restored from what ``db`` holds, as a restarted daemon would be;
    ``coordinator_options`` go to ``Coordinator`` as they are."""
    settings = settings or Settings()
    clock = clock or FakeClock(T0)
    restored = await load_snapshot(db, ACCOUNT)
    async with MessageBus(settings.bus, clock=clock) as bus:
        monitor = HealthMonitor(
            settings.coordinator.degradation,
            clock=clock,
            state=restored.degradation if restored is not None else None,
        )
        coordinator = Coordinator(
            account=ACCOUNT,
            rules=decision_rules(settings),
            breaker_settings=settings.coordinator.breaker,
            bus=bus,
            db=db,
            clock=clock,
            resolver=resolver or ConflictResolver([]),
            monitor=monitor,
            listener=CommandListener(db, ACCOUNT),
            account_source=rich_account,
            restored=restored,
            **coordinator_options,
        )
        await coordinator.start(clock.now())
        try:
            yield Harness(coordinator, bus, clock, monitor)
        finally:
            await coordinator.aclose()
