"""structlog set-up: readable lines on a terminal, or one JSON object per line; on stderr unless told otherwise."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog
from pydantic import Field

from triplegain.section import Section

# Libraries that narrate routine work at INFO (pgserver: socket paths, every pg_ctl call).
_CHATTY_LIBRARIES = ("pgserver", "asyncio", "httpx", "ccxt", "apscheduler")


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="least severe level written"
    )
    format: Literal["console", "json"] = Field(
        default="console", description="console (readable) or json (one object per line)"
    )


def configure_logging(config: LoggingSettings, stream: TextIO | None = None) -> None:
    """Route structlog (and the standard library's loggers, e.g. asyncio's) to ``stream`` (default stderr) at
    ``config.level``."""
    stream = stream or sys.stderr
    level = logging.getLevelName(config.level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if config.format == "json"
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=stream, format="%(levelname)s %(name)s: %(message)s", force=True)
    for chatty in _CHATTY_LIBRARIES:
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
