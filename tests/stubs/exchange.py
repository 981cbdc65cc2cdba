"""A local HTTP server that answers like Kraken's public REST API, as far as ccxt's kraken needs it for candles.

Endpoints (the wire format of ccxt's ``kraken.fetch_currencies``, ``fetch_markets`` and ``fetch_ohlcv``):

- ``GET /0/public/Assets`` and ``GET /0/public/AssetPairs``: a few assets and pairs, enough for ``load_markets``.
- ``GET /0/public/OHLC?pair=XXBTZUSD&interval=5&since=<seconds>``: ``{"error": [], "result": {"XXBTZUSD":
  [[time_s, "open", "high", "low", "close", "vwap", "volume", count], ...], "last": time_s}}`` — candles that
  opened after ``since`` and by the stub's clock's now, at most 720, the last one still forming (its values are
  partial, as on the real exchange).

The stub's time is a ``Clock`` (a test's ``FakeClock``), so a test moves the "exchange" forward in time. Scripted
failures (an HTTP status, or a hang until the stub closes) answer the next OHLC requests.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from triplegain.clock import Clock

MAX_ROWS = 720
HANG: Literal["hang"] = "hang"


@dataclass(frozen=True)
class StubCandle:
    open_time_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class StubPair:
    pair_id: str
    altname: str
    wsname: str
    base: str
    quote: str


PAIRS = {
    "BTC/USD": StubPair("XXBTZUSD", "XBTUSD", "XBT/USD", "XXBT", "ZUSD"),
    "ETH/USD": StubPair("XETHZUSD", "ETHUSD", "ETH/USD", "XETH", "ZUSD"),
}
ASSETS = {
    "XXBT": {"aclass": "currency", "altname": "XBT", "decimals": 10, "display_decimals": 5, "status": "enabled"},
    "XETH": {"aclass": "currency", "altname": "ETH", "decimals": 10, "display_decimals": 5, "status": "enabled"},
    "ZUSD": {"aclass": "currency", "altname": "USD", "decimals": 4, "display_decimals": 2, "status": "enabled"},
}


class KrakenStub:
    """The server; ``async with KrakenStub(clock) as stub`` starts it on 127.0.0.1 at ``stub.url``."""

    def __init__(self, clock: Clock, *, interval_minutes: int = 5) -> None:
        self._clock = clock
        self._interval_s = interval_minutes * 60
        self._candles: dict[str, list[StubCandle]] = {}
        self._failures: deque[tuple[str | None, int | Literal["hang"]]] = deque()
        self._release = asyncio.Event()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.url = ""
        app = web.Application()
        app.router.add_get("/0/public/Assets", self._assets)
        app.router.add_get("/0/public/AssetPairs", self._asset_pairs)
        app.router.add_get("/0/public/OHLC", self._ohlc)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)

    async def __aenter__(self) -> KrakenStub:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._release.set()
        await self._runner.cleanup()

    def set_candles(self, symbol: str, candles: list[StubCandle], *, in_time_order: bool = True) -> None:
        """The full history of ``symbol``; requests see the part that has opened by the clock's now.

        ``in_time_order`` False serves the rows in the order given (out of order, repeated), as a faulty
        exchange might."""
        rows = sorted(candles, key=lambda candle: candle.open_time_s) if in_time_order else list(candles)
        self._candles[PAIRS[symbol].pair_id] = rows

    def fail_next(self, *failures: int | Literal["hang"], symbol: str | None = None) -> None:
        """Answer the next OHLC requests (for ``symbol`` only, if given) with these HTTP statuses, or ``HANG``
        (no answer until the stub closes)."""
        pair = PAIRS[symbol].pair_id if symbol is not None else None
        self._failures.extend((pair, failure) for failure in failures)

    def ohlc_requests(self) -> list[dict[str, str]]:
        return [query for path, query in self.requests if path.endswith("/OHLC")]

    async def _assets(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.json_response({"error": [], "result": ASSETS})

    async def _asset_pairs(self, request: web.Request) -> web.Response:
        self._record(request)
        result = {
            pair.pair_id: {
                "altname": pair.altname,
                "wsname": pair.wsname,
                "aclass_base": "currency",
                "base": pair.base,
                "aclass_quote": "currency",
                "quote": pair.quote,
                "lot": "unit",
                "pair_decimals": 1,
                "lot_decimals": 8,
                "lot_multiplier": 1,
                "leverage_buy": [],
                "leverage_sell": [],
                "fees": [[0, 0.26]],
                "fees_maker": [[0, 0.16]],
                "fee_volume_currency": "ZUSD",
                "margin_call": 80,
                "margin_stop": 40,
                "ordermin": "0.0001",
                "costmin": "0.5",
                "status": "online",
            }
            for pair in PAIRS.values()
        }
        return web.json_response({"error": [], "result": result})

    async def _ohlc(self, request: web.Request) -> web.Response:
        query = self._record(request)
        pair = query.get("pair", "")
        if self._failures and self._failures[0][0] in (None, pair):
            _, failure = self._failures.popleft()
            if failure == HANG:
                await self._release.wait()
                return web.Response(status=503, text="released")
            return web.Response(status=failure, text=f"scripted failure {failure}")
        if pair not in self._candles or int(query.get("interval", "0")) * 60 != self._interval_s:
            return web.json_response({"error": ["EQuery:Unknown asset pair"]})
        now_s = int(self._clock.now().timestamp())
        since_s = int(query.get("since", "0"))
        visible = [c for c in self._candles[pair] if since_s < c.open_time_s <= now_s][-MAX_ROWS:]
        rows = [self._row(candle, forming=candle.open_time_s + self._interval_s > now_s) for candle in visible]
        last = max((candle.open_time_s for candle in visible), default=since_s)
        return web.json_response({"error": [], "result": {pair: rows, "last": last}})

    def _record(self, request: web.Request) -> dict[str, str]:
        query = dict(request.query)
        self.requests.append((request.path, query))
        return query

    @staticmethod
    def _row(candle: StubCandle, *, forming: bool) -> list[Any]:
        """A Kraken OHLC row; a forming candle shows only its opening trade, as early in a period."""
        if forming:
            prices = [candle.open] * 4
            volume, count = 0.0, 0
        else:
            prices = [candle.open, candle.high, candle.low, candle.close]
            volume, count = candle.volume, 10
        vwap = sum(prices) / 4
        return [candle.open_time_s, *(f"{price:.5f}" for price in prices), f"{vwap:.5f}", f"{volume:.8f}", count]
