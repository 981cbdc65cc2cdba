"""The four analysis agents (docs/ARCHITECTURE.md): technical, regime, sentiment and portfolio.

Every agent follows one protocol, ``Agent``: ``await agent.analyze(context) -> AgentOutput[Body]`` (concretely
``TechnicalOutput``, ``RegimeOutput``, ``SentimentOutput``, ``PortfolioOutput``). An output carries the agent,
the symbol (None only for a whole-portfolio view), the time from the injected clock, a confidence in [0, 1], a
typed frozen body, the reasoning, and the id of the LLM call that refined it, if any. Each agent computes a
deterministic baseline with a pure function (``assess_technical``, ``classify`` and ``next_regime_state``,
``assess_sentiment``, ``plan_rebalance``); ``analyze`` is a thin shell around it.

    book = FrameBook.for_agents(Timeframe.M5, settings.agents, settings.market.indicators)
    closed = book.update(candle)                  # per closed 5m candle of any symbol: the timeframes it closed
    ta = TechnicalAgent(settings.agents.technical, clock=clock)    # gateway=… when llm_provider is set
    output = await ta.analyze(TechnicalContext(symbol, book.frames(symbol, settings.agents.technical.timeframes)))
    await publish_output(bus, output, ttl=ta.valid_for)            # triplegain.agents.publishing: ta_signals

    regime_agent.analyze(RegimeContext(symbol, book.frame(symbol, tf), technical=latest_ta_of_symbol))
    pool = ItemPool.from_settings(sentiment_settings, build_sources(sentiment_settings.sources))  # aclose() at exit
    sentiment_agent.analyze(SentimentContext(symbol))              # reads the shared pool at the clock's now
    portfolio_agent.analyze(PortfolioContext(symbol, Holdings(balances=…, prices=…)))

LLM refinement: when an agent's ``llm_provider`` is set, it must be given that provider's gateway (a missing or
different one is refused at construction). The baseline goes to the LLM through the templates
``prompts/<purpose>_system.txt`` and ``_user.txt`` (purposes ``technical_refinement``, ``regime_refinement``,
``sentiment_refinement``), and the answer must validate against the agent's answer model, whose bounds are the
body's. A failed or invalid answer leaves the baseline standing and the reasoning says why; the gateway's call
log holds every attempt (joined to the output by ``served_id`` = output id). Headlines reach a prompt only inside
``data_block``. ``AGENT_OFFLINE_RULES`` answer those purposes for the offline provider. A context's
``allow_llm`` False skips the refinement (for degraded modes). The portfolio agent has no refinement: its view is
arithmetic.

``publish_output`` and ``AGENT_TOPICS`` are in ``triplegain.agents.publishing``.

Scoping: every context names one symbol and agents refuse inputs of another (frames, a TA view); the regime
agent's hysteresis state is per symbol.
"""


from triplegain.agents.base import Agent, AgentOutput, Baseline, bias_of
from triplegain.agents.frames import CandleAggregator, Frame, FrameBook
from triplegain.agents.lexicon import LexiconScore, lexicon_score
from triplegain.agents.offline_rules import AGENT_OFFLINE_RULES
from triplegain.agents.portfolio import (
    Holdings,
    PortfolioAgent,
    PortfolioContext,
    PortfolioOutput,
    PortfolioView,
    Position,
    Proposal,
    Skipped,
    assess_portfolio,
    plan_rebalance,
    scope_to_symbol,
)
from triplegain.agents.refinement import RefinementPrompts
from triplegain.agents.regime import (
    RegimeAgent,
    RegimeContext,
    RegimeMeasures,
    RegimeOutput,
    RegimeRefinement,
    RegimeState,
    RegimeView,
    classify,
    next_regime_state,
    regime_measures,
)
from triplegain.agents.sentiment import (
    Driver,
    SentimentAgent,
    SentimentContext,
    SentimentOutput,
    SentimentRefinement,
    SentimentView,
    assess_sentiment,
    score_items,
)
from triplegain.agents.settings import (
    AgentsSettings,
    FeedSourceSettings,
    PortfolioSettings,
    RegimeSettings,
    ReplaySourceSettings,
    SentimentSettings,
    TechnicalSettings,
    TechnicalWeights,
)
from triplegain.agents.sources import (
    ItemPool,
    JsonlReplaySource,
    SourceError,
    SourceFileError,
    TextItem,
    build_sources,
)
from triplegain.agents.technical import (
    Level,
    LevelKind,
    TechnicalAgent,
    TechnicalContext,
    TechnicalOutput,
    TechnicalRefinement,
    TechnicalView,
    TimeframeReading,
    assess_technical,
)

__all__ = [
    "AGENT_OFFLINE_RULES",
    "Agent",
    "AgentOutput",
    "AgentsSettings",
    "Baseline",
    "CandleAggregator",
    "Driver",
    "FeedSourceSettings",
    "Frame",
    "FrameBook",
    "Holdings",
    "ItemPool",
    "JsonlReplaySource",
    "Level",
    "LevelKind",
    "LexiconScore",
    "PortfolioAgent",
    "PortfolioContext",
    "PortfolioOutput",
    "PortfolioSettings",
    "PortfolioView",
    "Position",
    "Proposal",
    "RefinementPrompts",
    "RegimeAgent",
    "RegimeContext",
    "RegimeMeasures",
    "RegimeOutput",
    "RegimeRefinement",
    "RegimeSettings",
    "RegimeState",
    "RegimeView",
    "ReplaySourceSettings",
    "SentimentAgent",
    "SentimentContext",
    "SentimentOutput",
    "SentimentRefinement",
    "SentimentSettings",
    "SentimentView",
    "Skipped",
    "SourceError",
    "SourceFileError",
    "TechnicalAgent",
    "TechnicalContext",
    "TechnicalOutput",
    "TechnicalRefinement",
    "TechnicalSettings",
    "TechnicalView",
    "TechnicalWeights",
    "TextItem",
    "TimeframeReading",
    "assess_portfolio",
    "assess_sentiment",
    "assess_technical",
    "bias_of",
    "build_sources",
    "classify",
    "lexicon_score",
    "next_regime_state",
    "plan_rebalance",
    "regime_measures",
    "scope_to_symbol",
    "score_items",
]

