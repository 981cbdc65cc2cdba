"""Turning a model's text into a validated answer — or an ``LLMOutputError`` saying why not.

The rules, chosen so that nothing ambiguous becomes a trade:

- Every JSON object in the text is a candidate, wherever it is: bare, inside a ```json fence, or between
  prose. Objects nested inside a candidate are part of it, not candidates of their own.
- Exactly one answer must validate against the answer model. Objects that do not validate are ignored when
  another one does (a model may quote an example first); the same answer repeated counts once; two different
  valid answers are an error, because picking one would be a guess.
- Validation is strict: a number in quotes is a wrong type, a value out of the model's bounds is an error. Nothing
  is coerced or clamped here; bounding a modification is the caller's job.
- ``NaN`` and ``Infinity`` are not JSON and make their object invalid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from triplegain.llm.errors import LLMOutputError
from triplegain.llm.models import AnswerT

_SHOWN_INPUT_CHARS = 60


def parse_answer(text: str, answer_model: type[AnswerT], *, cut_off: bool = False) -> AnswerT:
    """The one answer in ``text`` that validates against ``answer_model``.

    ``cut_off`` (the model stopped at its token limit) only adds that fact to the error's reason.
    Raises ``LLMOutputError`` with the reason and the raw text.
    """
    try:
        return _the_answer(text, answer_model)
    except LLMOutputError as error:
        if not cut_off:
            raise
        raise LLMOutputError(f"{error.reason} (the answer stopped at the output token limit)", text) from None


def _the_answer(text: str, answer_model: type[AnswerT]) -> AnswerT:
    name = answer_model.__name__
    if not text.strip():
        raise LLMOutputError("the answer is empty", text)
    scan = _scan_json_objects(text)
    answers: list[AnswerT] = []
    first_problem: str | None = None
    for fragment in scan.objects:
        try:
            answer = answer_model.model_validate_json(fragment, strict=True)
        except ValidationError as error:
            first_problem = first_problem or _describe_validation_error(error)
            continue
        if answer not in answers:
            answers.append(answer)
    if len(answers) == 1:
        return answers[0]
    if answers:
        raise LLMOutputError(f"{len(answers)} different answers match {name}; expected one", text)
    if first_problem is not None:
        suffix = "; the text also holds an incomplete JSON object" if scan.cut_off else ""
        raise LLMOutputError(f"no JSON object matches {name}: {first_problem}{suffix}", text)
    if scan.cut_off:
        raise LLMOutputError("no complete JSON object in the answer: it looks cut off", text)
    if scan.malformed:
        raise LLMOutputError("no well-formed JSON object in the answer", text)
    raise LLMOutputError("no JSON object in the answer", text)


@dataclass
class _Scan:
    objects: list[str] = field(default_factory=list)
    cut_off: bool = False  # an object was still open where the text ended
    malformed: bool = False  # a closed {…} was not valid JSON


def _scan_json_objects(text: str) -> _Scan:
    """The top-level JSON objects in ``text`` (as text, in order), and what else was found."""
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    scan = _Scan()
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except RecursionError:
            # Nested deeper than the decoder recurses: not an answer anyone meant.
            scan.malformed = True
            position = text.find("{", position + 1)
            continue
        except ValueError:
            # Once the text is known to be cut off, malformed no longer matters (the message says cut off), and
            # skipping the scan keeps a text of thousands of unclosed '{' linear instead of quadratic.
            if not scan.cut_off:
                if _unclosed(text, position):
                    scan.cut_off = True
                else:
                    scan.malformed = True
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            scan.objects.append(text[position:end])
        position = text.find("{", end)
    return scan


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unclosed(text: str, start: int) -> bool:
    """Whether the object opened at ``start`` is still open when the text ends (it was cut off)."""
    depth = 0
    in_string = escaped = False
    for char in text[start:]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return False
    return True


def _describe_validation_error(error: ValidationError) -> str:
    """Pydantic's errors as one line: ``field: problem (got value)`` for each, joined by ``;``."""
    return "; ".join(_describe_problem(problem) for problem in error.errors())


def _describe_problem(problem: ErrorDetails) -> str:
    where = ".".join(str(part) for part in problem["loc"]) or "(the object)"
    if problem["type"] == "missing":
        return f"{where}: missing"
    shown = repr(problem.get("input"))
    if len(shown) > _SHOWN_INPUT_CHARS:
        shown = shown[: _SHOWN_INPUT_CHARS - 3] + "..."
    message = problem["msg"]
    return f"{where}: {message[:1].lower()}{message[1:]} (got {shown})"
