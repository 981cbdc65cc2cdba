"""structlog set-up: readable lines on a terminal, or one JSON object per line, always on stderr."""

from __future__ import annotations

import logging
import sys

import structlog

from triplegain.config import LoggingConfig

# Libraries that narrate routine work at INFO (pgserver: socket paths, every pg_ctl call).
_CHATTY_LIBRARIES = ("pgserver", "asyncio", "httpx", "ccxt", "apscheduler")


def configure_logging(config: LoggingConfig) -> None:
    """Route structlog (and the standard library's loggers, e.g. asyncio's) to stderr at ``config.level``."""
    level = logging.getLevelName(config.level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if config.format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for chatty in _CHATTY_LIBRARIES:
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
