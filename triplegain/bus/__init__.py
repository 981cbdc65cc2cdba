"""The in-process async priority message bus (its rules: docs/ARCHITECTURE.md, "The bus and its topics").

Usage::

    async with MessageBus(settings.bus, clock=clock, on_dead_letter=persist) as bus:
        sub = await bus.subscribe(Topic.TA_SIGNALS, handler, name="coordinator.ta")
        await bus.publish(bus.message(Topic.TA_SIGNALS, {"bias": "long"}, source="ta", symbol="BTC/USDT"))
        await bus.drain()
        await sub.unsubscribe()

Topics
    Payloads are frozen typed models; TTL is the topic's default (``bus.topics``), an agent's view carrying its
    own (how long it is valid). Operator commands do not travel on the bus (``coordinator_commands`` rows).

    ================= ======================= =========================== ========================== ====== ======
    topic             payload                 published by                read by                    TTL    prio
    ================= ======================= =========================== ========================== ====== ======
    market_data       market.Candle           system.TradingSystem.ingest daemon.events (progress)   120 s  normal
    ta_signals        agents.TechnicalOutput  the technical agent's task  coordinator, regime agent, view   normal
                                                                          recorder
    regime_updates    agents.RegimeOutput     the regime agent's task     coordinator, recorder      view   normal
    sentiment_updates agents.SentimentOutput  the sentiment agent's task  coordinator, recorder      view   normal
    portfolio_updates agents.PortfolioOutput  the portfolio agent's task  coordinator, recorder      view   normal
    trade_intents     model.DecisionMade      the coordinator (decide)    daemon.events              60 s   normal
    execution_events  model.OrderRow, FillRow the coordinator, the daemon daemon.events              3600 s normal
    risk_alerts       model.BreakerTripped    the coordinator (breaker)   daemon.events              300 s  urgent
    system_events     model.StateChanged,     the coordinator (commands,  daemon.events              3600 s high
                      model.LevelChanged      degradation)
    ================= ======================= =========================== ========================== ====== ======

Messages
    ``Message`` is a cheap immutable value (slots; setting a field raises, ``replace()`` makes a changed copy).
    Its payload is a frozen pydantic model (a non-frozen one is refused) or a JSON-like mapping, deep-frozen
    when the message is built (mappings become read-only views over a private copy, lists become tuples), so
    no handler can change what another one sees. ``Message.create(clock, ...)`` or ``bus.message(...)`` stamps
    ``created_at`` and a fresh random id. Building one checks only what is cheap (topic, priority, an aware
    ``created_at``, the payload, a positive ``ttl``) and raises ``ValueError`` naming the field; data from
    outside the process (JSON from the network or a file) comes in through ``Message.from_wire``, which
    validates every field with pydantic; ``to_wire()`` is that JSON form (what a dead letter stores). A
    ``ttl`` of None means the topic's ``ttl_seconds``; a message is deliverable while
    ``now < created_at + ttl``. A deadline past the last representable time is refused: a message's own
    ``ttl`` when it is built, the topic's by ``publish()``, before anything is kept or counted.

Delivery
    ``publish()`` routes a message to every active subscription of its topic whose ``filter`` (a sync
    predicate, run at publish time) accepts it, puts it in that subscription's bounded queue and returns:
    it never awaits a handler. Each subscription has one worker task that takes the highest priority first
    (URGENT > HIGH > NORMAL > LOW) and, within a priority, publish order; it calls the handler outside any
    lock, one message at a time. A handler may publish, subscribe and unsubscribe (its own subscription
    included). At delivery an expired message is not handed over but dead-lettered (``expired``; the worker
    reads ``now()`` only near the deadline, see ``bus.EXPIRY_MARGIN``); a handler that raises only costs its
    own message (dead letter ``handler_error`` with the error and traceback; the log gets the 1st, 10th,
    100th… error of each subscription) and the worker carries on, whatever it raised: an ``Exception``, a
    ``CancelledError`` of its own, or a library's own ``BaseException`` subclass. ``KeyboardInterrupt`` and
    ``SystemExit`` fail their message the same way and then propagate, so the program still stops; the worker
    stops with them and its subscription is closed (what it queued is dead-lettered ``closed``). A filter that
    raises is treated like a handler (``filter_error``). Cancelling a worker is honoured: the message in hand
    is dead-lettered (``closed``) and the cancellation propagates. Whatever stops a worker, its subscription
    is closed with it, so ``drain()`` never waits for a worker that is gone.

Full queues
    ``drop_oldest_lowest``: the oldest message of the lowest priority present, counting the incoming one, is
    dropped (a LOW arriving at a queue full of URGENT is itself dropped) and dead-lettered (``dropped``).
    ``block``: the publisher waits for room, in turn with other waiting publishers, whatever its message's
    priority. A publish made from inside a handler (or from a task a handler started) never waits: two
    handlers publishing into each other's full queues would deadlock. Such a message is admitted over the
    bound and counted in ``overflow_admitted``. A publisher waiting for room in a subscription that is
    unsubscribed meanwhile goes on to the other subscriptions; its message is dead-lettered for that one
    (``unsubscribed``).

Unsubscribe and close
    ``unsubscribe()`` stops deliveries at once and dead-letters what is queued (``unsubscribed``); a handler
    call in progress finishes on its own. ``aclose()`` refuses new publishes and subscriptions (``BusClosed``,
    also raised in publishers waiting for room), drains for up to ``close_timeout_seconds`` (a handler
    publishing meanwhile gets ``BusClosed``, which fails its message), then cancels the workers and
    dead-letters what is left (``closed``). ``drain()`` returns once every queue is empty, no handler is
    running and no publisher waits for room. Neither ``drain()`` nor ``aclose()`` may be awaited by a
    handler, or by a task it started (``asyncio.wait_for`` starts one), for it would wait for itself: that
    raises ``RuntimeError`` at once. A handler may drain another bus.

Reading
    ``latest(topic, symbol)`` is O(1): the newest message for that key, or None when it has expired.
    ``history(topic, symbol)`` is the last ``history_size`` messages for the key, expired ones included.
    ``stats()`` counts every (message, subscription) pair: ``enqueued == delivered + expired + failed +
    dropped + discarded`` (``accounted``) whenever nothing is queued or running, and always after close;
    per subscription it adds queue depth, high-water mark and delivery latency (publish to handler call,
    on the bus clock's ``monotonic()``) p50/p99/p99.9 over the last ``latency_window`` deliveries.
    ``dead_letters()`` keeps the last ``dead_letter_limit`` (evictions are counted); ``on_dead_letter`` is
    called with each one, and a hook that raises is counted and logged (1st, 10th, 100th… time), never
    propagated (but for ``KeyboardInterrupt`` and ``SystemExit``). Memory is bounded by ``BusSettings``:
    queues, history, latency windows and dead letters.
"""


from triplegain.bus.bus import BusClosed, Handler, MessageBus, MessageFilter, Subscription
from triplegain.bus.dead_letters import DeadLetter, DeadLetterHook, DeadLetterReason
from triplegain.bus.message import Message, Priority, Topic
from triplegain.bus.settings import Overflow
from triplegain.bus.stats import BusStats, Counts, LatencySummary, SubscriptionStats

__all__ = [
    "BusClosed",
    "BusStats",
    "Counts",
    "DeadLetter",
    "DeadLetterHook",
    "DeadLetterReason",
    "Handler",
    "LatencySummary",
    "Message",
    "MessageBus",
    "MessageFilter",
    "Overflow",
    "Priority",
    "Subscription",
    "SubscriptionStats",
    "Topic",
]

