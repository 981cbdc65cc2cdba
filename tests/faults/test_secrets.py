"""No API key and no database password ever shows: a replay with canary secrets, then everything is scanned.

The daemon runs once for the module (a real process, ``--json-logs --log-level debug``) with canary API keys in the
environment and a canary password in ``TRIPLEGAIN_DATABASE_URL``; its LLM providers point at the local stub
(tests/stubs/llm_server.py), which answers some requests with an error quoting the credentials it received, as a
careless server might. Then: its stdout and stderr, every text and JSON column of every table, the review
commands' output and files (lists, shows, exports, the HTML report), every command's ``--help``, and the errors of
a database that cannot be reached or a URL that does not parse — none may hold a canary.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

from tests.conftest import create_database, drop_database, unique_name, url_with_database
from tests.e2e.cli import REPO, cli_env, triplegain_executable
from tests.faults.conftest import CliOutcome, run_main
from tests.faults.test_bad_cli import LEAVES
from tests.offline_replay import HEADLINES
from tests.stubs.llm_server import Answer, EchoCredentials, Failure, LLMStubServer, RawBody, Reply

DEEPSEEK_KEY = "sk-canary-deepseek-7f3a9c"
ANTHROPIC_KEY = "sk-ant-canary-51b2e8d0"
OPENAI_KEY = "sk-canary-openai-c0ffee"
DB_PASSWORD = "pw-canary-db-93d1"
CANARIES = (DEEPSEEK_KEY, ANTHROPIC_KEY, OPENAI_KEY, DB_PASSWORD)
KEYS = {"DEEPSEEK_API_KEY": DEEPSEEK_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY}
RUN_SECONDS = 120.0

CONFIG = """
llm:
  providers:
    deepseek: {{base_url: "{openai}", timeout_seconds: 5, retry: {{max_attempts: 1}}, breaker: {breaker}}}
    anthropic: {{base_url: "{anthropic}", timeout_seconds: 5, retry: {{max_attempts: 1}}, breaker: {breaker}}}
agents:
  regime: {{llm_provider: deepseek}}
  sentiment: {{llm_provider: anthropic, sources: [{{kind: replay, path: "{headlines}"}}]}}
coordinator:
  resolver: {{providers: [deepseek, anthropic]}}
  conflicts: {{risk_cut_threshold: 0.3, opposed_max_confidence_gap: 0.5}}
market:
  synthetic: {{symbols: {{BTC/USDT: 40000.0}}, count: 150, start: 2024-01-01T00:00:00Z}}
"""
NO_BREAKER = "{consecutive_failures: 1000, min_calls: 1000, window_calls: 1000}"
"""The stub fails most requests on purpose: the breakers must not stop the daemon from sending the keys."""
RESOLUTION = '{"action": "wait", "confidence": 0.6, "reasoning": "stub"}'
REPLIES: list[Reply] = [
    EchoCredentials(),
    Answer("not JSON at all"),
    Failure(500),
    RawBody('{"truncated": '),
    Answer(RESOLUTION),
]



def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0] or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password)}@{host}"))


def assert_no_canary(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{canary!r} in {where}"


@dataclass(frozen=True)
class CanaryRun:
    url: str
    """The database URL with the canary password."""
    env: dict[str, str]
    result: subprocess.CompletedProcess[str]
    requests_with_key: int
    folder: Path


async def run_daemon_against_stub(env: dict[str, str], folder: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    async with LLMStubServer() as stub:
        for _ in range(20):
            stub.openai.push(*REPLIES)
            stub.anthropic.push(*REPLIES)
        config = folder / "triplegain.yaml"
        config.write_text(
            CONFIG.format(
                openai=stub.openai_base_url, anthropic=stub.anthropic_base_url, headlines=HEADLINES, breaker=NO_BREAKER
            )
        )
        args = ["--config", str(config), "run", "--source", "synthetic", "--max-llm-usd", "1"]
        args += ["--json-logs", "--log-level", "debug"]
        process = await asyncio.create_subprocess_exec(
            triplegain_executable(),
            *args,
            cwd=REPO,
            env=cli_env(env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_SECONDS)
        received = [*stub.openai.requests, *stub.anthropic.requests]
        with_key = sum(
            DEEPSEEK_KEY in request.headers.get("Authorization", "")
            or request.headers.get("x-api-key") == ANTHROPIC_KEY
            for request in received
        )
    assert process.returncode is not None
    result = subprocess.CompletedProcess(args, process.returncode, stdout.decode(), stderr.decode())
    return result, with_key


@pytest.fixture(scope="module")
def canary_run(
    postgres_url: str, migrated_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CanaryRun]:
    name = unique_name("secrets")
    asyncio.run(create_database(postgres_url, name, template=migrated_template))
    try:
        url = with_password(url_with_database(postgres_url, name), DB_PASSWORD)
        env = {**KEYS, "TRIPLEGAIN_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
        folder = tmp_path_factory.mktemp("secrets")
        result, with_key = asyncio.run(run_daemon_against_stub(env, folder))
        yield CanaryRun(url, env, result, with_key, folder)
    finally:
        asyncio.run(drop_database(postgres_url, name))


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_daemon_sent_the_keys_and_logged_none_of_them(canary_run: CanaryRun) -> None:
    result = canary_run.result
    assert result.returncode == 0, result.stderr[-2000:]
    assert canary_run.requests_with_key >= 10  # the keys really were in play
    assert '"event": "coordinator started"' in result.stdout  # the JSON logs were written
    assert_no_canary(result.stdout, "the daemon's stdout (JSON logs)")
    assert_no_canary(result.stderr, "the daemon's stderr")


async def text_cells(url: str) -> dict[str, list[str]]:
    """Every text, varchar and json(b) column of every table: ``table.column`` → its values as text."""
    connection = await asyncpg.connect(url)
    try:
        columns = await connection.fetch(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'json', 'jsonb')
            ORDER BY table_name, column_name
            """
        )
        cells: dict[str, list[str]] = {}
        for row in columns:
            table, column = row["table_name"], row["column_name"]
            # Identifiers from the catalog, quoted: this test's own query, not the package's.
            values = await connection.fetch(f'SELECT "{column}"::text AS v FROM "{table}" WHERE "{column}" IS NOT NULL')
            cells[f"{table}.{column}"] = [value["v"] for value in values]
        return cells
    finally:
        await connection.close()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_no_table_holds_a_canary(canary_run: CanaryRun) -> None:
    cells = asyncio.run(text_cells(canary_run.url))
    for where, values in cells.items():
        for value in values:
            assert_no_canary(value, where)
    # The scan saw what matters: prompts, responses, and errors that quoted the credentials (redacted).
    assert cells["llm_calls.system_prompt"]
    assert cells["llm_calls.raw_response"]
    echoed = [message for message in cells["llm_calls.error_message"] if "invalid credentials" in message]
    assert echoed, cells["llm_calls.error_message"][:5]


