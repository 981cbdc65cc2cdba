"""What the running daemon shows: a rich panel on a terminal, else a short status line every few seconds.

Both say the account, the coordinator's state, the degradation level, equity, open positions, the last decision
and the replay's progress (candle N of M, the share done, candles per second of wall time and the time left).
``RunTracker`` keeps what the summary needs besides the stored rows: what the bus said (``RunEvents``: candles,
closes for buy-and-hold, decisions, breaker trips) and equity's peak and deepest drawdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from triplegain.clock import WallClock
from triplegain.daemon.events import RunEvents
from triplegain.system import TradingSystem


class Portfolio(Protocol):
    """What the status reads of the broker."""

    def equity(self) -> float: ...

    def balances(self) -> dict[str, float]: ...


@dataclass
class RunTracker:
    """The run as it goes: what the bus said (``events``) and equity's extremes."""

    system: TradingSystem
    broker: Portfolio
    events: RunEvents = field(default_factory=RunEvents)
    peak_equity: float | None = None
    max_drawdown: float = 0.0
    database: Callable[[], str] | None = None
    """The database's part of the status (``StoreWatch.status``); not shown when None."""
    total: int | None = None
    """Candles the replay holds; None live."""
    clock: WallClock = field(default_factory=WallClock)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock.monotonic()

    def equity(self, equity: float) -> None:
        """Equity after a candle: the peak and the deepest drawdown from it."""
        self.peak_equity = max(self.peak_equity or equity, equity)
        if self.peak_equity > 0:
            self.max_drawdown = max(self.max_drawdown, (self.peak_equity - equity) / self.peak_equity)

    def fields(self) -> dict[str, str]:
        """The status, as label → text."""
        coordinator = self.system.coordinator
        events = self.events
        last = events.last_decision
        decision = "none yet" if last is None else f"{last.symbol} {last.action.value} ({last.reason[:60]})"
        at = f"{events.last_candle_close:%Y-%m-%d %H:%M}" if events.last_candle_close is not None else "-"
        held = {asset: qty for asset, qty in self.broker.balances().items() if qty and asset != self._quote}
        return {
            "account": coordinator.account,
            "state": coordinator.state.value,
            "degradation": coordinator.level.name,
            "equity": f"{self.broker.equity():,.2f}",
            "positions": ", ".join(f"{asset} {qty:.6g}" for asset, qty in sorted(held.items())) or "none",
            "last decision": decision,
            "progress": f"{progress(events.candles, self.total, self.clock.monotonic() - self.started)} (at {at})",
        } | ({"database": self.database()} if self.database is not None else {})

    @property
    def _quote(self) -> str:
        quote: str = self.system.settings.execution.quote_asset
        return quote


def progress(done: int, total: int | None, seconds: float) -> str:
    """How far a run has come: ``candle 2,500 of 10,000 (25.0 %), 850 candles/s, ETA 9 s`` in a replay
    (``total`` known), the count and the rate live."""
    rate = done / seconds if seconds > 0 else 0.0
    speed = f"{rate:,.0f} candles/s"
    if total is None or total <= 0:
        return f"{done:,}, {speed}"
    shown = min(done, total)
    eta = f"ETA {_duration((total - shown) / rate)}" if rate > 0 else "ETA -"
    return f"candle {shown:,} of {total:,} ({100 * shown / total:.1f} %), {speed}, {eta}"


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class StatusBoard:
    """Where the daemon speaks: ``say`` for one-off lines, ``showing`` for the live status."""

    def __init__(self, stream: TextIO, *, rich_panel: bool) -> None:
        self._console = Console(file=stream, highlight=False, soft_wrap=True)
        self._rich = rich_panel

    def say(self, line: str) -> None:
        self._console.print(line, markup=False)

    async def track(self, system: TradingSystem, broker: Portfolio, total: int | None = None) -> RunTracker:
        """A tracker of the run (a replay of ``total`` candles, or live), hearing ``system``'s bus from now on."""
        tracker = RunTracker(system=system, broker=broker, total=total)
        await tracker.events.subscribe(system.bus)
        return tracker

    @asynccontextmanager
    async def showing(self, tracker: RunTracker, interval_seconds: float) -> AsyncIterator[None]:
        """Refresh the status every ``interval_seconds`` of wall time while the block runs, and once at its end."""
        if self._rich:
            with Live(_panel(tracker), console=self._console, refresh_per_second=4, transient=False) as live:
                task = asyncio.create_task(self._refresh(lambda: live.update(_panel(tracker)), interval_seconds))
                try:
                    yield
                finally:
                    await _stopped(task)
                    live.update(_panel(tracker))
            return
        task = asyncio.create_task(self._refresh(lambda: self.say(_line(tracker)), interval_seconds))
        try:
            yield
        finally:
            await _stopped(task)
            self.say(_line(tracker))

    async def _refresh(self, show: Callable[[], None], interval_seconds: float) -> None:
        wall = WallClock()
        next_at = wall.monotonic() + interval_seconds
        while True:
            await asyncio.sleep(max(0.0, next_at - wall.monotonic()))
            next_at += interval_seconds
            show()


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it; a cancellation of the caller itself still propagates."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _line(tracker: RunTracker) -> str:
    return " | ".join(f"{label} {value}" for label, value in tracker.fields().items())


def _panel(tracker: RunTracker) -> Table:
    table = Table(title="triplegain", show_header=False, expand=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in tracker.fields().items():
        table.add_row(label, value)
    return table
