"""The paper broker: the imperative shell around the paper exchange (``exchange``) and its books (``accounting``).

    broker = PaperBroker(settings.execution, db, account="paper", clock=clock)
    await broker.start()                      # the account as stored: fills, open orders, marks, equity peak
    await broker.submit(order)                # the coordinator's OrderSink: open or rejected, stored at once
    update = await broker.on_candle(candle)   # fills, stops and targets, snapshot: stored in one transaction
    await broker.flush()                      # candles that changed nothing but the mark, held back (see below)
    broker.account(now); broker.balances(); broker.equity(); broker.positions(); broker.last_price(symbol)
    await broker.flatten(now, reason)         # halt --flatten: market orders closing everything

Every change is written before the broker's state takes it and before the call returns: a write that fails
raises ``DatabaseError`` and leaves the broker as it was, so the same call may simply be made again (ids are
deterministic and writes idempotent). The exception is a *quiet* candle, one that places, fills or updates no
order: with ``quiet_candles_per_write`` above 1 (a replay), it is held back and stored with the next candle that
does, or when that many are held, or at ``flush()``. A crash loses only such candles' marks, positions' valuations
and snapshots, and the restarted broker re-processes those candles, to the same effect.

A candle whose write fails (the database is out of reach) does not stop the broker: its write is held with the
quiet ones, in order, the state moves on, the failure is reported to ``on_write`` (the degradation monitor) and
the held writes are tried again at every candle and at ``flush()``. Nothing held counts as stored: a restart
re-processes those candles from what was. At most ``max_unstored_candles`` writes are held: before taking a
candle past that bound the broker tries once more, then refuses the candle with ``UnstoredCandlesFull`` (the
daemon stops; nothing held is dropped).

Calls are serialised by a lock: a submission never interleaves with a candle. The broker trades one account; a
second broker on the same account is prevented by the coordinator's advisory lock, not here.

Feed ``on_candle`` one timeframe per symbol, each closed candle once, before the decisions of its close time
run: an order fills at the first candle that closes after it was placed. A candle at or before the last one
processed of its symbol (kept in ``broker_marks``, so also across restarts) changes nothing.

Times come from candles and from the injected clock (submission and flatten times), never the system clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

import structlog

from triplegain.clock import Clock
from triplegain.errors import DatabaseError, TriplegainError
from triplegain.execution import exchange
from triplegain.execution.accounting import Position
from triplegain.execution.exchange import BrokerState, CandleOutcome
from triplegain.execution.settings import ExecutionSettings, MarketRules
from triplegain.market.candle import Candle
from triplegain.model import OPEN_STATUSES, AccountSnapshot, CandleWrite, ClosedTrade, FillRow, OrderRow, OrderUpdate
from triplegain.store.database import Database
from triplegain.store.execution import (
    changes_anything,
    load_execution,
    record_candles,
    record_orders,
    settle_submission,
)

logger = structlog.get_logger(__name__)

WriteOutcome = Callable[[bool], None]
"""Told of every attempt to store the broker's writes: True when it succeeded (``HealthMonitor.db_write``)."""


class UnstoredCandlesFull(TriplegainError):
    """``max_unstored_candles`` candles' writes wait for the database: the next candle is refused, nothing dropped."""

    def __init__(self, message: str, *, bound: int, held: int) -> None:
        super().__init__(message)
        self.bound = bound
        self.held = held


@dataclass(frozen=True)
class BrokerUpdate:
    """What a candle did, for the coordinator: fills, trades closed (for the breaker), equity after it, and orders
    rejected at their fill (client order id, reason)."""

    fills: tuple[FillRow, ...]
    closed_trades: tuple[ClosedTrade, ...]
    equity: float
    rejected: tuple[tuple[str, str], ...]


