"""LLM providers behind one interface, and the factory that builds one from its settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from triplegain.llm.errors import MissingAPIKey
from triplegain.llm.models import LLMRequest, LLMResult
from triplegain.llm.providers.offline import OfflineProvider, OfflineRule
from triplegain.llm.settings import ProviderKind, ProviderSettings


class Provider(Protocol):
    """Asks one model one question. Raises a ``ProviderError`` subclass when it gets no answer."""

    name: str

    async def complete(self, request: LLMRequest) -> LLMResult: ...

    async def aclose(self) -> None: ...


def build_provider(
    name: str,
    settings: ProviderSettings,
    *,
    environ: Mapping[str, str],
    offline_rules: Mapping[str, OfflineRule],
) -> Provider:
    """The provider ``settings`` describe, its key read from ``environ[settings.api_key_env]``.

    Raises ``MissingAPIKey`` (naming the variable) when the key is needed and not set.
    """
    if settings.kind is ProviderKind.OFFLINE:
        return OfflineProvider(name, settings, offline_rules)
    api_key = _api_key(name, settings, environ)
    # The SDKs take seconds to import; only a process that talks to a provider pays for that.
    if settings.kind is ProviderKind.ANTHROPIC:
        from triplegain.llm.providers.anthropic import AnthropicProvider

        assert api_key is not None, "settings require api_key_env for anthropic"
        return AnthropicProvider(name, settings, api_key)
    from triplegain.llm.providers.openai_compatible import OpenAICompatibleProvider

    return OpenAICompatibleProvider(name, settings, api_key)


def _api_key(name: str, settings: ProviderSettings, environ: Mapping[str, str]) -> str | None:
    if settings.api_key_env is None:
        return None
    key = environ.get(settings.api_key_env, "").strip()
    if not key:
        raise MissingAPIKey(f"LLM provider {name}: the environment variable {settings.api_key_env} is not set")
    return key
