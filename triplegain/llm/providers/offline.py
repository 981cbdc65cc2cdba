"""Answers computed, not asked: the whole system runs with no network and no keys, and tests are reproducible.

Each purpose has a rule: a pure function from the request (its structured ``context``) to the answer as JSON.
The answer goes through the same parsing and validation as a model's text would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from pydantic import JsonValue

from triplegain.llm.errors import ProviderRejectedRequest
from triplegain.llm.models import LLMRequest, LLMResult
from triplegain.llm.settings import ProviderSettings

OfflineRule = Callable[[LLMRequest], Mapping[str, JsonValue]]


class OfflineProvider:
    def __init__(self, name: str, settings: ProviderSettings, rules: Mapping[str, OfflineRule]) -> None:
        self.name = name
        self._settings = settings
        self._rules = dict(rules)

    async def complete(self, request: LLMRequest) -> LLMResult:
        rule = self._rules.get(request.purpose)
        if rule is None:
            known = ", ".join(sorted(self._rules)) or "none"
            raise ProviderRejectedRequest(
                f"{self.name}: no offline rule for purpose {request.purpose!r} (rules exist for: {known})"
            )
        return LLMResult(
            text=json.dumps(rule(request), sort_keys=True),
            model=self._settings.model,
            input_tokens=0,
            output_tokens=0,
        )

    async def aclose(self) -> None:
        return None
