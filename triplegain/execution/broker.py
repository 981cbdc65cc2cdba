"""The paper broker: the imperative shell around the paper exchange (``exchange``) and its books (``accounting``).

    broker = PaperBroker(settings.execution, db, account="paper", clock=clock)
    await broker.start()                      # the account as stored: fills, open orders, marks, equity peak
    await broker.submit(order)                # the coordinator's OrderSink: open or rejected, stored at once
    update = await broker.on_candle(candle)   # fills, stops and targets, snapshot: stored in one transaction
    broker.account(now); broker.balances(); broker.equity(); broker.positions(); broker.last_price(symbol)
    await broker.flatten(now, reason)         # halt --flatten: market orders closing everything

Every change is written before the broker's state takes it and before the call returns: a write that fails
raises ``DatabaseError`` and leaves the broker as it was, so the same call may simply be made again (ids are
deterministic and writes idempotent). Calls are serialised by a lock: a submission never interleaves with a
candle. The broker trades one account; a second broker on the same account is prevented by the coordinator's
advisory lock, not here.

Feed ``on_candle`` one timeframe per symbol, each closed candle once, before the decisions of its close time
run: an order fills at the first candle that closes after it was placed. A candle at or before the last one
processed of its symbol (kept in ``broker_marks``, so also across restarts) changes nothing.

Times come from candles and from the injected clock (submission and flatten times), never the system clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

import structlog

from triplegain.clock import Clock
from triplegain.execution import exchange
from triplegain.execution.accounting import Position
from triplegain.execution.exchange import BrokerState, CandleOutcome
from triplegain.execution.settings import ExecutionSettings, MarketRules
from triplegain.market.candle import Candle
from triplegain.risk.models import AccountSnapshot, ClosedTrade
from triplegain.store.database import Database
from triplegain.store.decisions import OrderRow
from triplegain.store.execution import (
    OPEN_STATUSES,
    FillRow,
    OrderUpdate,
    load_execution,
    record_candle,
    record_orders,
    settle_submission,
)

logger = structlog.get_logger(__name__)


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
        market_rules: Mapping[str, MarketRules] | None = None,
    ) -> None:
        """``market_rules``: symbol → rules from the exchange's market data (ccxt, see ``markets``); a symbol not
        in it takes ``settings.markets``, then ``settings.default_market``."""
        if not account:
            raise ValueError("a broker trades a named account")
        self.settings = settings
        self.account_name = account
        self._db = db
        self._clock = clock
        self._market_rules = dict(market_rules or {})
        self._lock = asyncio.Lock()
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
                return exchange.review(state, stored, self._clock.now(), self.settings, self.rules_for)

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
        before returning; a candle already processed returns the current equity and nothing else."""
        self._require_started()
        async with self._lock:
            outcome = exchange.step(self._state, candle, self.settings, self.rules_for)
            if outcome is None:
                return BrokerUpdate(fills=(), closed_trades=(), equity=self._state.ledger.equity(), rejected=())
            await record_candle(self._db, outcome.write)
            self._state = outcome.state
        self._log(candle, outcome)
        return BrokerUpdate(
            fills=outcome.fills,
            closed_trades=outcome.closed_trades,
            equity=outcome.write.snapshot.equity,
            rejected=outcome.rejected,
        )

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
        """``symbol``'s market rules: the exchange's market data, else ``settings.markets``, else the default."""
        rules = self._market_rules.get(symbol)
        return rules if rules is not None else self.settings.rules_for(symbol)

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
