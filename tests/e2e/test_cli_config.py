"""The CLI as a user runs it: a real process, its exit code and exactly what it prints."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cli import run_cli


def test_config_check_of_the_default_file_is_valid() -> None:
    result = run_cli("config", "check", "config/default.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "config/default.yaml: valid\n"


def test_config_check_prints_each_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("bus:\n  default_maxsize: zero\n  history_size: -3\n")
    result = run_cli("config", "check", str(bad))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{bad}: 2 problems",
        "bus.default_maxsize: 'zero' — input should be a valid integer, unable to parse string as an integer",
        "bus.history_size: -3 — input should be greater than or equal to 1",
    ]
    assert result.stdout == ""


def test_a_bad_override_fails_every_command_that_loads_settings_the_same_way() -> None:
    result = run_cli("db", "status", env={"TRIPLEGAIN_DATABASE__POOL_MAX_SIZE": "0"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "built-in defaults: 1 problem",
        "database.pool_max_size: 0 — input should be greater than or equal to 1 "
        "(from TRIPLEGAIN_DATABASE__POOL_MAX_SIZE)",
    ]


def test_the_global_config_option_is_used_by_check(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("logging:\n  format: json\n")
    result = run_cli("--config", str(good), "config", "check")
    assert result.returncode == 0
    assert result.stdout == f"{good}: valid\n"


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("config", "check", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{tmp_path / 'absent.yaml'}: 1 problem", "file not found"]


def test_config_defaults_prints_the_shipped_file() -> None:
    result = run_cli("config", "defaults")
    assert result.returncode == 0
    assert result.stdout == Path("config/default.yaml").read_text()


def test_an_unknown_command_is_a_usage_error() -> None:
    result = run_cli("config", "chek")
    assert result.returncode == 2
    assert "No such command 'chek'" in result.stderr
    assert "Traceback" not in result.stderr
