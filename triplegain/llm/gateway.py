"""One provider with everything around it: an earlier run's answers (``--answers-from``) → cache → budgets →
circuit breaker → call (retries, timeout) → validation → call log.

``complete`` never raises for an LLM failure: it returns a ``CallOutcome`` holding the validated answer or the
error, and the record of every attempt — each of which is also written to the ``CallLog`` before it returns.
A cached answer is served before the budget and breaker checks: it costs nothing and contacts no one, and a
replayed run then gets the same answers whatever state those are in.

Two clocks: ``clock`` is the system's (candle time in a replay) and dates each record's ``started_at``;
``wall`` is the real one, for what is real even in a replay — latency (``monotonic``), the budget's UTC day,
the breaker's cool-down, and each record's ``wall_started_at``. Spend goes to a ``SpendLedger`` the process
shares between every gateway of a provider.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Generic
from uuid import UUID, uuid4

import structlog
from pydantic import BaseModel

from triplegain.clock import Clock, WallClock
from triplegain.llm.breaker import (
    BreakerPhase,
    BreakerState,
    admit,
    after_abandon,
    after_failure,
    after_success,
    seconds_until_trial,
)
from triplegain.llm.budget import DailySpend, SpendLedger, budget_allows, call_cost_usd
from triplegain.llm.cache import CacheKey, ResponseCache, answer_model_name, cache_enabled, prompt_digest
from triplegain.llm.calllog import CallLog
from triplegain.llm.errors import (
    AnswerNotRecorded,
    BreakerOpen,
    BudgetExceeded,
    LLMError,
    LLMOutputError,
    MissingAPIKey,
    ProviderError,
    ProviderTimeout,
    RecordedFailure,
    error_class_name,
)
from triplegain.llm.models import AnswerT, CallOutcome, LLMCallRecord, LLMRequest, LLMResult
from triplegain.llm.parsing import parse_answer
from triplegain.llm.providers import Provider, build_provider
from triplegain.llm.providers.offline import OfflineRule
from triplegain.llm.recorded import RecordedAnswers, RecordedCall, Unasked
from triplegain.llm.retry import Sleep, retrying
from triplegain.llm.settings import LLMSettings, ProviderSettings

log = structlog.get_logger(__name__)

_MS_PER_SECOND = 1000.0


@dataclass
class _Call(Generic[AnswerT]):
    """One ``complete`` call in progress: what was asked, and the records written so far (``trail``: those of
    the whole resolution it is part of)."""

    request_id: UUID
    request: LLMRequest
    answer_model: type[AnswerT]
    answer_model_name: str
    prompt_digest: str
    trail: list[LLMCallRecord]
    records: list[LLMCallRecord] = field(default_factory=list)
    attempts: int = 0


@dataclass(frozen=True)
class _Start:
    """When an attempt started: on the system's clock, on the wall clock, and the wall's monotonic reading."""

    at: datetime
    wall_at: datetime
    monotonic: float


class LLMGateway:
    """A provider with its cache, budget, breaker, retries and call log. Its state lives for the process."""

    def __init__(
        self,
        provider: Provider,
        settings: ProviderSettings,
        *,
        call_log: CallLog,
        clock: Clock,
        wall: Clock | None = None,
        cache: ResponseCache | None = None,
        sleep: Sleep = asyncio.sleep,
        ledger: SpendLedger | None = None,
        answers: RecordedAnswers | None = None,
        ask_missing: bool = True,
        new_id: Callable[[], UUID] = uuid4,
    ) -> None:
        """``wall``: the real clock (default ``WallClock``); ``ledger``: the process's spend, shared with every
        other gateway (default: one of its own, starting at nothing spent); ``answers``: an earlier run's calls,
        served instead of asking (``llm.recorded``), and ``ask_missing`` False when the provider may not be
        asked what that run never asked, whatever ``answers.on_missing`` says; ``sleep`` is where retry waits go
        (tests pass one that returns at once)."""
        self.name = provider.name
        self.settings = settings
        self._provider = provider
        self._call_log = call_log
        self._clock = clock
        self._wall: Clock = wall if wall is not None else WallClock()
        self._cache = cache
        self._sleep = sleep
        self._new_id = new_id
        self._ledger = ledger if ledger is not None else SpendLedger(self._today())
        self._answers = answers
        self._ask_missing = ask_missing
        self._breaker = BreakerState()

    @property
    def breaker(self) -> BreakerState:
        return self._breaker

    @property
    def cache(self) -> ResponseCache | None:
        """The response cache, when on; fill it from an earlier run's call log to replay that run for free."""
        return self._cache

    @property
    def spend(self) -> DailySpend:
        """The provider's spend today (the wall clock's UTC day), by every gateway of the process."""
        return self._ledger.today(self.name, self._today())

    async def complete(
        self, request: LLMRequest, answer_model: type[AnswerT], *, trail: list[LLMCallRecord] | None = None
    ) -> CallOutcome[AnswerT]:
        """Ask for an answer that validates against ``answer_model``.

        ``trail``: the records of the resolution this call is part of (a fallback chain passes one list to every
        provider); each record made here is appended to it as it is made, numbered by its place (``step``), so
        a caller that is cancelled still knows every attempt made.
        """
        model_name = answer_model_name(answer_model)
        call: _Call[AnswerT] = _Call(
            request_id=self._new_id(),
            request=request,
            answer_model=answer_model,
            answer_model_name=model_name,
            prompt_digest=prompt_digest(request.system_prompt, request.user_prompt, model_name),
            trail=trail if trail is not None else [],
        )
        if self._answers is not None:
            served = await self._from_answers(call, self._answers)
            if served is not None:
                return served
        cached = await self._from_cache(call)
        if cached is not None:
            return self._outcome(call, cached, None)
        skip = self._skip_reason()
        if skip is not None:
            await self._record(call, self._start(), error=skip)
            return self._outcome(call, None, skip)
        try:
            answer: AnswerT = await retrying(self.settings.retry, self._sleep)(self._attempt, call)
        except LLMError as error:
            self._breaker = after_failure(self._breaker, self.settings.breaker, self._wall.monotonic())
            return self._outcome(call, None, error)
        except BaseException:
            self._breaker = after_abandon(self._breaker)
            raise
        self._breaker = after_success(self._breaker, self.settings.breaker)
        return self._outcome(call, answer, None)

    async def aclose(self) -> None:
        await self._provider.aclose()

    def _skip_reason(self) -> LLMError | None:
        """Why no call may be made now (a budget spent, breaker open), or None when one may; admits a trial call."""
        spend = self.spend
        if not budget_allows(spend, self.settings.daily_budget_usd, spend.day):
            return BudgetExceeded(
                f"{self.name}: daily budget of {self.settings.daily_budget_usd:.2f} USD spent "
                f"({spend.spent_usd:.4f} USD on {spend.day.isoformat()} UTC)"
            )
        ledger = self._ledger
        if self.settings.paid and not ledger.run_allows():
            ledger.refused_for_run(self._clock.now())
            return BudgetExceeded(
                f"{self.name}: the run budget of {ledger.run_limit_usd:.2f} USD (--max-llm-usd) is spent "
                f"({ledger.run_spent_usd:.4f} USD): paid calls stop for the rest of the run"
            )
        now = self._wall.monotonic()
        self._breaker, admitted = admit(self._breaker, self.settings.breaker, now)
        if admitted:
            return None
        if self._breaker.phase is BreakerPhase.HALF_OPEN:
            return BreakerOpen(f"{self.name}: circuit breaker half-open, its trial call is under way")
        wait = seconds_until_trial(self._breaker, self.settings.breaker, now)
        return BreakerOpen(f"{self.name}: circuit breaker open after repeated failures; next trial in {wait:.0f} s")

    async def _from_answers(self, call: _Call[AnswerT], answers: RecordedAnswers) -> CallOutcome[AnswerT] | None:
        """The earlier run's call served again; a refusal when it never asked and this one may not either; None
        when the provider is to be asked."""
        recorded = answers.take(self._cache_key(call))
        if recorded is not None:
            outcome = await self._serve(call, recorded, answers.run_id)
            if outcome is not None:
                return outcome
            answers.unusable()
        if answers.on_missing == "ask" and self._ask_missing:
            answers.asked += 1
            return None
        refusal = AnswerNotRecorded(
            f"{self.name}: run {answers.run_id} never asked this, and it is not asked of the provider "
            f"({'--on-missing conservative' if answers.on_missing == 'conservative' else 'no API key'})"
        )
        await self._record(call, self._start(), error=refusal)
        return self._outcome(call, None, refusal)

    async def _serve(
        self, call: _Call[AnswerT], recorded: RecordedCall, run_id: int
    ) -> CallOutcome[AnswerT] | None:
        """``recorded`` repeated as this call's attempts; None when its answer no longer validates."""
        last = recorded[-1]
        answer: AnswerT | None = None
        error: LLMError | None = None
        if last.error_class is None:
            try:
                answer = parse_answer(last.raw_response or "", call.answer_model)
            except LLMOutputError as invalid:
                log.warning("llm_recorded_answer_invalid", provider=self.name, run=run_id, reason=invalid.reason)
                return None
        else:
            error = RecordedFailure(last.error_class, last.error_message or "")
        for original in recorded:
            start = self._start()
            served = original.model_copy(
                update={
                    "id": self._new_id(),
                    "request_id": call.request_id,
                    "served_id": call.request.served_id,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "cost_usd": 0.0,
                    "step": len(call.trail) + 1,
                    "started_at": start.at,
                    "wall_started_at": start.wall_at,
                    "served_from_run": run_id,
                }
            )
            await self._keep(call, served)
        return self._outcome(call, answer, error)

    async def _from_cache(self, call: _Call[AnswerT]) -> AnswerT | None:
        if self._cache is None:
            return None
        result = self._cache.get(self._cache_key(call))
        if result is None:
            return None
        start = self._start()
        try:
            answer = parse_answer(result.text, call.answer_model, cut_off=result.cut_off)
        except LLMOutputError as error:
            log.warning("llm_cache_entry_invalid", provider=self.name, reason=error.reason)
            return None
        call.attempts = 1
        await self._record(call, start, latency_ms=self._elapsed_ms(start), result=result, answer=answer, cached=True)
        return answer

    async def _attempt(self, call: _Call[AnswerT]) -> AnswerT:
        """One try at the provider, recorded whatever happens; raises to let ``retrying`` decide what next."""
        call.attempts += 1
        start = self._start()
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                result = await self._provider.complete(call.request)
        except TimeoutError:
            timeout = ProviderTimeout(f"{self.name}: no answer within {self.settings.timeout_seconds:g} s")
            await self._record(call, start, latency_ms=self._elapsed_ms(start), error=timeout)
            raise timeout from None
        except (ProviderError, asyncio.CancelledError) as error:
            await self._record(call, start, latency_ms=self._elapsed_ms(start), error=error)
            raise
        latency_ms = self._elapsed_ms(start)
        cost = call_cost_usd(result.input_tokens, result.output_tokens, self.settings.prices)
        self._ledger.add(self.name, cost, _utc_day(start.wall_at))
        try:
            answer = parse_answer(result.text, call.answer_model, cut_off=result.cut_off)
        except LLMOutputError as error:
            await self._record(call, start, latency_ms=latency_ms, result=result, cost_usd=cost, error=error)
            raise
        await self._record(call, start, latency_ms=latency_ms, result=result, cost_usd=cost, answer=answer)
        if self._cache is not None:
            self._cache.put(self._cache_key(call), result)
        return answer

    async def _record(
        self,
        call: _Call[AnswerT],
        start: _Start,
        *,
        latency_ms: float = 0.0,
        result: LLMResult | None = None,
        answer: BaseModel | None = None,
        error: BaseException | None = None,
        cost_usd: float = 0.0,
        cached: bool = False,
    ) -> None:
        billed = result if result is not None and not cached else None
        record = LLMCallRecord(
            id=self._new_id(),
            request_id=call.request_id,
            served_id=call.request.served_id,
            provider=self.name,
            model=self.settings.model,
            purpose=call.request.purpose,
            answer_model=call.answer_model_name,
            prompt_digest=call.prompt_digest,
            system_prompt=call.request.system_prompt,
            user_prompt=call.request.user_prompt,
            raw_response=result.text if result is not None else None,
            parsed=answer.model_dump(mode="json") if answer is not None else None,
            validation_error=error.reason if isinstance(error, LLMOutputError) else None,
            input_tokens=billed.input_tokens if billed is not None else 0,
            output_tokens=billed.output_tokens if billed is not None else 0,
            cost_usd=cost_usd,
            latency_ms=latency_ms,
            attempt=max(call.attempts, 1),
            step=len(call.trail) + 1,
            cached=cached,
            error_class=error_class_name(error) if error is not None else None,
            error_message=_error_message(error),
            started_at=start.at,
            wall_started_at=start.wall_at,
        )
        await self._keep(call, record)

    async def _keep(self, call: _Call[AnswerT], record: LLMCallRecord) -> None:
        """Add ``record`` to the call and its resolution, write it to the call log, and log it."""
        call.records.append(record)
        call.trail.append(record)
        await self._call_log.record(record)
        emit = log.info if record.error_class is None else log.warning
        emit(
            "llm_call",
            provider=self.name,
            model=record.model,
            purpose=record.purpose,
            attempt=record.attempt,
            step=record.step,
            cached=record.cached,
            served_from_run=record.served_from_run,
            latency_ms=round(record.latency_ms, 1),
            cost_usd=record.cost_usd,
            error_class=record.error_class,
            error=record.error_message,
        )

    def _outcome(self, call: _Call[AnswerT], answer: AnswerT | None, error: LLMError | None) -> CallOutcome[AnswerT]:
        return CallOutcome(provider=self.name, answer=answer, error=error, records=tuple(call.records))

    def _cache_key(self, call: _Call[AnswerT]) -> CacheKey:
        return CacheKey(self.name, self.settings.model, call.prompt_digest)

    def _start(self) -> _Start:
        return _Start(at=self._clock.now(), wall_at=self._wall.now(), monotonic=self._wall.monotonic())

    def _elapsed_ms(self, start: _Start) -> float:
        return max(self._wall.monotonic() - start.monotonic, 0.0) * _MS_PER_SECOND

    def _today(self) -> date:
        """The budget's day: the wall clock's UTC date."""
        return _utc_day(self._wall.now())


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _error_message(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, asyncio.CancelledError):
        return "the call was cancelled"
    return str(error)


