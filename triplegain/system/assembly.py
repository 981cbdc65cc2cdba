"""The trading system assembled from settings: store, bus, agents, health, resolver, coordinator and schedule.

    async with trading_system(settings, db, clock=clock, symbols=[...], base_timeframe=Timeframe.M5,
                              account_source=broker.account, replaying=True) as system:
        await system.replay(candles)              # or LiveSchedule(settings.coordinator.schedule, system.runner, …)

At start it restores what the account's last run committed (state, degradation level with its hold timer,
breaker, the last run of every task, each agent's latest view with the regime agent's hysteresis) and the
coordinator applies the commands given meanwhile. Every LLM call
of the agents and the resolver goes through the batching writer (``llm_calls``) and is seen by the health
monitor; every agent view is stored (``agent_outputs``); dead letters are stored too. On exit the schedule stops
(runs in flight get ``shutdown_timeout_seconds``), the coordinator saves its snapshot, the bus drains and the
writer flushes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from triplegain.agents import AGENT_OFFLINE_RULES
from triplegain.agents.base import AgentOutput
from triplegain.agents.pipeline import AgentPipeline, Balances
from triplegain.agents.publishing import AGENT_TOPICS
from triplegain.agents.recording import output_from_record, record_agent_views
from triplegain.bus import MessageBus, Topic
from triplegain.clock import Clock, WallClock
from triplegain.config import Settings
from triplegain.coordinator.coordinator import AccountSource, Coordinator, Flatten, Holdings, OrderSink
from triplegain.coordinator.decision import DecisionRules
from triplegain.coordinator.degradation import LevelEffects, effects
from triplegain.coordinator.health import HealthMonitor, ObservingCallLog
from triplegain.coordinator.replay import ReplayProgress, replay_candles
from triplegain.coordinator.resolver import ConflictResolver, build_resolver_gateways
from triplegain.coordinator.runner import TaskKey, TaskRunner
from triplegain.coordinator.schedule import TaskName
from triplegain.coordinator.snapshot import load_snapshot
from triplegain.coordinator.tasks import scheduled_tasks
from triplegain.llm import LLMGateway, RecordedAnswers, SpendLedger, build_gateway
from triplegain.llm.masking import HistoryMask
from triplegain.market import Candle, Timeframe
from triplegain.model import AgentName
from triplegain.store import BatchWriter, Database, PostgresAgentOutputLog, PostgresCallLog, dead_letter_hook
from triplegain.store.agent_outputs import latest_agent_outputs
from triplegain.store.command_listener import CommandListener
from triplegain.store.coordinator_snapshot import TaskRunRow, load_task_runs
from triplegain.store.llm_calls import spent_on

CandleHook = Callable[[Candle], Awaitable[None]]
AgentsPlacement = Literal["local", "remote"]
"""Where the market's agents run: in this process, or in a ``triplegain agents`` service whose views arrive from
NATS (the portfolio agent, which reads the account's balances, always runs with its coordinator)."""

SHARED_AGENT_TASKS = frozenset({TaskName.TECHNICAL, TaskName.REGIME, TaskName.SENTIMENT})
"""The agents whose views are the same for every account: run once by ``triplegain agents`` for all of them."""
SHARED_AGENT_TOPICS = (Topic.TA_SIGNALS, Topic.REGIME_UPDATES, Topic.SENTIMENT_UPDATES)
"""Their topics, which an agents service publishes to NATS with ``market_data``."""


def decision_rules(settings: Settings) -> DecisionRules:
    """The settings a decision follows."""
    coordinator = settings.coordinator
    return DecisionRules(
        consensus=coordinator.consensus,
        conflicts=coordinator.conflicts,
        bounds=coordinator.resolution,
        intent=coordinator.intent,
        degradation=coordinator.degradation,
        risk=settings.risk,
        can_short=settings.execution.allow_borrowing,
        max_market_data_age_intervals=coordinator.max_market_data_age_intervals,
    )


@dataclass
class TradingSystem:
    """The assembled parts; ``ingest`` and ``replay`` feed it candles."""

    settings: Settings
    clock: Clock
    bus: MessageBus
    writer: BatchWriter
    pipeline: AgentPipeline
    monitor: HealthMonitor
    coordinator: Coordinator
    runner: TaskRunner
    ledger: SpendLedger
    gateways: tuple[LLMGateway, ...]
    """Every LLM gateway: the agents', then the resolver chain's."""
    answers: RecordedAnswers | None = None
    """The earlier run's LLM calls the gateways serve, with how many were served, missed and asked."""
    candle_hook: CandleHook | None = None

    def effects(self) -> LevelEffects:
        """What trading may do at the current degradation level."""
        return effects(self.monitor.level, self.settings.coordinator.degradation)

    async def ingest(self, candle: Candle) -> None:
        """Take a closed candle in: the agents' frames, the market's price, market-data freshness, the candle on
        ``market_data``, then the ``candle_hook`` (the broker's fills, before any task of this candle's time runs)."""
        await take_in(self.pipeline, self.monitor, self.bus, candle)
        if self.candle_hook is not None:
            await self.candle_hook(candle)

    async def replay(self, candles: AsyncIterable[Candle]) -> ReplayProgress:
        """Run the schedule at candle time over ``candles`` (the clock must be a ``FakeClock``)."""
        schedule = self.settings.coordinator.schedule
        return await replay_candles(schedule, self.runner, self.clock, self.ingest, self.bus.drain, candles)


async def take_in(pipeline: AgentPipeline, monitor: HealthMonitor, bus: MessageBus, candle: Candle) -> None:
    """A closed candle into the agents' frames, the monitor's market-data freshness and ``market_data``."""
    pipeline.ingest(candle)
    monitor.candle(candle.symbol, candle.close_time, candle.timeframe.duration)
    await bus.publish(bus.message(Topic.MARKET_DATA, candle, source="market", symbol=candle.symbol))


def with_schedule(settings: Settings, tasks: Iterable[TaskName]) -> Settings:
    """``settings`` whose schedule runs only ``tasks`` (``ScheduleSettings.restricted_to``)."""
    coordinator = settings.coordinator
    schedule = coordinator.schedule.restricted_to(tasks)
    return settings.model_copy(update={"coordinator": coordinator.model_copy(update={"schedule": schedule})})


def without_shared_agents(settings: Settings) -> Settings:
    """``settings`` for a coordinator whose technical, regime and sentiment agents run elsewhere: their tasks left
    out of the schedule and no LLM review asked of them here."""
    settings = with_schedule(settings, set(TaskName) - SHARED_AGENT_TASKS)
    agents = settings.agents
    unreviewed = {
        name: getattr(agents, name).model_copy(update={"llm_provider": None})
        for name in ("technical", "regime", "sentiment")
    }
    return settings.model_copy(update={"agents": agents.model_copy(update=unreviewed)})


@asynccontextmanager
async def trading_system(
    settings: Settings,
    db: Database,
    *,
    clock: Clock,
    symbols: Sequence[str],
    base_timeframe: Timeframe,
    account_source: AccountSource,
    replaying: bool,
    balances: Balances | None = None,
    order_sink: OrderSink | None = None,
    flatten: Flatten | None = None,
    holdings: Holdings | None = None,
    candle_hook: CandleHook | None = None,
    run_id: int | None = None,
    environ: Mapping[str, str] | None = None,
    wall: Clock | None = None,
    llm_run_limit_usd: float | None = None,
    answers: RecordedAnswers | None = None,
    mask_history: bool = False,
    agents: AgentsPlacement = "local",
) -> AsyncIterator[TradingSystem]:
    """Assemble, restore and start the system for ``settings.coordinator.account``; stop it on exit.

    ``agents`` ``remote``: the technical, regime and sentiment agents run in a ``triplegain agents`` service, so
    this system's schedule leaves their tasks out (the trade decision no longer waits for them), builds no LLM
    gateway for them and records only its own (portfolio) views; their views reach ``latest()`` from NATS.

    ``wall`` is the real clock (default ``WallClock``): LLM latency, the budgets' UTC day and the LLM breakers
    run on it, whatever ``clock`` says. The LLM spend ledger starts with what each provider cost today (summed
    from ``llm_calls``), shared by every gateway; ``llm_run_limit_usd`` caps the run's paid calls. ``answers``:
    an earlier run's LLM calls, served by every gateway instead of asking (``llm.recorded``). ``mask_history``:
    the prompts of the agents and the resolver show no symbol, date or price level (``llm.masking``).

    Raises ``MissingAPIKey`` when a configured provider's key is not set in ``environ`` (default: the process's).
    """
    if agents == "remote":
        settings = without_shared_agents(settings)
    account = settings.coordinator.account
    restored = await load_snapshot(db, account)
    task_runs = await load_task_runs(db, account)
    wall = wall if wall is not None else WallClock()
    today = wall.now().date()
    ledger = SpendLedger(today, await spent_on(db, today), run_limit_usd=llm_run_limit_usd)
    async with AsyncExitStack() as stack:
        writer = await stack.enter_async_context(BatchWriter(db, settings.database.writer, clock=clock))
        bus = await stack.enter_async_context(
            MessageBus(settings.bus, clock=clock, on_dead_letter=dead_letter_hook(writer))
        )
        monitor = HealthMonitor(
            settings.coordinator.degradation,
            clock=clock,
            state=restored.degradation if restored is not None else None,
            symbols=symbols,
            started_at=clock.now(),
            interval=base_timeframe.duration,
            # The count itself, not a stats() snapshot (about 30 µs): it is read at every refresh.
            writer_failures=lambda: writer.consecutive_failures,
        )
        shared = _SharedByGateways(clock, wall, ledger, answers)
        gateways = (
            _agent_gateways(settings, writer, monitor, shared, replaying, run_id, environ) if agents == "local" else {}
        )
        resolver_gateways = build_resolver_gateways(
            settings.coordinator.resolver,
            settings.llm,
            call_log=ObservingCallLog(PostgresCallLog(writer, serves="decision", run_id=run_id), monitor),
            clock=clock,
            replaying=replaying,
            environ=environ,
            ledger=ledger,
            wall=wall,
            answers=answers,
        )
        for gateway in (*gateways.values(), *resolver_gateways):
            stack.push_async_callback(gateway.aclose)
        mask = HistoryMask(symbols, enabled=mask_history)
        pipeline = AgentPipeline(
            settings.agents,
            bus=bus,
            clock=clock,
            base_timeframe=base_timeframe,
            indicators=settings.market.indicators,
            gateways=gateways,
            balances=balances,
            mask=mask,
        )
        stack.push_async_callback(pipeline.aclose)
        coordinator = Coordinator(
            account=account,
            rules=decision_rules(settings),
            breaker_settings=settings.coordinator.breaker,
            bus=bus,
            db=db,
            clock=clock,
            resolver=ConflictResolver(resolver_gateways, mask=mask),
            monitor=monitor,
            listener=CommandListener(db, account),
            account_source=account_source,
            restored=restored,
            order_sink=order_sink,
            flatten=flatten,
            holdings=holdings,
            run_id=run_id,
            snapshot_interval_seconds=settings.coordinator.snapshot_interval_seconds,
            max_unsaved_rows=settings.coordinator.max_unsaved_rows,
        )
        schedule = settings.coordinator.schedule
        runner = TaskRunner(
            schedule,
            scheduled_tasks(pipeline, coordinator, lambda: effects(monitor.level, settings.coordinator.degradation)),
            symbols,
            clock=clock,
            on_finished=coordinator.record_task_run,
            inline=replaying,
        )
        # Views are an account's only through their daemon run: without one, none are attributed to restore.
        views = [output_from_record(r) for r in await latest_agent_outputs(db, account)] if run_id is not None else None
        await pipeline.restore(views or ())
        runner.restore(restored_last_runs(task_runs.values(), views))
        recorded = AGENT_TOPICS.values() if agents == "local" else [Topic.PORTFOLIO_UPDATES]
        await record_agent_views(bus, PostgresAgentOutputLog(writer), run_id=run_id, topics=recorded)
        await stack.enter_async_context(coordinator)
        await stack.enter_async_context(runner)
        yield TradingSystem(
            settings=settings,
            clock=clock,
            bus=bus,
            writer=writer,
            pipeline=pipeline,
            monitor=monitor,
            coordinator=coordinator,
            runner=runner,
            ledger=ledger,
            gateways=(*gateways.values(), *resolver_gateways),
            answers=answers,
            candle_hook=candle_hook,
        )


def restored_last_runs(
    task_runs: Iterable[TaskRunRow], views: Iterable[AgentOutput[Any]] | None
) -> dict[TaskKey, datetime]:
    """The last run of each (task, symbol) a restarted schedule carries on from.

    An agent's task counts as run up to its latest stored view (``views``), whatever ``task_runs`` says: views go
    through the batching writer, so a crash can lose the newest ones after their runs were recorded, and those
    runs must be made again for the decisions after them to see the same views. ``views`` None: not known (no
    daemon run to attribute them to), so every task's last run is the stored one.
    """
    if views is None:
        return {(TaskName(run.task), run.symbol): run.started_at for run in task_runs}
    agent_tasks = {TaskName(agent.value) for agent in AgentName}
    last_runs: dict[TaskKey, datetime] = {
        (TaskName(run.task), run.symbol): run.started_at for run in task_runs if TaskName(run.task) not in agent_tasks
    }
    last_runs.update({(TaskName(view.agent.value), view.symbol): view.timestamp for view in views})
    return last_runs


@dataclass(frozen=True)
class _SharedByGateways:
    """What every gateway shares: the system's clock, the wall clock, the spend ledger and an earlier run's
    answers to serve."""

    clock: Clock
    wall: Clock
    ledger: SpendLedger
    answers: RecordedAnswers | None


def _agent_gateways(
    settings: Settings,
    writer: BatchWriter,
    monitor: HealthMonitor,
    shared: _SharedByGateways,
    replaying: bool,
    run_id: int | None,
    environ: Mapping[str, str] | None,
) -> dict[str, LLMGateway]:
    """A gateway for each provider an agent's settings name."""
    agents = settings.agents
    names = {
        name for name in (agents.technical.llm_provider, agents.regime.llm_provider, agents.sentiment.llm_provider)
    }
    call_log = ObservingCallLog(PostgresCallLog(writer, serves="agent_output", run_id=run_id), monitor)
    return {
        name: build_gateway(
            name,
            settings.llm,
            call_log=call_log,
            clock=shared.clock,
            replaying=replaying,
            offline_rules=AGENT_OFFLINE_RULES,
            environ=environ,
            ledger=shared.ledger,
            wall=shared.wall,
            answers=shared.answers,
        )
        for name in sorted(name for name in names if name is not None)
    }
