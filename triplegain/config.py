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

import hashlib
import itertools
import os
import re
import reprlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from triplegain.agents.settings import AgentsSettings
from triplegain.alerts.settings import AlertsSettings
from triplegain.bus.settings import BusSettings
from triplegain.coordinator.settings import CoordinatorSettings
from triplegain.coordinator.time_limits import time_limit_problems
from triplegain.errors import ConfigError
from triplegain.execution.settings import ExecutionSettings
from triplegain.http.settings import HttpSettings
from triplegain.llm.settings import LLMSettings
from triplegain.logs import LoggingSettings
from triplegain.market.settings import MarketSettings
from triplegain.risk.settings import RiskSettings
from triplegain.section import Section
from triplegain.store.settings import DatabaseSettings

ENV_PREFIX = "TRIPLEGAIN_"
ENV_LEVEL_SEPARATOR = "__"
# TRIPLEGAIN_* variables that are not setting overrides.
# Key names that hold secrets: never echoed back, and never accepted from a file.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "url", "dsn", "webhook")
# What yaml.safe_load raises, besides YAMLError, for a value that matches a tag's pattern but does not exist
# (2024-13-01, !!int x, !!timestamp nope).
_YAML_VALUE_ERRORS = (ValueError, TypeError, AttributeError, OverflowError)
_SHOWN_KEYS = 12
_SHOWN_CONTAINER = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHOWN_CONTAINER.maxlevel = 3
ENV_NOT_SETTINGS = frozenset(
    {
        "TRIPLEGAIN_HOME",
        "TRIPLEGAIN_CONFIG",
        "TRIPLEGAIN_DATABASE_URL",
        "TRIPLEGAIN_DATABASE_PASSWORD_FILE",
        "TRIPLEGAIN_TEST_DATABASE_URL",
        "TRIPLEGAIN_NATS_URL",
        "TRIPLEGAIN_TEST_NATS_URL",
        "TRIPLEGAIN_HTTP_TOKEN",
    }
)


class Settings(Section):
    """All of triplegain's settings."""

    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="PostgreSQL")
    bus: BusSettings = Field(default_factory=BusSettings, description="message bus")
    market: MarketSettings = Field(default_factory=MarketSettings, description="market data")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="LLM providers and the response cache")
    agents: AgentsSettings = Field(
        default_factory=AgentsSettings, description="analysis agents: technical, regime, sentiment, portfolio"
    )
    coordinator: CoordinatorSettings = Field(default_factory=CoordinatorSettings, description="the coordinator")
    risk: RiskSettings = Field(default_factory=RiskSettings, description="deterministic risk rules (final)")
    execution: ExecutionSettings = Field(
        default_factory=ExecutionSettings, description="the paper broker: balances, fees, slippage, market rules"
    )
    logging: LoggingSettings = Field(default_factory=LoggingSettings, description="structured logs")
    alerts: AlertsSettings = Field(
        default_factory=AlertsSettings, description="alerts to the operator's webhooks (a Telegram bot, a chat)"
    )
    http: HttpSettings = Field(
        default_factory=HttpSettings, description="the daemon's REST API, dashboard, health and metrics over HTTP"
    )


_DEFAULTS: dict[str, Any] = Settings().model_dump(mode="python")


def settings_digest(settings: Settings) -> str:
    """sha256 of the settings as JSON: what a daemon run records of them (they hold no secrets: those come from
    the environment)."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()


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
    else:
        problems.extend(_across_sections(settings))
    if problems:
        raise ConfigError(source, problems)
    return settings


def with_overrides(settings: Settings, overrides: Mapping[str, Any], origins: Mapping[str, str]) -> Settings:
    """``settings`` with each dotted path of ``overrides`` (``coordinator.consensus.agreement_boost``) set to its
    value, validated as a whole. Raises ``ConfigError`` listing every problem, each ending with where the value
    came from (``origins[path]``, e.g. ``--set coordinator.consensus.agreement_boost=abc``)."""
    data: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for path, value in overrides.items():
        keys = tuple(path.split("."))
        _set_nested(data, keys, value)
        origin[keys] = origins[path]
    try:
        changed = Settings.model_validate(_merged(settings.model_dump(mode="python"), data, Settings))
    except ValidationError as exc:
        problems = [_describe(error, origin) for error in exc.errors()]
    else:
        problems = _across_sections(changed)
    if problems:
        raise ConfigError("--set", problems)
    return changed


def _across_sections(settings: Settings) -> list[str]:
    """Problems no section sees alone: a task whose LLM calls may outlast its timeout."""
    coordinator = settings.coordinator
    return time_limit_problems(
        coordinator.schedule, coordinator.resolver, settings.agents, settings.llm, settings.database.writer
    )


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
    if kind == "extra_forbidden":
        # An unknown section or key a variable set: the line starts with the variable, as the user wrote it.
        below = [name for keys, name in env_origin.items() if keys[: len(loc)] == loc]
        if below:
            return f"{below[0]}: {key} is not a setting — {allowed}"
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
