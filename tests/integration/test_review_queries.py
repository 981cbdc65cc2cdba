"""Decision review's queries, exports and report against a database filled by a real replay.

The database is filled once per session by a replay (``tests/review_data.py``); each module gets its own copy.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tests.conftest import TEST_DATABASE_CONFIG
from tests.review_data import MARKUP_PROMPT, SPLIT, START, ReviewData, ReviewTemplate, review_database_url
from triplegain.review import (
    DecisionFilter,
    LLMCallFilter,
    PricePoint,
    count_decisions,
    count_llm_calls,
    decision_ids_starting_with,
    decision_pages,
    decision_record,
    find_run,
    latest_run,
    list_decisions,
    list_llm_calls,
    llm_call,
    llm_call_ids_starting_with,
    llm_call_pages,
    report_scope,
    trade_points,
)
from triplegain.review.export import DECISION_COLUMNS, LLM_CALL_COLUMNS, write_csv, write_jsonl, write_parquet
from triplegain.review.records import EquityPoint
from triplegain.review.report import (
    buy_and_hold,
    equity_plot,
    event_mark,
    level_steps,
    render_html,
    report_data,
    thin,
)
from triplegain.review.results import ResultEvent
from triplegain.store import Database, open_database_at

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]

# --- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def review_url(request: pytest.FixtureRequest, postgres_url: str, review_template: ReviewTemplate) -> str:
    return review_database_url(request, postgres_url, review_template)


@pytest.fixture(scope="module")
def ids(review_template: ReviewTemplate) -> ReviewData:
    return review_template.data


@pytest.fixture
async def db(review_url: str) -> AsyncIterator[Database]:
    async with open_database_at(review_url, TEST_DATABASE_CONFIG) as opened:
        yield opened


async def ids_where(db: Database, condition: str, *args: Any) -> list[uuid.UUID]:
    """Decision ids by plain SQL, newest first: what each filter must match."""
    rows = await db.pool.fetch(f"SELECT d.id FROM decisions d WHERE {condition} ORDER BY d.ts DESC, d.id DESC", *args)
    return [row["id"] for row in rows]


async def listed(db: Database, **fields: Any) -> list[uuid.UUID]:
    return [row.id for row in await list_decisions(db, DecisionFilter(limit=None, **fields))]


# --- decisions ---------------------------------------------------------------------------------------------


async def test_the_replay_filled_what_review_needs(db: Database, ids: ReviewData) -> None:
    counts = {
        row["action"]: row["n"] for row in await db.pool.fetch("SELECT action, count(*) n FROM decisions GROUP BY 1")
    }
    assert counts.keys() == {"buy", "sell", "hold"}, counts
    assert await db.pool.fetchval("SELECT count(*) FROM conflicts") > 0
    assert await db.pool.fetchval("SELECT count(*) FROM fills") > 0
    assert await db.pool.fetchval("SELECT count(*) FROM decisions WHERE run_id = $1", ids.run_a) > 0
    assert await db.pool.fetchval("SELECT count(*) FROM decisions WHERE run_id = $1", ids.run_b) > 0


async def test_without_a_filter_the_latest_fifty_newest_first(db: Database) -> None:
    every = await ids_where(db, "true")
    rows = await list_decisions(db, DecisionFilter())
    assert [row.id for row in rows] == every[:50]
    assert await count_decisions(db, DecisionFilter()) == len(every)
    assert [row.id for row in await list_decisions(db, DecisionFilter(limit=7))] == every[:7]


async def test_each_filter_matches_what_sql_says(db: Database, ids: ReviewData) -> None:
    middle = await db.pool.fetchval("SELECT ts FROM decisions ORDER BY ts OFFSET 100 LIMIT 1")
    later = middle + timedelta(hours=1)
    assert await listed(db, since=middle) == await ids_where(db, "d.ts >= $1", middle)
    assert await listed(db, until=middle) == await ids_where(db, "d.ts < $1", middle)
    window = await listed(db, since=middle, until=later)
    assert window == await ids_where(db, "d.ts >= $1 AND d.ts < $2", middle, later)
    assert window
    assert all(middle <= row.ts < later for row in await list_decisions(db, DecisionFilter(since=middle, until=later)))
    assert await listed(db, symbol="XRP/USDT") == await ids_where(db, "d.symbol = 'XRP/USDT'")
    for action in ("buy", "sell", "hold"):
        assert await listed(db, action=action) == await ids_where(db, "d.action = $1", action)
    conflicted = await listed(db, conflicts_only=True)
    assert conflicted == await ids_where(db, "EXISTS (SELECT FROM conflicts c WHERE c.decision_id = d.id)")
    assert conflicted
    assert await listed(db, provider="deepseek") == [ids.deepseek_decision]
    assert await listed(db, provider="offline") == await ids_where(
        db, "EXISTS (SELECT FROM llm_calls l WHERE l.decision_id = d.id AND l.provider = 'offline')"
    )
    assert await listed(db, provider="nobody") == []
    run_a, run_b = await listed(db, run_id=ids.run_a), await listed(db, run_id=ids.run_b)
    assert run_a == await ids_where(db, "d.run_id = $1", ids.run_a)
    assert sorted(run_a + run_b) == sorted(await ids_where(db, "true"))
    combined = await listed(db, symbol="BTC/USDT", action="sell", conflicts_only=True, run_id=ids.run_b)
    assert combined == await ids_where(
        db,
        "d.symbol = 'BTC/USDT' AND d.action = 'sell' AND d.run_id = $1 "
        "AND EXISTS (SELECT FROM conflicts c WHERE c.decision_id = d.id)",
        ids.run_b,
    )


async def test_a_value_is_a_parameter_never_sql(db: Database) -> None:
    assert await listed(db, symbol="BTC/USDT' OR '1'='1") == []
    assert await listed(db, provider="x') OR true --") == []
    assert await db.pool.fetchval("SELECT count(*) FROM decisions") > 0


def test_a_filter_refuses_what_cannot_mean_anything() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        DecisionFilter(since=datetime(2024, 1, 1))
    with pytest.raises(ValidationError, match="not before"):
        DecisionFilter(since=START, until=START)
    with pytest.raises(ValidationError):
        DecisionFilter(limit=0)
    with pytest.raises(ValidationError):
        DecisionFilter.model_validate({"action": "short"})
    with pytest.raises(ValidationError):
        DecisionFilter.model_validate({"colour": "red"})


async def test_a_decision_record_holds_everything_behind_it(db: Database, ids: ReviewData) -> None:
    record = await decision_record(db, ids.filled_decision)
    assert record is not None
    decision = record.decision
    inputs: Any = decision.consensus_inputs
    named = {entry["output_id"] for entry in inputs}
    named.add(decision.intent["source_output_id"])
    assert {str(view.id) for view in record.views} == named
    assert all(view.symbol == decision.symbol for view in record.views)
    assert record.conflicts
    assert all(conflict.decision_id == decision.id for conflict in record.conflicts)
    resolution: Any = decision.resolution
    assert {str(call.id) for call in record.llm_calls} == {a["call_id"] for a in resolution["attempts"]}
    assert all(call.system_prompt and call.user_prompt for call in record.llm_calls)
    [order] = record.orders
    assert order.order.status == "filled"
    [fill] = order.fills
    assert (fill.order_id, fill.client_order_id) == (order.order.id, order.order.client_order_id)
    assert (fill.account, fill.symbol, fill.side) == (order.order.account, order.order.symbol, order.order.side)
    assert Decimal(repr(fill.qty)) == order.order.qty  # a fill's numbers are the broker's floats
    assert Decimal(repr(fill.price)) == round(Decimal(repr(decision.intent["entry_price"])), 8)


async def test_a_decisions_llm_attempts_are_whole_rows_in_order(db: Database, ids: ReviewData) -> None:
    record = await decision_record(db, ids.deepseek_decision)
    assert record is not None
    deepseek = [call for call in record.llm_calls if call.provider == "deepseek"]
    assert [call.attempt for call in deepseek] == [1, 2]
    failed, answered = deepseek
    assert failed.id == ids.deepseek_error_call
    assert (failed.error_class, failed.error_message, failed.raw_response) == (
        "ProviderTimeout",
        "no answer within 8 s",
        None,
    )
    assert answered.parsed == {"action": "wait", "confidence": 0.6}
    assert (answered.input_tokens, answered.output_tokens, answered.cost_usd) == (420, 35, 0.00125)
    assert answered.user_prompt == MARKUP_PROMPT
    assert answered.symbol == record.decision.symbol


async def test_unknown_ids_and_prefixes(db: Database, ids: ReviewData) -> None:
    assert await decision_record(db, uuid.uuid4()) is None
    assert await llm_call(db, uuid.uuid4()) is None
    prefix = str(ids.deepseek_decision)[:8]
    assert await decision_ids_starting_with(db, prefix) == [ids.deepseek_decision]
    assert await decision_ids_starting_with(db, str(ids.deepseek_decision)[:13]) == [ids.deepseek_decision]
    assert await llm_call_ids_starting_with(db, str(ids.deepseek_error_call)[:10]) == [ids.deepseek_error_call]
    with pytest.raises(ValueError, match="prefix"):
        await decision_ids_starting_with(db, "abc%")
    with pytest.raises(ValueError, match="prefix"):
        await decision_ids_starting_with(db, "abcd")


async def test_pages_walk_every_match_oldest_first(db: Database) -> None:
    wanted = DecisionFilter(symbol="BTC/USDT", limit=None)
    pages = [page async for page in decision_pages(db, wanted, page_size=7)]
    assert all(len(page) <= 7 for page in pages)
    walked = [row["id"] for page in pages for row in page]
    assert walked == list(reversed(await listed(db, symbol="BTC/USDT")))
    assert list(pages[0][0]) == [name for name, _ in DECISION_COLUMNS]
    capped = [row async for page in decision_pages(db, DecisionFilter(limit=10), page_size=4) for row in page]
    assert [row["id"] for row in capped] == list(reversed(await ids_where(db, "true")))[:10]


# --- LLM calls ---------------------------------------------------------------------------------------------


async def call_ids(db: Database, condition: str, *args: Any) -> list[uuid.UUID]:
    newest_first = "c.started_at DESC, c.wall_started_at DESC, c.id DESC"
    rows = await db.pool.fetch(f"SELECT c.id FROM llm_calls c WHERE {condition} ORDER BY {newest_first}", *args)
    return [row["id"] for row in rows]


async def listed_calls(db: Database, **fields: Any) -> list[uuid.UUID]:
    return [row.id for row in await list_llm_calls(db, LLMCallFilter(limit=None, **fields))]


async def test_llm_call_filters(db: Database, ids: ReviewData) -> None:
    assert await count_llm_calls(db, LLMCallFilter()) == len(await call_ids(db, "true"))
    assert [row.id for row in await list_llm_calls(db, LLMCallFilter())] == (await call_ids(db, "true"))[:50]
    assert await listed_calls(db, provider="deepseek") == await call_ids(db, "c.provider = 'deepseek'")
    assert await listed_calls(db, errors_only=True) == [ids.deepseek_error_call]
    assert await listed_calls(db, purpose="regime_refinement") == await call_ids(db, "c.purpose = 'regime_refinement'")
    assert await listed_calls(db, decision_id=ids.deepseek_decision) == await call_ids(
        db, "c.decision_id = $1", ids.deepseek_decision
    )
    assert await listed_calls(db, run_id=ids.run_a) == await call_ids(db, "c.run_id = $1", ids.run_a)
    assert await listed_calls(db, since=SPLIT) == await call_ids(db, "c.started_at >= $1", SPLIT)
    assert await listed_calls(db, until=SPLIT) == await call_ids(db, "c.started_at < $1", SPLIT)
    xrp = await list_llm_calls(db, LLMCallFilter(symbol="XRP/USDT", limit=None))
    assert {row.purpose for row in xrp} >= {"regime_refinement", "conflict_resolution"}
    assert all(row.symbol == "XRP/USDT" for row in xrp)
    # An agent's call has no symbol or decision of its own: it is the symbol of the view it was made for.
    agent_calls = await db.pool.fetch(
        "SELECT a.llm_call_id, a.symbol FROM agent_outputs a WHERE a.symbol = 'XRP/USDT' AND a.llm_call_id IS NOT NULL"
    )
    assert {row["llm_call_id"] for row in agent_calls} <= {row.id for row in xrp}


async def test_one_llm_call_whole(db: Database, ids: ReviewData) -> None:
    call = await llm_call(db, ids.deepseek_error_call)
    assert call is not None
    assert (call.provider, call.model, call.latency_ms, call.decision_id) == (
        "deepseek",
        "deepseek-chat",
        8000.0,
        ids.deepseek_decision,
    )
    assert call.system_prompt == "You resolve conflicts."


# --- export ------------------------------------------------------------------------------------------------


async def test_decisions_export_to_all_three_formats(db: Database, tmp_path: Path) -> None:
    wanted = DecisionFilter(conflicts_only=True, limit=None)
    expected = list(reversed(await listed(db, conflicts_only=True)))

    stream = io.StringIO()
    assert await write_jsonl(decision_pages(db, wanted, page_size=9), DECISION_COLUMNS, stream) == len(expected)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [uuid.UUID(line["id"]) for line in lines] == expected
    assert isinstance(lines[0]["consensus_terms"], dict)
    assert lines[0]["conflict_rules"]
    assert datetime.fromisoformat(lines[0]["ts"]).tzinfo is not None

    with (tmp_path / "d.csv").open("w", newline="", encoding="utf-8") as out:
        assert await write_csv(decision_pages(db, wanted, page_size=9), DECISION_COLUMNS, out) == len(expected)
    with (tmp_path / "d.csv").open(newline="", encoding="utf-8") as read:
        rows = list(csv.DictReader(read))
    assert [uuid.UUID(row["id"]) for row in rows] == expected
    assert list(rows[0]) == [name for name, _ in DECISION_COLUMNS]
    assert json.loads(rows[0]["consensus_terms"]) == lines[0]["consensus_terms"]
    assert json.loads(rows[0]["risk_checks"]) == lines[0]["risk_checks"]

    path = tmp_path / "d.parquet"
    assert await write_parquet(decision_pages(db, wanted, page_size=9), DECISION_COLUMNS, path) == len(expected)
    table = pq.read_table(path)
    assert table.num_rows == len(expected)
    assert table.column_names == [name for name, _ in DECISION_COLUMNS]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    records = table.to_pylist()
    assert [uuid.UUID(record["id"]) for record in records] == expected
    assert json.loads(records[0]["consensus_inputs"]) == lines[0]["consensus_inputs"]
    assert records[0]["ts"] == datetime.fromisoformat(lines[0]["ts"])


async def test_an_empty_export_still_has_its_columns(db: Database, tmp_path: Path) -> None:
    nothing = DecisionFilter(symbol="NONE/USDT", limit=None)
    path = tmp_path / "empty.parquet"
    assert await write_parquet(decision_pages(db, nothing), DECISION_COLUMNS, path) == 0
    assert pq.read_table(path).column_names == [name for name, _ in DECISION_COLUMNS]
    stream = io.StringIO()
    assert await write_csv(decision_pages(db, nothing), DECISION_COLUMNS, stream) == 0
    assert stream.getvalue().splitlines() == [",".join(name for name, _ in DECISION_COLUMNS)]


async def test_llm_calls_export(db: Database, ids: ReviewData, tmp_path: Path) -> None:
    wanted = LLMCallFilter(decision_id=ids.deepseek_decision, limit=None)
    path = tmp_path / "calls.parquet"
    count = await write_parquet(llm_call_pages(db, wanted, page_size=2), LLM_CALL_COLUMNS, path)
    records = pq.read_table(path).to_pylist()
    assert len(records) == count == len(await call_ids(db, "c.decision_id = $1", ids.deepseek_decision))
    deepseek = [record for record in records if record["provider"] == "deepseek"]
    assert [record["error_class"] for record in deepseek] == ["ProviderTimeout", None]
    assert json.loads(deepseek[1]["parsed"]) == {"action": "wait", "confidence": 0.6}
    assert deepseek[1]["cost_usd"] == 0.00125
    assert deepseek[1]["cached"] is False


# --- report ------------------------------------------------------------------------------------------------


async def test_the_report_covers_the_latest_run_by_default(db: Database, ids: ReviewData) -> None:
    run = await latest_run(db)
    assert run is not None
    assert run.id == ids.run_b
    data = await report_data(db, await report_scope(db, run), now=START + timedelta(days=1))
    assert data.counts.total == await db.pool.fetchval("SELECT count(*) FROM decisions WHERE run_id = $1", ids.run_b)
    assert {decision.run_id for decision in data.decisions} == {ids.run_b}
    assert data.scope.first is not None
    assert data.scope.first >= SPLIT
    assert all(point.ts >= SPLIT for point in data.equity)
    assert [change.to_level for change in data.levels] == ["LIMITED", "NORMAL"]
    assert {cost.provider for cost in data.costs} == {"offline", "deepseek"}
    assert sum(cost.cost_usd for cost in data.costs) == pytest.approx(0.00125)
    assert {trade.filled for trade in data.trades} == {True, False}
    assert data.results is not None
    assert data.results.total.closed + data.results.total.open == len(data.results.trips)
    assert [event.kind for event in data.results.events] == ["level change", "level change"]
    page = render_html(data)
    assert page.startswith("<!DOCTYPE html>")
    for heading in (
        "Results",
        "Equity and buy-and-hold",
        "Drawdown",
        "Trades on price",
        "Degradation level",
        "LLM cost per day",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("<svg") == 5
    assert '<table class="results">' in page
    assert "<h3>Round trips</h3>" in page
    assert "LIMITED → NORMAL" in page  # the events table
    assert f"run {ids.run_b}" in page
    for loads in ("<script", 'src="http', 'href="http', "<link", "@import", "url(http"):
        assert loads not in page, loads


async def test_a_report_on_the_first_run_and_on_everything(db: Database, ids: ReviewData) -> None:
    run_a = await find_run(db, ids.run_a)
    assert run_a is not None
    first = await report_data(db, await report_scope(db, run_a), now=START, table_limit=20)
    assert len(first.decisions) == 20
    assert first.counts.total > 20
    assert all(point.ts < SPLIT + timedelta(minutes=5) for point in first.equity)
    assert [change.to_level for change in first.levels] == ["REDUCED", "NORMAL"]
    assert "The newest 20 of" in render_html(first)
    everything = await report_data(db, await report_scope(db, None), now=START)
    assert everything.counts.total == await db.pool.fetchval("SELECT count(*) FROM decisions")
    assert len(everything.levels) == 4
    assert everything.results is None  # results are one account's
    assert "Every account and run" in render_html(everything)
    account = await report_data(db, await report_scope(db, None, "paper"), now=START)
    assert account.counts == everything.counts  # one account in this database: its runs are everything
    assert len(account.costs) == len(everything.costs)
    assert "Every run of account paper" in render_html(account)
    nobody = await report_data(db, await report_scope(db, None, "nobody"), now=START)
    assert (nobody.counts.total, nobody.costs, nobody.equity) == (0, [], [])
    assert await find_run(db, 10_000) is None


async def test_trades_are_fills_and_unfilled_orders(db: Database) -> None:
    trades = await trade_points(db, await report_scope(db, None))
    fills = await db.pool.fetchval("SELECT count(*) FROM fills")
    unfilled = await db.pool.fetchval(
        "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT FROM fills f WHERE f.order_id = o.id)"
    )
    assert sum(trade.filled for trade in trades) == fills
    assert sum(not trade.filled for trade in trades) == unfilled
    assert all(trade.price > 0 for trade in trades)


async def test_a_report_on_an_empty_database_says_so(migrated_database: Database) -> None:
    assert await latest_run(migrated_database) is None
    data = await report_data(migrated_database, await report_scope(migrated_database, None), now=START)
    page = render_html(data)
    assert "No decisions in this scope." in page
    assert "<svg" not in page
    assert "No LLM calls in this scope." in page


# --- pure parts of the report ------------------------------------------------------------------------------


def test_buy_and_hold_splits_equally_and_waits_for_every_price() -> None:
    t = [START + timedelta(minutes=5 * i) for i in range(3)]
    prices = [
        PricePoint(symbol="A", ts=t[0], price=10.0),
        PricePoint(symbol="B", ts=t[1], price=2.0),
        PricePoint(symbol="A", ts=t[2], price=20.0),
        PricePoint(symbol="B", ts=t[2], price=1.0),
    ]
    assert buy_and_hold(prices, 100.0) == [(t[1], 100.0), (t[2], 100.0 * (2.0 + 0.5) / 2)]
    assert buy_and_hold([], 100.0) == []


def test_breaker_trips_halts_pauses_and_commands_are_marked_on_the_equity_plot() -> None:
    equity = [
        EquityPoint(account="paper", ts=START + timedelta(hours=h), equity=10_000 - 50 * h, cash=0, drawdown=0)
        for h in range(10)
    ]
    events = [
        ResultEvent(ts=START + timedelta(hours=2), kind="breaker trip", what="max_drawdown (halt)", cause="15 %"),
        ResultEvent(ts=START + timedelta(hours=2), kind="halt", what="halt by breaker:max_drawdown (…)", cause=""),
        ResultEvent(ts=START + timedelta(hours=5), kind="resume", what="resume --force by operator:ana (…)", cause=""),
        ResultEvent(ts=START + timedelta(hours=6), kind="pause", what="pause by operator:ana (…)", cause="news"),
        ResultEvent(ts=START + timedelta(hours=7), kind="level change", what="NORMAL → LIMITED", cause="x"),
    ]
    assert [event_mark(event) for event in events] == [
        ("breaker trip", "#cf222e", "-"),
        ("halt (breaker)", "#6e0000", "--"),
        ("resume (operator)", "#0969da", ":"),
        ("pause (operator)", "#0969da", "--"),
        None,
    ]
    plot = equity_plot(equity, [], events)
    assert plot is not None
    for label in ("breaker trip", "halt (breaker)", "resume (operator)", "pause (operator)"):
        assert label in plot
    assert "level change" not in plot
    assert plot.count("breaker trip") == 1  # one legend entry per kind


def test_level_steps_and_thinning() -> None:
    assert level_steps([], None, None) == []
    assert level_steps([], START, SPLIT) == [(START, 0), (SPLIT, 0)]
    assert thin(list(range(10)), 4) == [0, 3, 6, 9]
    assert thin(list(range(11)), 4) == [0, 3, 6, 9, 10]
    assert thin([1, 2], 4) == [1, 2]
