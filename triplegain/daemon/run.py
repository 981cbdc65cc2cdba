"""``triplegain run``: the paper-trading daemon.

    exit_code = asyncio.run(run_daemon(settings, RunOptions(source="replay", replay_files=[...]), environ))

In order: the feed is opened; what the run may ask of LLM providers is settled (``daemon.llm_plan``: providers
without an API key give way to the offline provider, said once; a replay that may call a paid provider without
``--max-llm-usd`` or ``--answers-from`` is refused; the bound of its cost is printed); the database is opened
(embedded unless ``TRIPLEGAIN_DATABASE_URL``) and migrated (an earlier run's LLM calls are read from it for
``--answers-from``); the account's coordinator lock is taken (a second daemon on the account stops here with a
clear message); a ``daemon_runs`` row is written; the paper broker restores the account; the trading system
(``triplegain.system``) restores the coordinator; then candles flow:

- replay and synthetic: a simulated clock at candle time (``TradingSystem.replay``), paced by ``--speed`` in wall
  time or as fast as possible; the run ends with the replay and prints a summary;
- ccxt: the wall clock, APScheduler's schedule (``coordinator.live``), candles taken in as the exchange closes
  them, until a signal.

While candles flow the daemon answers on its control socket (``daemon.control_socket``) and, with ``--http``
(``http.enabled``), serves its REST API, dashboard, ``/healthz`` and ``/metrics`` (``daemon.http_view``).

Every candle first reports the feed's new errors (rejected candles, failed requests) to the degradation monitor,
then reaches the broker (fills of the orders placed at the previous tick, stops and targets), whose
closed trades and equity go to the breaker, before any task of that candle's time runs. SIGINT or SIGTERM stops
taking candles, gives running tasks ``coordinator.schedule.shutdown_timeout_seconds``, flushes every write,
records the exit and stops the embedded server: exit 0. A second signal cancels what is left at once; what was
acknowledged (orders, fills, decisions: awaited writes) is already committed.

The database out of reach stops nothing at first: writes are held in memory and retried, the level rises to
EMERGENCY (no new exposure) and the status line shows the outage (``daemon.outage``). When a bound on the rows
held is passed, the daemon stops like a clean stop and ``run_daemon`` raises ``DatabaseOutageStop`` (exit code
75), as it does when a run ends with rows the database never took.

With ``alerts.webhooks`` set, the run's alerts (``triplegain.alerts``) go to them without holding anything up: the
coordinator's from the bus, an outage's start and end from the store watch, and the stop once the run's row records
its reason; the stop gives alerts still being sent ``alerts.stop_grace_seconds`` (none after a second signal).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import structlog

from triplegain.alerts.dispatcher import AlertDispatcher, alert_dispatcher
from triplegain.bus import Topic
from triplegain.clock import Clock, FakeClock, WallClock
from triplegain.config import Settings, settings_digest
from triplegain.coordinator.health import HealthMonitor
from triplegain.coordinator.live import LiveSchedule
from triplegain.coordinator.runner import TaskRunner
from triplegain.daemon.continuity import check_continuity
from triplegain.daemon.control_socket import serving_control
from triplegain.daemon.http_view import load_http, serving_http
from triplegain.daemon.llm_plan import LLMPlan, estimate_spend, plan_llm
from triplegain.daemon.outage import Bound, DatabaseOutageStop, StoreWatch
from triplegain.daemon.status import StatusBoard
from triplegain.daemon.summary import RunSummary, summarize
from triplegain.errors import DatabaseError, TriplegainError, UserError
from triplegain.execution import PaperBroker
from triplegain.execution.broker import UnstoredCandlesFull
from triplegain.llm import OnMissing, RecordedAnswers
from triplegain.market import Candle, SyntheticFeed, Timeframe
from triplegain.market.feeds import Feed, FeedStats, MarketDataError
from triplegain.market.feeds.monitor import FeedMonitor
from triplegain.market.feeds.replay import CandleFile, ReplayFeed, check_files
from triplegain.market.settings import ReplayFile, SyntheticSettings
from triplegain.model import DaemonStopped
from triplegain.paths import home_dir
from triplegain.store import Database, RowsNotWritten, migrate, open_database
from triplegain.store.execution import stored_marks
from triplegain.store.llm_calls import run_llm_calls
from triplegain.store.runs import AccountLock, DaemonAlreadyRunning, account_lock, end_run, start_run
from triplegain.system import TradingSystem, trading_system
from triplegain.system.assembly import AgentsPlacement

if TYPE_CHECKING:
    from triplegain.daemon.remote import RemoteMarket

logger = structlog.get_logger(__name__)

Source = Literal["ccxt", "replay", "synthetic"]


@dataclass(frozen=True)
class RunOptions:
    """What ``triplegain run`` was asked for on the command line."""

    source: Source
    replay_files: tuple[Path, ...] = ()
    speed: float | None = None
    """Replay speed relative to candle time; None: as fast as possible."""
    seed: int | None = None
    status_interval_seconds: float = 2.0
    answers_from: int | None = None
    """Serve every LLM answer from this run's stored calls instead of asking (``llm.recorded``)."""
    on_missing: OnMissing = "conservative"
    """With ``answers_from``: what a question that run never asked gets."""
    max_llm_usd: float | None = None
    """The run budget: once the run's paid LLM calls cost this much, paid calls stop for the rest of it."""
    agents: AgentsPlacement = "local"
    """``remote``: candles and the shared agents' views come from NATS (``daemon.remote``), not a feed of its own."""
    standby: bool = False
    """Wait for the account's lock instead of stopping when another daemon holds it (a hot standby)."""

    @property
    def replaying(self) -> bool:
        """Candles at candle time (a replay or synthetic candles), not live."""
        return self.source != "ccxt"


