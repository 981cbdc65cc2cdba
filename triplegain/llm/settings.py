"""Settings of the LLM layer: one block per provider, and the response cache.

Keys never live here: a provider names the environment variable that holds its key (``api_key_env``), and the
key is read from the environment when the provider is built.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self, TypeAlias

from pydantic import Field, model_validator

from triplegain.section import Section

CacheMode: TypeAlias = Literal["replay", "always", "never"]
MaskMode: TypeAlias = Literal["replay", "always", "never"]


class ProviderKind(StrEnum):
    """Which wire format (and SDK) a provider speaks."""

    OPENAI_COMPATIBLE = "openai_compatible"
    ANTHROPIC = "anthropic"
    OFFLINE = "offline"


class Prices(Section):
    """What one million tokens cost; used for the daily budget and each call's recorded cost."""

    input_usd_per_million: float = Field(default=0.0, ge=0, description="USD per million input (prompt) tokens")
    output_usd_per_million: float = Field(default=0.0, ge=0, description="USD per million output (completion) tokens")


class RetrySettings(Section):
    """Retries happen here only (the SDKs' own retries are off): on 429, 5xx, timeouts and connection errors."""

    max_attempts: int = Field(default=2, ge=1, description="attempts per call, the first one included")
    backoff_initial_seconds: float = Field(
        default=0.5, ge=0, description="wait before the second attempt; doubles for each further attempt"
    )
    backoff_max_seconds: float = Field(default=4.0, ge=0, description="longest wait between two attempts")
    retry_after_cap_seconds: float = Field(
        default=10.0,
        ge=0,
        description="a 429's retry-after is honoured up to this; a longer one ends the call (the fallback is sooner)",
    )


class BreakerSettings(Section):
    """The provider's circuit breaker: skip a failing provider for a while instead of waiting on it every call."""

    consecutive_failures: int = Field(default=5, ge=1, description="this many failed calls in a row open it")
    failure_rate: float = Field(
        default=0.5, gt=0, le=1, description="so does this share of failed calls among the last window_calls"
    )
    window_calls: int = Field(default=20, ge=1, description="how many recent calls the failure rate looks at")
    min_calls: int = Field(
        default=10, ge=1, description="the failure rate counts only once the window holds this many calls"
    )
    cooldown_seconds: float = Field(
        default=60.0, ge=0, description="an open breaker lets one trial call through after this long (wall clock)"
    )
    cooldown_growth: float = Field(
        default=2.0,
        ge=1,
        description="each failed trial multiplies the cool-down by this (1: it never grows); a success resets it",
    )
    cooldown_max_seconds: float = Field(
        default=1800.0, ge=0, description="the cool-down grows up to this; at least cooldown_seconds"
    )

    @model_validator(mode="after")
    def _cooldown_bounds(self) -> Self:
        if self.cooldown_max_seconds < self.cooldown_seconds:
            raise ValueError(
                f"cooldown_max_seconds ({self.cooldown_max_seconds:g}) must be at least cooldown_seconds "
                f"({self.cooldown_seconds:g})"
            )
        return self


class ProviderSettings(Section):
    """One LLM provider: where it is, which model, how long to wait, how often to retry, what it may cost."""

    kind: ProviderKind = Field(
        description="openai_compatible (DeepSeek, OpenAI, Ollama …), anthropic (Claude) or offline (no network)"
    )
    base_url: str | None = Field(
        default=None, description="API root, e.g. https://api.deepseek.com; null only for kind offline"
    )
    model: str = Field(min_length=1, description="model name sent to the provider")
    api_key_env: str | None = Field(
        default=None,
        # A variable's name: a key pasted here by mistake fails (its value hidden) instead of being echoed as a name.
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the API key (never the key); null: no key needed",
    )
    timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="give up on one attempt after this long; a call takes at most max_attempts times this plus waits",
    )
    max_output_tokens: int = Field(default=1024, ge=1, description="most tokens the model may answer with")
    retry: RetrySettings = Field(default_factory=RetrySettings, description="retries of failed attempts")
    breaker: BreakerSettings = Field(default_factory=BreakerSettings, description="circuit breaker")
    daily_budget_usd: float = Field(
        default=5.0, ge=0, description="spend per UTC day; once reached the provider is skipped until midnight UTC"
    )
    prices: Prices = Field(default_factory=Prices, description="token prices")

    @property
    def paid(self) -> bool:
        """Whether its calls cost money (a price is set): the run budget and the replay guard are about these."""
        return self.prices.input_usd_per_million > 0 or self.prices.output_usd_per_million > 0

    @model_validator(mode="after")
    def _network_needs_url(self) -> Self:
        if self.kind is not ProviderKind.OFFLINE and not self.base_url:
            raise ValueError(f"base_url is required for kind {self.kind.value}")
        if self.kind is ProviderKind.ANTHROPIC and not self.api_key_env:
            raise ValueError("api_key_env is required for kind anthropic")
        return self


