"""The LLM layer: ask a model a question and get back an answer validated against a pydantic model — or a
recorded failure. The LLM never has the last word: callers bound and check whatever comes back.

    gateway = build_gateway("deepseek", settings.llm, call_log=log, clock=clock)
    outcome = await gateway.complete(LLMRequest(purpose=…, system_prompt=…, user_prompt=…), MyAnswer)
    outcome.answer        # a MyAnswer, or None with outcome.error saying why
    result = await first_success([deepseek, claude], request, MyAnswer)   # the fallback chain

Providers: OpenAI-compatible servers (DeepSeek, OpenAI, Ollama) through the ``openai`` SDK, Claude through the
``anthropic`` SDK, and ``offline`` rules computed from the request's context (no network, no keys). Around each
provider the gateway applies, in order: response cache, daily and run budgets (one ``SpendLedger`` per process,
by the wall clock's UTC day), circuit breaker, retries with the provider's timeout, JSON extraction and
validation, and a ``CallLog`` record for every attempt and skip.

Prompts are templates in ``prompts/`` rendered strictly (``load_template``); untrusted text goes in through
``data_block`` only, with ``UNTRUSTED_DATA_RULE`` in the system prompt.
"""

from triplegain.llm.breaker import BreakerPhase, BreakerState
from triplegain.llm.budget import DailySpend, SpendLedger
from triplegain.llm.cache import CacheKey, ResponseCache
from triplegain.llm.calllog import CallLog
from triplegain.llm.errors import (
    AnswerNotRecorded,
    BreakerOpen,
    BudgetExceeded,
    LLMError,
    LLMOutputError,
    MissingAPIKey,
    PromptTemplateError,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderRejectedRequest,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnreachable,
    RecordedFailure,
    TransientProviderError,
)
from triplegain.llm.fallback import FallbackOutcome, first_success
from triplegain.llm.gateway import LLMGateway, build_gateway
from triplegain.llm.models import CallOutcome, LLMCallRecord, LLMRequest, LLMResult
from triplegain.llm.parsing import parse_answer
from triplegain.llm.prompts import UNTRUSTED_DATA_RULE, PromptTemplate, data_block, load_template
from triplegain.llm.providers import Provider, build_provider
from triplegain.llm.providers.offline import OfflineProvider, OfflineRule
from triplegain.llm.recorded import OnMissing, RecordedAnswers
from triplegain.llm.settings import (
    BreakerSettings,
    LLMSettings,
    Prices,
    ProviderKind,
    ProviderSettings,
    ProvidersSettings,
    ResponseCacheSettings,
    RetrySettings,
)

__all__ = [
    "UNTRUSTED_DATA_RULE",
    "AnswerNotRecorded",
    "BreakerOpen",
    "BreakerPhase",
    "BreakerSettings",
    "BreakerState",
    "BudgetExceeded",
    "CacheKey",
    "CallLog",
    "CallOutcome",
    "DailySpend",
    "FallbackOutcome",
    "LLMCallRecord",
    "LLMError",
    "LLMGateway",
    "LLMOutputError",
    "LLMRequest",
    "LLMResult",
    "LLMSettings",
    "MissingAPIKey",
    "OfflineProvider",
    "OfflineRule",
    "OnMissing",
    "Prices",
    "PromptTemplate",
    "PromptTemplateError",
    "Provider",
    "ProviderBadResponse",
    "ProviderError",
    "ProviderKind",
    "ProviderRateLimited",
    "ProviderRejectedRequest",
    "ProviderServerError",
    "ProviderSettings",
    "ProviderTimeout",
    "ProviderUnreachable",
    "ProvidersSettings",
    "RecordedAnswers",
    "RecordedFailure",
    "ResponseCache",
    "ResponseCacheSettings",
    "RetrySettings",
    "SpendLedger",
    "TransientProviderError",
    "build_gateway",
    "build_provider",
    "data_block",
    "first_success",
    "load_template",
    "parse_answer",
]

