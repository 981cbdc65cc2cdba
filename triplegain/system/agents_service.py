"""The agents as a service for every account: the market's agents (technical, regime, sentiment) on their own.

    async with agents_service(settings, db, clock=clock, symbols=[...], base_timeframe=Timeframe.M5,
                              replaying=True) as service:
        await service.replay(candles)         # or run_live(service, feed, stop)

Candles go into the agents' frames and on ``market_data``; the three agents run on the schedule (their tasks
only) and publish their views, each stored in ``agent_outputs`` with its LLM calls in ``llm_calls`` (under no
daemon run: they belong to no account), for a bridge to forward to NATS. Every LLM review is made once, here,
whatever the number of coordinators that read the views. Its health monitor steps the degradation level before
each agent's run (LLM failures reduce to the baselines, as in the daemon); it has no account, broker or
decision.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import structlog

from triplegain.agents.pipeline import AgentPipeline
from triplegain.agents.recording import record_agent_views
from triplegain.bus import MessageBus
from triplegain.clock import Clock, WallClock
from triplegain.config import Settings
from triplegain.coordinator.degradation import LevelEffects, effects
from triplegain.coordinator.health import HealthMonitor
from triplegain.coordinator.replay import ReplayProgress, replay_candles
from triplegain.coordinator.runner import TaskRunner
from triplegain.coordinator.tasks import agent_tasks
from triplegain.llm import LLMGateway, RecordedAnswers, SpendLedger
from triplegain.llm.masking import HistoryMask
from triplegain.market import Candle, Timeframe
from triplegain.store import BatchWriter, Database, PostgresAgentOutputLog, dead_letter_hook
from triplegain.store.llm_calls import spent_on
from triplegain.system.assembly import (
    SHARED_AGENT_TASKS,
    SHARED_AGENT_TOPICS,
    _agent_gateways,
    _SharedByGateways,
    take_in,
    with_schedule,
)

logger = structlog.get_logger(__name__)


@dataclass
class AgentsService:
    """The assembled parts; ``ingest`` and ``replay`` feed it candles as ``TradingSystem``'s do."""

    settings: Settings
    clock: Clock
    bus: MessageBus
    writer: BatchWriter
    pipeline: AgentPipeline
    monitor: HealthMonitor
    runner: TaskRunner
    ledger: SpendLedger
    gateways: tuple[LLMGateway, ...]
    before_close: Callable[[], Awaitable[None]] | None = None
    """Awaited before the first candle of each new close time is taken in (a replay publishing to NATS: the bus
    drained, so every view of a time is in the bridge's outbox, which is sent in order, before the next time's
    candles)."""
    candles: int = 0
    _last_close: datetime | None = None

    async def ingest(self, candle: Candle) -> None:
        if self.before_close is not None and self._last_close is not None and candle.close_time > self._last_close:
            await self.before_close()
        if self._last_close is None or candle.close_time > self._last_close:
            self._last_close = candle.close_time
        await take_in(self.pipeline, self.monitor, self.bus, candle)
        self.candles += 1

    async def replay(self, candles: AsyncIterable[Candle]) -> ReplayProgress:
        """Run the agents' schedule at candle time over ``candles`` (the clock must be a ``FakeClock``)."""
        schedule = self.settings.coordinator.schedule
        return await replay_candles(schedule, self.runner, self.clock, self.ingest, self.bus.drain, candles)


@asynccontextmanager
async def agents_service(
    settings: Settings,
    db: Database,
    *,
    clock: Clock,
    symbols: Sequence[str],
    base_timeframe: Timeframe,
    replaying: bool,
    environ: Mapping[str, str] | None = None,
    wall: Clock | None = None,
    llm_run_limit_usd: float | None = None,
    answers: RecordedAnswers | None = None,
    mask_history: bool = False,
) -> AsyncIterator[AgentsService]:
    """Assemble and start the market's agents for ``symbols``; stop them on exit (the writer flushes)."""
    settings = with_schedule(settings, SHARED_AGENT_TASKS)
    wall = wall if wall is not None else WallClock()
    today = wall.now().date()
    ledger = SpendLedger(today, await spent_on(db, today), run_limit_usd=llm_run_limit_usd)
    degradation = settings.coordinator.degradation
    async with AsyncExitStack() as stack:
        writer = await stack.enter_async_context(BatchWriter(db, settings.database.writer, clock=clock))
        bus = await stack.enter_async_context(
            MessageBus(settings.bus, clock=clock, on_dead_letter=dead_letter_hook(writer))
        )
        monitor = HealthMonitor(
            degradation,
            clock=clock,
            symbols=symbols,
            started_at=clock.now(),
            interval=base_timeframe.duration,
            writer_failures=lambda: writer.consecutive_failures,
        )
        gateways = _agent_gateways(
            settings, writer, monitor, _SharedByGateways(clock, wall, ledger, answers), replaying, None, environ
        )
        for gateway in gateways.values():
            stack.push_async_callback(gateway.aclose)
        pipeline = AgentPipeline(
            settings.agents,
            bus=bus,
            clock=clock,
            base_timeframe=base_timeframe,
            indicators=settings.market.indicators,
            gateways=gateways,
            mask=HistoryMask(symbols, enabled=mask_history),
        )
        stack.push_async_callback(pipeline.aclose)

        def stepped_effects() -> LevelEffects:
            transition = monitor.refresh(clock.now())
            if transition is not None:
                logger.warning(
                    "degradation level changed",
                    from_level=transition.from_level.value,
                    to_level=transition.to_level.value,
                    causes=[cause.describe() for cause in transition.causes],
                )
            return effects(monitor.level, degradation)

        runner = TaskRunner(
            settings.coordinator.schedule,
            agent_tasks(pipeline, stepped_effects),
            symbols,
            clock=clock,
            inline=replaying,
        )
        await record_agent_views(bus, PostgresAgentOutputLog(writer), topics=SHARED_AGENT_TOPICS)
        await stack.enter_async_context(runner)
        yield AgentsService(
            settings=settings,
            clock=clock,
            bus=bus,
            writer=writer,
            pipeline=pipeline,
            monitor=monitor,
            runner=runner,
            ledger=ledger,
            gateways=tuple(gateways.values()),
        )
