"""Fuzzing the LLM answer parser: any text gives the one valid answer, or an LLMOutputError — nothing else.

Texts are prose around JSON objects (valid answers, near misses with out-of-range or mistyped values, cut off at
any point, nested deep) and plain random text. A returned answer always validates against the model. Examples:
100 a test by default, 10,000 with ``HYPOTHESIS_PROFILE=fuzz`` (tests/faults/conftest.py).
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from triplegain.llm import LLMOutputError, parse_answer


class Resolution(BaseModel):
    """The shape of a conflict resolver's answer: an action, bounded numbers, optional bounded changes."""

    action: Literal["proceed", "modify", "wait", "abort"]
    confidence: float = Field(ge=0, le=1)
    reasoning: str
    size_reduction_pct: float | None = Field(default=None, ge=0, le=100)


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
ANSWERS = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["proceed", "modify", "wait", "abort", "buy", ""]) | JSON_SCALARS,
        "confidence": st.floats(min_value=-1, max_value=2) | JSON_SCALARS,
        "reasoning": st.text(max_size=20) | JSON_SCALARS,
    },
    optional={"size_reduction_pct": st.floats(min_value=-10, max_value=150) | JSON_SCALARS, "extra": JSON_VALUES},
)
OBJECTS = (ANSWERS | st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3)).map(json.dumps)


@st.composite
def answer_texts(draw: st.DrawFn) -> str:
    parts: list[str] = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        parts.append(draw(st.text(max_size=20)))
        obj = draw(OBJECTS)
        if draw(st.booleans()):
            obj = obj[: draw(st.integers(min_value=0, max_value=len(obj)))]  # cut off
        if draw(st.booleans()):
            obj = f"```json\n{obj}\n```"
        parts.append(obj)
    parts.append(draw(st.text(max_size=20)))
    return " ".join(parts)


def parse(text: str) -> Resolution | LLMOutputError:
    try:
        return parse_answer(text, Resolution)
    except LLMOutputError as error:
        return error


def check(text: str) -> None:
    answer = parse(text)
    if isinstance(answer, LLMOutputError):
        assert answer.raw_text == text
        assert answer.reason
        return
    assert isinstance(answer, Resolution)
    assert 0 <= answer.confidence <= 1


@settings(deadline=None)
@given(text=answer_texts())
def test_fuzz_answers_around_json(text: str) -> None:
    check(text)


@settings(deadline=None)
@given(text=st.text(alphabet=st.sampled_from('{}[]":,0123456789.eE-truefalsn \\`x'), max_size=80) | st.text())
def test_fuzz_json_like_noise(text: str) -> None:
    check(text)


@pytest.mark.parametrize(
    "text",
    ['{"a":' * 5000, '{"a": ' + "[" * 5000 + "]" * 5000 + "}", '{"reasoning": "' + "{" * 3000],
    ids=["deep-object", "deep-array", "braces-in-an-open-string"],
)
@pytest.mark.timeout(10)
def test_found_by_fuzzing_deep_or_brace_heavy_answers_fail_cleanly(text: str) -> None:
    """Deep nesting raised RecursionError out of the parser; 20,000 unclosed braces took 17 s (now ~0.2 s)."""
    started = time.perf_counter()
    with pytest.raises(LLMOutputError):
        parse_answer(text, Resolution)
    assert time.perf_counter() - started < 5


def test_a_valid_answer_still_wins_over_noise() -> None:
    answer: dict[str, Any] = {"action": "wait", "confidence": 0.5, "reasoning": "mixed"}
    text = "{" * 50 + " thinking… " + json.dumps(answer)
    assert parse_answer(text, Resolution) == Resolution(**answer)
