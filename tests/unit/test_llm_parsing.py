from __future__ import annotations

import json
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from triplegain.llm import LLMOutputError, parse_answer


class Resolution(BaseModel):
    action: Literal["proceed", "modify", "wait", "abort"]
    confidence: float = Field(ge=0, le=1)
    reasoning: str
    size_reduction_pct: float | None = Field(default=None, ge=0, le=100)
    leverage: float | None = Field(default=None, ge=1, le=3)


WAIT = '{"action": "wait", "confidence": 0.4, "reasoning": "opposed views"}'
ABORT = '{"action": "abort", "confidence": 0.9, "reasoning": "too risky"}'


def failure(text: str, *, cut_off: bool = False) -> LLMOutputError:
    with pytest.raises(LLMOutputError) as caught:
        parse_answer(text, Resolution, cut_off=cut_off)
    assert caught.value.raw_text == text
    return caught.value


@pytest.mark.parametrize(
    "text",
    [
        WAIT,
        f"Here is my decision:\n{WAIT}\nLet me know if you need more.",
        f"```json\n{WAIT}\n```",
        f"Reasoning first.\n```\n{WAIT}\n```\nDone.",
        f"Example format: {{action}}.\n{WAIT}",
        f'{{"example": true}} and the answer: {WAIT}',
        f"{WAIT}\n{WAIT}",
    ],
    ids=["bare", "prose", "json-fence", "plain-fence", "braces-in-prose", "non-matching-object-first", "repeated"],
)
def test_the_one_valid_answer_is_found(text: str) -> None:
    assert parse_answer(text, Resolution) == Resolution(action="wait", confidence=0.4, reasoning="opposed views")


def test_nested_objects_belong_to_their_answer() -> None:
    class Wrapped(BaseModel):
        decision: Resolution

    answer = parse_answer(f'{{"decision": {WAIT}}}', Wrapped)
    assert answer.decision.action == "wait"


def test_two_different_answers_are_ambiguous() -> None:
    error = failure(f"First thought: {WAIT}\nOn reflection: {ABORT}")
    assert error.reason == "2 different answers match Resolution; expected one"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the answer is empty"),
        ("   \n", "the answer is empty"),
        ("I would wait.", "no JSON object in the answer"),
        ('["wait", 0.4]', "no JSON object in the answer"),
        ("{action: wait}", "no well-formed JSON object in the answer"),
        ('{"action": "wait", "confidence": NaN, "reasoning": "x"}', "no well-formed JSON object in the answer"),
        ('{"action": "wait", "confidence": 0.4, "reas', "no complete JSON object in the answer: it looks cut off"),
        (
            '```json\n{"action": "wait", "note": "a \\" and a }',
            "no complete JSON object in the answer: it looks cut off",
        ),
    ],
)
def test_text_without_a_usable_object_is_an_error(text: str, reason: str) -> None:
    assert failure(text).reason == reason


def test_missing_fields_are_named() -> None:
    assert failure('{"action": "wait"}').reason == (
        "no JSON object matches Resolution: confidence: missing; reasoning: missing"
    )


def test_wrong_types_are_not_coerced() -> None:
    reason = failure('{"action": "wait", "confidence": "0.4", "reasoning": "x"}').reason
    assert reason == "no JSON object matches Resolution: confidence: input should be a valid number (got '0.4')"


def test_out_of_range_values_are_errors_not_clamped() -> None:
    reason = failure('{"action": "proceed", "confidence": 1.5, "reasoning": "x", "leverage": 100}').reason
    assert "confidence: input should be less than or equal to 1 (got 1.5)" in reason
    assert "leverage: input should be less than or equal to 3 (got 100)" in reason


def test_an_unknown_action_is_an_error() -> None:
    reason = failure('{"action": "buy", "confidence": 0.5, "reasoning": "x"}').reason
    assert reason.startswith("no JSON object matches Resolution: action: input should be 'proceed', 'modify'")


def test_a_cut_off_answer_says_so() -> None:
    assert failure('{"action": "wait", "confid', cut_off=True).reason == (
        "no complete JSON object in the answer: it looks cut off (the answer stopped at the output token limit)"
    )


def test_an_invalid_object_next_to_a_cut_off_one_reports_both() -> None:
    reason = failure('{"action": "wait"} and then {"action": "abort", "confi').reason
    assert reason == (
        "no JSON object matches Resolution: confidence: missing; reasoning: missing; "
        "the text also holds an incomplete JSON object"
    )


def test_a_long_wrong_value_is_shortened_in_the_reason() -> None:
    reason = failure(json.dumps({"action": "x" * 500, "confidence": 0.1, "reasoning": "x"})).reason
    assert len(reason) < 250
    assert "..." in reason


answers = st.builds(
    Resolution,
    action=st.sampled_from(["proceed", "modify", "wait", "abort"]),
    confidence=st.floats(0, 1),
    reasoning=st.text(max_size=40),
    size_reduction_pct=st.none() | st.floats(0, 100),
    leverage=st.none() | st.floats(1, 3),
)
prose = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=80)


@given(answer=answers, before=prose, after=prose, fenced=st.booleans())
def test_any_valid_answer_survives_any_prose_around_it(
    answer: Resolution, before: str, after: str, fenced: bool
) -> None:
    body = answer.model_dump_json()
    if fenced:
        body = f"```json\n{body}\n```"
    assert parse_answer(f"{before}{body}{after}", Resolution) == answer


@given(answer=answers, cut=st.integers(min_value=1))
def test_any_truncation_of_an_answer_is_an_error_never_another_answer(answer: Resolution, cut: int) -> None:
    body = answer.model_dump_json()
    truncated = body[: cut % len(body)]
    with pytest.raises(LLMOutputError):
        parse_answer(truncated, Resolution)