def review(canary_run: CanaryRun, *args: str) -> CliOutcome:
    result = run_main(*args, env=canary_run.env)
    assert result.code == 0, result.stderr
    return result


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_review_output_and_files_hold_no_canary(canary_run: CanaryRun) -> None:
    folder = canary_run.folder
    outputs = [
        review(canary_run, "decisions", "list"),
        review(canary_run, "llm-calls", "list", "--errors-only"),
        review(canary_run, "coordinator", "status"),
        review(canary_run, "db", "status"),
        review(canary_run, "report", "--out", str(folder / "report.html")),
        review(canary_run, "decisions", "export", "--out", str(folder / "decisions.jsonl")),
        review(canary_run, "llm-calls", "export", "--format", "csv", "--out", str(folder / "calls.csv")),
        review(canary_run, "llm-calls", "export", "--format", "jsonl"),
        review(canary_run, "runs", "compare", "1", "1"),
    ]
    call_ids = asyncio.run(errored_call_ids(canary_run.url))
    outputs.extend(review(canary_run, "llm-calls", "show", call_id, "--full") for call_id in call_ids)
    for result in outputs:
        assert_no_canary(result.stdout + result.stderr, "a review command's output")
    for name in ("report.html", "decisions.jsonl", "calls.csv"):
        text = (folder / name).read_text()
        assert text
        assert_no_canary(text, name)


async def errored_call_ids(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT id::text FROM llm_calls WHERE error_message LIKE '%credentials%' ORDER BY started_at LIMIT 2"
        )
        return [row["id"] for row in rows]
    finally:
        await connection.close()


def test_no_help_output_holds_a_canary() -> None:
    env = {**KEYS, "TRIPLEGAIN_DATABASE_URL": f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:9/x"}
    groups = sorted({path[:-1] for path in LEAVES})
    for path in [*LEAVES, *groups]:
        result = run_main(*path, "--help", env=env)
        assert result.code == 0, (path, result.stderr)
        assert "Usage: triplegain" in result.stdout
        assert_no_canary(result.stdout + result.stderr, f"triplegain {' '.join(path)} --help")


BAD_URLS = [
    f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:9/none",
    f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:notaport/db",
    f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:99999/db",
    f"postgresql://postgres:{DB_PASSWORD}@[::1/db",
    f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:9/db?sslmode=sometimes",
    f"postgresql://postgres:{DB_PASSWORD}@no.such.host.invalid:5432/db",
    f"mysql://postgres:{DB_PASSWORD}@127.0.0.1:5432/db",
    f"postgresql://postgres:{DB_PASSWORD}@/db?host=/no/such/socket/dir",
]


@pytest.mark.parametrize(
    "url", BAD_URLS, ids=["refused", "port-text", "port-range", "ipv6", "sslmode", "dns", "scheme", "socket"]
)
def test_a_database_error_never_echoes_the_password(url: str) -> None:
    """Found: a port that is not a number, or out of range, or a broken IPv6 address, was a traceback (exit 1)."""
    result = run_main("db", "status", env={"TRIPLEGAIN_DATABASE_URL": url})
    assert result.code in (1, 2)
    assert "Traceback" not in result.stderr
    [line] = result.error_lines
    assert line.startswith("error: ")
    assert_no_canary(line, "the error")


def test_a_password_variable_that_is_not_a_setting_is_not_echoed() -> None:
    """Found: an unknown ``TRIPLEGAIN_*`` variable was refused with its value quoted, password or not."""
    result = run_main("config", "check", env={"TRIPLEGAIN_DB_PASSWORD": DB_PASSWORD})
    assert result.code == 2
    assert "TRIPLEGAIN_DB_PASSWORD: (hidden) — not a setting" in result.stderr
    assert_no_canary(result.stderr, "the config error")


def test_a_key_pasted_into_a_config_file_is_not_echoed(tmp_path: Path) -> None:
    """Found: a key pasted as ``api_key_env`` was accepted as a variable name and printed in 'no API key for …'."""
    config = tmp_path / "pasted.yaml"
    config.write_text(f"llm:\n  providers:\n    deepseek:\n      api_key_env: {DEEPSEEK_KEY}\n")
    result = run_main("--config", str(config), "run", "--source", "synthetic")
    assert result.code == 2
    assert "llm.providers.deepseek.api_key_env: (hidden)" in result.stderr
    assert_no_canary(result.stderr, "the config error")
