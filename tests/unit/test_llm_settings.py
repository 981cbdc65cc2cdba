from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ValidationError

from triplegain.llm import LLMSettings, ProviderKind, ProviderSettings


def all_fields(model: type[BaseModel], path: str = "llm") -> Iterator[tuple[str, str | None]]:
    for name, field in model.model_fields.items():
        yield f"{path}.{name}", field.description
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from all_fields(annotation, f"{path}.{name}")


def test_every_setting_has_a_description() -> None:
    undocumented = [path for path, description in all_fields(LLMSettings) if not description]
    assert undocumented == []


def test_defaults_name_the_providers_and_their_key_variables() -> None:
    providers = LLMSettings().providers
    assert (providers.deepseek.base_url, providers.deepseek.model) == ("https://api.deepseek.com", "deepseek-chat")
    assert providers.deepseek.api_key_env == "DEEPSEEK_API_KEY"
    assert providers.anthropic.kind is ProviderKind.ANTHROPIC
    assert providers.anthropic.api_key_env == "ANTHROPIC_API_KEY"
    assert providers.openai.api_key_env == "OPENAI_API_KEY"
    assert (providers.ollama.base_url, providers.ollama.api_key_env) == ("http://127.0.0.1:11434/v1", None)
    assert providers.offline.kind is ProviderKind.OFFLINE
    for name in ("deepseek", "anthropic", "openai", "ollama", "offline"):
        timeout = LLMSettings().provider(name).timeout_seconds
        assert 0 < timeout <= 60, "never the SDKs' 10-minute default"


def test_an_unknown_provider_is_named_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown LLM provider 'gemini'; known: deepseek, anthropic"):
        LLMSettings().provider("gemini")


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"kind": "openai_compatible", "model": "m"}, "base_url is required for kind openai_compatible"),
        ({"kind": "anthropic", "model": "m", "base_url": "http://x"}, "api_key_env is required for kind anthropic"),
        ({"kind": "offline", "model": "m", "timeout_seconds": 0}, "greater than 0"),
        ({"kind": "offline", "model": "m", "api_key": "sk-secret"}, "Extra inputs are not permitted"),
        ({"kind": "grpc", "model": "m"}, "Input should be 'openai_compatible', 'anthropic' or 'offline'"),
    ],
)
def test_invalid_provider_settings_are_refused(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        ProviderSettings.model_validate(values)


def test_settings_are_immutable() -> None:
    settings = LLMSettings()
    with pytest.raises(ValidationError):
        settings.providers.deepseek.model = "other"  # type: ignore[misc]
