"""The four agents wired to the bus: closed candles in, each agent's view published on its topic.

``run_technical``, ``run_regime``, ``run_sentiment`` and ``run_portfolio`` are the agents' tasks for one symbol.
Until the coordinator's schedule (issue 4) calls them, ``on_candle`` runs them at their default cadences in
candle time (DESIGN §5): technical when its shortest timeframe closes (every candle when that is the feed's
timeframe), regime when its timeframe closes, sentiment every 30 minutes and portfolio every hour — a cadence
counts when a candle's close crosses its boundary, so replay and live runs see the same schedule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from triplegain.agents.frames import FrameBook
from triplegain.agents.portfolio import Holdings, PortfolioAgent, PortfolioContext
from triplegain.agents.publishing import publish_output
from triplegain.agents.regime import RegimeAgent, RegimeContext
from triplegain.agents.sentiment import SentimentAgent, SentimentContext
from triplegain.agents.settings import AgentsSettings
from triplegain.agents.sources import ItemPool, build_sources
from triplegain.agents.technical import TechnicalAgent, TechnicalContext, TechnicalOutput
from triplegain.bus import MessageBus, Topic
from triplegain.clock import Clock
from triplegain.llm import LLMGateway
from triplegain.market import Candle, IndicatorSettings, Timeframe

Balances = Callable[[], Mapping[str, float]]


@dataclass(frozen=True)
class Cadence:
    """How often the slower agents run, in candle time."""

    sentiment: timedelta = timedelta(minutes=30)
    portfolio: timedelta = timedelta(hours=1)


class AgentPipeline:
    """Keeps the frames, runs the agents, publishes their views. Close it with ``aclose()``.

    ``gateways`` maps provider names to gateways; an agent whose settings name an ``llm_provider`` gets that
    one. ``balances`` (asset → quantity) feeds the portfolio agent; without it the portfolio agent does not run.
    """

    def __init__(
        self,
        settings: AgentsSettings,
        *,
        bus: MessageBus,
        clock: Clock,
        base_timeframe: Timeframe,
        indicators: IndicatorSettings | None = None,
        gateways: Mapping[str, LLMGateway] | None = None,
        balances: Balances | None = None,
        cadence: Cadence = Cadence(),
    ) -> None:
        gateways = gateways or {}

        def gateway_for(provider: str | None) -> LLMGateway | None:
            return gateways[provider] if provider is not None else None

        self._settings = settings
        self._bus = bus
        self._balances = balances
        self._cadence = cadence
        self.book = FrameBook.for_agents(base_timeframe, settings, indicators)
        self.technical = TechnicalAgent(
            settings.technical, clock=clock, gateway=gateway_for(settings.technical.llm_provider)
        )
        self.regime = RegimeAgent(settings.regime, clock=clock, gateway=gateway_for(settings.regime.llm_provider))
        self._pool = ItemPool.from_settings(settings.sentiment, build_sources(settings.sentiment.sources))
        self.sentiment = SentimentAgent(
            settings.sentiment, clock=clock, pool=self._pool, gateway=gateway_for(settings.sentiment.llm_provider)
        )
        self.portfolio = PortfolioAgent(settings.portfolio, clock=clock)
        self._last_close: dict[str, float] = {}
        self.skipped: Counter[str] = Counter()
        self._previous_close_time: dict[str, datetime] = {}

    async def on_candle(self, candle: Candle) -> None:
        """Take one closed candle and run the agents that are due for its symbol."""
        symbol = candle.symbol
        self._last_close[symbol] = candle.close
        closed = self.book.update(candle)
        if self._settings.technical.timeframes[0] in closed:
            await self.run_technical(symbol)
        if self._settings.regime.timeframe in closed:
            await self.run_regime(symbol)
        previous = self._previous_close_time.get(symbol)
        self._previous_close_time[symbol] = candle.close_time
        if _crossed(previous, candle.close_time, self._cadence.sentiment):
            await self.run_sentiment(symbol)
        if self._balances is not None and _crossed(previous, candle.close_time, self._cadence.portfolio):
            await self.run_portfolio(symbol)

    async def run_technical(self, symbol: str) -> None:
        frames = self.book.frames(symbol, self._settings.technical.timeframes)
        view = await self.technical.analyze(TechnicalContext(symbol, frames))
        await publish_output(self._bus, view, ttl=self.technical.valid_for)

    async def run_regime(self, symbol: str) -> None:
        frame = self.book.frame(symbol, self._settings.regime.timeframe)
        if frame is None:
            return
        latest = self._bus.latest(Topic.TA_SIGNALS, symbol)
        technical = latest.payload if latest is not None and isinstance(latest.payload, TechnicalOutput) else None
        view = await self.regime.analyze(RegimeContext(symbol, frame, technical=technical))
        await publish_output(self._bus, view, ttl=self.regime.valid_for)

    async def run_sentiment(self, symbol: str) -> None:
        view = await self.sentiment.analyze(SentimentContext(symbol))
        await publish_output(self._bus, view, ttl=self.sentiment.valid_for)

    async def run_portfolio(self, symbol: str) -> None:
        """Publish the portfolio view scoped to ``symbol`` — once every asset held or targeted has a price
        (a candle of ``<asset>/<quote asset>``); until then the run is skipped and counted in ``skipped``."""
        if self._balances is None:
            return
        settings = self._settings.portfolio
        prices = {}
        for market, close in self._last_close.items():
            base, _, market_quote = market.partition("/")
            if market_quote == settings.quote_asset:
                prices[base] = close
        balances = dict(self._balances())
        if (set(balances) | set(settings.target_allocation)) - {settings.quote_asset} - set(prices):
            self.skipped["portfolio: an asset has no price yet"] += 1
            return
        holdings = Holdings(balances=balances, prices=prices)
        view = await self.portfolio.analyze(PortfolioContext(symbol, holdings))
        await publish_output(self._bus, view, ttl=self.portfolio.valid_for)

    async def aclose(self) -> None:
        await self._pool.aclose()


def _crossed(previous: datetime | None, now: datetime, every: timedelta) -> bool:
    """Whether a multiple of ``every`` (counted from the Unix epoch) lies in (previous, now]."""
    step = every.total_seconds()
    if previous is None:
        return now.timestamp() % step == 0
    return previous.timestamp() // step < now.timestamp() // step