class PaperBroker:
    """Simulated fills against candles, with the account stored in Postgres; the coordinator's ``OrderSink``."""

    def __init__(
        self,
        settings: ExecutionSettings,
        db: Database,
        *,
        account: str,
        clock: Clock,
        quiet_candles_per_write: int = 1,
        on_write: WriteOutcome | None = None,
    ) -> None:
        """``quiet_candles_per_write`` and ``on_write``: see the module docstring; the bound is
        ``settings.max_unstored_candles``."""
        if quiet_candles_per_write < 1:
            raise ValueError(f"quiet_candles_per_write must be ≥ 1, got {quiet_candles_per_write}")
        if not account:
            raise ValueError("a broker trades a named account")
        self.settings = settings
        self.account_name = account
        self._db = db
        self._clock = clock
        self._lock = asyncio.Lock()
        self._quiet_per_write = quiet_candles_per_write
        self._held: list[CandleWrite] = []
        self.on_write = on_write
        """Told of every attempt to store held writes; may be set after construction (the daemon wires it)."""
        self._failures = 0  # writes failed in a row
        self._state = exchange.restore(account, settings, self.rules_for, (), (), (), None)
        self._started = False

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Restore the account: starting balances plus every stored fill, open orders, last prices, equity peak.

        A fresh account has its starting balances. Orders still ``pending`` are the coordinator's to hand over
        again (``Coordinator.start``).
        """
        async with self._lock:
            stored = await load_execution(self._db, self.account_name)
            self._state = exchange.restore(
                self.account_name,
                self.settings,
                self.rules_for,
                stored.fills,
                stored.open_orders,
                stored.marks,
                stored.peak_equity,
            )
            self._started = True
        logger.info(
            "paper broker started",
            account=self.account_name,
            fills=len(stored.fills),
            open_orders=len(stored.open_orders),
            equity=round(self.equity(), 2),
            balances=self.balances(),
        )

    # ------------------------------------------------------------------------------------------ orders

    async def submit(self, order: OrderRow) -> None:
        """Accept (``open``) or reject an order stored as ``pending``, stored before returning.

        The same ``client_order_id`` submitted again changes nothing: only a ``pending`` order is reviewed. An
        order not stored yet is stored first. It fills at the next candle of its symbol.
        """
        self._require_started()
        async with self._lock:
            state = self._state

            def decide(stored: OrderRow) -> OrderUpdate:
                return exchange.assess_submission(state, stored, self._clock.now(), self.settings, self.rules_for)

            submission = await settle_submission(self._db, order, decide)
            settled = submission.order
            # Also when settled before: a retry after a commit whose answer was lost finds the order open already.
            if settled.status in OPEN_STATUSES and all(
                waiting.client_order_id != settled.client_order_id for waiting in state.open_orders
            ):
                self._state = state.model_copy(update={"open_orders": (*state.open_orders, settled)})
            if not submission.changed:
                logger.debug("order already settled", client_order_id=settled.client_order_id, status=settled.status)
                return
        log = logger.warning if settled.status == "rejected" else logger.info
        log(
            "order " + ("rejected" if settled.status == "rejected" else "accepted"),
            client_order_id=settled.client_order_id,
            symbol=settled.symbol,
            side=settled.side,
            type=settled.type,
            qty=str(settled.qty),
            reason=submission.status_reason,
        )

    async def on_candle(self, candle: Candle) -> BrokerUpdate:
        """Fill what ``candle`` fills, check stops and targets, and store it all with a snapshot in one transaction
        before returning (a quiet candle may be held back, a failed write is held: see the module docstring); a
        candle already processed returns the current equity and nothing else.

        Raises ``UnstoredCandlesFull`` (the candle not taken) when ``max_unstored_candles`` writes are held and
        the database still refuses them.
        """
        self._require_started()
        async with self._lock:
            bound = self.settings.max_unstored_candles
            if len(self._held) >= bound and not await self._store_held():
                raise UnstoredCandlesFull(
                    f"{len(self._held)} candles' writes held in memory reached the bound {bound} "
                    "(execution.max_unstored_candles)",
                    bound=bound,
                    held=len(self._held),
                )
            outcome = exchange.step(self._state, candle, self.settings, self.rules_for)
            if outcome is None:
                return BrokerUpdate(fills=(), closed_trades=(), equity=self._state.ledger.equity(), rejected=())
            self._held.append(outcome.write)
            self._state = outcome.state
            if changes_anything(outcome.write) or len(self._held) >= self._quiet_per_write or self._failures:
                await self._store_held()
        self._log(candle, outcome)
        return BrokerUpdate(
            fills=outcome.fills,
            closed_trades=outcome.closed_trades,
            equity=outcome.write.snapshot.equity,
            rejected=outcome.rejected,
        )

    async def flush(self) -> None:
        """Store the candles held back; ``DatabaseError`` when that fails (they stay held)."""
        async with self._lock:
            if self._held and not await self._store_held():
                raise DatabaseError(f"{len(self._held)} candles' writes could not be stored; they stay in memory")

    @property
    def unstored(self) -> int:
        """Candles' writes held in memory (quiet ones and those whose write failed)."""
        return len(self._held)

    @property
    def write_failures(self) -> int:
        """Writes failed in a row (0 once one succeeds)."""
        return self._failures

    async def _store_held(self) -> bool:
        """Store the held writes in one transaction; whether it succeeded (a failure is counted and logged)."""
        try:
            await record_candles(self._db, self._held)
        except DatabaseError as error:
            self._failures += 1
            self._report_write(ok=False)
            logger.warning("candles not stored; held for the next try", held=len(self._held), error=str(error))
            return False
        if self._failures:
            logger.info("held candles stored", candles=len(self._held), failed_tries=self._failures)
        self._held.clear()
        self._failures = 0
        self._report_write(ok=True)
        return True

    def _report_write(self, *, ok: bool) -> None:
        if self.on_write is not None:
            self.on_write(ok)

    async def flatten(self, now: datetime, reason: str) -> list[OrderRow]:
        """``halt --flatten``: a market order closing every holding, filled at the next candle of its symbol, and
        every other open order cancelled; the orders created (none for a symbol whose flatten is still open)."""
        self._require_started()
        async with self._lock:
            state, created, cancelled = exchange.flatten(self._state, now, reason, self.settings, self.rules_for)
            await record_orders(self._db, self.account_name, created, cancelled)
            self._state = state
        logger.warning(
            "flattening",
            account=self.account_name,
            reason=reason,
            orders=[f"{order.side} {order.qty} {order.symbol}" for order in created],
            cancelled=[update.client_order_id for update in cancelled],
        )
        return list(created)

    # ------------------------------------------------------------------------------------------ reading

    def rules_for(self, symbol: str) -> MarketRules:
        """``symbol``'s market rules: ``settings.markets``, else the default."""
        return self.settings.rules_for(symbol)

    def account(self, now: datetime) -> AccountSnapshot:
        """The account as the risk rules see it at ``now``: equity, free cash (less what open buys would spend),
        the notional held per symbol at last prices, and the recent trades closed by ``now``."""
        state = self._state
        ledger = state.ledger
        notional: dict[str, float] = {}
        for asset, qty in ledger.balances.items():
            price = ledger.price_of(asset)
            if asset != ledger.quote_asset and qty and price:
                notional[f"{asset}/{ledger.quote_asset}"] = abs(qty) * price
        return AccountSnapshot(
            equity=ledger.equity(),
            cash=exchange.free_cash(state, self.settings),
            open_notional=notional,
            closed_trades=tuple(trade for trade in ledger.closed_trades if trade.closed_at <= now),
            now=now,
        )

    def balances(self) -> dict[str, float]:
        """Asset → quantity held (negative: borrowed), for the portfolio agent."""
        return dict(self._state.ledger.balances)

    def equity(self) -> float:
        """Every balance valued at last prices, in the quote asset."""
        return self._state.ledger.equity()

    def positions(self) -> Mapping[str, Position]:
        """Symbol → open position (quantity, entry, stop, target), read-only."""
        return MappingProxyType(self._state.ledger.positions)

    def open_orders(self) -> tuple[OrderRow, ...]:
        """Orders accepted and waiting for their candle, oldest first."""
        return self._state.open_orders

    def last_price(self, symbol: str) -> float | None:
        """The last price seen of ``symbol`` (a candle's close), or None before its first candle."""
        return self._state.ledger.last_prices.get(symbol)

    @property
    def state(self) -> BrokerState:
        """The whole state (frozen), for tests and status tooling."""
        return self._state

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("PaperBroker.start() must be awaited first: it restores the account")

    def _log(self, candle: Candle, outcome: CandleOutcome) -> None:
        for fill in outcome.fills:
            logger.info(
                "fill",
                client_order_id=fill.client_order_id,
                symbol=fill.symbol,
                side=fill.side,
                qty=fill.qty,
                price=fill.price,
                fee=round(fill.fee, 8),
                liquidity=fill.liquidity,
            )
        for client_order_id, reason in outcome.rejected:
            logger.warning("order rejected at its fill", client_order_id=client_order_id, reason=reason)
        for trade in outcome.closed_trades:
            logger.info("trade closed", symbol=candle.symbol, pnl=round(trade.pnl, 8), closed_at=trade.closed_at)
