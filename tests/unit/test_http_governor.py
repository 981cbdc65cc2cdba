"""LoopShare: HTTP requests compute their answers one at a time, each followed by a rest that keeps their share of
the wall time at ``share``; requests waiting for their turn get 503 when the server stops; the stream, commands and
``/healthz`` go around it. The time a request takes is the fake clock's; its rest is recorded, not slept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from triplegain.clock import FakeClock
from triplegain.http import governor
from triplegain.http.governor import LoopShare

pytestmark = pytest.mark.timeout(10)

BUSY_SECONDS = 0.004
yield_to_loop = asyncio.sleep
"""asyncio.sleep, kept before the ``rests`` fixture replaces it where the governor looks it up."""


class App:
    """An ASGI app whose answer takes ``BUSY_SECONDS`` on the fake clock, or until ``release`` when it is given."""

    def __init__(self, clock: FakeClock, release: asyncio.Event | None = None) -> None:
        self.clock = clock
        self.release = release
        self.entered: list[str] = []
        self.computing = 0
        self.most_computing = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.entered.append(scope["path"])
        self.computing += 1
        self.most_computing = max(self.most_computing, self.computing)
        if self.release is not None:
            await self.release.wait()
        else:
            await yield_to_loop(0)  # another request gets a chance to cut in
        self.clock.advance(BUSY_SECONDS)
        self.computing -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def request(app: Any, path: str) -> int:
    """Ask ``path``; the status answered."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)
    return int(sent[0]["status"])


@pytest.fixture
def rests(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The rests the governor takes, in order (each yields to the loop instead of sleeping)."""
    taken: list[float] = []

    async def rest(seconds: float) -> None:
        taken.append(seconds)
        await yield_to_loop(0)

    monkeypatch.setattr(governor.asyncio, "sleep", rest)
    return taken


async def test_requests_compute_one_at_a_time_each_followed_by_a_rest_that_keeps_the_share(
    rests: list[float],
) -> None:
    clock = FakeClock()
    app = App(clock)
    share = LoopShare(app, share=0.02, closing=asyncio.Event(), clock=clock)

    answers = await asyncio.gather(*(request(share, f"/api/{n}") for n in range(5)))

    assert answers == [200] * 5
    assert app.most_computing == 1
    assert len(app.entered) == 5
    # Each request after the first rests 49 times the 4 ms the one before it took: 2 % of the wall time.
    assert rests == pytest.approx([BUSY_SECONDS * 49] * 4)


async def test_a_request_waiting_for_its_turn_gets_503_when_the_server_stops(rests: list[float]) -> None:
    clock = FakeClock()
    release = asyncio.Event()
    closing = asyncio.Event()
    app = App(clock, release)
    share = LoopShare(app, share=0.02, closing=closing, clock=clock)

    first = asyncio.create_task(request(share, "/api/status"))
    waiting = asyncio.create_task(request(share, "/api/decisions"))
    while not app.entered:
        await yield_to_loop(0)
    closing.set()
    assert await waiting == 503
    release.set()
    assert await first == 200
    assert app.entered == ["/api/status"]


@pytest.mark.parametrize("path", sorted(governor.UNBOUNDED_PATHS))
async def test_the_stream_commands_and_the_health_check_go_around_the_turns(path: str, rests: list[float]) -> None:
    clock = FakeClock()
    release = asyncio.Event()
    app = App(clock, release)
    share = LoopShare(app, share=0.02, closing=asyncio.Event(), clock=clock)

    holding = asyncio.create_task(request(share, "/api/status"))
    while not app.entered:
        await yield_to_loop(0)
    around = asyncio.create_task(request(share, path))
    while len(app.entered) < 2:
        await yield_to_loop(0)
    assert app.entered == ["/api/status", path]  # entered while the turn is held
    release.set()
    assert await asyncio.gather(holding, around) == [200, 200]


def test_a_share_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="share must be in"):
        LoopShare(App(FakeClock()), share=0, closing=asyncio.Event())