def build_gateway(
    name: str,
    settings: LLMSettings,
    *,
    call_log: CallLog,
    clock: Clock,
    replaying: bool = False,
    offline_rules: Mapping[str, OfflineRule] | None = None,
    environ: Mapping[str, str] | None = None,
    ledger: SpendLedger | None = None,
    wall: Clock | None = None,
    answers: RecordedAnswers | None = None,
    sleep: Sleep = asyncio.sleep,
) -> LLMGateway:
    """The gateway for provider ``name`` as configured, its key from ``environ`` (default: the process's).

    The response cache is on when ``settings.cache.enabled`` says so for this run (``replaying``). ``ledger`` is
    the process's spend (shared by every gateway; it carries today's spend over a restart). ``answers``: an
    earlier run's calls to serve (see ``llm.recorded``). Raises ``MissingAPIKey`` when the provider needs a key
    that is not set, unless the earlier run asked it: then it only serves that run's answers.
    """
    provider_settings = settings.provider(name)
    provider: Provider
    try:
        provider = build_provider(
            name,
            provider_settings,
            environ=os.environ if environ is None else environ,
            offline_rules=offline_rules or {},
        )
    except MissingAPIKey as missing:
        if answers is None or name not in answers.providers:
            raise
        provider = Unasked(name, str(missing))
    cache = ResponseCache(settings.cache.max_entries) if cache_enabled(settings.cache.enabled, replaying) else None
    return LLMGateway(
        provider,
        provider_settings,
        call_log=call_log,
        clock=clock,
        wall=wall,
        cache=cache,
        sleep=sleep,
        ledger=ledger,
        answers=answers,
        ask_missing=not isinstance(provider, Unasked),
    )
