from __future__ import annotations

import pytest
from pydantic import BaseModel

from triplegain.llm import CacheKey, LLMResult, ResponseCache
from triplegain.llm.cache import answer_model_name, cache_enabled, prompt_digest


def result(text: str) -> LLMResult:
    return LLMResult(text=text, model="m", input_tokens=1, output_tokens=1)


def key(name: str) -> CacheKey:
    return CacheKey("deepseek", "deepseek-chat", name)


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = ResponseCache(max_entries=2)
    cache.put(key("a"), result("A"))
    cache.put(key("b"), result("B"))
    assert cache.get(key("a")) == result("A")  # now b is the least recently used
    cache.put(key("c"), result("C"))
    assert len(cache) == 2
    assert cache.get(key("b")) is None
    assert cache.get(key("a")) == result("A")
    assert cache.get(key("c")) == result("C")


def test_putting_a_key_again_replaces_its_answer() -> None:
    cache = ResponseCache(max_entries=2)
    cache.put(key("a"), result("old"))
    cache.put(key("a"), result("new"))
    assert len(cache) == 1
    assert cache.get(key("a")) == result("new")


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ResponseCache(max_entries=0)


class Answer(BaseModel):
    action: str


def test_the_digest_changes_with_each_part_of_the_question() -> None:
    name = answer_model_name(Answer)
    assert name == f"{__name__}.Answer"
    base = prompt_digest("system", "user", name)
    assert base == prompt_digest("system", "user", name)
    assert len({base, prompt_digest("system!", "user", name), prompt_digest("system", "user!", name)}) == 3
    assert base != prompt_digest("system", "user", "other.Answer")
    # The parts are delimited: moving text from one prompt to the other changes the digest.
    assert prompt_digest("ab", "c", name) != prompt_digest("a", "bc", name)


@pytest.mark.parametrize(
    ("mode", "replaying", "enabled"),
    [
        ("replay", True, True),
        ("replay", False, False),
        ("always", False, True),
        ("always", True, True),
        ("never", True, False),
    ],
)
def test_the_setting_decides_when_the_cache_is_on(mode: str, replaying: bool, enabled: bool) -> None:
    assert cache_enabled(mode, replaying) is enabled  # type: ignore[arg-type]
