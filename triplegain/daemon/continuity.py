"""Whether a replay carries on from what its account has already processed, or would silently do nothing.

The paper broker skips every candle at or before the last one it processed of a symbol (``broker_marks``), so a
replay whose candles start before the time its account has reached would mostly (or entirely) be skipped, with a
position left open at prices of other data. That is refused at start, naming the account, the time it reached
and what to do. A replay that holds the very candle the account processed last (same symbol, open time and close)
is the same data run again — a restart after a stop or a crash — and goes on: the broker skips what it already
processed and continues from there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC

from triplegain.errors import UserError
from triplegain.market import Candle
from triplegain.market.feeds import Feed
from triplegain.model import MarkRow


class AccountAhead(UserError):
    """The account has processed candles past the start of this replay, and the replay is other data."""


async def check_continuity(
    account: str, marks: Sequence[MarkRow], first: Candle, candles_again: Callable[[], Awaitable[Feed]]
) -> str | None:
    """Refuse (``AccountAhead``) a replay starting with ``first`` on ``account`` whose ``marks`` are later,
    unless the replay holds the candle of a mark; a line to say when it carries on from there (None when it
    starts after). ``candles_again`` opens the replay afresh, from its first candle, as fast as possible; it is
    read only as far as the latest mark."""
    if not marks:
        return None
    reached = max(mark.candle_open_time for mark in marks)
    if first.open_time > reached:
        return None
    shown = f"{reached.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    last_processed = {(mark.symbol, mark.candle_open_time): mark.price for mark in marks}
    feed = await candles_again()
    try:
        async for candle in feed:
            if candle.open_time > reached:
                break
            if last_processed.get((candle.symbol, candle.open_time)) == candle.close:
                return (
                    f"account {account!r} has processed these candles up to {shown} already: carrying on from there"
                )
    finally:
        await feed.aclose()
    raise AccountAhead(
        f"account {account!r} has already processed candles up to {shown}, and "
        f"this replay starts at {first.open_time.astimezone(UTC):%Y-%m-%d %H:%M} UTC with other candles: it would "
        f"skip them. Run it on another account (--account NAME), or start this one afresh (triplegain account "
        f"reset {account} --yes)"
    )
