"""``triplegain agents``: the market's agents for every account, publishing to NATS JetStream.

    code = asyncio.run(run_agents(settings, RunOptions(source="synthetic", speed=60), os.environ, board))

In order: the feed is opened (as ``triplegain run`` opens it); what the agents may ask of LLM providers is
settled (``daemon.llm_plan``); the database is opened and migrated (views and LLM calls are stored, under no
account); NATS is connected and the deployment's stream made sure of; the agents service
(``system.agents_service``) starts and its candles and views go to the stream through the bridge's egress
(``market_data``, ``ta_signals``, ``regime_updates``, ``sentiment_updates``). Several services may run, each on
its own symbols.

Time follows the feed, as in the daemon: live (ccxt) the wall clock and the live schedule; a replay or synthetic
candles at candle time, paced by ``--speed``, where the candles of a new close time enter the bridge's outbox only
once everything published before them has (the outbox is sent in order, and sent again in order), so the stream
holds candles and views in the order a single process sees them. While NATS is unreachable, what the agents
publish waits in memory up to ``bus.nats.max_unacked_messages`` and is sent once NATS is back; past the bound the
service stops with one line, exit 75. SIGINT or SIGTERM stops it cleanly: the outbox is flushed first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack

import structlog
from pydantic import BaseModel, ConfigDict

from triplegain.bus.bridge import Egress, ensure_bus_stream
from triplegain.bus.jetstream import connect_jetstream
from triplegain.bus.message import Topic
from triplegain.config import Settings
from triplegain.daemon.outage import OUTAGE_EXIT_CODE
from triplegain.daemon.run import (
    FeedErrors,
    RunOptions,
    StopRequest,
    check_quoted,
    install_signal_handlers,
    open_feed,
    plan_for,
    remove_signal_handlers,
    run_live,
    until_stopped,
)
from triplegain.daemon.status import StatusBoard
from triplegain.errors import TriplegainError
from triplegain.market.feeds import Feed
from triplegain.store import migrate, open_database
from triplegain.system.agents_service import AgentsService, agents_service
from triplegain.system.assembly import SHARED_AGENT_TOPICS

logger = structlog.get_logger(__name__)

PUBLISHED_TOPICS = (Topic.MARKET_DATA, *SHARED_AGENT_TOPICS)


class NatsOutageStop(TriplegainError):
    """The agents service held ``bus.nats.max_unacked_messages`` that NATS never acknowledged, and stopped."""

    exit_code = OUTAGE_EXIT_CODE


class AgentsSummary(BaseModel):
    """What an agents service did, printed when it stops."""

    model_config = ConfigDict(frozen=True)

    candles: int
    published: int
    """Messages NATS acknowledged: the candles and the views."""
    duplicates: int
    """Messages sent again after an acknowledgement was lost, stored once."""
    exit_reason: str

    def lines(self) -> list[str]:
        return [
            f"candles       {self.candles:,}",
            f"published     {self.published:,} candles and views to NATS ({self.duplicates:,} sent twice, stored once)",
            f"stopped       {self.exit_reason}",
        ]


async def run_agents(
    settings: Settings, options: RunOptions, environ: Mapping[str, str], board: StatusBoard
) -> AgentsSummary:
    """Run the agents service until its replay ends or a signal arrives; what it did."""
    opened = await open_feed(settings, options)
    stop = StopRequest()
    install_signal_handlers(stop, asyncio.current_task())
    try:
        check_quoted(settings, opened.symbols)
        plan = plan_for(settings, options, environ, None)
        settings = plan.settings
        for message in plan.messages:
            board.say(message)
        nats = settings.bus.nats
        async with AsyncExitStack() as stack:
            db = await stack.enter_async_context(open_database(settings.database))
            await migrate(db)
            link = await stack.enter_async_context(connect_jetstream(nats, name="triplegain agents", environ=environ))
            await ensure_bus_stream(link, nats)
            service = await stack.enter_async_context(
                agents_service(
                    settings,
                    db,
                    clock=opened.clock,
                    symbols=opened.symbols,
                    base_timeframe=opened.timeframe,
                    replaying=options.replaying,
                    environ=environ,
                    llm_run_limit_usd=options.max_llm_usd,
                    mask_history=plan.mask_history,
                )
            )
            egress = Egress(link, service.bus, nats, PUBLISHED_TOPICS)
            await egress.start()
            board.say(
                f"agents for {', '.join(opened.symbols)} publishing to NATS {link.server}, stream {nats.stream}, "
                f"source {options.source}"
            )
            logger.info("agents service publishing", symbols=opened.symbols, server=link.server, stream=nats.stream)
            await _serve(service, egress, options, opened.feed, stop)
            if egress.overflowed.is_set():
                raise NatsOutageStop(
                    f"NATS at {link.server} did not acknowledge {egress.stats().held:,} messages held in memory "
                    f"(connection down for {egress.down_seconds():.0f} s): the bound bus.nats.max_unacked_messages = "
                    f"{nats.max_unacked_messages:,} reached; stopped: the messages held are lost"
                )
            await egress.aclose()
            stats = egress.stats()
            return AgentsSummary(
                candles=service.candles,
                published=stats.acknowledged,
                duplicates=stats.duplicates,
                exit_reason=stop.reason or ("replay finished" if options.replaying else "stopped"),
            )
    finally:
        remove_signal_handlers()
        await opened.feed.aclose()


async def _serve(service: AgentsService, egress: Egress, options: RunOptions, feed: Feed, stop: StopRequest) -> None:
    """Feed the service until the feed ends, a stop, or the egress's bound."""

    async def overflow() -> None:
        await egress.overflowed.wait()
        stop.reason = "NATS outage"
        stop.requested.set()

    watcher = asyncio.create_task(overflow())
    try:
        if options.source == "ccxt":
            await run_live(service, feed, stop, FeedErrors(feed, service.monitor))
        else:
            service.before_close = service.bus.drain
            await service.replay(until_stopped(feed, stop))
            await egress.flush()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
