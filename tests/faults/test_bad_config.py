"""Broken config files (tests/faults/corpus/config/): one line per problem naming the key and value, exit 2.

Each corpus file starts with ``# expect: TEXT``, the start of the problem line it must produce. The file reaches
the loader through ``config check``, through ``--config`` on every command that loads settings (the daemon
included), and as ``TRIPLEGAIN_CONFIG``; each time the output is the same two lines on stderr (the file and its
problem count, then the problem), nothing on stdout, no traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.cli import run_cli
from tests.faults.conftest import REFUSED_DATABASE_URL, InvokeCli
from triplegain.config import load_settings

CORPUS = Path(__file__).resolve().parent / "corpus" / "config"
BROKEN = sorted(CORPUS.glob("*.yaml"))
EXPECT = "# expect: "

# Every command that loads the settings, with arguments that are otherwise fine.
SETTINGS_COMMANDS = [
    ["config", "check"],
    ["db", "status"],
    ["db", "migrate"],
    ["coordinator", "status"],
    ["coordinator", "pause"],
    ["coordinator", "resume", "--force"],
    ["coordinator", "halt", "--flatten"],
    ["decisions", "list"],
    ["decisions", "show", "0123456789abcdef"],
    ["decisions", "export"],
    ["llm-calls", "list"],
    ["llm-calls", "show", "0123456789abcdef"],
    ["llm-calls", "export"],
    ["report"],
    ["run", "--source", "synthetic"],
]


def expected_line(path: Path) -> str:
    first = path.read_bytes().splitlines()[0].decode()
    assert first.startswith(EXPECT), f"{path.name} must start with '{EXPECT}…'"
    return first.removeprefix(EXPECT)


def assert_one_problem(stderr: str, path: Path) -> None:
    assert "Traceback" not in stderr
    header, problem = stderr.splitlines()
    assert header == f"{path}: 1 problem"
    assert problem.startswith(expected_line(path)), problem


def test_the_corpus_covers_each_kind_of_mistake() -> None:
    names = {path.stem for path in BROKEN}
    for kind in ("wrong_type", "unknown_key", "missing_required", "negative", "allocation"):
        assert any(name.startswith(kind) for name in names), kind


@pytest.mark.parametrize("path", BROKEN, ids=[path.stem for path in BROKEN])
def test_config_check_names_the_key_and_value(invoke_cli: InvokeCli, path: Path) -> None:
    result = invoke_cli("config", "check", str(path))
    assert (result.code, result.stdout) == (2, "")
    assert_one_problem(result.stderr, path)


@pytest.mark.parametrize("path", BROKEN, ids=[path.stem for path in BROKEN])
def test_the_daemon_refuses_a_broken_config_before_it_starts(invoke_cli: InvokeCli, path: Path) -> None:
    result = invoke_cli(
        "--config", str(path), "run", "--source", "synthetic", env={"TRIPLEGAIN_DATABASE_URL": REFUSED_DATABASE_URL}
    )
    assert (result.code, result.stdout) == (2, "")
    assert_one_problem(result.stderr, path)


@pytest.mark.parametrize("args", SETTINGS_COMMANDS, ids=[" ".join(args) for args in SETTINGS_COMMANDS])
def test_every_command_that_loads_settings_reports_them_the_same_way(invoke_cli: InvokeCli, args: list[str]) -> None:
    path = CORPUS / "negative_threshold.yaml"
    env = {"TRIPLEGAIN_DATABASE_URL": REFUSED_DATABASE_URL}
    by_option = invoke_cli("--config", str(path), *args, env=env)
    by_environment = invoke_cli(*args, env={**env, "TRIPLEGAIN_CONFIG": str(path)})
    for result in (by_option, by_environment):
        assert (result.code, result.stdout) == (2, "")
        assert_one_problem(result.stderr, path)


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        (
            "TRIPLEGAIN_BUS__DEFAULT_MAXSIZE",
            "many",
            "bus.default_maxsize: 'many' — input should be a valid integer, unable to parse string as an integer "
            "(from TRIPLEGAIN_BUS__DEFAULT_MAXSIZE)",
        ),
        (
            "TRIPLEGAIN_COORDINATOR__BREAKER__DAILY_LOSS_PCT",
            "-1",
            "coordinator.breaker.daily_loss_pct: -1 — input should be greater than 0 "
            "(from TRIPLEGAIN_COORDINATOR__BREAKER__DAILY_LOSS_PCT)",
        ),
        ("TRIPLEGAIN_BUS__NOPE", "1", "TRIPLEGAIN_BUS__NOPE: bus.nope is not a setting — unknown key; allowed here:"),
        (
            "TRIPLEGAIN_COORDINATR__ACCOUNT",
            "x",
            "TRIPLEGAIN_COORDINATR__ACCOUNT: coordinatr is not a setting — unknown key; allowed here: database, bus,",
        ),
        ("TRIPLEGAIN_BUS", "1", "TRIPLEGAIN_BUS: '1' — not a setting; overrides are named"),
    ],
)
def test_a_bad_override_names_the_variable(invoke_cli: InvokeCli, name: str, value: str, line: str) -> None:
    result = invoke_cli("config", "check", env={name: value})
    assert result.code == 2
    assert result.error_lines[0] == "built-in defaults: 1 problem"
    [problem] = result.error_lines[1:]
    assert problem.startswith(line)


def test_a_mapping_setting_replaces_its_default_rather_than_merging_with_it(tmp_path: Path) -> None:
    """Found by this suite: ``{BTC: 0.5, USDT: 0.5}`` was merged with the default's XRP weight (sum 1.33, refused),
    and ``synthetic.symbols: {SOL/USDT: …}`` silently traded the default BTC and ETH too."""
    path = tmp_path / "mappings.yaml"
    path.write_text(
        "agents:\n  portfolio:\n    target_allocation: {BTC: 0.5, USDT: 0.5}\n"
        "market:\n  synthetic:\n    symbols: {SOL/USDT: 100.0}\n"
        "bus:\n  topics:\n    market_data: {ttl_seconds: 30}\n"
    )
    settings = load_settings(path, environ={})
    assert settings.agents.portfolio.target_allocation == {"BTC": 0.5, "USDT": 0.5}
    assert settings.market.synthetic.symbols == {"SOL/USDT": 100.0}
    # Sections still merge key by key: the topic keeps its default overflow policy.
    assert settings.bus.topics.market_data.ttl_seconds == 30
    assert settings.bus.topics.market_data.overflow.value == "drop_oldest_lowest"


def test_a_real_process_prints_the_same_lines() -> None:
    path = CORPUS / "allocation_over_100.yaml"
    result = run_cli("--config", str(path), "run", "--source", "synthetic")
    assert (result.returncode, result.stdout) == (2, "")
    assert_one_problem(result.stderr, path)
