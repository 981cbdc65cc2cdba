"""Provider answers kept by what was asked, so asking again (a replayed run) makes no new paid call.

Only answers that validated are kept. The key holds the provider, the model, and a digest of the system
prompt, the user prompt and the answer model's name: change any of them and it is a different question.
The digest is also recorded with each call, so the cache can be filled from the call log of an earlier run.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import NamedTuple

from pydantic import BaseModel

from triplegain.llm.models import LLMResult
from triplegain.llm.settings import CacheMode


class CacheKey(NamedTuple):
    provider: str
    model: str
    prompt_digest: str


def answer_model_name(answer_model: type[BaseModel]) -> str:
    return f"{answer_model.__module__}.{answer_model.__qualname__}"


def prompt_digest(system_prompt: str, user_prompt: str, answer_model: str) -> str:
    """sha256 (hex) of the three, encoded so that no two different triples give the same input."""
    encoded = json.dumps([system_prompt, user_prompt, answer_model], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def cache_enabled(mode: CacheMode, replaying: bool) -> bool:
    """The ``cache.enabled`` setting applied to this run."""
    return mode == "always" or (mode == "replay" and replaying)


class ResponseCache:
    """A bounded mapping from ``CacheKey`` to ``LLMResult``; past ``max_entries`` the least recently used go."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, LLMResult] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> LLMResult | None:
        result = self._entries.get(key)
        if result is not None:
            self._entries.move_to_end(key)
        return result

    def put(self, key: CacheKey, result: LLMResult) -> None:
        self._entries[key] = result
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
