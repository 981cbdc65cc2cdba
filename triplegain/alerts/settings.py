"""Settings of the alerts: where they are sent (``alerts.webhooks``), how hard delivery tries, and for how long.

A webhook's URL may carry a secret (a Telegram bot's token is in its path): it is held as a ``SecretStr``, so it
shows as ``**********`` in a repr, a dump and the settings' digest; the alerts store and log only its scheme and
host (``alerts.webhooks.redacted``). Set it from the environment, ``TRIPLEGAIN_ALERTS__WEBHOOKS``, rather than in a
file.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr

from triplegain.section import Section


def _check_webhook(url: SecretStr) -> SecretStr:
    """An absolute http(s) URL with a host; the message never repeats the URL (it may hold a token)."""
    text = url.get_secret_value()
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ValueError("not a URL: an http:// or https:// URL is allowed") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("an http:// or https:// URL is allowed")
    if not parts.hostname or any(character.isspace() for character in text):
        raise ValueError("an http(s) URL with a host and no spaces is allowed")
    return url


def _one_or_many(value: object) -> object:
    """URLs given as one text are separated by white space (``TRIPLEGAIN_ALERTS__WEBHOOKS="https://… https://…"``:
    in YAML's ``[…]`` a URL needs quotes)."""
    return value.split() if isinstance(value, str) else value


Webhook = Annotated[SecretStr, AfterValidator(_check_webhook)]


class AlertsRetrySettings(Section):
    """Each webhook's POST is tried again after a connection error, a timeout, a 408, a 429 or a 5xx."""

    max_attempts: int = Field(default=5, ge=1, description="attempts per alert and webhook, the first one included")
    backoff_initial_seconds: float = Field(
        default=1.0, ge=0, description="wait before the second attempt; doubles for each further attempt"
    )
    backoff_max_seconds: float = Field(default=30.0, ge=0, description="longest wait between two attempts")


class AlertsSettings(Section):
    """Messages to the operator on a breaker trip, a halt, a level change to LIMITED or EMERGENCY, a database
    outage and its end, and the daemon's stop: one JSON POST to each webhook (README, "Alerts")."""

    webhooks: Annotated[tuple[Webhook, ...], BeforeValidator(_one_or_many)] = Field(
        default=(),
        description=(
            "http(s) URLs each alert is POSTed to (none: no alerts); they may hold a token, so set them with "
            "TRIPLEGAIN_ALERTS__WEBHOOKS rather than in a file; only their scheme and host are logged and stored"
        ),
    )
    timeout_seconds: float = Field(default=10.0, gt=0, description="one POST's limit, from connecting to the answer")
    retry: AlertsRetrySettings = Field(default_factory=AlertsRetrySettings, description="retries of a failed POST")
    max_pending: int = Field(
        default=100,
        ge=1,
        description=(
            "alerts waiting for one webhook; one more is not sent but stored as dropped (a webhook that is down "
            "never holds trading up)"
        ),
    )
    stop_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description=(
            "at the daemon's stop, how long alerts still being sent may take; the rest are stored as undelivered"
        ),
    )
