"""Fuzzing the config loader: any file and any override give Settings or a ConfigError of one-line problems.

Nothing else may escape ``load_settings`` (no traceback reaches a user). Examples: 100 a test by default, 10,000
with ``HYPOTHESIS_PROFILE=fuzz`` (tests/faults/conftest.py). The cases the fuzzing found are pinned below it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from triplegain.config import Settings, load_settings
from triplegain.errors import ConfigError


def setting_paths(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of the default settings, sections and their leaves."""
    if path:
        yield path
    if isinstance(node, dict) and (not path or path[-1] not in ("target_allocation", "symbols")):
        for key, value in node.items():
            yield from setting_paths(value, (*path, str(key)))


PATHS = sorted(set(setting_paths(Settings().model_dump(mode="json"))))
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["5m", "7m", "BTC/USDT", "2024-01-01T00:00:00Z", "2024-13-01", "block", "offline", "1e400"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
PATH = st.sampled_from(PATHS) | st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3).map(tuple)


def nested(assignments: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for path, value in assignments:
        node = data
        for key in path[:-1]:
            child = node.get(key)
            node[key] = child = child if isinstance(child, dict) else {}
            node = child
        node[path[-1]] = value
    return data


@pytest.fixture(scope="module")
def config_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="triplegain-fuzz-") as folder:
        yield Path(folder) / "fuzzed.yaml"


def load(path: Path | None, environ: dict[str, str]) -> Settings | ConfigError:
    try:
        return load_settings(path, environ=environ)
    except ConfigError as error:
        return error


def check(path: Path | None, environ: dict[str, str]) -> None:
    loaded = load(path, environ)
    if isinstance(loaded, ConfigError):
        assert loaded.exit_code == 2
        assert loaded.problems
        for problem in loaded.problems:
            assert problem
            assert "\n" not in problem, problem
    else:
        assert isinstance(loaded, Settings)


@settings(deadline=None)
@given(content=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzz_any_file_content(config_file: Path, content: bytes) -> None:
    config_file.write_bytes(content)
    check(config_file, {})


@settings(deadline=None)
@given(assignments=st.lists(st.tuples(PATH, VALUES), min_size=1, max_size=4))
def test_fuzz_settings_with_wrong_values(config_file: Path, assignments: list[tuple[tuple[str, ...], Any]]) -> None:
    config_file.write_text(yaml.safe_dump(nested(assignments), allow_unicode=True), encoding="utf-8")
    check(config_file, {})


@settings(deadline=None)
@given(
    overrides=st.dictionaries(
        st.sampled_from(PATHS).map(lambda path: "TRIPLEGAIN_" + "__".join(path).upper())
        | st.text(min_size=1, max_size=12).map(lambda name: "TRIPLEGAIN_" + name),
        st.text(max_size=20) | VALUES.map(lambda value: yaml.safe_dump(value, default_flow_style=True)),
        max_size=3,
    )
)
def test_fuzz_environment_overrides(overrides: dict[str, str]) -> None:
    check(None, overrides)


DEEP = "bus: " + "[" * 5000 + "]" * 5000 + "\n"
ALIAS_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}' if previous else '1'] * 9)}]\n"
    for previous, name in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh", strict=True)
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (DEEP, "invalid YAML — nested too deeply"),
        ("market:\n  synthetic:\n    start: 2024-13-01\n", "invalid YAML — a value cannot be read: month must be in"),
        ("bus:\n  history_size: !!int x\n", "invalid YAML — a value cannot be read: invalid literal for int()"),
        ("market:\n  synthetic:\n    start: !!timestamp nope\n", "invalid YAML — a value cannot be read:"),
        (ALIAS_BOMB, "h: [[[[...], [...], [...], [...], [...], [...], ...], [[...], [...], [...], [...... — unknown"),
    ],
    ids=["deep-nesting", "impossible-date", "bad-int-tag", "bad-timestamp-tag", "alias-bomb"],
)
@pytest.mark.timeout(10)
def test_found_by_fuzzing_yaml_that_crashed_or_hung_the_loader(config_file: Path, text: str, problem: str) -> None:
    """Each was a traceback (RecursionError, ValueError, AttributeError) or, for nine lines of aliases expanding to
    9⁸ items, a hang while the error message printed the value whole."""
    config_file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file, environ={})
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_found_by_fuzzing_an_impossible_date_in_an_override() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={"TRIPLEGAIN_MARKET__SYNTHETIC__START": "2024-13-01"})
    [problem] = caught.value.problems
    assert problem.startswith("market.synthetic.start: '2024-13-01' — input should be a valid datetime")