@dataclass
class StopRequest:
    """Signals received: the first asks for a clean stop, the second for an immediate one."""

    requested: asyncio.Event = field(default_factory=asyncio.Event)
    signals: int = 0
    reason: str = ""
    waiting_for_lock: bool = False
    """A standby waiting for the account's lock: the first signal ends the wait at once."""


class StoppedBeforeTrading(TriplegainError):
    """A signal stopped the daemon before it traded: a standby waiting for its account, or a remote coordinator
    waiting for the stream's first candle (exit 0)."""

    exit_code = 0


async def run_daemon(
    settings: Settings, options: RunOptions, environ: Mapping[str, str], board: StatusBoard
) -> RunSummary:
    """Run until the replay ends or a signal arrives; the summary of the run."""
    load_http(settings)
    # The feed first: a bad candle file is the only line printed, not the second after a note about keys.
    remote = None
    if options.agents == "remote":
        from triplegain.daemon.remote import remote_market  # imports nats-py: only for this role

        remote = remote_market(settings, options.source, options.replay_files)
        opened = OpenedFeed(_NO_FEED, WallClock(), remote.symbols, remote.timeframe, None, None)
    else:
        opened = await open_feed(settings, options)
    stop = StopRequest()
    main = asyncio.current_task()
    install_signal_handlers(stop, main)
    outage: DatabaseOutageStop | None = None
    finished: RunSummary | None = None
    try:
        check_quoted(settings, opened.symbols)
        plan = None if options.answers_from is not None else plan_for(settings, options, environ, None)
        async with open_database(settings.database) as db:
            await migrate(db)
            answers = await _recorded_answers(db, options)
            if plan is None:
                plan = plan_for(settings, options, environ, answers)
            settings = plan.settings
            _say_plan(plan, options, opened, board)
            account = settings.coordinator.account

            def standing_by(holder: str) -> None:
                stop.waiting_for_lock = True
                logger.info("standby waiting for the account's lock", account=account, holder=holder.strip())
                board.say(f"standby: account {account!r} is held by another daemon{holder}; waiting to take over")

            try:
                async with account_lock(db, account, standby=standing_by if options.standby else None) as lock:
                    stop.waiting_for_lock = False
                    if options.standby:
                        logger.info("standby took the account over", account=account)
                        board.say(f"standby: took account {account!r} over")
                    if remote is not None:
                        opened = await _open_remote(settings, remote, account, environ, stop)
                    if opened.first is not None and remote is None:
                        marks = await stored_marks(db, account)
                        carrying_on = await check_continuity(
                            account, marks, opened.first, lambda: _candles_again(settings, options)
                        )
                        if carrying_on is not None:
                            board.say(carrying_on)
                    wall = WallClock()
                    run_id = await start_run(db, account, settings_digest(settings), wall.now())
                    board.say(f"run {run_id} on account {account!r}, database {db.server}, source {options.source}")
                    reason = "error"
                    alerts = alert_dispatcher(settings.alerts, db, account=account, run_id=run_id)
                    try:
                        summary = await _trade(
                            plan, options, db, lock, run_id, opened, stop, board, answers, environ, alerts
                        )
                        if stop.signals > 1:  # the cancellation landed where a clean stop was already finishing
                            raise asyncio.CancelledError
                        reason = stop.reason or ("replay finished" if options.source != "ccxt" else "stopped")
                        finished = summary.model_copy(update={"exit_reason": reason})
                        return finished
                    except DatabaseOutageStop as error:
                        outage, reason = error, "database outage"
                    except asyncio.CancelledError:
                        reason = stop.reason or "cancelled"
                        raise
                    finally:
                        with suppress(Exception):
                            await end_run(db, run_id, wall.now(), reason)
                        alerts.notify(DaemonStopped(account=account, run_id=run_id, reason=reason, at=wall.now()))
                        await alerts.aclose(grace_seconds=0.0 if stop.signals > 1 else None)
            except asyncio.CancelledError:
                if stop.waiting_for_lock:
                    raise StoppedBeforeTrading(
                        f"standby stopped ({stop.reason}) before it took account {account!r} over"
                    ) from None
                raise
    except DatabaseError as error:
        if outage is None and finished is None:
            raise
        # After an outage releasing the lock fails: it went with its connection (and with the database, if gone).
        logger.warning("closing the database failed after the run", error=str(error))
        if finished is not None:
            return finished
    finally:
        remove_signal_handlers()
        await opened.feed.aclose()
    assert outage is not None  # every other way out returns or raises
    raise outage


