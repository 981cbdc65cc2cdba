"""Settings: pydantic models, the YAML loader, and ``TRIPLEGAIN_*`` environment overrides.

Every setting is a field with a default and a description; ``config/default.yaml`` is rendered from these models
(``triplegain config defaults``) and a test keeps the two identical, so the file documents every key.

Overrides: an environment variable ``TRIPLEGAIN_<SECTION>__<KEY>`` sets ``section.key``; each further ``__``
goes one level deeper (``TRIPLEGAIN_BUS__TOPICS__MARKET_DATA__TTL_SECONDS=30``). Names are case-insensitive and
the value is read as YAML (``true``, ``10``, ``[a, b]``). Overrides apply on top of the file.

Secrets never live in a config file: they are read from the environment by the code that needs them
(``TRIPLEGAIN_DATABASE_URL``, the providers' API keys). Those names, and ``TRIPLEGAIN_HOME`` /
``TRIPLEGAIN_CONFIG``, are not overrides.
"""

from __future__ import annotations

import itertools
import os
import re
import reprlib
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator

from triplegain.agents.settings import AgentsSettings
from triplegain.coordinator.breaker import PortfolioBreakerSettings
from triplegain.coordinator.conflicts import ConflictSettings
from triplegain.coordinator.consensus import ConsensusSettings
from triplegain.coordinator.degradation import DegradationSettings
from triplegain.coordinator.intent import IntentSettings
from triplegain.coordinator.resolution import ResolutionBounds
from triplegain.coordinator.resolver import ResolverSettings
from triplegain.coordinator.schedule import ScheduleSettings
from triplegain.errors import ConfigError
from triplegain.execution.settings import ExecutionSettings
from triplegain.llm.settings import LLMSettings
from triplegain.market.settings import CcxtFeedSettings, IndicatorSettings, ReplaySettings, SyntheticSettings
from triplegain.risk.settings import RiskSettings
from triplegain.section import Section
from triplegain.store.settings import WriterSettings

ENV_PREFIX = "TRIPLEGAIN_"
ENV_LEVEL_SEPARATOR = "__"
# TRIPLEGAIN_* variables that are not setting overrides.
# Key names that hold secrets: never echoed back, and never accepted from a file.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "url", "dsn")
# What yaml.safe_load raises, besides YAMLError, for a value that matches a tag's pattern but does not exist
# (2024-13-01, !!int x, !!timestamp nope).
_YAML_VALUE_ERRORS = (ValueError, TypeError, AttributeError, OverflowError)
_SHOWN_KEYS = 12
_SHOWN_CONTAINER = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHOWN_CONTAINER.maxlevel = 3
ENV_NOT_SETTINGS = frozenset(
    {"TRIPLEGAIN_HOME", "TRIPLEGAIN_CONFIG", "TRIPLEGAIN_DATABASE_URL", "TRIPLEGAIN_TEST_DATABASE_URL"}
)


class Overflow(StrEnum):
    """What a full subscription queue does with one more message."""

    BLOCK = "block"
    DROP_OLDEST_LOWEST = "drop_oldest_lowest"


class TopicSettings(Section):
    ttl_seconds: float = Field(
        gt=0, description="seconds a message stays deliverable; an older one is dead-lettered as expired"
    )
    overflow: Overflow = Field(
        default=Overflow.BLOCK,
        description="full queue: block (the publisher waits) or drop_oldest_lowest (drop and count)",
    )
    maxsize: int | None = Field(
        default=None, ge=1, description="queue bound per subscription; null uses bus.default_maxsize"
    )


class TopicsConfig(Section):
    """Per-topic delivery settings; a message's own ttl wins over its topic's."""

    market_data: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=120, overflow=Overflow.DROP_OLDEST_LOWEST),
        description="candles and ticks: newest matters most, so a full queue drops the oldest",
    )
    ta_signals: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=300), description="technical agent views"
    )
    regime_updates: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=900), description="market regime views"
    )
    sentiment_updates: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=3600), description="sentiment agent views"
    )
    portfolio_updates: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=7200), description="allocation drift and rebalancing"
    )
    trade_intents: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=60), description="trades the coordinator proposes"
    )
    risk_alerts: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=300), description="risk rule and breaker alerts"
    )
    execution_events: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=3600), description="orders and fills"
    )
    system_events: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=3600), description="degradation, state changes, runs"
    )
    coordinator_commands: TopicSettings = Field(
        default_factory=lambda: TopicSettings(ttl_seconds=60), description="pause / resume / halt"
    )


