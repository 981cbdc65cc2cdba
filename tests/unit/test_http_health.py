"""``/healthz``'s verdict: healthy while the database and the feed are there, else the reason."""

from __future__ import annotations

from tests.http.live_status import status
from triplegain.http.app import unhealthy_reason


def test_healthy_unless_the_database_or_the_feed_is_gone() -> None:
    live = status()
    assert unhealthy_reason(live, feed_stale_seconds=60) is None
    assert unhealthy_reason(live.model_copy(update={"state": "PAUSED"}), feed_stale_seconds=60) is None
    gone = live.model_copy(update={"database_ok": False, "database": "OUTAGE for 12 s, 40 rows held"})
    assert unhealthy_reason(gone, feed_stale_seconds=60) == "database: OUTAGE for 12 s, 40 rows held"
    stale = live.model_copy(update={"feed_staleness_seconds": 61.0})
    assert unhealthy_reason(stale, feed_stale_seconds=60) == "feed: no candle for 61 s"
    assert unhealthy_reason(live.model_copy(update={"feed_staleness_seconds": None}), feed_stale_seconds=60) is None
