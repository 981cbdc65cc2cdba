"""Accounts made explicit: ``run --account``, the refusal of a replay the account is past, ``account list`` and
``account reset``, through the CLI in-process against a real PostgreSQL.

Two short synthetic replays trade accounts ``a`` and ``b`` of one database. Resetting ``a`` must leave the
database exactly as it was before ``a`` ever ran (every row of every table, dead letters aside: they carry no
account), and ``b`` untouched.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from tests.faults.conftest import run_main

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

CONFIG = """
market:
  synthetic:
    symbols: {BTC/USDT: 40000.0, ETH/USDT: 2500.0}
    count: 150
    start: 2024-01-01T00:00:00Z
coordinator:
  conflicts: {risk_cut_threshold: 0.3}
"""
LATER = """
    count: 100
    start: 2024-03-01T00:00:00Z
"""


async def every_row(url: str) -> dict[str, list[str]]:
    """Every row of every table but dead letters, as text, sorted."""
    connection = await asyncpg.connect(url)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'dead_letters'"
        )
        rows: dict[str, list[str]] = {}
        for table in tables:
            name = table["tablename"]
            texts = await connection.fetch(f'SELECT t::text AS row FROM "{name}" t')  # names from the catalog
            rows[name] = sorted(text["row"] for text in texts)
        return rows
    finally:
        await connection.close()


def rows_of(url: str) -> dict[str, list[str]]:
    return asyncio.run(every_row(url))


@pytest.fixture
def env(migrated_database_url: str, tmp_path: Path) -> dict[str, str | None]:
    config = tmp_path / "triplegain.yaml"
    config.write_text(CONFIG)
    return {"TRIPLEGAIN_DATABASE_URL": migrated_database_url, "TRIPLEGAIN_CONFIG": str(config)}


def replay(env: dict[str, str | None], *more: str) -> str:
    result = run_main("run", "--source", "synthetic", "--seed", "3", *more, env=env)
    assert result.code == 0, result.stderr
    return result.stdout


def test_two_accounts_a_refusal_a_list_and_a_reset_that_touches_only_its_own(
    env: dict[str, str | None], migrated_database_url: str, tmp_path: Path
) -> None:
    summary = replay(env, "--account", "b")
    assert "account       b" in summary
    assert "round trips   " in summary
    # The results from the stored rows add up: every trip's P&L after fees (open ones at the last price) is what
    # the equity gained, to the dust the broker leaves in the balance.
    figures = run_main("results", "--format", "json", env=env)
    assert figures.code == 0, figures.stderr
    worked = json.loads(figures.stdout)
    assert worked["starting_equity"] == 10_000.0
    assert worked["trips"]
    gained = sum(trip["pnl"] for trip in worked["trips"])
    assert gained == pytest.approx(worked["final_equity"] - 10_000.0, abs=0.05)
    assert worked["total"]["closed"] + worked["total"]["open"] == len(worked["trips"])
    before_a = rows_of(migrated_database_url)
    assert "account       a" in replay(env, "--account", "a")

    # The same candles again on a: they carry on from what a processed (a restart), nothing refused.
    again = run_main("run", "--source", "synthetic", "--seed", "3", "--account", "a", env=env)
    assert again.code == 0, again.stderr
    assert "account 'a' has processed these candles up to 2024-01-01 12:25 UTC already" in again.stderr
    # The status line (the panel off a terminal) names the account and the replay's progress.
    assert "account a | state RUNNING | " in again.stderr
    assert "progress candle 300 of 300 (100.0 %), " in again.stderr
    # Other candles starting before what a reached: refused, one line, exit 2, nothing recorded.
    other = run_main("run", "--source", "synthetic", "--seed", "4", "--account", "a", env=env)
    assert other.code == 2
    [line] = [line for line in other.error_lines if line.startswith("error:")]
    assert line == (
        "error: account 'a' has already processed candles up to 2024-01-01 12:25 UTC, and this replay starts at "
        "2024-01-01 00:00 UTC with other candles: it would skip them. Run it on another account (--account NAME), "
        "or start this one afresh (triplegain account reset a --yes)"
    )
    # Later candles go on from there.
    later = tmp_path / "later.yaml"
    later.write_text(CONFIG.replace("    count: 150\n    start: 2024-01-01T00:00:00Z\n", LATER))
    assert "account       a" in replay({**env, "TRIPLEGAIN_CONFIG": str(later)}, "--account", "a")

    listed = run_main("account", "list", env=env)
    assert listed.code == 0, listed.stderr
    header, row_a, row_b = listed.stdout.splitlines()
    assert header.split() == ["account", "runs", "last", "candle", "(UTC)", "equity", "state", "daemon"]
    assert row_a.split()[:5] == ["a", "3", "2024-03-01", "08:15", row_a.split()[4]]
    assert row_a.split()[5:] == ["RUNNING", "-"]
    assert row_b.split()[:4] == ["b", "1", "2024-01-01", "12:25"]

    # Control commands default to the account of the latest run; --account picks another.
    assert run_main("coordinator", "status", env=env).stdout.startswith("account      a on ")
    assert run_main("coordinator", "status", "--account", "b", env=env).stdout.startswith("account      b on ")

    unconfirmed = run_main("account", "reset", "a", env=env)
    assert unconfirmed.code == 2
    assert unconfirmed.stderr.startswith("error: --yes: missing, so nothing was deleted — with it, account 'a' loses ")
    assert "3 runs" in unconfirmed.stderr
    assert (rows_of(migrated_database_url))["daemon_runs"] != before_a["daemon_runs"]

    reset = run_main("account", "reset", "a", "--yes", env=env)
    assert reset.code == 0, reset.stderr
    assert reset.stdout.startswith("account 'a' reset on ")
    assert rows_of(migrated_database_url) == before_a

    assert run_main("coordinator", "status", env=env).stdout.startswith("account      b on ")
    gone = run_main("account", "reset", "a", "--yes", env=env)
    assert gone.code == 2
    assert "NAME: no account 'a' on " in gone.stderr
    bad = run_main("run", "--source", "synthetic", "--account", "a b", env=env)
    assert (bad.code, bad.stderr.strip()) == (
        2,
        "error: --account: 'a b' is not an account name — letters, digits, '_', '.' and '-' are allowed",
    )
