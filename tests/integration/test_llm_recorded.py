"""An earlier run's LLM calls served again by the gateway (``--answers-from``), and the run budget
(``--max-llm-usd``): through the real SDKs against the stub, which counts every request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from tests.fakes import InMemoryCallLog
from tests.stubs.llm_server import STUB_KEYS, Answer, Failure, LLMStubServer, stub_providers
from triplegain.clock import FakeClock
from triplegain.coordinator.resolution import ResolutionAnswer
from triplegain.llm import (
    AnswerNotRecorded,
    BudgetExceeded,
    LLMGateway,
    LLMRequest,
    LLMSettings,
    OnMissing,
    Prices,
    RecordedAnswers,
    RecordedFailure,
    SpendLedger,
    build_gateway,
    first_success,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)
ASKED = LLMRequest(purpose="conflict_resolution", system_prompt="Settle it. JSON only.", user_prompt="long vs chop")
NEVER_ASKED = ASKED.model_copy(update={"user_prompt": "short vs chop"})
PROCEED = json.dumps({"action": "proceed", "confidence": 0.7, "reasoning": "trend"})
ABORT = json.dumps({"action": "abort", "confidence": 0.9, "reasoning": "chop"})

Gateways = Callable[..., list[LLMGateway]]


@pytest.fixture
async def gateways(llm_stub: LLMStubServer) -> AsyncIterator[Gateways]:
    made: list[LLMGateway] = []
    settings = LLMSettings(providers=stub_providers(llm_stub, 5.0, 5.0))

    def build(
        *,
        answers: RecordedAnswers | None = None,
        log: InMemoryCallLog | None = None,
        environ: dict[str, str] = STUB_KEYS,
        ledger: SpendLedger | None = None,
        llm: LLMSettings = settings,
    ) -> list[LLMGateway]:
        chain = [
            build_gateway(
                name,
                llm,
                call_log=log or InMemoryCallLog(),
                clock=FakeClock(T0),
                environ=environ,
                answers=answers,
                ledger=ledger,
            )
            for name in ("deepseek", "anthropic")
        ]
        made.extend(chain)
        return chain

    yield build
    for gateway in made:
        await gateway.aclose()


def requests(stub: LLMStubServer) -> int:
    return len(stub.openai.requests) + len(stub.anthropic.requests)


async def first_run(gateways: Gateways, stub: LLMStubServer) -> InMemoryCallLog:
    """DeepSeek fails (500), Claude answers abort; a second question, DeepSeek answers proceed."""
    log = InMemoryCallLog()
    stub.openai.push(Failure(500), Answer(PROCEED))
    stub.anthropic.push(Answer(ABORT))
    chain = gateways(log=log)
    await first_success(chain, ASKED, ResolutionAnswer)
    await first_success(chain, ASKED.model_copy(update={"user_prompt": "again"}), ResolutionAnswer)
    return log


def served(log: InMemoryCallLog, on_missing: OnMissing = "conservative") -> RecordedAnswers:
    return RecordedAnswers(7, log.records, on_missing=on_missing)


async def test_a_served_run_repeats_every_attempt_and_its_outcome_without_a_request(
    gateways: Gateways, llm_stub: LLMStubServer
) -> None:
    earlier = await first_run(gateways, llm_stub)
    sent = requests(llm_stub)
    answers, log = served(earlier), InMemoryCallLog()

    result = await first_success(gateways(answers=answers, log=log), ASKED, ResolutionAnswer)

    assert requests(llm_stub) == sent, "nothing is sent"
    assert result.provider == "anthropic"
    assert result.answer is not None
    assert result.answer.action.value == "abort"
    assert isinstance(result.calls[0].error, RecordedFailure)
    assert str(result.calls[0].error) == str(earlier.records[0].error_message)
    originals = earlier.records[:2]
    assert [(r.provider, r.error_class, r.step, r.latency_ms, r.cached) for r in log.records] == [
        (o.provider, o.error_class, o.step, o.latency_ms, o.cached) for o in originals
    ]
    assert {(r.served_from_run, r.cost_usd, r.input_tokens, r.started_at) for r in log.records} == {(7, 0.0, 0, T0)}
    assert (answers.served, answers.missed, answers.asked) == (2, 0, 0)


async def test_a_question_never_asked_gets_no_answer_and_no_request_by_default(
    gateways: Gateways, llm_stub: LLMStubServer
) -> None:
    answers = served(await first_run(gateways, llm_stub))
    sent = requests(llm_stub)

    result = await first_success(gateways(answers=answers), NEVER_ASKED, ResolutionAnswer)

    assert result.answer is None, "the resolver's conservative rule answers"
    assert all(isinstance(call.error, AnswerNotRecorded) for call in result.calls)
    assert str(result.calls[0].error) == (
        "deepseek: run 7 never asked this, and it is not asked of the provider (--on-missing conservative)"
    )
    assert requests(llm_stub) == sent
    assert (answers.served, answers.missed, answers.asked) == (0, 2, 0)


async def test_on_missing_ask_asks_the_provider_and_counts_it(gateways: Gateways, llm_stub: LLMStubServer) -> None:
    answers = served(await first_run(gateways, llm_stub), on_missing="ask")
    sent = requests(llm_stub)
    llm_stub.openai.push(Answer(PROCEED))

    result = await first_success(gateways(answers=answers), NEVER_ASKED, ResolutionAnswer)

    assert result.provider == "deepseek"
    assert requests(llm_stub) == sent + 1
    assert (answers.served, answers.missed, answers.asked) == (0, 1, 1)


async def test_a_provider_without_its_key_still_serves_the_run_s_answers_and_is_never_asked(
    gateways: Gateways, llm_stub: LLMStubServer
) -> None:
    answers = served(await first_run(gateways, llm_stub), on_missing="ask")
    sent = requests(llm_stub)
    chain = gateways(answers=answers, environ={})

    assert (await first_success(chain, ASKED, ResolutionAnswer)).answer is not None
    missing = await first_success(chain, NEVER_ASKED, ResolutionAnswer)

    assert missing.answer is None
    assert str(missing.calls[0].error).endswith("(no API key)")
    assert requests(llm_stub) == sent
    assert answers.asked == 0


async def test_the_same_question_is_answered_in_the_order_it_was_asked_then_the_last_again(
    gateways: Gateways, llm_stub: LLMStubServer
) -> None:
    log = InMemoryCallLog()
    llm_stub.openai.push(Answer(PROCEED), Answer(ABORT))
    [deepseek, _] = gateways(log=log)
    for _ in range(2):
        await deepseek.complete(ASKED, ResolutionAnswer)
    [again, _] = gateways(answers=served(log))

    actions = [(await again.complete(ASKED, ResolutionAnswer)).answer for _ in range(3)]

    assert [answer.action.value for answer in actions if answer is not None] == ["proceed", "abort", "abort"]


async def test_the_run_budget_stops_paid_calls_once_spent_and_free_ones_go_on(
    gateways: Gateways, llm_stub: LLMStubServer
) -> None:
    """2 USD a call against a 3 USD run budget: the second call passes it, the third is refused."""
    providers = stub_providers(llm_stub, 5.0, 5.0)
    priced = providers.deepseek.model_copy(
        update={"prices": Prices(input_usd_per_million=1000.0, output_usd_per_million=2000.0)}
    )
    free = providers.anthropic
    llm = LLMSettings(providers=providers.model_copy(update={"deepseek": priced, "anthropic": free}))
    ledger = SpendLedger(T0.date(), run_limit_usd=3.0)
    paid, unpaid = gateways(llm=llm, ledger=ledger)
    costly = Answer(PROCEED, input_tokens=1000, output_tokens=500)
    llm_stub.openai.push(costly, costly, costly)
    llm_stub.anthropic.push(Answer(PROCEED))

    for _ in range(2):
        assert (await paid.complete(ASKED, ResolutionAnswer)).answer is not None
    refused = await paid.complete(ASKED, ResolutionAnswer)

    assert isinstance(refused.error, BudgetExceeded)
    assert str(refused.error) == (
        "deepseek: the run budget of 3.00 USD (--max-llm-usd) is spent (4.0000 USD): paid calls stop for the rest "
        "of the run"
    )
    assert len(llm_stub.openai.requests) == 2
    assert (await unpaid.complete(ASKED, ResolutionAnswer)).answer is not None, "a free provider is still asked"
    assert (ledger.run_limit_skips, ledger.run_limit_reached_at) == (1, T0)