async def _trade(
    plan: LLMPlan,
    options: RunOptions,
    db: Database,
    lock: AccountLock,
    run_id: int,
    opened: OpenedFeed,
    stop: StopRequest,
    board: StatusBoard,
    answers: RecordedAnswers | None,
    environ: Mapping[str, str],
    alerts: AlertDispatcher,
) -> RunSummary:
    settings = plan.settings
    account = settings.coordinator.account
    feed, clock = opened.feed, opened.clock
    replaying = options.replaying
    broker = PaperBroker(
        settings.execution,
        db,
        account=account,
        clock=clock,
        quiet_candles_per_write=settings.execution.replay_quiet_candles_per_write if replaying else 1,
    )
    await broker.start()
    wall = WallClock()
    started = wall.monotonic()
    async with (
        _outage_tolerant(),
        trading_system(
            settings,
            db,
            clock=clock,
            symbols=opened.symbols,
            base_timeframe=opened.timeframe,
            account_source=broker.account,
            replaying=replaying,
            balances=broker.balances,
            order_sink=broker,
            flatten=broker.flatten,
            holdings=lambda symbol: max(0.0, broker.balances().get(symbol.partition("/")[0], 0.0)),
            run_id=run_id,
            environ=environ,
            llm_run_limit_usd=options.max_llm_usd,
            answers=answers,
            mask_history=plan.mask_history,
            agents=options.agents,
        ) as system,
    ):
        broker.on_write = system.monitor.db_write
        watch = StoreWatch(
            system.writer,
            broker,
            system.coordinator,
            wall,
            writer_bound=settings.database.writer.max_buffered_rows,
            coordinator_bound=settings.coordinator.max_unsaved_rows,
            on_outage=alerts.notify,
        )
        await alerts.follow(system.bus)
        tracker = await board.track(system, broker, opened.total)
        tracker.database = watch.status
        feed_errors = FeedErrors(feed, system.monitor)
        lock_lost: list[DaemonAlreadyRunning] = []

        def stop_for(bound: Bound | None) -> None:
            if bound is not None and not stop.requested.is_set():
                stop.reason = "database outage"
                logger.error(watch.stop_line())
                board.say(watch.stop_line())
                stop.requested.set()

        async def on_candle(candle: Candle) -> None:
            feed_errors.report(candle.close_time)
            try:
                update = await broker.on_candle(candle)
            except UnstoredCandlesFull as full:
                stop_for(watch.full(Bound("execution.max_unstored_candles", full.bound)))
                return
            for fill in update.fills:
                filled = system.bus.message(Topic.EXECUTION_EVENTS, fill, source="broker", symbol=fill.symbol)
                await system.bus.publish(filled)
            for trade in update.closed_trades:
                await system.coordinator.on_trade_closed(trade.pnl, trade.closed_at)
            await system.coordinator.on_equity(update.equity, candle.close_time)
            tracker.equity(update.equity)
            stop_for(watch.observe())
            if not watch.failing():
                await keep_the_lock()

        async def keep_the_lock() -> None:
            """After an outage the lock may have gone with its connection: take it again, or stop."""
            try:
                await lock.reassert()
            except DaemonAlreadyRunning as error:
                if not lock_lost:
                    lock_lost.append(error)
                    board.say(str(error))
                    stop.reason = "coordinator lock lost"
                    stop.requested.set()

        system.candle_hook = on_candle
        watcher = asyncio.create_task(_watch_bounds(system, watch, stop_for))
        outages: asyncio.Task[None] | None = None
        if options.agents == "remote":
            from triplegain.daemon.remote import RemoteFeed, report_outages

            remote = feed.inner if isinstance(feed, _Prepended) else feed
            assert isinstance(remote, RemoteFeed)
            remote.bind(system.bus)
            if options.source == "ccxt":
                outages = asyncio.create_task(report_outages(remote, feed_errors, system.clock))
        try:
            async with (
                serving_control(db, account, system.coordinator, home_dir(), environ),
                serving_http(db, tracker, watch, board, environ),
                board.showing(tracker, options.status_interval_seconds),
            ):
                if options.source == "ccxt":
                    await run_live(system, feed, stop, feed_errors)
                else:
                    never_waits = options.agents == "local" and _replay_speed(settings, options) is None
                    await system.replay(until_stopped(feed, stop, never_waits=never_waits))
            await system.bus.drain()
        finally:
            for task in (watcher, outages):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
    if lock_lost:
        raise lock_lost[0]
    with suppress(DatabaseError):
        await broker.flush()
    left = watch.held()
    if watch.passed is not None or left:
        watch.observe()
        raise watch.exit_error(left)
    return await summarize(db, run_id, tracker, wall.monotonic() - started, broker.equity())


