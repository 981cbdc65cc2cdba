"""Messages that were not delivered, with why; kept in a bounded box and handed to an optional hook."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import StrEnum

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict

from triplegain.bus.message import Message

logger = structlog.get_logger(__name__)


class DeadLetterReason(StrEnum):
    EXPIRED = "expired"
    HANDLER_ERROR = "handler_error"
    FILTER_ERROR = "filter_error"
    DROPPED = "dropped"
    UNSUBSCRIBED = "unsubscribed"
    CLOSED = "closed"


class DeadLetter(BaseModel):
    """One undelivered (message, subscription) pair. ``error`` is ``"Type: text"`` when user code raised."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: Message
    subscription: str
    reason: DeadLetterReason
    at: AwareDatetime
    error: str | None = None
    traceback: str | None = None


DeadLetterHook = Callable[[DeadLetter], None]


class LogThinner:
    """Counts a repeated event and says when to log it: the 1st, 10th, 100th… time.

    A handler that fails on every message of a flood would otherwise write a log line per message; the dead
    letters keep every error, the log keeps a number of lines that grows with the logarithm of the count.
    """

    def __init__(self) -> None:
        self.count = 0
        self._next = 1

    def due(self) -> bool:
        """Count one more event; True when this one should be logged."""
        self.count += 1
        if self.count < self._next:
            return False
        self._next *= 10
        return True


class DeadLetterBox:
    """The most recent ``limit`` dead letters; older ones are evicted and counted."""

    def __init__(self, limit: int, hook: DeadLetterHook | None = None) -> None:
        self._kept: deque[DeadLetter] = deque(maxlen=limit)
        self._hook = hook
        self.evicted = 0
        self._hook_error_log = LogThinner()

    def __len__(self) -> int:
        return len(self._kept)

    def add(self, letter: DeadLetter) -> None:
        if len(self._kept) == self._kept.maxlen:
            self.evicted += 1
        self._kept.append(letter)
        if self._hook is None:
            return
        try:
            self._hook(letter)
        except BaseException as exc:  # a library's own BaseException subclass too; Ctrl-C and sys.exit() go on
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            if self._hook_error_log.due():
                logger.exception(
                    "on_dead_letter hook raised (the 1st, 10th, 100th… error of the hook is logged)",
                    message_id=str(letter.message.id),
                    subscription=letter.subscription,
                    reason=letter.reason.value,
                    error_number=self._hook_error_log.count,
                )

    @property
    def hook_errors(self) -> int:
        """How many ``hook`` calls raised."""
        return self._hook_error_log.count

    def letters(self) -> list[DeadLetter]:
        """Oldest first."""
        return list(self._kept)
