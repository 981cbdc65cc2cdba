"""unless_set: the awaited thing's outcome when it comes first; cancelled, its cancellation finished, when the stop
or the time limit comes first."""

from __future__ import annotations

import asyncio

import pytest

from triplegain.waiting import unless_set

pytestmark = pytest.mark.timeout(10)


async def test_what_finishes_first_gives_its_result_or_its_error() -> None:
    stop = asyncio.Event()
    queue: asyncio.Queue[str] = asyncio.Queue()
    queue.put_nowait("item")

    assert (await unless_set(queue.get(), stop)).result() == "item"

    async def failing() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        (await unless_set(failing(), stop)).result()


async def test_a_stop_first_cancels_the_wait_and_lets_it_clean_up() -> None:
    stop = asyncio.Event()
    started, cleaned_up = asyncio.Event(), asyncio.Event()

    async def never() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.set()

    waiting = asyncio.create_task(unless_set(never(), stop))
    await started.wait()
    stop.set()
    outcome = await waiting
    assert outcome.cancelled()
    assert cleaned_up.is_set()


async def test_the_time_limit_cancels_the_wait_and_an_item_put_later_stays_queued() -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()

    assert (await unless_set(queue.get(), asyncio.Event(), give_up_after=0.01)).cancelled()
    queue.put_nowait("later")
    assert queue.get_nowait() == "later"