@asynccontextmanager
async def _outage_tolerant() -> AsyncIterator[None]:
    """Let the trading system's exit fail to write (the writer's ``RowsNotWritten`` when the database is still
    gone): the daemon counts what is left and reports it instead."""
    try:
        yield
    except RowsNotWritten as error:
        if error.__context__ is not None:  # it came on top of another way out (a cancellation): that one goes on
            raise
        logger.error("rows not written at exit", rows=error.rows, error=str(error))


async def _watch_bounds(system: TradingSystem, watch: StoreWatch, stop_for: Callable[[Bound | None], None]) -> None:
    """Stop as soon as the writer or the coordinator passes its bound, also between candles (live)."""
    waits = [
        asyncio.ensure_future(system.writer.overflowed.wait()),
        asyncio.ensure_future(system.coordinator.overflowed.wait()),
    ]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    stop_for(watch.observe())


def plan_for(
    settings: Settings, options: RunOptions, environ: Mapping[str, str], answers: RecordedAnswers | None
) -> LLMPlan:
    return plan_llm(
        settings, replaying=options.replaying, environ=environ, max_llm_usd=options.max_llm_usd, answers=answers
    )


async def _recorded_answers(db: Database, options: RunOptions) -> RecordedAnswers | None:
    """The LLM calls of ``--answers-from`` RUN; a ``UserError`` when there is no such run."""
    if options.answers_from is None:
        return None
    records = await run_llm_calls(db, options.answers_from)
    if records is None:
        raise UserError(f"--answers-from {options.answers_from}: no such run (triplegain decisions list shows runs)")
    return RecordedAnswers(options.answers_from, records, on_missing=options.on_missing)