class BusConfig(Section):
    """The in-process priority message bus (DESIGN §4)."""

    default_maxsize: int = Field(
        default=10_000,
        ge=1,
        description="queue bound per subscription (memory bound too; only messages a handler publishes into a "
        "full block queue go over it, counted as overflow_admitted)",
    )
    dead_letter_limit: int = Field(
        default=10_000,
        ge=1,
        description="dead letters kept in memory (memory bound); past this the oldest are evicted (and counted)",
    )
    history_size: int = Field(
        default=16,
        ge=1,
        description="messages kept per (topic, symbol) for late readers (memory bound, with the configured symbols)",
    )
    latency_window: int = Field(
        default=10_000,
        ge=1,
        description="most recent delivery latencies kept per subscription for the p50/p99/p99.9 figures (memory bound)",
    )
    close_timeout_seconds: float = Field(
        default=5.0,
        ge=0,
        description="close() waits this long for queues to drain, then dead-letters what is left",
    )
    topics: TopicsConfig = Field(default_factory=TopicsConfig, description="per-topic settings")


class DatabaseConfig(Section):
    """PostgreSQL. The server is TRIPLEGAIN_DATABASE_URL when set, else an embedded one in TRIPLEGAIN_HOME."""

    pool_min_size: int = Field(default=1, ge=0, description="connections the pool keeps open")
    pool_max_size: int = Field(default=10, ge=1, description="most connections the pool opens")
    connect_timeout_seconds: float = Field(
        default=10.0, gt=0, description="give up connecting to the server after this long"
    )
    command_timeout_seconds: float = Field(default=30.0, gt=0, description="give up on one statement after this long")
    embedded_start_timeout_seconds: float = Field(
        default=60.0, gt=0, description="give up starting the embedded server after this long"
    )
    writer: WriterSettings = Field(
        default_factory=WriterSettings, description="the batching writer of bulk logs (agent views, LLM calls)"
    )

    @field_validator("pool_max_size")
    @classmethod
    def _pool_bounds(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("pool_min_size")
        if low is not None and value < low:
            raise ValueError(f"must be at least pool_min_size ({low})")
        return value


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="least severe level written"
    )
    format: Literal["console", "json"] = Field(
        default="console", description="console (readable) or json (one object per line)"
    )


class MarketConfig(Section):
    """Where candles come from, and the indicators computed from them."""

    source: Literal["ccxt", "replay", "synthetic"] = Field(
        default="ccxt", description="ccxt (live public candles), replay (CSV files) or synthetic (seeded)"
    )
    ccxt: CcxtFeedSettings = Field(default_factory=CcxtFeedSettings, description="live candles from an exchange")
    replay: ReplaySettings = Field(default_factory=ReplaySettings, description="candles replayed from CSV files")
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings, description="seeded synthetic candles")
    indicators: IndicatorSettings = Field(default_factory=IndicatorSettings, description="indicator periods")


class CoordinatorConfig(Section):
    """How views become decisions: schedule, intents, consensus, conflicts and their resolution, degradation, the
    breaker."""

    account: str = Field(
        default="paper",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="the paper account this coordinator trades; its state, commands and orders are kept under it",
    )
    schedule: ScheduleSettings = Field(
        default_factory=ScheduleSettings,
        description="the scheduled tasks: interval, timeout, per-symbol fan-out, dependencies (live and replay)",
    )
    intent: IntentSettings = Field(
        default_factory=IntentSettings, description="how the technical view's lean becomes an entry, stop and target"
    )
    consensus: ConsensusSettings = Field(default_factory=ConsensusSettings, description="agreement and disagreement")
    conflicts: ConflictSettings = Field(default_factory=ConflictSettings, description="conflict rules")
    resolver: ResolverSettings = Field(
        default_factory=ResolverSettings, description="the LLM providers asked to resolve a conflict, in order"
    )
    resolution: ResolutionBounds = Field(
        default_factory=ResolutionBounds, description="bounds on a resolver's modifications (out of range: clamped)"
    )
    degradation: DegradationSettings = Field(
        default_factory=DegradationSettings, description="degradation levels, their triggers and effects"
    )
    breaker: PortfolioBreakerSettings = Field(
        default_factory=PortfolioBreakerSettings, description="circuit breaker on the paper portfolio"
    )
    max_market_data_age_intervals: float = Field(
        default=3.0,
        gt=0,
        allow_inf_nan=False,
        description="no trade on stale data: a decision on a symbol whose newest candle closed more than this many "
        "candle intervals ago holds (exits too)",
    )
    snapshot_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        allow_inf_nan=False,
        description="housekeeping polls for commands and saves the snapshot (task runs, hold decisions, heartbeat) "
        "at most this often, in wall-clock seconds (a replay runs housekeeping at every candle time); commands "
        "still apply at once through NOTIFY, and degradation and breaker events are saved at once. 0: every run",
    )
    max_unsaved_rows: int = Field(
        default=50_000,
        ge=1,
        description="while the database is out of reach, at most this many task runs, hold decisions, degradation "
        "and breaker events wait in memory for the next snapshot; past it the daemon stops without dropping them",
    )


