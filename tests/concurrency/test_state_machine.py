"""Stateful property test: random publish / subscribe / unsubscribe / advance / drain against a reference model.

Every handler records the message it is called with and then waits on a shared gate that only ``drain`` opens.
So between drains each busy subscription holds exactly one message "in hand" and queues the rest, and a drain
delivers them in an order the model can predict exactly: the one in hand, then the queue by priority (highest
first) and publish order, skipping those expired at that moment.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tests.concurrency.helpers import bus_config, topic_settings
from triplegain.bus import DeadLetterReason, Message, MessageBus, Overflow, Priority, Subscription, Topic
from triplegain.clock import FakeClock

pytestmark = pytest.mark.timeout(60)

TOPICS = {
    Topic.TA_SIGNALS: topic_settings(ttl_seconds=30, maxsize=1000),
    Topic.MARKET_DATA: topic_settings(ttl_seconds=10, overflow=Overflow.DROP_OLDEST_LOWEST, maxsize=1000),
}
HISTORY_SIZE = 3
STEP_TIMEOUT_SECONDS = 5
FILTERS: dict[str, Callable[[Message], bool] | None] = {
    "all": None,
    "high-and-up": lambda message: message.priority >= Priority.HIGH,
    "btc": lambda message: message.symbol == "BTC",
}


@dataclass
class ModelMessage:
    message: Message
    seq: int
    expires_at: datetime

    @property
    def id(self) -> UUID:
        return self.message.id


@dataclass
class ModelSubscription:
    name: str
    topic: Topic
    filter_name: str
    maxsize: int
    real: Subscription
    calls: list[UUID] = field(default_factory=list)  # what the handler was called with, in order
    in_hand: ModelMessage | None = None
    queue: list[ModelMessage] = field(default_factory=list)
    active: bool = True

    def accepts(self, message: Message) -> bool:
        predicate = FILTERS[self.filter_name]
        return predicate is None or predicate(message)


class BusMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.bus = MessageBus(
            bus_config(
                history_size=HISTORY_SIZE,
                ta_signals=TOPICS[Topic.TA_SIGNALS],
                market_data=TOPICS[Topic.MARKET_DATA],
            ),
            clock=self.clock,
        )
        self.gate = asyncio.Event()
        self.entered: dict[str, asyncio.Event] = {}
        self.calls: dict[str, list[UUID]] = {}
        self.subscriptions: list[ModelSubscription] = []
        self.names = itertools.count()
        self.seq = itertools.count()
        self.published = 0
        self.dead: Counter[tuple[UUID, str, DeadLetterReason]] = Counter()
        self.delivered = 0
        self.history: dict[tuple[Topic, str | None], list[ModelMessage]] = {}

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run one step on this machine's loop; a step that does not finish is a deadlock, reported as such."""

        async def bounded() -> Any:
            async with asyncio.timeout(STEP_TIMEOUT_SECONDS):
                return await coroutine

        return self.loop.run_until_complete(bounded())

    def active(self) -> list[ModelSubscription]:
        return [sub for sub in self.subscriptions if sub.active]

    def handler(self, name: str) -> Callable[[Message], Coroutine[Any, Any, None]]:
        calls = self.calls[name] = []
        entered = self.entered[name] = asyncio.Event()

        async def held(message: Message) -> None:
            calls.append(message.id)
            entered.set()
            await self.gate.wait()  # the gate of the moment: drain replaces it

        return held

    @precondition(lambda self: len(self.active()) < 5)
    @rule(
        topic=st.sampled_from(list(TOPICS)),
        filter_name=st.sampled_from(list(FILTERS)),
        maxsize=st.sampled_from([1, 2, 3, None]),
    )
    def subscribe(self, topic: Topic, filter_name: str, maxsize: int | None) -> None:
        name = f"sub-{next(self.names)}"
        if topic is not Topic.MARKET_DATA:
            maxsize = None  # a small block queue would make the publishing step wait for the next drain
        real = self.run(
            self.bus.subscribe(topic, self.handler(name), name=name, filter=FILTERS[filter_name], maxsize=maxsize)
        )
        limit = maxsize or TOPICS[topic].maxsize
        assert limit is not None
        self.subscriptions.append(ModelSubscription(name, topic, filter_name, limit, real))

    @rule(
        topic=st.sampled_from(list(TOPICS)),
        priority=st.sampled_from(list(Priority)),
        symbol=st.sampled_from(["BTC", "ETH", None]),
        ttl=st.sampled_from([None, 3, 10]),
    )
    def publish(self, topic: Topic, priority: Priority, symbol: str | None, ttl: int | None) -> None:
        message = self.bus.message(
            topic,
            {"n": self.published},
            source="model",
            priority=priority,
            symbol=symbol,
            ttl=None if ttl is None else timedelta(seconds=ttl),
        )
        default_ttl = timedelta(seconds=TOPICS[topic].ttl_seconds)
        model = ModelMessage(message, next(self.seq), message.expires_at(default_ttl))
        self.published += 1
        kept = self.history.setdefault((topic, symbol), [])
        kept[:] = [*kept, model][-HISTORY_SIZE:]
        takers = []
        for sub in self.active():
            if sub.topic is not topic or not sub.accepts(message):
                continue
            if sub.in_hand is None:
                sub.in_hand = model
                sub.calls.append(model.id)
                takers.append(sub.name)
                continue
            sub.queue.append(model)
            if len(sub.queue) > sub.maxsize:
                victim = min(sub.queue, key=lambda queued: (queued.message.priority, queued.seq))
                sub.queue.remove(victim)
                self.dead[(victim.id, sub.name, DeadLetterReason.DROPPED)] += 1

        async def publish_and_wait_for_takers() -> None:
            await self.bus.publish(message)
            for name in takers:  # an idle worker takes its first message straight away
                await self.entered[name].wait()

        self.run(publish_and_wait_for_takers())

    @rule(seconds=st.sampled_from([1, 3, 10]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.active())
    @rule(data=st.data())
    def unsubscribe(self, data: st.DataObject) -> None:
        sub = data.draw(st.sampled_from(self.active()))
        self.run(sub.real.unsubscribe())
        sub.active = False
        for queued in sub.queue:
            self.dead[(queued.id, sub.name, DeadLetterReason.UNSUBSCRIBED)] += 1
        sub.queue.clear()

    @rule()
    def drain(self) -> None:
        now = self.clock.now()
        for sub in self.subscriptions:
            if sub.in_hand is not None:
                self.delivered += 1
                sub.in_hand = None
            for queued in sorted(sub.queue, key=lambda queued: (-queued.message.priority, queued.seq)):
                if now >= queued.expires_at:
                    self.dead[(queued.id, sub.name, DeadLetterReason.EXPIRED)] += 1
                else:
                    sub.calls.append(queued.id)
                    self.delivered += 1
            sub.queue.clear()
        self.gate.set()
        self.run(self.bus.drain())
        self.gate = asyncio.Event()
        for entered in self.entered.values():
            entered.clear()
        for sub in self.subscriptions:
            assert self.calls[sub.name] == sub.calls, sub.name

    @invariant()
    def counts_match_the_model(self) -> None:
        stats = self.bus.stats()
        in_flight = sum(len(sub.queue) + (sub.in_hand is not None) for sub in self.subscriptions)
        assert stats.published == self.published
        assert stats.delivered == self.delivered
        assert stats.enqueued == stats.accounted + in_flight
        assert stats.expired == sum(n for (_, _, why), n in self.dead.items() if why is DeadLetterReason.EXPIRED)
        assert stats.dropped == sum(n for (_, _, why), n in self.dead.items() if why is DeadLetterReason.DROPPED)
        assert stats.failed == 0
        depths = {sub.name: (sub.depth, sub.running) for sub in stats.subscriptions}
        assert depths == {sub.name: (len(sub.queue), sub.in_hand is not None) for sub in self.active()}
        letters = Counter((letter.message.id, letter.subscription, letter.reason) for letter in self.bus.dead_letters())
        assert letters == self.dead

    @invariant()
    def latest_and_history_match_the_model(self) -> None:
        now = self.clock.now()
        for (topic, symbol), kept in self.history.items():
            assert [message.id for message in self.bus.history(topic, symbol)] == [model.id for model in kept]
            newest = kept[-1]
            latest = self.bus.latest(topic, symbol)
            assert (latest.id if latest else None) == (newest.id if now < newest.expires_at else None)

    def teardown(self) -> None:
        try:
            self.gate.set()
            self.run(self.bus.aclose())
            stats = self.bus.stats()
            assert stats.enqueued == stats.accounted
        finally:
            self.loop.close()


def test_bus_matches_its_model() -> None:
    run_state_machine_as_test(
        BusMachine,
        settings=settings(
            max_examples=300,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
