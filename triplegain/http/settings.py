"""Settings of the daemon's HTTP surface (``triplegain run --http HOST:PORT`` turns it on for one run)."""

from __future__ import annotations

from pydantic import Field

from triplegain.section import Section


class HttpSettings(Section):
    """The REST API, the dashboard, ``/healthz`` and ``/metrics``, served inside the daemon. Off by default; the
    bearer token comes from ``TRIPLEGAIN_HTTP_TOKEN`` only, and without one only a loopback address is allowed."""

    enabled: bool = Field(default=False, description="serve HTTP while the daemon runs")
    host: str = Field(default="127.0.0.1", min_length=1, description="address to listen on")
    port: int = Field(default=8080, ge=0, le=65535, description="port to listen on (0: any free port, logged)")
    stream_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often the dashboard's live stream sends the status"
    )
    feed_stale_seconds: float = Field(
        default=900.0, gt=0, description="/healthz answers 503 once no candle was taken in for this long (wall time)"
    )
    max_loop_share: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description=(
            "most of the daemon's event loop HTTP requests may take (wall time, one request at a time); under a "
            "flood, requests wait instead of delaying trading (0.02: a 2 ms answer, then 98 ms before the next)"
        ),
    )
    status_max_age_seconds: float = Field(
        default=0.2, ge=0, le=10, description="how long a snapshot of the daemon's status is reused by requests"
    )
    max_database_reads: int = Field(
        default=2,
        ge=1,
        le=20,
        description="requests reading the database at once; more wait, so HTTP never takes the daemon's connections",
    )
