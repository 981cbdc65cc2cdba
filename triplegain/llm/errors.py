"""What can go wrong with an LLM call, one class per cause; the class name is the recorded ``error_class``.

Messages never hold an API key: providers redact them before raising, and SDK exceptions (whose requests carry
the key in their headers) are not chained.
"""

from __future__ import annotations

from triplegain.errors import TriplegainError, UserError


class LLMError(TriplegainError):
    """A call produced no usable answer."""


class LLMOutputError(LLMError):
    """The model answered, but not with JSON that validates against the answer model. ``raw_text`` is kept."""

    def __init__(self, reason: str, raw_text: str) -> None:
        self.reason = reason
        self.raw_text = raw_text
        super().__init__(reason)


class BudgetExceeded(LLMError):
    """The provider's daily budget is spent; it was skipped without a call."""


class BreakerOpen(LLMError):
    """The provider's circuit breaker is open; it was skipped without a call."""


class ProviderError(LLMError):
    """The provider failed to answer."""


class RecordedFailure(LLMError):
    """An earlier run's failure served again (``--answers-from``): ``error_class`` is the class it was recorded
    with, the message is its message."""

    def __init__(self, error_class: str, message: str) -> None:
        self.error_class = error_class
        super().__init__(message)


class AnswerNotRecorded(LLMError):
    """Re-running a run's answers, a question that run never asked, not asked of the provider either."""


def error_class_name(error: BaseException) -> str:
    """The name an error is recorded under: a served failure keeps its original class's."""
    return error.error_class if isinstance(error, RecordedFailure) else type(error).__name__


class TransientProviderError(ProviderError):
    """A failure worth another attempt: rate limit, server error, timeout, connection."""


class ProviderRateLimited(TransientProviderError):
    """429. ``retry_after`` is the server's requested wait in seconds, when it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ProviderServerError(TransientProviderError):
    """A 5xx status."""


class ProviderTimeout(TransientProviderError):
    """No answer within the provider's timeout."""


class ProviderUnreachable(TransientProviderError):
    """The connection failed (refused, reset, DNS)."""


class ProviderRejectedRequest(ProviderError):
    """A 4xx other than 429 (bad request, bad key, unknown model …): another attempt would fail the same way."""


class ProviderBadResponse(ProviderError):
    """The response was not in the provider's wire format (garbage, truncated, missing fields)."""


class MissingAPIKey(UserError):
    """The environment variable that should hold a provider's key is not set (the message names the variable)."""


class PromptTemplateError(UserError):
    """A template cannot be loaded or rendered; the message names the template and the field."""
