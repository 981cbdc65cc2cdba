"""The sweep's grid, built by pure functions: ``--set`` parsed (values as YAML, commas inside brackets and quotes
kept), every combination of overrides × candle files × seeds numbered in a fixed order, and each point's settings
validated up front with the setting, the value and the ``--set`` it came from named."""

from __future__ import annotations

from pathlib import Path

import pytest

from triplegain.config import Settings
from triplegain.errors import ConfigError, UserError
from triplegain.sweep.grid import GridPoint, build_grid, parse_override, parse_seeds, split_values
from triplegain.sweep.sweep import SweepOptions, plan_runs
from triplegain.sweep.work import SweepRun
from triplegain.sweep.worker import options_for

pytestmark = pytest.mark.timeout(10)

BOOST = "coordinator.consensus.agreement_boost"


def test_values_are_read_as_yaml_and_split_outside_brackets_and_quotes() -> None:
    override = parse_override(f"{BOOST}=0.1, 0.2,true,[1, 2],{{a: 1, b: 2}},'x,y'")
    assert override.key == BOOST
    assert override.values == (0.1, 0.2, True, [1, 2], {"a": 1, "b": 2}, "x,y")
    assert override.texts[3] == "[1, 2]"
    assert split_values("a,[b,c],d") == ["a", "[b,c]", "d"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("novalue", "not KEY=VALUE"),
        ("=1", "not KEY=VALUE"),
        ("a..b=1", "not KEY=VALUE"),
        (f"{BOOST}=", "an empty value"),
        (f"{BOOST}=0.1,,0.2", "an empty value"),
        (f"{BOOST}=[1,", "not a YAML value"),
    ],
)
def test_a_malformed_set_is_a_user_error_naming_it(text: str, named: str) -> None:
    with pytest.raises(UserError, match="--set") as raised:
        parse_override(text)
    assert named in str(raised.value)


def test_the_grid_is_every_combination_the_first_override_varying_slowest() -> None:
    overrides = [parse_override(f"{BOOST}=0.1,0.2"), parse_override("risk.min_confidence=0.3,0.4,0.5")]
    files = [Path("a.csv"), Path("b.csv")]
    grid = build_grid(overrides, files, [None])
    assert len(grid) == 2 * 3 * 2
    assert [point.index for point in grid] == list(range(1, 13))
    assert grid[0] == GridPoint(1, ((BOOST, 0.1), ("risk.min_confidence", 0.3)), Path("a.csv"), None)
    assert grid[1].candles == Path("b.csv")
    assert grid[2].overrides[1] == ("risk.min_confidence", 0.4)
    assert grid[6].overrides[0] == (BOOST, 0.2)
    assert grid[0].label == f"{BOOST}=0.1 risk.min_confidence=0.3 a.csv"


def test_without_overrides_or_files_each_seed_is_a_point() -> None:
    grid = build_grid([], [], parse_seeds("1, 2,3"))
    assert [(point.candles, point.seed) for point in grid] == [(None, 1), (None, 2), (None, 3)]
    assert all(point.overrides == () for point in grid)
    assert grid[0].label == "seed 1"
    assert build_grid([], [], parse_seeds(None))[0].label == "defaults"


def test_bad_seeds_and_a_repeated_key_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"--seeds '1,x': 'x' is not a whole number"):
        parse_seeds("1,x")
    with pytest.raises(UserError, match=f"--set {BOOST}: given more than once"):
        build_grid([parse_override(f"{BOOST}=0.1"), parse_override(f"{BOOST}=0.2")], [], [None])


def plan(*sets: str, files: list[Path] | None = None, seeds: str | None = None) -> list[SweepRun]:
    overrides = [parse_override(text) for text in sets]
    grid = build_grid(overrides, files or [], parse_seeds(seeds))
    options = SweepOptions(sweep_id="abc123", source="replay" if files else "synthetic", answers_from=7)
    return plan_runs(Settings(), overrides, grid, options, {})


def test_each_run_has_its_account_its_settings_and_the_options_run_would_get() -> None:
    runs = plan(f"{BOOST}=0.1,0.2", seeds="5")
    assert [run.account for run in runs] == ["sweep-abc123-1", "sweep-abc123-2"]
    settings = [Settings.model_validate(run.settings) for run in runs]
    assert [s.coordinator.consensus.agreement_boost for s in settings] == [0.1, 0.2]
    assert [s.coordinator.account for s in settings] == ["sweep-abc123-1", "sweep-abc123-2"]
    options = options_for(runs[0])
    assert (options.source, options.seed, options.speed, options.answers_from) == ("synthetic", 5, None, 7)
    [replayed] = plan(files=[Path("BTC_USDT-5m.csv")])
    assert options_for(replayed).replay_files == (Path("BTC_USDT-5m.csv"),)


def test_every_bad_value_is_named_with_its_set_before_anything_runs() -> None:
    with pytest.raises(ConfigError) as raised:
        plan(f"{BOOST}=0.1,abc", "coordinator.consensus.nope=1")
    assert raised.value.source == "--set"
    first, second = raised.value.problems
    assert first.startswith(f"{BOOST}: 'abc' — input should be a valid number")
    assert first.endswith(f"(from --set {BOOST}=abc)")
    assert second.startswith("--set coordinator.consensus.nope=1: coordinator.consensus.nope is not a setting")
    assert "agreement_boost" in second  # the keys allowed there
