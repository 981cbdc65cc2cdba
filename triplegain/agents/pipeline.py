"""The four agents wired to the bus: closed candles in, each agent's view published on its topic.

``ingest`` takes every closed candle (the frames the agents read, and the last price of each market);
``run_technical``, ``run_regime``, ``run_sentiment`` and ``run_portfolio`` are the agents' tasks for one symbol,
called by the coordinator's schedule (``triplegain.coordinator.schedule``). ``allow_llm`` False skips an agent's
optional LLM refinement, as a degraded level asks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from triplegain.agents.base import AgentOutput
from triplegain.agents.frames import FrameBook
from triplegain.agents.portfolio import Holdings, PortfolioAgent, PortfolioContext
from triplegain.agents.publishing import publish_output
from triplegain.agents.regime import RegimeAgent, RegimeContext, RegimeOutput
from triplegain.agents.sentiment import SentimentAgent, SentimentContext
from triplegain.agents.settings import AgentsSettings
from triplegain.agents.sources import ItemPool, build_sources
from triplegain.agents.technical import TechnicalAgent, TechnicalContext, TechnicalOutput
from triplegain.bus import MessageBus, Topic
from triplegain.clock import Clock
from triplegain.llm import LLMGateway
from triplegain.llm.masking import HistoryMask
from triplegain.market import Candle, IndicatorSettings, Timeframe
from triplegain.model import AgentName

Balances = Callable[[], Mapping[str, float]]


class AgentPipeline:
    """Keeps the frames, runs the agents, publishes their views. Close it with ``aclose()``.

    ``gateways`` maps provider names to gateways; an agent whose settings name an ``llm_provider`` gets that
    one. ``balances`` (asset → quantity) feeds the portfolio agent; without it the portfolio agent does not run.
    ``mask``: what the agents' prompts may show (``llm.masking``); every candle ingested anchors its symbol's
    prices there.
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
        mask: HistoryMask | None = None,
    ) -> None:
        gateways = gateways or {}
        self.mask = mask or HistoryMask.off()

        def gateway_for(provider: str | None) -> LLMGateway | None:
            return gateways[provider] if provider is not None else None

        self._settings = settings
        self._bus = bus
        self._balances = balances
        self.book = FrameBook.for_agents(base_timeframe, settings, indicators)
        self.technical = TechnicalAgent(
            settings.technical, clock=clock, gateway=gateway_for(settings.technical.llm_provider), mask=self.mask
        )
        self.regime = RegimeAgent(
            settings.regime, clock=clock, gateway=gateway_for(settings.regime.llm_provider), mask=self.mask
        )
        self._pool = ItemPool.from_settings(settings.sentiment, build_sources(settings.sentiment.sources))
        self.sentiment = SentimentAgent(
            settings.sentiment,
            clock=clock,
            pool=self._pool,
            gateway=gateway_for(settings.sentiment.llm_provider),
            mask=self.mask,
        )
        self.portfolio = PortfolioAgent(settings.portfolio, clock=clock)
        self._valid_for: dict[AgentName, timedelta] = {
            AgentName.TECHNICAL: self.technical.valid_for,
            AgentName.REGIME: self.regime.valid_for,
            AgentName.SENTIMENT: self.sentiment.valid_for,
            AgentName.PORTFOLIO: self.portfolio.valid_for,
        }
        self._last_close: dict[str, float] = {}
        self.skipped: Counter[str] = Counter()

    def ingest(self, candle: Candle) -> None:
        """Take one closed candle into the frames and the market's last price."""
        self._last_close[candle.symbol] = candle.close
        self.mask.anchor(candle.symbol, candle.close)
        self.book.update(candle)

    def last_close(self, symbol: str) -> float | None:
        """The close of the latest candle ingested for ``symbol``."""
        return self._last_close.get(symbol)

    async def run_technical(self, symbol: str, *, allow_llm: bool = True) -> None:
        frames = self.book.frames(symbol, self._settings.technical.timeframes)
        view = await self.technical.analyze(TechnicalContext(symbol, frames, allow_llm=allow_llm))
        await publish_output(self._bus, view, ttl=self.technical.valid_for)

    async def run_regime(self, symbol: str, *, allow_llm: bool = True) -> None:
        frame = self.book.frame(symbol, self._settings.regime.timeframe)
        if frame is None:
            return
        latest = self._bus.latest(Topic.TA_SIGNALS, symbol)
        technical = latest.payload if latest is not None and isinstance(latest.payload, TechnicalOutput) else None
        view = await self.regime.analyze(RegimeContext(symbol, frame, technical=technical, allow_llm=allow_llm))
        await publish_output(self._bus, view, ttl=self.regime.valid_for)

    async def run_sentiment(self, symbol: str, *, allow_llm: bool = True) -> None:
        view = await self.sentiment.analyze(SentimentContext(symbol, allow_llm=allow_llm))
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

    async def restore(self, outputs: Iterable[AgentOutput[Any]]) -> None:
        """Put the views a previous run stored back on the bus, each dated when formed so it expires as it would
        have, and the regime agent's hysteresis with them; before anything subscribes to the agents' topics, so
        they are not recorded again."""
        for output in outputs:
            if isinstance(output, RegimeOutput) and output.symbol is not None and output.body.state is not None:
                self.regime.restore(output.symbol, output.body.state)
            await publish_output(self._bus, output, ttl=self._valid_for[output.agent], as_formed=True)

    async def aclose(self) -> None:
        await self._pool.aclose()
