"""SubscriptionQueue: priority lanes, drop policy, and the line of publishers waiting for room."""

import asyncio
from datetime import UTC, datetime

import pytest

from triplegain.bus import Message, Priority, Topic
from triplegain.bus.queue import Envelope, SubscriptionQueue

LOW, NORMAL, HIGH, URGENT = Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def envelope(name: str, priority: Priority = NORMAL) -> Envelope:
    message = Message(topic=Topic.TA_SIGNALS, source="test", payload={"name": name}, priority=priority, created_at=WHEN)
    return Envelope(message, WHEN, 0.0)


def names(queue: SubscriptionQueue) -> list[str]:
    taken = []
    while (item := queue.pop()) is not None:
        taken.append(item.message.payload["name"])  # type: ignore[index]
    return taken


def test_pops_highest_priority_first_and_fifo_within_a_priority() -> None:
    queue = SubscriptionQueue(maxsize=10)
    for name, priority in [("n1", NORMAL), ("l1", LOW), ("u1", URGENT), ("n2", NORMAL), ("h1", HIGH), ("u2", URGENT)]:
        queue.put(envelope(name, priority))
    assert (len(queue), queue.high_water) == (6, 6)
    assert names(queue) == ["u1", "u2", "h1", "n1", "n2", "l1"]
    assert (len(queue), queue.high_water, queue.pop()) == (0, 6, None)


@pytest.mark.parametrize(
    ("queued", "incoming", "dropped", "left"),
    [
        ([("l1", LOW), ("n1", NORMAL)], ("l2", LOW), "l1", ["n1", "l2"]),
        ([("l1", LOW), ("n1", NORMAL)], ("u1", URGENT), "l1", ["u1", "n1"]),
        ([("n1", NORMAL), ("h1", HIGH)], ("l1", LOW), "l1", ["h1", "n1"]),
        ([("u1", URGENT), ("u2", URGENT)], ("u3", URGENT), "u1", ["u2", "u3"]),
    ],
)
def test_drop_oldest_lowest_counts_the_incoming_message(
    queued: list[tuple[str, Priority]], incoming: tuple[str, Priority], dropped: str, left: list[str]
) -> None:
    queue = SubscriptionQueue(maxsize=2)
    for name, priority in queued:
        queue.put(envelope(name, priority))
    victim = queue.drop_oldest_lowest(envelope(*incoming))
    assert victim.message.payload["name"] == dropped  # type: ignore[index]
    assert names(queue) == left


async def join_line(queue: SubscriptionQueue) -> asyncio.Task[bool]:
    """A task waiting for room, returned once it is in line."""
    in_line = asyncio.Event()

    async def wait() -> bool:
        in_line.set()  # nothing else runs before wait_for_room() below has put it in line
        return await queue.wait_for_room()

    task = asyncio.create_task(wait())
    await in_line.wait()
    return task


def test_offer_takes_what_fits_and_refuses_the_rest() -> None:
    queue = SubscriptionQueue(maxsize=2)
    assert queue.offer(envelope("a"))
    assert queue.offer(envelope("b"))
    assert not queue.offer(envelope("c"))
    assert names(queue) == ["a", "b"]


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize must be at least 1"):
        SubscriptionQueue(maxsize=0)


async def test_waiting_publishers_are_served_in_turn_and_newcomers_queue_behind_them() -> None:
    queue = SubscriptionQueue(maxsize=1)
    queue.put(envelope("full"))
    first, second = await join_line(queue), await join_line(queue)
    assert not queue.offer(envelope("newcomer"))

    queue.pop()  # room for one: it is held for the first in line
    assert not queue.offer(envelope("newcomer"))  # a newcomer does not take it
    assert await first is True
    assert not second.done()
    queue.put(envelope("first"))
    queue.pop()
    assert await second is True


async def test_a_publisher_cancelled_after_being_given_room_passes_it_on() -> None:
    queue = SubscriptionQueue(maxsize=1)
    queue.put(envelope("full"))
    first, second = await join_line(queue), await join_line(queue)

    queue.pop()  # hands the room to `first`...
    first.cancel()  # ...which is cancelled before it can use it
    assert await second is True
    assert first.cancelled()


async def test_close_hands_back_the_queue_and_releases_everyone() -> None:
    queue = SubscriptionQueue(maxsize=1)
    queue.put(envelope("queued"))
    waiting = await join_line(queue)

    left = queue.close()

    assert [item.message.payload["name"] for item in left] == ["queued"]  # type: ignore[index]
    assert await waiting is False
    assert len(queue) == 0
    await queue.wait_for_item()  # a closed queue never makes its consumer wait