class ProvidersSettings(Section):
    """The providers triplegain knows; the coordinator's resolver chain picks from these by name."""

    deepseek: ProviderSettings = Field(
        default_factory=lambda: ProviderSettings(
            kind=ProviderKind.OPENAI_COMPATIBLE,
            base_url="https://api.deepseek.com",
            model="deepseek-chat",
            api_key_env="DEEPSEEK_API_KEY",
            daily_budget_usd=2.0,
            prices=Prices(input_usd_per_million=0.28, output_usd_per_million=0.42),
        ),
        description="DeepSeek through its OpenAI-compatible API",
    )
    anthropic: ProviderSettings = Field(
        default_factory=lambda: ProviderSettings(
            kind=ProviderKind.ANTHROPIC,
            base_url="https://api.anthropic.com",
            model="claude-sonnet-4-6",
            api_key_env="ANTHROPIC_API_KEY",
            prices=Prices(input_usd_per_million=3.0, output_usd_per_million=15.0),
        ),
        description="Claude through the Anthropic messages API",
    )
    openai: ProviderSettings = Field(
        default_factory=lambda: ProviderSettings(
            kind=ProviderKind.OPENAI_COMPATIBLE,
            base_url="https://api.openai.com/v1",
            model="gpt-4.1-mini",
            api_key_env="OPENAI_API_KEY",
            prices=Prices(input_usd_per_million=0.4, output_usd_per_million=1.6),
        ),
        description="OpenAI chat completions",
    )
    ollama: ProviderSettings = Field(
        default_factory=lambda: ProviderSettings(
            kind=ProviderKind.OPENAI_COMPATIBLE,
            base_url="http://127.0.0.1:11434/v1",
            model="llama3.1",
            timeout_seconds=60.0,
            retry=RetrySettings(max_attempts=1),
        ),
        description="a local Ollama server (OpenAI-compatible, no key, no cost); one attempt: a local model that "
        "timed out would only time out again",
    )
    offline: ProviderSettings = Field(
        default_factory=lambda: ProviderSettings(kind=ProviderKind.OFFLINE, model="offline-rules", timeout_seconds=5.0),
        description="deterministic answers computed from the request's context: no network, no key, no cost",
    )


class ResponseCacheSettings(Section):
    """Answers kept by (provider, model, prompt, answer model), so a replayed run makes no new paid calls."""

    enabled: CacheMode = Field(default="replay", description="replay: only when replaying candle files; always; never")
    max_entries: int = Field(default=4096, ge=1, description="answers kept; past this the least recently used go")


class LLMSettings(Section):
    """The LLM layer (providers, prompts, call log)."""

    providers: ProvidersSettings = Field(default_factory=ProvidersSettings, description="LLM providers")
    cache: ResponseCacheSettings = Field(default_factory=ResponseCacheSettings, description="response cache")
    mask_history: MaskMode = Field(
        default="replay",
        description="prompts with no symbol names, absolute dates or price levels (aliases, times relative to the "
        "question, prices indexed to 100 at the run's first close), so a model cannot recall what came next: "
        "replay — in replays and synthetic runs that ask a model over the network (not the offline rules); "
        "always; never. Off by default live",
    )

    def provider(self, name: str) -> ProviderSettings:
        """The settings of provider ``name``; a ``KeyError`` naming the known ones if there is none."""
        if name not in ProvidersSettings.model_fields:
            raise KeyError(f"unknown LLM provider {name!r}; known: {', '.join(ProvidersSettings.model_fields)}")
        settings: ProviderSettings = getattr(self.providers, name)
        return settings
