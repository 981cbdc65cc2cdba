"""Settings: defaults file in step with the models, overrides, and one clear line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from triplegain.bus.settings import Overflow
from triplegain.config import Settings, load_settings, render_defaults
from triplegain.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def problems_of(path: Path | None, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ or {})
    return caught.value.problems


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def test_default_yaml_is_rendered_from_the_models() -> None:
    assert (REPO / "config" / "default.yaml").read_text() == render_defaults()


def test_every_setting_has_a_description() -> None:
    def undocumented(model: type[BaseModel], prefix: str) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(prefix + name)
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                missing += undocumented(field.annotation, f"{prefix}{name}.")
        return missing

    assert undocumented(Settings, "") == []


def test_default_yaml_loads_to_the_defaults() -> None:
    assert load_settings(REPO / "config" / "default.yaml", {}) == Settings()


def test_no_file_and_no_environment_gives_the_defaults() -> None:
    assert load_settings(None, {}) == Settings()


def test_a_file_may_set_one_key_of_a_nested_section(tmp_path: Path) -> None:
    path = write(tmp_path, "bus:\n  topics:\n    market_data:\n      ttl_seconds: 5\n")
    settings = load_settings(path, {})
    assert settings.bus.topics.market_data.ttl_seconds == 5
    assert settings.bus.topics.market_data.overflow is Overflow.DROP_OLDEST_LOWEST
    assert settings.bus.default_maxsize == Settings().bus.default_maxsize


def test_environment_overrides_the_file_at_any_depth(tmp_path: Path) -> None:
    path = write(tmp_path, "bus:\n  default_maxsize: 50\n")
    settings = load_settings(
        path,
        {
            "TRIPLEGAIN_BUS__DEFAULT_MAXSIZE": "70",
            "triplegain_bus__topics__trade_intents__overflow": "drop_oldest_lowest",
            "TRIPLEGAIN_LOGGING__FORMAT": "json",
            "TRIPLEGAIN_HOME": "/somewhere",
            "TRIPLEGAIN_DATABASE_URL": "postgresql://x@y/z",
            "UNRELATED": "1",
        },
    )
    assert settings.bus.default_maxsize == 70
    assert settings.bus.topics.trade_intents.overflow is Overflow.DROP_OLDEST_LOWEST
    assert settings.logging.format == "json"


def test_every_problem_is_reported_on_its_own_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bus:\n  default_maxsize: -1\n  foo: 2\n  topics:\n    market_data:\n      overflow: sideways\n"
        "database:\n  pool_min_size: 5\n  pool_max_size: 2\n",
    )
    assert sorted(problems_of(path)) == sorted(
        [
            "bus.default_maxsize: -1 — input should be greater than or equal to 1",
            "bus.foo: 2 — unknown key; allowed here: default_maxsize, dead_letter_limit, history_size, "
            "latency_window, close_timeout_seconds, topics, nats",
            "bus.topics.market_data.overflow: 'sideways' — input should be 'block' or 'drop_oldest_lowest'",
            "database.pool_max_size: 2 — must be at least pool_min_size (5)",
        ]
    )


def test_an_environment_problem_names_the_variable() -> None:
    assert problems_of(None, {"TRIPLEGAIN_BUS__HISTORY_SIZE": "many"}) == [
        "bus.history_size: 'many' — input should be a valid integer, unable to parse string as an integer "
        "(from TRIPLEGAIN_BUS__HISTORY_SIZE)"
    ]


def test_a_misnamed_override_is_an_error_not_ignored() -> None:
    [problem] = problems_of(None, {"TRIPLEGAIN_BUS_DEFAULT_MAXSIZE": "5"})
    assert problem.startswith("TRIPLEGAIN_BUS_DEFAULT_MAXSIZE: '5' — not a setting")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bus: [\n", "line 2, column 1: invalid YAML — expected the node content, but found '<stream end>'"),
        ("- 1\n- 2\n", "top level: list — a mapping of sections is allowed"),
        ("bus: 3\n", "bus: 3 — a mapping of settings is allowed"),
    ],
)
def test_malformed_files_give_one_line(tmp_path: Path, text: str, expected: str) -> None:
    assert problems_of(write(tmp_path, text)) == [expected]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.yaml", {})
    assert caught.value.source == str(tmp_path / "nope.yaml")
    assert caught.value.problems == ["file not found"]


def test_secrets_in_a_file_are_refused_and_never_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  url: postgresql://u:hunter2@h/db\nllm:\n  api_key: sk-canary\n")
    problems = problems_of(path)
    assert "database.url: (hidden) — secrets are read only from the environment, never from a config file" in (problems)
    assert not any("hunter2" in line or "sk-canary" in line for line in problems)


def test_the_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), {}) == Settings()


def test_rendered_defaults_have_a_comment_above_every_key() -> None:
    text = render_defaults()
    assert Settings.model_validate(yaml.safe_load(text)) == Settings()
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            assert lines[index - 1].lstrip().startswith("#"), f"no comment above {line!r}"
