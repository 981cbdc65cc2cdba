"""Live closed candles, polled from an exchange's public OHLCV endpoint through ccxt (no API keys).

How it polls: at start it loads the exchange's markets, checks the symbols and the timeframe, and asks for the
last ``warmup_candles`` closed candles of each symbol. From then on it keeps, per symbol, a cursor: the open
time of the next candle it wants. A symbol is polled (``fetch_ohlcv`` since the cursor) once that candle should
have closed and been published (close time + ``publish_delay_seconds``); while it has not appeared, the symbol
is polled again every ``poll_interval_seconds``. Between polls the feed sleeps through the injected ``Sleep``;
``aclose()`` interrupts any wait.

What it passes on: only closed candles (open time + timeframe ≤ clock.now(); exchanges also return the candle
still forming, which is skipped and asked for again later), each once, in time order per symbol; a candle that
fails the candle check, repeats or goes back in time is rejected and counted; a skipped period is reported as a
gap (nothing is filled in).

Errors: ccxt's rate limiter stays on (``enableRateLimit``). Transient errors (network, timeout, HTTP 5xx, DDoS
protection, rate limit) are retried here — and only here: ccxt's own retry loop is switched off — with
exponential backoff and jitter, up to ``max_attempts``. Then, or at once for any other exchange error, iteration
raises ``MarketDataError``; the feed stays usable, and iterating again resumes polling after
``poll_interval_seconds``.

Importing this module imports ccxt, which takes about a second.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import ccxt.async_support as ccxt_async
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from triplegain.clock import Clock
from triplegain.errors import ResourceClosed, UserError
from triplegain.market.candle import Candle, Rejection, RejectReason, candle_from_values, ms_from_utc, utc_from_ms
from triplegain.market.feeds import MarketDataError, Sleep
from triplegain.market.feeds.monitor import FeedMonitor, FeedStats
from triplegain.market.settings import CcxtFeedSettings

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    ccxt_async.NetworkError,
    ccxt_async.ExchangeNotAvailable,
    ccxt_async.RequestTimeout,
    ccxt_async.DDoSProtection,
    ccxt_async.RateLimitExceeded,
)
"""ccxt errors worth another attempt (the last four are kinds of NetworkError, listed for the reader)."""

_ERROR_TEXT_LIMIT = 300

_log = structlog.get_logger("triplegain.market")


class FeedClosed(ResourceClosed):
    """Raised inside the feed when ``aclose()`` interrupts a wait or a request (and caught there)."""


def create_exchange(settings: CcxtFeedSettings, *, api_url: str | None = None) -> Any:
    """A ccxt async exchange for public data: rate limiter on, ccxt's own retries off, our request timeout.

    ``api_url`` replaces every base URL of the exchange's REST API (a local stub in tests, or a proxy).
    """
    if settings.exchange not in ccxt_async.exchanges:
        raise UserError(f"exchange {settings.exchange!r} is not a ccxt exchange id; e.g. kraken, binance, coinbase")
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": round(settings.request_timeout_seconds * 1000),
        "options": {"maxRetriesOnFailure": 0},
    }
    if settings.rate_limit_ms is not None:
        config["rateLimit"] = settings.rate_limit_ms
    exchange = getattr(ccxt_async, settings.exchange)(config)
    if api_url is not None:
        api = exchange.urls["api"]
        exchange.urls["api"] = {name: api_url for name in api} if isinstance(api, dict) else api_url
    return exchange


class CcxtFeed:
    """Closed candles of ``settings.symbols`` from ``settings.exchange`` (see the module docstring)."""

    def __init__(
        self,
        settings: CcxtFeedSettings,
        *,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        api_url: str | None = None,
        keep_recent: int = 100,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self.exchange: Any = create_exchange(settings, api_url=api_url)
        self._name = settings.exchange
        self._step_ms = settings.timeframe.milliseconds
        self._monitor = FeedMonitor(feed=f"ccxt:{self._name}", keep=keep_recent)
        self._pending: deque[Candle] = deque()
        self._cursors: dict[str, int] = {}
        self._next_poll: datetime | None = None
        self._closing = asyncio.Event()

    def __aiter__(self) -> CcxtFeed:
        return self

    async def __anext__(self) -> Candle:
        try:
            while not self._pending:
                await self._poll_when_due()
        except FeedClosed:
            raise StopAsyncIteration from None
        if self._closing.is_set():
            raise StopAsyncIteration
        candle = self._pending.popleft()
        self._monitor.count_emitted(candle)
        return candle

    def stats(self) -> FeedStats:
        return self._monitor.snapshot()

    async def aclose(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        self._pending.clear()
        await self.exchange.close()

    async def _poll_when_due(self) -> None:
        if self._closing.is_set():
            raise FeedClosed
        if self._next_poll is not None:
            await self._pause((self._next_poll - self._clock.now()).total_seconds())
        try:
            if not self._cursors:
                await self._start()
            caught_up = await self._poll()
        except MarketDataError:
            self._next_poll = self._clock.now() + timedelta(seconds=self._settings.poll_interval_seconds)
            raise
        self._next_poll = self._plan_next_poll() if caught_up else self._clock.now()

    async def _start(self) -> None:
        """Load the markets, check symbols and timeframe, and set every cursor ``warmup_candles`` back."""
        markets = await self._call("load_markets", self.exchange.load_markets)
        unknown = [symbol for symbol in self._settings.symbols if symbol not in markets]
        if unknown:
            examples = ", ".join(sorted(markets)[:5])
            missing = ", ".join(map(repr, unknown))
            raise UserError(f"{self._name} has no market {missing}; its symbols look like {examples}")
        timeframe = self._settings.timeframe
        offered = self.exchange.timeframes or {}
        if timeframe.value not in offered:
            raise UserError(f"{self._name} has no {timeframe.value} candles; it offers {', '.join(offered)}")
        now_ms = ms_from_utc(self._clock.now())
        first_ms = (now_ms // self._step_ms - self._settings.warmup_candles) * self._step_ms
        self._cursors = dict.fromkeys(self._settings.symbols, first_ms)

    async def _poll(self) -> bool:
        """Fetch every symbol whose next candle is due; False if a symbol may have more closed candles waiting."""
        delay_ms = round(self._settings.publish_delay_seconds * 1000)
        fresh: list[Candle] = []
        caught_up = True
        try:
            for symbol in self._settings.symbols:
                cursor = self._cursors[symbol]
                if cursor + self._step_ms + delay_ms > ms_from_utc(self._clock.now()):
                    continue
                rows = await self._call(
                    f"fetch_ohlcv {symbol}", self.exchange.fetch_ohlcv, symbol, self._settings.timeframe.value, cursor
                )
                fresh.extend(self._accept(symbol, rows))
                now_ms = ms_from_utc(self._clock.now())
                advanced = self._cursors[symbol] != cursor
                if advanced and self._cursors[symbol] + self._step_ms + delay_ms <= now_ms:
                    caught_up = False
        finally:
            # Also when a later symbol fails: these candles' cursors have moved on, so they go out regardless.
            fresh.sort(key=lambda candle: candle.open_time)
            self._pending.extend(fresh)
        return caught_up

    def _accept(self, symbol: str, rows: Any) -> list[Candle]:
        """The closed, valid, new candles among ``rows``; moves the symbol's cursor past every closed row."""
        now_ms = ms_from_utc(self._clock.now())
        timeframe = self._settings.timeframe
        source = f"{self._name} fetch_ohlcv"
        accepted: list[Candle] = []
        for row in rows:
            open_ms = row[0] if row and isinstance(row[0], int | float) else None
            if open_ms is not None and open_ms + self._step_ms > now_ms:
                continue  # still forming: ask again once it has closed
            if open_ms is None or len(row) < 6 or any(value is None for value in row[1:6]):
                when = utc_from_ms(int(open_ms)) if open_ms is not None else None
                detail = f"row {row!r} lacks a value"
                self._monitor.reject(Rejection(RejectReason.MISSING_VALUE, detail, symbol, timeframe, when, source))
                if open_ms is not None:
                    self._advance(symbol, int(open_ms))
                continue
            open_ms = int(open_ms)
            self._advance(symbol, open_ms)
            result = candle_from_values(symbol, timeframe, open_ms, *map(float, row[1:6]), source=source)
            if isinstance(result, Rejection):
                self._monitor.reject(result)
            elif self._monitor.admit(result, source=source):
                accepted.append(result)
        return accepted

    def _advance(self, symbol: str, open_ms: int) -> None:
        self._cursors[symbol] = max(self._cursors[symbol], open_ms + self._step_ms)

    def _plan_next_poll(self) -> datetime:
        """When the earliest next candle is due, but not sooner than one poll interval from now."""
        due_ms = min(self._cursors.values()) + self._step_ms + round(self._settings.publish_delay_seconds * 1000)
        soonest = self._clock.now() + timedelta(seconds=self._settings.poll_interval_seconds)
        return max(utc_from_ms(due_ms), soonest)

    async def _call(self, what: str, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``function(*args)``, retrying transient errors with backoff; ``MarketDataError`` when it gives up."""
        settings = self._settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.max_attempts),
            wait=wait_exponential_jitter(
                initial=settings.retry_initial_seconds,
                max=settings.retry_max_seconds,
                jitter=settings.retry_initial_seconds,
            ),
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            sleep=self._pause,
            before_sleep=lambda state: self._log_retry(what, state),
            reraise=True,
        )
        try:
            return await retrying(self._attempt, function, *args)
        except TRANSIENT_ERRORS as exc:
            raise MarketDataError(
                f"{self._name}: {what} failed after {settings.max_attempts} attempts: {_brief(exc)}"
            ) from exc
        except ccxt_async.BaseError as exc:
            raise MarketDataError(f"{self._name}: {what} failed: {_brief(exc)}") from exc

    async def _attempt(self, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        try:
            return await function(*args)
        except ccxt_async.BaseError as exc:
            if self._closing.is_set():
                raise FeedClosed from exc
            self._monitor.failed_requests += 1
            raise

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` through the injected sleep; raises ``FeedClosed`` if ``aclose()`` comes first."""
        if seconds > 0 and not self._closing.is_set():
            sleeper = asyncio.ensure_future(self._sleep(seconds))
            closer = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait({sleeper, closer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                closer.cancel()
                await asyncio.gather(sleeper, closer, return_exceptions=True)
        if self._closing.is_set():
            raise FeedClosed

    def _log_retry(self, what: str, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        _log.warning(
            "exchange request failed; retrying",
            exchange=self._name,
            request=what,
            attempt=state.attempt_number,
            wait_seconds=round(state.upcoming_sleep, 3),
            error=_brief(error) if error is not None else None,
        )


def _brief(error: BaseException) -> str:
    """An exception as one line of bounded length (ccxt puts whole response bodies in its messages)."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[: _ERROR_TEXT_LIMIT - 1] + "…"