class Settings(Section):
    """All of triplegain's settings."""

    database: DatabaseConfig = Field(default_factory=DatabaseConfig, description="PostgreSQL")
    bus: BusConfig = Field(default_factory=BusConfig, description="message bus")
    market: MarketConfig = Field(default_factory=MarketConfig, description="market data")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="LLM providers and the response cache")
    agents: AgentsSettings = Field(
        default_factory=AgentsSettings, description="analysis agents: technical, regime, sentiment, portfolio"
    )
    coordinator: CoordinatorConfig = Field(default_factory=CoordinatorConfig, description="the coordinator")
    risk: RiskSettings = Field(default_factory=RiskSettings, description="deterministic risk rules (final)")
    execution: ExecutionSettings = Field(
        default_factory=ExecutionSettings, description="the paper broker: balances, fees, slippage, market rules"
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="structured logs")


_DEFAULTS: dict[str, Any] = Settings().model_dump(mode="python")


def default_config_path() -> Path | None:
    """``TRIPLEGAIN_CONFIG`` when set; otherwise no file (the built-in defaults)."""
    configured = os.environ.get("TRIPLEGAIN_CONFIG")
    return Path(configured) if configured else None


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (or the defaults), apply environment overrides, validate.

    Raises ``ConfigError`` listing every problem, one line each, as ``path.to.key: value — what is allowed``.
    """
    env = os.environ if environ is None else environ
    source = str(path) if path is not None else "built-in defaults"
    data = _read_yaml(path) if path is not None else {}
    problems: list[str] = []
    env_origin: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(env.items()):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in ENV_NOT_SETTINGS:
            continue
        keys = tuple(part.lower() for part in upper[len(ENV_PREFIX) :].split(ENV_LEVEL_SEPARATOR))
        if len(keys) < 2 or not all(keys):
            shown = "(hidden)" if _looks_secret(name) else repr(raw)
            problems.append(
                f"{_printable(name)}: {shown} — not a setting; overrides are named "
                f"TRIPLEGAIN_<SECTION>__<KEY> (e.g. TRIPLEGAIN_BUS__DEFAULT_MAXSIZE)"
            )
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except (yaml.YAMLError, *_YAML_VALUE_ERRORS):
            value = raw
        _set_nested(data, keys, value)
        env_origin[keys] = name
    try:
        settings = Settings.model_validate(_merged(_DEFAULTS, data, Settings))
    except ValidationError as exc:
        problems.extend(_describe(error, env_origin) for error in exc.errors())
    if problems:
        raise ConfigError(source, problems)
    return settings


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join((getattr(exc, "problem", None) or str(exc)).split())
        raise ConfigError(str(path), [f"{where}invalid YAML — {problem}"]) from None
    except RecursionError:
        raise ConfigError(str(path), ["invalid YAML — nested too deeply"]) from None
    except _YAML_VALUE_ERRORS as exc:
        raise ConfigError(str(path), [f"invalid YAML — a value cannot be read: {' '.join(str(exc).split())}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"top level: {type(data).__name__} — a mapping of sections is allowed"])
    return data


def _merged(base: Mapping[str, Any], override: Mapping[str, Any], section: type[BaseModel]) -> dict[str, Any]:
    """``override`` laid over ``base``, section by section, so a file may set one key of a section.

    A mapping that is a setting's value (``target_allocation``, ``synthetic.symbols``) replaces the default
    whole: merged, a file's ``{BTC: 0.5, USDT: 0.5}`` would keep the default's other assets.
    """
    result = dict(base)
    for key, value in override.items():
        below = result.get(key)
        field = section.model_fields.get(key) if isinstance(key, str) else None
        inner = field.annotation if field is not None else None
        if (
            isinstance(inner, type)
            and issubclass(inner, BaseModel)
            and isinstance(value, Mapping)
            and isinstance(below, Mapping)
        ):
            result[key] = _merged(below, value, inner)
        else:
            result[key] = value
    return result


def _set_nested(data: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def _describe(error: Mapping[str, Any], env_origin: Mapping[tuple[str, ...], str]) -> str:
    loc = tuple(_printable(str(part)) for part in error["loc"])
    key = ".".join(loc) if loc else "(top level)"
    kind = error["type"]
    if kind == "missing":
        value, allowed = "(missing)", "a value is required"
    elif kind == "model_type":
        value, allowed = _shown(error["input"]), "a mapping of settings is allowed"
    elif kind == "extra_forbidden" and _looks_secret(loc[-1]):
        value, allowed = "(hidden)", "secrets are read only from the environment, never from a config file"
    elif kind == "extra_forbidden":
        value, allowed = _shown(error["input"]), f"unknown key; allowed here: {', '.join(_allowed_keys(loc))}"
    elif any(_looks_secret(part) for part in loc):
        # e.g. a key pasted into api_key_env, or a base_url with a password: the problem, never the value
        value, allowed = "(hidden)", _plain(error["msg"])
    else:
        value, allowed = _shown(error["input"]), _plain(error["msg"])
    origin = env_origin.get(loc)
    suffix = f" (from {origin})" if origin else ""
    return f"{key}: {value} — {allowed}{suffix}"


def _shown(value: Any) -> str:
    """A value as echoed in an error: mappings are summarised (they may hold secrets), long text is cut."""
    if isinstance(value, Mapping):
        keys = [_printable(str(key)) for key in itertools.islice(value, _SHOWN_KEYS + 1)]
        more = ", …" if len(keys) > _SHOWN_KEYS else ""
        return f"(a mapping with keys {', '.join(keys[:_SHOWN_KEYS])}{more})"
    # Bounded for containers: YAML aliases can nest a list of a few lines into billions of items.
    text = _SHOWN_CONTAINER.repr(value) if isinstance(value, list | tuple | set | frozenset) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _printable(key: str) -> str:
    """A key as written in a problem line: quoted when it holds a line break or another control character."""
    return key if key.isprintable() else repr(key)


def _looks_secret(key: str) -> bool:
    lowered = key.lower()
    # "token" alone is a secret's name; "max_output_tokens" is a count.
    return any(word in lowered for word in _SECRET_WORDS if word != "token") or "token" in re.split(r"[^a-z]+", lowered)


def _plain(message: str) -> str:
    """Pydantic's message without its 'Value error, ' prefix, starting lower-case."""
    message = message.removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _allowed_keys(loc: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def render_defaults() -> str:
    """The default settings as commented YAML: the content of ``config/default.yaml``."""
    lines = [
        "# triplegain settings, with every key at its default value.",
        "# Generated by `triplegain config defaults`; a test keeps this file and the code identical.",
        "# Override any key with TRIPLEGAIN_<SECTION>__<KEY> (each further __ goes one level deeper).",
        "# Secrets (TRIPLEGAIN_DATABASE_URL, API keys) come only from the environment, never from this file.",
    ]
    lines.extend(_render_model(Settings(), indent=0))
    return "\n".join(lines) + "\n"


def _render_model(model: BaseModel, indent: int) -> Iterator[str]:
    pad = "  " * indent
    as_json = model.model_dump(mode="json")
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if field.description:
            yield f"{pad}# {field.description}"
        if isinstance(value, BaseModel):
            yield f"{pad}{name}:"
            yield from _render_model(value, indent + 1)
        else:
            rendered = yaml.safe_dump(as_json[name], default_flow_style=True).strip()
            rendered = rendered.removesuffix("\n...").removesuffix("...").strip()
            yield f"{pad}{name}: {rendered}"
