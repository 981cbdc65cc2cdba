"""Dead letters: bounded, evictions counted, each one handed to on_dead_letter (whose failure is contained)."""

import pytest
from structlog.testing import capture_logs

from triplegain.bus import BusClosed, DeadLetter, DeadLetterReason, Message, MessageBus, Topic
from triplegain.bus.dead_letters import LogThinner
from triplegain.bus.settings import BusSettings
from triplegain.clock import FakeClock
from triplegain.errors import TriplegainError


async def failing(message: Message) -> None:
    raise ValueError(f"bad {message.payload['n']}")  # type: ignore[index]


async def test_dead_letters_are_bounded_and_evictions_counted() -> None:
    clock = FakeClock()
    seen: list[DeadLetter] = []
    async with MessageBus(BusSettings(dead_letter_limit=3), clock=clock, on_dead_letter=seen.append) as bus:
        await bus.subscribe(Topic.TA_SIGNALS, failing, name="failing")
        for n in range(5):
            await bus.publish(bus.message(Topic.TA_SIGNALS, {"n": n}, source="t"))
        await bus.drain()

        kept = bus.dead_letters()
        assert [letter.error for letter in kept] == ["ValueError: bad 2", "ValueError: bad 3", "ValueError: bad 4"]
        assert [letter.error for letter in seen] == [f"ValueError: bad {n}" for n in range(5)]
        stats = bus.stats()
        assert (stats.failed, stats.dead_letters_kept, stats.dead_letters_evicted) == (5, 3, 2)


class Boom(BaseException):
    """A library's own base class of errors: neither an Exception nor a cancellation."""


@pytest.mark.parametrize("error", [OSError("disk full"), Boom("from a library")])
async def test_a_raising_hook_is_counted_and_logged_and_the_bus_carries_on(error: BaseException) -> None:
    def broken_hook(letter: DeadLetter) -> None:
        raise error

    clock = FakeClock()
    delivered: list[Message] = []

    async def healthy(message: Message) -> None:
        delivered.append(message)

    async with MessageBus(clock=clock, on_dead_letter=broken_hook) as bus:
        await bus.subscribe(Topic.TA_SIGNALS, failing, name="failing")
        await bus.subscribe(Topic.TA_SIGNALS, healthy, name="healthy")
        with capture_logs() as logs:
            for n in range(3):
                await bus.publish(bus.message(Topic.TA_SIGNALS, {"n": n}, source="t"))
            await bus.drain()

        stats = bus.stats()
        assert (stats.dead_letter_hook_errors, stats.dead_letters_kept, len(delivered)) == (3, 3, 3)
        hook_records = [entry for entry in logs if entry["event"].startswith("on_dead_letter hook raised")]
        assert len(hook_records) == 1  # the 1st of 3: then the 10th, 100th… (LogThinner)
        assert hook_records[0]["exc_info"] is True
        assert hook_records[0]["log_level"] == "error"


async def test_dead_letter_is_serialisable_for_persistence() -> None:
    clock = FakeClock()
    async with MessageBus(clock=clock) as bus:
        await bus.subscribe(Topic.TA_SIGNALS, failing, name="failing")
        await bus.publish(bus.message(Topic.TA_SIGNALS, {"n": 1}, source="t", symbol="BTC"))
        await bus.drain()

        letter = bus.dead_letters()[0]
        again = DeadLetter.model_validate_json(letter.model_dump_json())
        assert again == letter
        assert (again.reason, again.subscription, again.message.symbol) == (
            DeadLetterReason.HANDLER_ERROR,
            "failing",
            "BTC",
        )


async def test_subscription_names_are_unique_and_maxsize_positive() -> None:
    async with MessageBus(clock=FakeClock()) as bus:
        await bus.subscribe(Topic.TA_SIGNALS, failing, name="one")
        with pytest.raises(ValueError, match="'one' is already active"):
            await bus.subscribe(Topic.REGIME_UPDATES, failing, name="one")
        with pytest.raises(ValueError, match="maxsize must be at least 1"):
            await bus.subscribe(Topic.REGIME_UPDATES, failing, name="two", maxsize=0)
    assert issubclass(BusClosed, TriplegainError)


def test_log_thinner_says_when_the_1st_10th_100th_time_happens() -> None:
    thinner = LogThinner()
    logged = [count for count in range(1, 2_001) if thinner.due()]
    assert logged == [1, 10, 100, 1000]
    assert thinner.count == 2_000
