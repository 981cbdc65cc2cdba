"""Broken arguments to every command of ``triplegain --help``: one line naming the option and value, exit code 2.

The commands are walked from the CLI itself, so a new command is covered by the generic mistakes (an unknown
option, a surplus or missing argument, an option without its value) without being listed here; the value mistakes
each command can see are listed. ``main`` runs in-process (``invoke_cli``); a few run as real processes to show
the console script behaves the same. The database is a port nobody listens on: a command that reached it would
exit 1, not 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer.main

from tests.e2e.cli import run_cli
from tests.faults.conftest import REFUSED_DATABASE_URL, CliOutcome, InvokeCli
from triplegain.commands import app

ENV = {"TRIPLEGAIN_DATABASE_URL": REFUSED_DATABASE_URL}


def leaf_commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        # list_commands / get_command, as click itself asks a group: the top one loads most commands lazily.
        names = command.list_commands(None) if hasattr(command, "list_commands") else []
        if not names:
            yield path, command
            return
        for name in sorted(names):
            yield from walk(command.get_command(None, name), (*path, name))

    yield from walk(typer.main.get_command(app), ())


LEAVES = dict(leaf_commands())
GROUPS = sorted({path[:-1] for path in LEAVES})


def arguments(command: Any) -> list[Any]:
    return [param for param in command.params if param.param_type_name == "argument"]


def value_options(command: Any) -> list[str]:
    return [param.opts[0] for param in command.params if param.param_type_name == "option" and not param.is_flag]


def one_error_line(result: CliOutcome, *expected: str) -> str:
    assert (result.code, result.stdout) == (2, ""), result
    assert "Traceback" not in result.stderr
    [line] = result.error_lines
    assert line.startswith("error: ")
    for text in expected:
        assert text in line, line
    return line


def test_the_walk_finds_the_documented_commands() -> None:
    names = {" ".join(path) for path in LEAVES}
    assert {
        "run",
        "agents",
        "coordinator status",
        "coordinator pause",
        "coordinator resume",
        "coordinator halt",
        "decisions list",
        "decisions show",
        "decisions export",
        "llm-calls list",
        "llm-calls show",
        "llm-calls export",
        "report",
        "results",
        "account list",
        "account reset",
        "runs compare",
        "alerts list",
        "config check",
        "config defaults",
        "db migrate",
        "db status",
        "version",
    } <= names


@pytest.mark.parametrize("path", list(LEAVES), ids=[" ".join(path) for path in LEAVES])
def test_an_unknown_option_names_it_and_the_help_to_read(invoke_cli: InvokeCli, path: tuple[str, ...]) -> None:
    result = invoke_cli(*path, "--no-such-option", env=ENV)
    one_error_line(result, "No such option: --no-such-option", f"see 'triplegain {' '.join(path)} --help'")


@pytest.mark.parametrize("path", list(LEAVES), ids=[" ".join(path) for path in LEAVES])
def test_a_surplus_or_missing_argument_is_named(invoke_cli: InvokeCli, path: tuple[str, ...]) -> None:
    params = arguments(LEAVES[path])
    if not params:
        one_error_line(invoke_cli(*path, "surplus", env=ENV), "unexpected extra argument", "(surplus)")
    for param in params:
        if param.required:
            one_error_line(invoke_cli(*path, env=ENV), "Missing argument")


@pytest.mark.parametrize("path", list(LEAVES), ids=[" ".join(path) for path in LEAVES])
def test_an_option_without_its_value_is_named(invoke_cli: InvokeCli, path: tuple[str, ...]) -> None:
    for option in value_options(LEAVES[path]):
        one_error_line(invoke_cli(*path, option, env=ENV), f"Option '{option}' requires an argument")


@pytest.mark.parametrize("group", GROUPS, ids=[" ".join(group) or "triplegain" for group in GROUPS])
def test_an_unknown_command_is_named(invoke_cli: InvokeCli, group: tuple[str, ...]) -> None:
    one_error_line(invoke_cli(*group, "frobnicate", env=ENV), "No such command 'frobnicate'")


BAD_VALUES = [
    (["run", "--speed", "fast"], "--speed: 'fast' is neither a number nor 'max'"),
    (["run", "--speed", "0"], "--speed: '0': the speed must be a number > 0"),
    (["run", "--speed", "-3"], "--speed: '-3': the speed must be a number > 0"),
    (["run", "--speed", "nan"], "--speed: 'nan': the speed must be a number > 0"),
    (["run", "--speed", "inf"], "--speed: 'inf': the speed must be a number > 0"),
    (["run", "--seed", "1.5"], "'--seed': Input should be a valid integer"),
    (["run", "--source", "nowhere"], "'--source': 'nowhere' is not one of 'ccxt', 'replay', 'synthetic'"),
    (["run", "--log-level", "loud"], "'--log-level': 'loud' is not one of 'debug', 'info', 'warning', 'error'"),
    (["run", "--replay", "no-such-file.csv"], "--replay: no-such-file.csv: no such file"),
    (["run", "some.csv"], "FILES: candle files are given with --replay"),
    (["run", "--replay", "README.md", "--source", "synthetic"], "--replay with --source synthetic: pick one"),
    (["run", "--answers-from", "0"], "'--answers-from': Input should be greater than or equal to 1"),
    (["run", "--source", "ccxt", "--answers-from", "3"], "--answers-from: re-runs a run over its candles"),
    (["run", "--on-missing", "ask"], "--on-missing: applies to --answers-from RUN only"),
    (["run", "--answers-from", "3", "--on-missing", "guess"], "'--on-missing': 'guess' is not one of 'ask'"),
    (["run", "--max-llm-usd", "-1"], "--max-llm-usd: -1.0: a number of USD ≥ 0"),
    (["run", "--max-llm-usd", "nan"], "--max-llm-usd: nan: a number of USD ≥ 0"),
    (["run", "--agents", "elsewhere"], "'--agents': 'elsewhere' is not one of 'local', 'remote'"),
    (["agents", "--speed", "fast"], "--speed: 'fast' is neither a number nor 'max'"),
    (["agents", "--source", "nowhere"], "'--source': 'nowhere' is not one of 'ccxt', 'replay', 'synthetic'"),
    (["agents", "--replay", "no-such-file.csv"], "--replay: no-such-file.csv: no such file"),
    (["agents", "--max-llm-usd", "-1"], "--max-llm-usd: -1.0: a number of USD ≥ 0"),
    (["coordinator", "pause", "--wait", "0"], "'--wait': Input should be greater than or equal to 0.1"),
    (["coordinator", "halt", "--wait", "nan"], "'--wait': Input should be less than or equal to 3600"),
    (["coordinator", "pause", "--wait", "inf"], "'--wait': Input should be less than or equal to 3600"),
    (["coordinator", "resume", "--wait", "soon"], "'--wait': Input should be a valid number"),
    (["coordinator", "pause", "--force"], "No such option: --force"),
    (["coordinator", "halt", "--force"], "No such option: --force"),
    (["coordinator", "resume", "--flatten"], "No such option: --flatten"),
    (["decisions", "list", "--limit", "0"], "--limit: '0' is not a whole number of at least 1"),
    (["decisions", "list", "--since", "2024-13-01"], "--since: '2024-13-01' is not an ISO 8601 date or time"),
    (
        ["decisions", "list", "--since", "2024-02-01", "--until", "2024-01-01"],
        "--until: '2024-01-01' is not after --since '2024-02-01'",
    ),
    (["decisions", "list", "--action", "moon"], "--action: 'moon' is not an action — one of buy, sell, hold"),
    (["decisions", "list", "--symbol="], "--symbol: '' is empty"),
    (["decisions", "list", "--run", "latest"], "--run: 'latest' is not a whole number of at least 1"),
    (["decisions", "show", "zz"], "ID: 'zz' is not a decision id"),
    (["decisions", "show", "0123"], "ID: '0123' is not a decision id — a UUID, or its first 8 or more hex digits"),
    (["decisions", "export", "--format", "xml"], "--format: 'xml' is not an export format — one of jsonl, csv"),
    (["decisions", "export", "--format", "parquet"], "--out: missing — parquet is binary"),
    (["decisions", "export", "--out", "/no/such/folder/x.csv"], "--out: '/no/such/folder/x.csv' is in a folder"),
    (["llm-calls", "list", "--limit", "-1"], "--limit: '-1' is not a whole number of at least 1"),
    (["llm-calls", "list", "--decision", "zz"], "--decision: 'zz' is not a decision id"),
    (["llm-calls", "list", "--purpose="], "--purpose: '' is empty"),
    (["llm-calls", "show", "xyz"], "ID: 'xyz' is not an LLM call id"),
    (["llm-calls", "export", "--format", "yaml"], "--format: 'yaml' is not an export format"),
    (["report", "--run", "latest"], "--run: 'latest' is not a whole number of at least 1"),
    (["runs", "compare", "first", "2"], "A: 'first' is not a whole number of at least 1"),
    (["runs", "compare", "1", "2", "--limit", "0"], "--limit: '0' is not a whole number of at least 1"),
    (["report", "--table-limit", "0"], "--table-limit: '0' is not a whole number of at least 1"),
    (["report", "--out", "/no/such/folder/r.html"], "--out: '/no/such/folder/r.html' is in a folder"),
    (["--config", "/", "version"], "'--config' / '-c': file '/' is a directory"),
    (["run", "--account", "a/b"], "--account: 'a/b' is not an account name"),
    (["coordinator", "status", "--account", ""], "--account: '' is not an account name"),
    (["coordinator", "pause", "--account", "x y"], "--account: 'x y' is not an account name"),
    (["account", "reset", "no good"], "NAME: 'no good' is not an account name"),
    (["results", "--format", "xml"], "--format: 'xml' is not allowed — one of text, json"),
    (["results", "--run", "1", "--account", "paper"], "--account: given with --run — pick one"),
    (["decisions", "list", "--all", "--account", "paper"], "--all: given with --account — pick one"),
    (["sweep", "--set", "novalue"], "--set 'novalue': not KEY=VALUE[,VALUE…]"),
    (["sweep", "--set", "a.b=1", "--set", "a.b=2", "--source", "synthetic"], "--set a.b: given more than once"),
    (["sweep", "--set", "coordinator.account=x"], "--set: each run has an account of its own"),
    (["sweep", "--seeds", "1,x", "--source", "synthetic"], "--seeds '1,x': 'x' is not a whole number"),
    (["sweep", "--replay", "README.md", "--seeds", "1"], "--seeds: seeds apply to --source synthetic"),
    (["sweep", "--replay", "no-such-file.csv"], "--replay: no-such-file.csv: no such file"),
    (["sweep", "--source", "ccxt"], "'--source': 'ccxt' is not one of 'replay', 'synthetic'"),
    (["sweep"], "--source: a sweep replays: use --replay FILE or --source synthetic"),
    (["sweep", "--workers", "0"], "'--workers': Input should be greater than or equal to 1"),
    (["sweep", "--top", "0"], "'--top': Input should be greater than or equal to 1"),
    (["sweep", "--on-missing", "ask"], "--on-missing: applies to --answers-from RUN only"),
    (["sweep", "--max-llm-usd", "-1"], "--max-llm-usd: -1.0: a number of USD ≥ 0"),
    (["sweep", "--format", "xml"], "'--format' / '-f': 'xml' is not one of 'text', 'json'"),
    (["sweep", "--work", "smtp"], "'--work': 'smtp' is not one of 'local', 'nats'"),
    (["sweep", "--work", "nats", "--workers", "2"], "--workers: applies to --work local"),
    (["sweep", "--worker-timeout", "5"], "--worker-timeout: applies to --work nats"),
    (["sweep", "--work", "nats", "--worker-timeout", "0"], "'--worker-timeout': Input should be greater than or equal"),
    (["alerts", "list", "--limit", "0"], "--limit: '0' is not a whole number of at least 1"),
    (["alerts", "list", "--account", "x y"], "--account: 'x y' is not an account name"),
]


@pytest.mark.parametrize(("args", "named"), BAD_VALUES, ids=[" ".join(args) for args, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_option_and_value(invoke_cli: InvokeCli, args: list[str], named: str) -> None:
    one_error_line(invoke_cli(*args, env=ENV), named)


def test_every_command_taking_values_has_a_bad_value_case() -> None:
    covered = {path for path in LEAVES for args, _ in BAD_VALUES if tuple(args[: len(path)]) == path}
    covered.add(("config", "check"))  # its one argument is a file: test_a_missing_config_file_is_one_problem_line
    for path, command in LEAVES.items():
        if value_options(command) or arguments(command):
            assert path in covered, path


def test_a_missing_config_file_is_one_problem_line(invoke_cli: InvokeCli) -> None:
    result = invoke_cli("config", "check", "/no/such/file.yaml", env=ENV)
    assert (result.code, result.error_lines) == (2, ["/no/such/file.yaml: 1 problem", "file not found"])


def test_no_arguments_prints_the_help_and_exits_2(invoke_cli: InvokeCli) -> None:
    for group in GROUPS:
        result = invoke_cli(*group, env=ENV)
        assert result.code == 2
        assert "Usage: triplegain" in result.stdout
        assert result.stderr == ""


def test_the_console_script_prints_the_same_single_line() -> None:
    result = run_cli("coordinator", "halt", "--wait", "0", env=ENV)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: Invalid value for '--wait': Input should be greater than or equal to 0.1 — see 'triplegain "
        "coordinator halt --help'\n"
    )


def test_a_replay_that_may_pay_without_a_bound_is_refused_before_anything_starts(invoke_cli: InvokeCli) -> None:
    """A key is set, so DeepSeek is in the chain; the database is not even reached (nothing listens on it)."""
    keys = {"DEEPSEEK_API_KEY": "sk-canary-7", "ANTHROPIC_API_KEY": None}
    result = invoke_cli("run", "--source", "synthetic", env={**ENV, **keys})
    assert (result.code, result.stdout) == (2, "")
    assert result.error_lines == [
        "error: run: this replay may call paid LLM providers (deepseek): pass --max-llm-usd USD to cap it, "
        "or --answers-from RUN to reuse a run's answers"
    ]
