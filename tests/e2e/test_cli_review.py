"""``triplegain decisions``, ``llm-calls`` and ``report`` as a user runs them, against a replay's database.

Each command is a subprocess with ``TRIPLEGAIN_DATABASE_URL`` set to a copy of the database filled by a replay
(``tests/integration/test_review_queries.py``). A mistake in an argument is one line naming it, exit code 2, and
is caught before the database is opened; an id nobody has is one line, exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.e2e.cli import run_cli
from tests.review_data import MARKUP_PROMPT, ReviewData, ReviewTemplate, review_database_url
from triplegain.commands import app
from triplegain.errors import UserError

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def env(request: pytest.FixtureRequest, postgres_url: str, review_template: ReviewTemplate) -> dict[str, str]:
    return {"TRIPLEGAIN_DATABASE_URL": review_database_url(request, postgres_url, review_template)}


@pytest.fixture(scope="module")
def ids(review_template: ReviewTemplate) -> ReviewData:
    return review_template.data


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def run_all(*commands: tuple[tuple[str, ...], dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands side by side: each spends most of its second importing Python."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda command: run_cli(*command[0], env=command[1]), commands))


def narrow(env: dict[str, str]) -> dict[str, str]:
    return {**env, "COLUMNS": "80"}


def rows_of(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(" 2024-")]


def test_decisions_list_fits_an_80_column_terminal_and_filters(env: dict[str, str], ids: ReviewData) -> None:
    filters = (
        "--symbol",
        ids.deepseek_symbol.lower(),
        "--action",
        ids.deepseek_action.upper(),
        "--conflicts-only",
        "--provider",
        "deepseek",
        "--run",
        str(ids.run_b),
        "--since",
        "2024-01-01T08:00",
        "--until",
        "2024-01-02",
    )
    plain, filtered = run_all((("decisions", "list"), narrow(env)), (("decisions", "list", *filters), env))
    lines = ok(plain).splitlines()
    assert lines[0].startswith(f"decisions of run {ids.run_b} (account paper): 50 of ")  # the latest run
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert len(rows_of(plain.stdout)) == 50
    assert "…" in plain.stdout  # reasons are cut, not wrapped
    [row] = rows_of(ok(filtered))
    assert str(ids.deepseek_decision)[:8] in row


def test_decisions_show_prints_every_section(env: dict[str, str], ids: ReviewData) -> None:
    short, full, unknown = run_all(
        (("decisions", "show", str(ids.deepseek_decision)[:8]), narrow(env)),
        (("decisions", "show", str(ids.filled_decision), "--full"), env),
        (("decisions", "show", "00000000-0000-4000-8000-000000000000"), env),
    )
    out = ok(short)
    for section in ("intent", "agent views", "consensus", "conflicts", "LLM attempts", "risk rules", "orders"):
        assert f"── {section}" in out, section
    assert f"decision {ids.deepseek_decision}" in out
    assert "confidence = clamp₀¹(base " in out
    assert "error: ProviderTimeout: no answer within 8 s" in out
    assert MARKUP_PROMPT in out  # stored text is printed as written, never as rich markup
    assert "--full shows all" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "--full shows all" not in ok(full)
    assert "fill " in full.stdout
    # An id nobody has: one line, exit 1.
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == "error: no decision 00000000-0000-4000-8000-000000000000\n"


MARKETS = """
execution:
  markets:
    BTC/USDT: {min_qty: 0.0001, qty_step: 0.0001, price_step: 0.1, min_notional: 5.0}
    XRP/USDT: {min_qty: 1.0, qty_step: 1.0, price_step: 0.0001, min_notional: 5.0}