def _say_plan(plan: LLMPlan, options: RunOptions, opened: OpenedFeed, board: StatusBoard) -> None:
    """The keys' note, and before a replay that may call a paid provider, the bound of what it may cost."""
    for message in plan.messages:
        board.say(message)
    if plan.paid and opened.candles is not None:
        board.say(estimate_spend(plan.settings, opened.candles, opened.timeframe).line(options.max_llm_usd))


def check_quoted(settings: Settings, symbols: list[str]) -> None:
    """Every symbol must be quoted in the asset the paper account and the portfolio agent count in: the broker
    could not buy ETH/BTC with USDT, and the portfolio agent would fail at every run."""
    accounts = {settings.execution.quote_asset, settings.agents.portfolio.quote_asset}
    for symbol in symbols:
        quote = symbol.partition("/")[2]
        if {quote} != accounts:
            raise UserError(
                f"{symbol} is quoted in {quote}, but execution.quote_asset is {settings.execution.quote_asset} and "
                f"agents.portfolio.quote_asset is {settings.agents.portfolio.quote_asset}: set both to {quote} "
                f"(with execution.starting_balances in {quote}), or trade symbols quoted in one asset"
            )


class FeedErrors:
    """Hands the feed's new rejected candles and failed requests to the degradation monitor, one event each."""

    def __init__(self, feed: Feed, monitor: HealthMonitor) -> None:
        self._feed = feed
        self._monitor = monitor
        self._seen = 0

    def report(self, at: datetime) -> int:
        """Report what went wrong since the last call, dated ``at``; how many errors were new."""
        stats = self._feed.stats()
        total = stats.rejected + stats.failed_requests
        new, self._seen = total - self._seen, total
        for _ in range(new):
            self._monitor.market_data_error(at)
        return new


class Scheduled(Protocol):
    """What the live schedule drives: a trading system, or the agents service."""

    @property
    def settings(self) -> Settings: ...

    @property
    def runner(self) -> TaskRunner: ...

    @property
    def clock(self) -> Clock: ...

    async def ingest(self, candle: Candle) -> None: ...


async def run_live(system: Scheduled, feed: Feed, stop: StopRequest, feed_errors: FeedErrors | None = None) -> None:
    """Take the feed's candles in while APScheduler runs the schedule, until the feed ends or a stop.

    An exchange that keeps failing (``MarketDataError``, once the feed's own retries ran out) stops nothing: its
    failed requests go to the degradation monitor at once (``feed_errors``) and the feed is asked again, while
    the schedule runs on and the missing candles show as stale market data.
    """
    live = LiveSchedule(
        system.settings.coordinator.schedule, system.runner, clock=system.clock, started_at=system.clock.now()
    )
    live.start()
    try:
        while True:
            try:
                async for candle in until_stopped(feed, stop):
                    await system.ingest(candle)
                return
            except MarketDataError as error:
                logger.warning("no candles from the exchange; asking again", error=str(error))
                if feed_errors is not None:
                    feed_errors.report(system.clock.now())
    finally:
        if feed_errors is not None:  # the failures of retries a stop interrupted: counted too
            feed_errors.report(system.clock.now())
        await live.aclose()


