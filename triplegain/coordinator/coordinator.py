"""The coordinator: the imperative shell around the decision core, the state machine, the breaker and the level.

    coordinator = Coordinator(account=..., rules=..., ..., restored=await load_snapshot(db, account))
    await coordinator.start(now)           # commands given while no daemon ran, open intents handed on, NOTIFY
    await coordinator.decide(symbol, now)  # the trade_decision task
    await coordinator.housekeeping(now)    # the housekeeping task: commands, degradation, heartbeat
    await coordinator.on_equity(equity, now); await coordinator.on_trade_closed(pnl, now)   # from the broker
    await coordinator.aclose()

A decision (``decide``) reads the symbol's newest agent views from the bus's history (O(1) per agent, and in
step with the schedule: a view published by a task that ran before is there), steps the degradation level, then
takes one snapshot of state, level, breaker and account for the pure core (``decision.assess``). A conflict goes
to the resolver chain; a chain cut short by the task's timeout (or a shutdown) is the conservative rule's hold,
stored before the cancellation goes on, with the attempts made until then (their ``llm_calls`` rows refer to
it). The decision, its conflicts and its order are committed in one transaction that holds the account's state
row with ``FOR SHARE``: the command applier holds it ``FOR UPDATE``, so a pause is applied wholly before or
wholly after a commit, and ``decision.confirm`` turns a trade into a hold when the state it sees is no longer
RUNNING. No order is ever stored while PAUSED or HALTED.

A decision's id is derived from (account, symbol, task time), and its order's client id from the decision's: a
task that runs again after a crash finds its decision stored and places nothing twice. Orders still ``pending``
at start (committed, not yet taken by the broker) are handed to the order sink again; it is idempotent by
client order id.

State changes only through commands (``coordinator_commands``): an operator's, or the breaker's own halt, so
every change is one row with who asked and why. Degradation level, breaker state and task runs are saved by
``save_snapshot`` (never the state columns), each change in one transaction with its events.

While the database is out of reach nothing here stops: a snapshot that fails keeps its task runs, holds,
degradation and breaker events for the next one (the level rises to EMERGENCY on the failures in a row, so no new
entry is opened), a breaker's halt waits to be submitted, an order whose hand-over failed is handed over again
at the next housekeeping. At most ``max_unsaved_rows`` rows wait: past it ``overflowed`` is set and the daemon
stops (nothing is dropped).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, cast

import structlog
from pydantic import BaseModel

from triplegain.agents.base import AgentOutput
from triplegain.agents.publishing import AGENT_TOPICS
from triplegain.bus import MessageBus, Priority, Topic
from triplegain.clock import Clock
from triplegain.coordinator import breaker as breaker_rules
from triplegain.coordinator.breaker import PortfolioBreakerSettings, PortfolioBreakerState, Trip
from triplegain.coordinator.consensus import AgentView, SignalBook, SymbolViews
from triplegain.coordinator.decision import (
    REGIME_WHEN_UNKNOWN,
    Decision,
    DecisionContext,
    DecisionRules,
    assess,
    confirm,
    settle,
)
from triplegain.coordinator.decision_rows import decision_write
from triplegain.coordinator.degradation import Transition
from triplegain.coordinator.health import HealthMonitor
from triplegain.coordinator.resolver import ConflictResolver, ResolverOutcome, cut_short
from triplegain.coordinator.runner import TaskRun
from triplegain.coordinator.snapshot import CoordinatorSnapshot, ended_event, save_snapshot, tripped_event
from triplegain.coordinator.state import apply_command
from triplegain.coordinator.unsaved import UnsavedRows
from triplegain.errors import DatabaseError
from triplegain.llm import LLMCallRecord
from triplegain.model import (
    AccountSnapshot,
    BreakerAction,
    BreakerTripped,
    Command,
    CoordinatorState,
    DecisionAction,
    DecisionMade,
    DegradationLevel,
    LevelChanged,
    OrderRow,
    StateChanged,
    StateRecord,
    TaskStatus,
    Verb,
)
from triplegain.store import Database
from triplegain.store.command_listener import CommandListener
from triplegain.store.coordinator_snapshot import BreakerEventRow, TaskRunRow
from triplegain.store.coordinator_state import (
    SettledCommand,
    apply_pending,
    command_status,
    load_state,
    submit_command,
)
from triplegain.store.decisions import DecisionWrite, StoredDecision, commit_decision, pending_orders

logger = structlog.get_logger(__name__)

DECISION_NAMESPACE = uuid.UUID("5d1f7a52-4c0e-4a55-9a3e-7c2b8f0d9e61")
"""Namespace of decision ids: uuid5 of "account|symbol|task time"."""

AccountSource = Callable[[datetime], AccountSnapshot]
"""The paper account as the risk rules see it at a moment (the broker's)."""

Holdings = Callable[[str], float]
"""The base quantity held of a symbol (the broker's); what a short lean closes on spot."""


Flatten = Callable[[datetime, str], Awaitable[object]]
"""Closes every position (the broker's), for ``halt --flatten``."""


class OrderSink(Protocol):
    """Takes an order stored as pending (the paper broker); must be idempotent by ``client_order_id``."""

    async def submit(self, order: OrderRow) -> None: ...


def decision_id_for(account: str, symbol: str, at: datetime) -> uuid.UUID:
    """The id of the decision a task run at ``at`` makes on ``symbol``: the same every time that run is made."""
    return uuid.uuid5(DECISION_NAMESPACE, f"{account}|{symbol}|{at.isoformat()}")


class Coordinator:
    """Decides, applies commands, steps the degradation level and the breaker, and saves it all."""

    def __init__(
        self,
        *,
        account: str,
        rules: DecisionRules,
        breaker_settings: PortfolioBreakerSettings,
        bus: MessageBus,
        db: Database,
        clock: Clock,
        resolver: ConflictResolver,
        monitor: HealthMonitor,
        listener: CommandListener,
        account_source: AccountSource,
        restored: CoordinatorSnapshot | None = None,
        order_sink: OrderSink | None = None,
        flatten: Flatten | None = None,
        holdings: Holdings | None = None,
        run_id: int | None = None,
        snapshot_interval_seconds: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        max_unsaved_rows: int = 50_000,
    ) -> None:
        """``snapshot_interval_seconds``: housekeeping's command poll and save run at most this often by
        ``monotonic`` (wall-clock seconds; see ``CoordinatorSettings``). ``max_unsaved_rows``: see the module
        docstring."""
        self.account = account
        self._rules = rules
        self._breaker_settings = breaker_settings
        self._bus = bus
        self._db = db
        self._clock = clock
        self._resolver = resolver
        self._monitor = monitor
        self._account_source = account_source
        self._tick_account: AccountSnapshot | None = None
        self._sink = order_sink
        self._flatten = flatten
        self._holdings = holdings
        self._run_id = run_id
        self._state: StateRecord | None = restored.state if restored is not None else None
        self._breaker = restored.breaker if restored is not None else PortfolioBreakerState()
        self._book = SignalBook()
        self.last_decision: StoredDecision | None = None
        self._commands_lock = asyncio.Lock()
        self._save_lock = asyncio.Lock()
        self._unsaved = UnsavedRows()
        self._unsent_commands: list[Command] = []
        self._unplaced: list[OrderRow] = []
        self._max_unsaved_rows = max_unsaved_rows
        self._save_failures = 0
        self.overflowed = asyncio.Event()
        """Set (for good) once ``max_unsaved_rows`` rows waited for a snapshot: the daemon must stop."""
        self._snapshot_interval = snapshot_interval_seconds
        self._monotonic = monotonic
        self._last_housekeeping_save: float | None = None
        self._listener = listener
        self._background: set[asyncio.Task[None]] = set()
        self.resolutions_cut_short = 0
        """Decisions whose resolver chain was cancelled (task timeout, shutdown), stored as conservative holds."""

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self, now: datetime) -> None:
        """Apply the commands given while no daemon ran, hand on open intents, and listen for new commands."""
        await self.apply_commands(now)
        if self._state is None:
            self._state = await load_state(self._db, self.account)
        if self._sink is not None:
            for order in await pending_orders(self._db, self.account):
                await self._sink.submit(order)
        await self._listener.start(self._on_notify)
        logger.info("coordinator started", account=self.account, state=self.state.value, degradation=self.level.name)

    async def __aenter__(self) -> Coordinator:
        await self.start(self._clock.now())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening, let command applications in flight finish, and save the snapshot."""
        await self._listener.aclose()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        try:
            await self._save(self._clock.now())
        except DatabaseError as error:  # the daemon reports what is left (unsaved_rows) and stops
            logger.error("final snapshot not saved", unsaved_rows=self.unsaved_rows, error=str(error))

    # ------------------------------------------------------------------------------------------ reading

    @property
    def state(self) -> CoordinatorState:
        return self._state.state if self._state is not None else CoordinatorState.RUNNING

    @property
    def state_record(self) -> StateRecord | None:
        return self._state

    @property
    def level(self) -> DegradationLevel:
        return self._monitor.level

    @property
    def breaker(self) -> PortfolioBreakerState:
        return self._breaker

    @property
    def unsaved_rows(self) -> int:
        """Task runs, holds, degradation and breaker events waiting for a snapshot."""
        return len(self._unsaved)

    @property
    def save_failures(self) -> int:
        """Snapshots failed in a row (0 once one is saved)."""
        return self._save_failures

    def views(self, symbol: str, now: datetime) -> SymbolViews:
        """``symbol``'s agent views at ``now``, from the newest message of each agent topic for that symbol."""
        for topic in AGENT_TOPICS.values():
            message = self._bus.latest(topic, symbol, include_expired=True)
            if message is not None and isinstance(message.payload, AgentOutput):
                self._book = self._book.with_view(cast(AgentView, message.payload), self._bus.expires_at(message))
        return self._book.views(symbol, now)

    # ------------------------------------------------------------------------------------------ deciding

    async def decide(self, symbol: str | None, now: datetime) -> StoredDecision | None:
        """The trade_decision task for ``symbol`` at ``now``; None when no intent was opened."""
        if symbol is None:
            raise ValueError("the trade_decision task runs per symbol")
        await self.refresh_level(now)
        context = DecisionContext(
            symbol=symbol,
            at=now,
            state=self.state,
            level=self._monitor.level,
            breaker=self._breaker,
            views=self.views(symbol, now),
            account=self._account_at(now),
            held=self._holdings(symbol) if self._holdings is not None else 0.0,
            market_data_age=self._monitor.market_data_age(symbol, now),
        )
        decision = assess(context, self._rules)
        if decision is None:
            return None
        decision_id = decision_id_for(self.account, symbol, now)
        cancelled: asyncio.CancelledError | None = None
        if decision.awaits_resolution:
            trail: list[LLMCallRecord] = []
            try:
                outcome = await self._resolve(decision, decision_id, trail)
            except asyncio.CancelledError as cancellation:
                # The task's timeout (or shutdown) cancelled the chain: its attempts are in llm_calls already and
                # refer to this decision, so it is stored now, as the conservative rule's hold, and the
                # cancellation goes on once it is.
                cancelled = cancellation
                outcome = cut_short(trail, "the task was cancelled: its timeout or a shutdown")
                self.resolutions_cut_short += 1
                logger.warning("resolution cut short", symbol=symbol, at=now.isoformat(), attempts=len(trail))
            decision = settle(decision, outcome, context, self._rules)
        if decision.action is DecisionAction.HOLD and decision.resolution is None:
            stored = self._hold(decision, decision_id, now)
        else:
            stored = await self._commit(decision, decision_id, now)
        self.last_decision = stored
        written = stored.write.decision
        logger.info(
            "decision",
            symbol=symbol,
            action=written.action,
            confidence=round(written.confidence, 4),
            degradation=written.degradation_level.name,
            reason=written.reason,
            already_stored=stored.already_stored,
        )
        order = stored.write.order
        made = DecisionMade(
            decision_id=written.id,
            account=self.account,
            symbol=symbol,
            at=now,
            action=written.action,
            confidence=written.confidence,
            reason=written.reason,
            client_order_id=order.client_order_id if stored.order_stored and order is not None else None,
        )
        await self._publish(Topic.TRADE_INTENTS, made, symbol=symbol)
        if cancelled is not None:
            raise cancelled
        if stored.order_stored and stored.write.order is not None:
            await self._place(stored.write.order)
        return stored

    def _account_at(self, now: datetime) -> AccountSnapshot:
        """The account every decision of the tick at ``now`` reads: as it stood at the tick's first decision.

        Run side by side (live, or a replay of several symbols before its runs went inline), each symbol's
        decision read the account before another's order of the same tick was placed, since placing waits for the
        commit; so the decisions of one tick share one reading, and running them one after another (a replay's
        inline runs, ``coordinator.runner``) decides the same. A candle's fills (``on_equity``) start a new one.
        """
        account = self._tick_account
        if account is None or account.now != now:
            account = self._tick_account = self._account_source(now)
        return account

    async def _resolve(
        self, decision: Decision, decision_id: uuid.UUID, trail: list[LLMCallRecord]
    ) -> ResolverOutcome:
        regime = decision.risk.proposal.regime if decision.risk is not None else REGIME_WHEN_UNKNOWN
        return await self._resolver.resolve(
            decision.symbol,
            decision.intent.direction,
            decision.conflicts,
            self._rules.bounds,
            self._rules.risk.leverage_limit(regime),
            decision_id,
            trail=trail,
        )

    def _hold(self, decision: Decision, decision_id: uuid.UUID, now: datetime) -> StoredDecision:
        """A hold is stored with the next snapshot (housekeeping's, or the one saved before an order is committed),
        in the transaction that saves its task run (a hold places nothing, so it needs no lock on the state row; a
        transaction of its own per decision cost a round trip per symbol and tick). A resolved hold is committed at
        once instead: its LLM calls refer to it."""
        write = decision_write(decision, decision_id=decision_id, account=self.account, run_id=self._run_id, now=now)
        self._unsaved.holds.append(write)
        self._check_bound()
        return StoredDecision(write=write, state=decision.state, already_stored=False, order_stored=False)

    async def _commit(self, decision: Decision, decision_id: uuid.UUID, now: datetime) -> StoredDecision:
        def build(state: CoordinatorState) -> DecisionWrite:
            return decision_write(
                confirm(decision, state), decision_id=decision_id, account=self.account, run_id=self._run_id, now=now
            )

        # What was decided before is saved first (the holds and task runs waiting for a snapshot): a crash after
        # this commit must never leave this decision stored and earlier ones to be made again at restart, where
        # they would see the position this one opens (a failure here is counted by ``_save``).
        await self._save(now)
        try:
            stored = await commit_decision(self._db, self.account, build)
        except DatabaseError:
            self._monitor.db_write(False)
            raise
        self._monitor.db_write(True)
        return stored

    async def _place(self, order: OrderRow) -> None:
        await self._publish(Topic.EXECUTION_EVENTS, order, symbol=order.symbol)
        if self._sink is not None:
            try:
                await self._sink.submit(order)
            except DatabaseError:
                self._unplaced.append(order)  # stored as pending: handed over again at the next housekeeping
                raise

    async def _place_unplaced(self) -> None:
        while self._unplaced and self._sink is not None:
            await self._sink.submit(self._unplaced[0])
            self._unplaced.pop(0)

    # ------------------------------------------------------------------------------------------ commands

    async def submit(self, command: Command, now: datetime) -> tuple[str, str | None]:
        """Queue ``command`` as a row (as the CLI does), apply it at once; its status and outcome."""
        command_id = await submit_command(self._db, self.account, command, now)
        await self.apply_commands(now)
        settled = await command_status(self._db, command_id)
        if settled is None:
            raise DatabaseError(f"command {command_id} vanished from coordinator_commands")
        return settled

    async def apply_commands(self, now: datetime) -> list[SettledCommand]:
        """Apply every pending command in id order; a change of state is published and, leaving HALTED, resets
        the breaker's halts."""
        async with self._commands_lock:
            settled = await apply_pending(self._db, self.account, now, self._monitor.level, apply_command)
            if not settled and self._state is not None:
                return settled
            before = self._state
            self._state = await load_state(self._db, self.account)
            after = self._state
            for command in settled:
                logger.info("command settled", id=command.id, status=command.status, outcome=command.outcome)
                if command.status == "applied" and command.command is not None and command.command.flatten:
                    # The flatten's orders name who asked (an operator, or a breaker rule): results tell them apart.
                    reason = command.command.reason or "halt --flatten"
                    await self._flatten_positions(now, f"{command.command.requested_by}: {reason}")
            if after is not None and (before is None or before.state is not after.state):
                changed = StateChanged(
                    account=self.account,
                    from_state=before.state if before is not None else None,
                    to_state=after.state,
                    by=after.changed_by,
                    reason=after.reason,
                    at=after.changed_at,
                )
                await self._publish(Topic.SYSTEM_EVENTS, changed, priority=Priority.HIGH)
                if before is not None and before.state is CoordinatorState.HALTED:
                    await self._reset_breaker_halts(now, f"resumed by {after.changed_by}: {after.reason}")
            return settled

    async def _flatten_positions(self, now: datetime, reason: str) -> None:
        if self._flatten is None:
            logger.warning("halt --flatten applied, but no broker is attached to close positions")
            return
        await self._flatten(now, reason)

    def _on_notify(self) -> None:
        task = asyncio.get_running_loop().create_task(self._apply_notified())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _apply_notified(self) -> None:
        try:
            await self.apply_commands(self._clock.now())
        except DatabaseError as exc:  # the housekeeping task tries again; the failure is counted and logged
            self._monitor.db_write(False)
            logger.error("applying notified commands failed", error=str(exc))

    # ------------------------------------------------------------------------------------------ health

    async def refresh_level(self, now: datetime) -> Transition | None:
        """Step the degradation level; a transition is logged, published and saved with its causes."""
        transition = self._monitor.refresh(now)
        if transition is None:
            return None
        causes = [cause.model_dump(mode="json") for cause in transition.causes]
        log = logger.warning if transition.to_level.rank > transition.from_level.rank else logger.info
        log(
            "degradation level changed",
            from_level=transition.from_level.name,
            to_level=transition.to_level.name,
            causes=causes,
        )
        changed = LevelChanged(
            account=self.account,
            from_level=transition.from_level,
            to_level=transition.to_level,
            causes=tuple(cause.describe() for cause in transition.causes),
            at=transition.at,
        )
        await self._publish(Topic.SYSTEM_EVENTS, changed, priority=Priority.HIGH)
        try:
            await self._save(now, degradation_events=[transition])
        except DatabaseError as error:  # kept for the next save; the level has moved on regardless
            logger.warning("degradation change not saved yet", error=str(error))
        return transition

    async def housekeeping(self, _symbol: str | None, now: datetime) -> None:
        """The housekeeping task: apply pending commands, step the level, and save the snapshot with the heartbeat;
        within ``snapshot_interval_seconds`` of its last save it only steps the level."""
        listening = await self._listener.keep_listening()
        started = self._monotonic()
        due = (
            self._last_housekeeping_save is None
            or started - self._last_housekeeping_save >= self._snapshot_interval
            or not listening
        )
        failure: DatabaseError | None = None
        if due:
            try:
                await self._submit_unsent(now)
                await self.apply_commands(now)
                await self._place_unplaced()
            except DatabaseError as error:  # the level still steps and the snapshot is still tried
                self._monitor.db_write(False)
                failure = error
        await self.refresh_level(now)
        if due:
            await self._save(now, heartbeat=now)
            self._last_housekeeping_save = started
        if failure is not None:
            raise failure

    async def record_task_run(self, run: TaskRun) -> None:
        """The runner's ``on_finished``: a timeout counts toward degradation; a finished run is saved with the
        next snapshot (housekeeping's, at the latest).

        Saving each run in its own transaction cost a database round trip per run, most of a replay's time. A run
        lost to a crash before its snapshot runs again at restart, which is safe: a decision is stored once by its
        id, and an agent's view is only published again.
        """
        if run.timed_out:
            self._monitor.task_timed_out(run.finished_at)
        if run.status is TaskStatus.SKIPPED:
            return
        row = TaskRunRow(
            task=run.task.value,
            symbol=run.symbol,
            started_at=run.started_at,
            finished_at=max(run.finished_at, run.started_at),
            status=run.status,
            error=run.error,
        )
        self._unsaved.task_runs.append(row)
        self._check_bound()

    # ------------------------------------------------------------------------------------------ breaker

    async def on_equity(self, equity: float, now: datetime) -> list[Trip]:
        """Check the breaker on an equity update; trips are recorded and acted on.

        The breaker's state is saved when a trip, a new day or week, a new peak or an expired pause changed it;
        an update that only moved the latest equity is not saved (the next update carries it again).
        """
        self._tick_account = None
        before = self._breaker
        self._breaker, trips = breaker_rules.on_equity(before, equity, now, self._breaker_settings)
        if trips or self._breaker.model_copy(update={"equity": before.equity}) != before:
            await self._tripped(trips, now)
        return trips

    async def on_trade_closed(self, pnl: float, now: datetime) -> list[Trip]:
        """Check the breaker after a closing fill; trips are recorded and acted on."""
        self._tick_account = None
        self._breaker, trips = breaker_rules.on_trade_closed(self._breaker, pnl, now, self._breaker_settings)
        await self._tripped(trips, now)
        return trips

    async def _tripped(self, trips: Sequence[Trip], now: datetime) -> None:
        try:
            await self._save(now, breaker_events=[tripped_event(trip) for trip in trips])
        except DatabaseError as error:  # kept for the next save
            logger.warning("breaker change not saved yet", error=str(error))
        for trip in trips:
            logger.warning(
                "circuit breaker tripped", rule=trip.rule.value, action=trip.action.value, reason=trip.reason
            )
            tripped = BreakerTripped(
                account=self.account,
                rule=trip.rule,
                action=trip.action,
                reason=trip.reason,
                at=trip.at,
                until=trip.until,
            )
            await self._publish(Topic.RISK_ALERTS, tripped, priority=Priority.URGENT)
        halts = [trip for trip in trips if trip.action is BreakerAction.HALT]
        if halts:
            reason = "; ".join(trip.reason for trip in halts)
            rules = ",".join(trip.rule.value for trip in halts)
            halt = Command(verb=Verb.HALT, reason=reason, requested_by=f"breaker:{rules}")
            try:
                await self.submit(halt, now)
            except DatabaseError as error:  # no new entry meanwhile: the failures raise the level to EMERGENCY
                self._monitor.db_write(False)
                self._unsent_commands.append(halt)
                logger.error("breaker halt not submitted yet; tried again at housekeeping", error=str(error))

    async def _submit_unsent(self, now: datetime) -> None:
        while self._unsent_commands:
            await submit_command(self._db, self.account, self._unsent_commands[0], now)
            self._unsent_commands.pop(0)

    async def _reset_breaker_halts(self, now: datetime, reason: str) -> None:
        halts = [trip for trip in self._breaker.trips if trip.action is BreakerAction.HALT]
        if not halts:
            return
        self._breaker = breaker_rules.reset(self._breaker)
        try:
            await self._save(now, breaker_events=[ended_event(trip, now, reason) for trip in halts])
        except DatabaseError as error:  # kept for the next save
            logger.warning("breaker reset not saved yet", error=str(error))

    # ------------------------------------------------------------------------------------------ saving

    async def _save(
        self,
        now: datetime,
        *,
        heartbeat: datetime | None = None,
        degradation_events: Sequence[Transition] = (),
        breaker_events: Sequence[BreakerEventRow] = (),
    ) -> None:
        """Save level, breaker, the finished task runs, hold decisions and events not saved yet and the given
        rows in one transaction; a failure is counted toward degradation, everything it held is kept for the next
        save, and ``DatabaseError`` is raised."""
        async with self._save_lock:
            self._unsaved.transitions += degradation_events
            self._unsaved.breaker_events += breaker_events
            rows = self._unsaved.take()
            try:
                await save_snapshot(
                    self._db,
                    self.account,
                    now=now,
                    degradation=self._monitor.state,
                    breaker=self._breaker,
                    heartbeat=heartbeat,
                    task_runs=rows.task_runs,
                    degradation_events=rows.transitions,
                    breaker_events=rows.breaker_events,
                    holds=rows.holds,
                )
            except DatabaseError:
                self._unsaved.put_back(rows)
                self._save_failures += 1
                self._monitor.db_write(False)
                self._check_bound()
                raise
            if self._save_failures:
                logger.info("snapshot saved after failures", failed_tries=self._save_failures, rows=len(rows))
            self._save_failures = 0
            self._monitor.db_write(True)

    def _check_bound(self) -> None:
        if self.unsaved_rows >= self._max_unsaved_rows and not self.overflowed.is_set():
            logger.error(
                "rows waiting for a snapshot reached the bound",
                rows=self.unsaved_rows,
                bound=self._max_unsaved_rows,
            )
            self.overflowed.set()

    async def _publish(
        self, topic: Topic, payload: BaseModel, *, symbol: str | None = None, priority: Priority = Priority.NORMAL
    ) -> None:
        message = self._bus.message(topic, payload, source="coordinator", priority=priority, symbol=symbol)
        await self._bus.publish(message)