"""


def aborted_but_approved(url: str) -> str:
    """A hold the risk rules approved and the resolver aborted."""

    async def read() -> str:
        connection = await asyncpg.connect(url)
        try:
            found = await connection.fetchval(
                """
                SELECT id::text FROM decisions WHERE action = 'hold'
                AND resolution -> 'resolution' ->> 'action' = 'abort'
                AND (risk_checks -> 'decision' ->> 'approved')::boolean ORDER BY ts LIMIT 1
                """
            )
        finally:
            await connection.close()
        assert found is not None, "the replay has no aborted, approved hold"
        return str(found)

    return asyncio.run(read())


def test_decisions_show_rounds_to_the_market_and_says_why_an_approved_trade_is_held(
    env: dict[str, str], ids: ReviewData, tmp_path: Path
) -> None:
    config = tmp_path / "markets.yaml"
    config.write_text(MARKETS)
    with_markets = {**env, "TRIPLEGAIN_CONFIG": str(config)}
    filled, aborted = run_all(
        (("decisions", "show", str(ids.filled_decision)), with_markets),
        (("decisions", "show", aborted_but_approved(env["TRIPLEGAIN_DATABASE_URL"])), with_markets),
    )
    decimals = {"BTC/USDT": (1, 4), "XRP/USDT": (4, 0)}
    symbol = next(name for name in decimals if f"  {name}  " in ok(filled).splitlines()[1])
    price_places, qty_places = decimals[symbol]
    [fill] = [line.strip() for line in filled.stdout.splitlines() if line.strip().startswith("fill ")]
    qty, _, price = fill.removeprefix("fill ").partition(" at ")
    assert len(qty.partition(".")[2]) <= qty_places, fill
    assert len(price.split(" ")[0].partition(".")[2]) <= price_places, fill
    intent = ok(aborted).split("── intent")[1].split("──")[0]
    assert all(len(number.partition(".")[2]) <= 4 for number in re.findall(r"[\d,]+\.\d+", intent.split("(")[0]))
    risk = aborted.stdout.split("── risk rules")[1]
    assert "approved by the risk rules, but not ordered: the resolver" in " ".join(risk.split())
    assert "answered abort" in " ".join(risk.split())
    assert "quantity 0" not in risk


def test_llm_calls_list_and_show(env: dict[str, str], ids: ReviewData) -> None:
    listed, shown = run_all(
        (("llm-calls", "list", "--errors-only", "--decision", str(ids.deepseek_decision)[:8]), env),
        (("llm-calls", "show", str(ids.deepseek_error_call)), env),
    )
    [row] = rows_of(ok(listed))
    assert "ProviderTimeout" in row
    assert "deepseek/deepseek-chat · conflict_resolution · step 2, attempt 1 · 8000 ms" in ok(shown)
    assert MARKUP_PROMPT in shown.stdout


def test_lists_read_the_latest_run_unless_told_otherwise(env: dict[str, str], ids: ReviewData) -> None:
    latest, every, account, first, calls = run_all(
        (("decisions", "list", "--limit", "1"), env),
        (("decisions", "list", "--limit", "1", "--all"), env),
        (("decisions", "list", "--limit", "1", "--account", "paper"), env),
        (("decisions", "list", "--limit", "1", "--run", str(ids.run_a)), env),
        (("llm-calls", "list", "--limit", "1"), env),
    )
    assert ok(latest).startswith(f"decisions of run {ids.run_b} (account paper): 1 of ")
    assert ok(every).startswith("decisions of every account and run: 1 of ")
    assert ok(account).startswith("decisions of account paper (every run): 1 of ")
    assert ok(first).startswith(f"decisions of run {ids.run_a} (account paper): 1 of ")
    totals = [int(out.stdout.split(": 1 of ")[1].split()[0]) for out in (latest, every, account, first)]
    assert totals[1] == totals[2] == totals[0] + totals[3]  # runs A and B are everything, of one account
    assert ok(calls).startswith(f"LLM calls of run {ids.run_b} (account paper): 1 of ")


def test_exports_to_stdout_and_files(env: dict[str, str], ids: ReviewData, tmp_path: Path) -> None:
    parquet, csv_file = tmp_path / "calls.parquet", tmp_path / "decisions.csv"
    jsonl, to_parquet, to_csv = run_all(
        (("decisions", "export", "--run", str(ids.run_a)), env),
        (("llm-calls", "export", "--provider", "deepseek", "-f", "parquet", "--out", str(parquet)), env),
        (("decisions", "export", "--format", "csv", "--out", str(csv_file), "--limit", "5"), env),
    )
    rows = [json.loads(line) for line in ok(jsonl).splitlines()]
    assert rows
    assert {row["run_id"] for row in rows} == {ids.run_a}
    assert [row["ts"] for row in rows] == sorted(row["ts"] for row in rows)
    assert ok(to_parquet) == f"2 LLM calls of run {ids.run_b} (account paper) written to {parquet}\n"
    assert pq.read_table(parquet).column("provider").to_pylist() == ["deepseek", "deepseek"]
    assert ok(to_csv) == f"5 decisions of run {ids.run_b} (account paper) written to {csv_file}\n"
    assert len(csv_file.read_text().splitlines()) == 6


def test_the_report_is_one_html_file(env: dict[str, str], ids: ReviewData, tmp_path: Path) -> None:
    out = tmp_path / "run.html"
    written, missing = run_all(
        (("report", "--run", str(ids.run_a), "--out", str(out)), env),
        (("report", "--run", "999", "--out", str(tmp_path / "none.html")), env),
    )
    assert ok(written) == f"{out}\n"
    page = out.read_text()
    assert page.count("<svg") == 5
    assert f"run {ids.run_a}" in page
    assert 'class="decisions"' in page
    assert (missing.returncode, missing.stderr) == (1, "error: --run: no daemon run 999\n")
    assert not (tmp_path / "none.html").exists()


BAD_ARGUMENTS = [
    (("decisions", "list", "--since", "2024-13-01"), "--since: '2024-13-01' is not an ISO 8601 date or time"),
    (("decisions", "list", "--action", "short"), "--action: 'short' is not an action — one of buy, sell, hold"),
    (("decisions", "show", "xyz"), "ID: 'xyz' is not a decision id"),
    (("decisions", "export", "--format", "parquet"), "--out: missing"),
]
MORE_BAD_ARGUMENTS = [
    (("llm-calls", "list", "--limit", "0"), "--limit: '0' is not a whole number of at least 1"),
    (("llm-calls", "show", "0b8e"), "ID: '0b8e' is not an LLM call id"),
    (("llm-calls", "list", "--decision", "d3291eb3-zz"), "--decision: 'd3291eb3-zz' is not a decision id"),
    (("decisions", "list", "--since", "2024-01-02", "--until", "2024-01-01"), "--until: '2024-01-01' is not after"),
    (("decisions", "export", "--format", "xml"), "--format: 'xml' is not an export format"),
    (("decisions", "export", "--out", "/no/such/folder/x.csv"), "--out: '/no/such/folder/x.csv' is in a folder"),
    (("report", "--run", "latest"), "--run: 'latest' is not a whole number"),
    (("decisions", "list", "--run", "1", "--all"), "--all: given with --run — pick one: --run ID, --account NAME"),
    (("llm-calls", "export", "--account", "paper", "--all"), "--all: given with --account — pick one"),
    (("report", "--account", "no way"), "--account: 'no way' is not an account name"),
]


def test_a_bad_argument_is_one_line_and_exit_2() -> None:
    # The database cannot be reached: each argument is refused before one would be opened.
    env = {"TRIPLEGAIN_DATABASE_URL": "postgresql://u:canary@127.0.0.1:9/none"}
    results = run_all(*((args, env) for args, _ in BAD_ARGUMENTS))
    for (args, named), result in zip(BAD_ARGUMENTS, results, strict=True):
        assert (result.returncode, result.stdout) == (2, ""), args
        [line] = result.stderr.splitlines()
        assert line.startswith(f"error: {named}"), line


@pytest.mark.parametrize(("args", "named"), MORE_BAD_ARGUMENTS)
def test_more_bad_arguments_in_process(args: tuple[str, ...], named: str) -> None:
    """The same path without a process each (``main`` prints ``error: `` and the message, exit code 2)."""
    result = CliRunner().invoke(app, list(args), env={"TRIPLEGAIN_DATABASE_URL": "postgresql://u:x@127.0.0.1:9/none"})
    assert isinstance(result.exception, UserError), result.output
    assert result.exception.exit_code == 2
    assert str(result.exception).startswith(named)
    assert "\n" not in str(result.exception)