async def until_stopped(feed: Feed, stop: StopRequest, *, never_waits: bool = False) -> AsyncIterator[Candle]:
    """The feed's candles until it ends or a stop is requested (a candle already taken in is finished).

    ``never_waits``: the feed only yields to the loop between candles (a replay from memory at full speed), so its
    next candle is awaited here directly and the stop checked between candles; otherwise each wait for a candle
    is a task raced against the stop, which in a full-speed replay cost a task and two turns of the loop a candle.
    """
    if never_waits:
        async for candle in feed:
            if stop.requested.is_set():
                return
            yield candle
            if stop.requested.is_set():
                return
        return
    next_candle = asyncio.ensure_future(anext(feed))
    stopping = asyncio.ensure_future(stop.requested.wait())
    try:
        while True:
            done, _ = await asyncio.wait({next_candle, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                return
            try:
                candle = next_candle.result()
            except StopAsyncIteration:
                return
            yield candle
            if stop.requested.is_set():
                return
            next_candle = asyncio.ensure_future(anext(feed))
    finally:
        for pending in (next_candle, stopping):
            pending.cancel()
        # gather, not suppress: a cancellation of this task itself (a second signal) must go on.
        await asyncio.gather(next_candle, stopping, return_exceptions=True)


@dataclass(frozen=True)
class OpenedFeed:
    """The feed a run takes its candles from, and what the run needs to know of it before the first one."""

    feed: Feed
    clock: Clock
    """The clock the system runs on: simulated at the first candle's open time in a replay, the wall clock live."""
    symbols: list[str]
    timeframe: Timeframe
    first: Candle | None
    """The first candle (already read, and put back in front of the feed); None live."""
    candles: dict[str, int] | None
    """How many candles the replay holds per symbol (rows of the files, synthetic candles); None live or unbounded."""

    @property
    def total(self) -> int | None:
        """Candles in the whole replay; None live or unbounded."""
        return sum(self.candles.values()) if self.candles is not None else None


async def open_feed(settings: Settings, options: RunOptions) -> OpenedFeed:
    """The feed, checked whole before anything starts (every row of a candle file), and its first candle."""
    wall = WallClock()
    if options.source == "ccxt":
        from triplegain.market.feeds.ccxt_feed import CcxtFeed  # ccxt takes a second to import: only here

        live = settings.market.ccxt
        return OpenedFeed(CcxtFeed(live, clock=wall), wall, list(live.symbols), live.timeframe, None, None)
    candles = _replay_candles(settings, options)
    feed, symbols, timeframe = _replay_feed(settings, options, wall)
    first = await anext(feed, None)
    if first is None:
        raise UserError(f"run: the {options.source} source has no candles")
    return OpenedFeed(_Prepended(first, feed), FakeClock(first.open_time), symbols, timeframe, first, candles)


def _replay_candles(settings: Settings, options: RunOptions) -> dict[str, int] | None:
    """Candles per symbol in the replay: every row of the candle files, read whole now (``ReplayFileError`` for a
    file that cannot be replayed); for synthetic candles, as many as the settings make (None: no end)."""
    if options.source == "replay":
        return check_files(_candle_files(settings, options))
    synthetic = _synthetic_settings(settings, options)
    per_symbol = synthetic.count
    if synthetic.end is not None:
        until_end = -(-(synthetic.end - synthetic.start) // synthetic.timeframe.duration)
        per_symbol = until_end if per_symbol is None else min(per_symbol, until_end)
    return None if per_symbol is None else dict.fromkeys(sorted(synthetic.symbols), per_symbol)


def _replay_feed(
    settings: Settings, options: RunOptions, wall: Clock, *, paced: bool = True
) -> tuple[Feed, list[str], Timeframe]:
    """A replay or synthetic feed from its first candle, paced as asked (``paced``) or as fast as possible; its
    symbols and timeframe."""
    if options.source == "replay":
        files = _candle_files(settings, options)
        feed: Feed = ReplayFeed(files, clock=wall, speed=_replay_speed(settings, options) if paced else None)
        return feed, sorted({candle_file.symbol for candle_file in files}), files[0].timeframe
    synthetic = _synthetic_settings(settings, options)
    if not paced:
        synthetic = synthetic.model_copy(update={"speed": None})
    return SyntheticFeed(synthetic, clock=wall), sorted(synthetic.symbols), synthetic.timeframe


def _replay_speed(settings: Settings, options: RunOptions) -> float | None:
    """The pace of a replay or of synthetic candles, relative to candle time; None: as fast as possible."""
    if options.source == "replay":
        return options.speed if options.replay_files else settings.market.replay.speed
    return _synthetic_settings(settings, options).speed


def _candle_files(settings: Settings, options: RunOptions) -> list[CandleFile]:
    entries = [ReplayFile(path=path) for path in options.replay_files] or list(settings.market.replay.files)
    if not entries:
        raise UserError("run --replay: give at least one candle file (or market.replay.files in the config)")
    files = [CandleFile.from_settings(entry) for entry in entries]
    timeframes = {candle_file.timeframe for candle_file in files}
    if len(timeframes) != 1:
        listed = ", ".join(f"{f.path.name} ({f.timeframe.value})" for f in files)
        raise UserError(f"run --replay: all files must have one timeframe, got {listed}")
    return files


def _synthetic_settings(settings: Settings, options: RunOptions) -> SyntheticSettings:
    update: dict[str, object] = {"speed": options.speed}
    if options.seed is not None:
        update["seed"] = options.seed
    return settings.market.synthetic.model_copy(update=update)


class _NoFeed:
    """The feed of a remote coordinator before it opened its stream (after taking the account's lock)."""

    def __aiter__(self) -> _NoFeed:
        return self

    async def __anext__(self) -> Candle:
        raise StopAsyncIteration

    def stats(self) -> FeedStats:
        return FeedMonitor(feed="none").snapshot()

    async def aclose(self) -> None:
        pass


_NO_FEED = _NoFeed()


async def _open_remote(
    settings: Settings, market: RemoteMarket, account: str, environ: Mapping[str, str], stop: StopRequest
) -> OpenedFeed:
    """The stream as this run's feed: connected, and following candle time from its first candle (waited for)
    or the wall clock (``daemon.remote``)."""
    from triplegain.daemon.remote import RemoteFeed, first_candle, remote_clock

    feed = await RemoteFeed.open(settings, market, account=account, environ=environ)
    first = None
    if market.candle_time:
        first = await first_candle(feed, stop.requested)
        if first is None:
            await feed.aclose()
            raise StoppedBeforeTrading(f"stopped ({stop.reason}) before the first candle arrived from NATS")
    clock = remote_clock(market, first)
    candles = feed if first is None else _Prepended(first, feed)
    return OpenedFeed(candles, clock, market.symbols, market.timeframe, first, None)


async def _candles_again(settings: Settings, options: RunOptions) -> Feed:
    """The replay afresh from its first candle, as fast as possible (to look at its candles before the run)."""
    feed, _, _ = _replay_feed(settings, options, WallClock(), paced=False)
    return feed


class _Prepended:
    """A feed with a candle already read put back in front (the first one, read to set the simulated clock)."""

    def __init__(self, first: Candle, rest: Feed) -> None:
        self._first: Candle | None = first
        self._rest = rest

    @property
    def inner(self) -> Feed:
        return self._rest

    def __aiter__(self) -> _Prepended:
        return self

    async def __anext__(self) -> Candle:
        if self._first is not None:
            candle, self._first = self._first, None
            return candle
        return await anext(self._rest)

    def stats(self) -> FeedStats:
        return self._rest.stats()

    async def aclose(self) -> None:
        await self._rest.aclose()


def install_signal_handlers(stop: StopRequest, main: asyncio.Task[object] | None) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        stop.signals += 1
        name = signal.Signals(signum).name
        if stop.signals == 1:
            stop.reason = f"signal {name}"
            logger.warning("stopping: finishing running tasks and flushing writes", signal=name)
            stop.requested.set()
            if stop.waiting_for_lock and main is not None:
                main.cancel()
        elif main is not None:
            stop.reason = f"signal {name} twice"
            logger.warning("stopping at once", signal=name)
            main.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)


def remove_signal_handlers() -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)
