"""Decisions with their conflicts and orders, stored in one transaction against the coordinator's state."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.state_rows import write_state_row
from triplegain.coordinator.state import apply_command as real_apply
from triplegain.errors import DatabaseError
from triplegain.model import Command, CoordinatorState, DegradationLevel, OrderRow, StateRecord, Verb
from triplegain.review.decision_queries import decision_record
from triplegain.store.coordinator_state import apply_pending, load_state, submit_command
from triplegain.store.database import Database, open_database_at
from triplegain.store.decisions import (
    ConflictRow,
    DecisionRow,
    DecisionWrite,
    StoredDecision,
    commit_decision,
    pending_orders,
)
from triplegain.store.settings import DatabaseSettings

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
ACCOUNT = "paper"
SYMBOL = "BTC/USDT"
RUNNING, PAUSED, HALTED = CoordinatorState.RUNNING, CoordinatorState.PAUSED, CoordinatorState.HALTED
WAIT_SECONDS = 20.0


def decision_row(
    decision_id: uuid.UUID, state: CoordinatorState, *, account: str = ACCOUNT, ts: datetime = T0
) -> DecisionRow:
    """A buy while RUNNING, a hold otherwise (what the coordinator's ``confirm`` does)."""
    buying = state is RUNNING
    return DecisionRow(
        id=decision_id,
        run_id=None,
        account=account,
        symbol=SYMBOL,
        ts=ts,
        action="buy" if buying else "hold",
        confidence=0.72 if buying else 0.0,
        consensus_inputs=[{"agent": "technical", "bias": "long", "confidence": 0.8}],
        consensus_terms={"agree_weight": 0.5, "terms": [{"agent": "technical", "term": 0.4}]},
        consensus_result={"score": 0.72},
        risk_checks={"size": 0.01, "cut_by": []},
        degradation_level=DegradationLevel.LIMITED,
        coordinator_state=state,
        reason="TA and regime agree" if buying else f"{state.value}: no new entries",
        intent={"direction": "long", "entry": 60000.5, "stop": 58800.0, "target": 63000.0, "base_confidence": 0.7},
        resolution={
            "resolved_by": "deepseek/deepseek-chat",
            "resolution": {"action": "modify", "size_reduction_pct": 30.0},
            "clamps": [{"field": "leverage", "asked": 5.0, "applied": 3.0}],
            "attempts": [{"provider": "deepseek", "attempt": 1, "error_class": None}],
        },
        effects={"size_multiplier": 0.5, "min_confidence": 0.7},
    )


def order_row(
    decision_id: uuid.UUID | None, client_order_id: str, *, created_at: datetime = T0, **fields: Any
) -> OrderRow:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "client_order_id": client_order_id,
        "account": ACCOUNT,
        "decision_id": decision_id,
        "symbol": SYMBOL,
        "side": "buy",
        "type": "limit",
        "qty": 0.1,
        "price": 60000.5,
        "created_at": created_at,
        "updated_at": created_at,
        "reason": "entry",
    }
    return OrderRow(**(values | fields))


def conflict_row(decision_id: uuid.UUID, rule: str, **fields: Any) -> ConflictRow:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "decision_id": decision_id,
        "ts": T0,
        "rule": rule,
        "details": {"severity": 0.4},
    }
    return ConflictRow(**(values | fields))


def builder(
    decision_id: uuid.UUID, client_order_id: str | None = None, *, seen: list[CoordinatorState] | None = None
) -> Callable[[CoordinatorState], DecisionWrite]:
    """A pure ``build``: an order (``client_order_id``, default from the decision id) only while RUNNING."""

    def build(state: CoordinatorState) -> DecisionWrite:
        if seen is not None:
            seen.append(state)
        order = order_row(decision_id, client_order_id or f"c-{decision_id}") if state is RUNNING else None
        return DecisionWrite(decision=decision_row(decision_id, state), order=order)

    return build


async def count(pool: Any, table: str) -> int:
    tables = {"decisions", "conflicts", "orders"}
    assert table in tables
    value: int = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return value


async def pause(db: Database, now: datetime = T0) -> None:
    await submit_command(db, ACCOUNT, Command(Verb.PAUSE, reason="news"), now)
    [settled] = await apply_pending(db, ACCOUNT, now, DegradationLevel.NORMAL, real_apply)
    assert settled.status == "applied"


async def test_a_decision_its_conflicts_and_its_order_are_stored_and_read_back(migrated_database: Database) -> None:
    decision_id = uuid.uuid4()
    conflicts = (
        conflict_row(decision_id, "ta_vs_sentiment", resolution="modify", resolved_by="deepseek/deepseek-chat"),
        conflict_row(decision_id, "risk_cut", ts=T0 + timedelta(seconds=1)),
    )
    order = order_row(decision_id, "c-1")
    write = DecisionWrite(decision=decision_row(decision_id, RUNNING), conflicts=conflicts, order=order)

    stored = await commit_decision(migrated_database, ACCOUNT, lambda state: write)

    assert stored == StoredDecision(write=write, state=RUNNING, already_stored=False, order_stored=True)
    details = await decision_record(migrated_database, decision_id)
    assert details is not None
    assert details.decision == write.decision
    assert details.conflicts == conflicts
    assert tuple(entry.order for entry in details.orders) == (order,)
    assert details.orders[0].order.qty == Decimal("0.1")
    assert details.llm_calls == ()
    raw = await migrated_database.pool.fetchrow(
        "SELECT degradation_level, coordinator_state, resolution FROM decisions WHERE id = $1", decision_id
    )
    assert (raw["degradation_level"], raw["coordinator_state"]) == ("LIMITED", "RUNNING")
    assert raw["resolution"]["clamps"] == [{"field": "leverage", "asked": 5.0, "applied": 3.0}]
    assert await decision_record(migrated_database, uuid.uuid4()) is None


async def test_the_first_decision_creates_a_running_state_row_dated_by_the_decision(
    migrated_database: Database,
) -> None:
    seen: list[CoordinatorState] = []

    await commit_decision(migrated_database, ACCOUNT, builder(uuid.uuid4(), seen=seen))

    assert seen == [RUNNING]
    record = await load_state(migrated_database, ACCOUNT)
    assert record is not None
    assert (record.state, record.changed_at) == (RUNNING, T0)


async def test_a_decision_without_conflicts_or_order_and_without_resolution(migrated_database: Database) -> None:
    decision_id = uuid.uuid4()
    decision = decision_row(decision_id, RUNNING).model_copy(update={"resolution": None, "action": "hold"})

    stored = await commit_decision(migrated_database, ACCOUNT, lambda state: DecisionWrite(decision=decision))

    assert (stored.already_stored, stored.order_stored) == (False, False)
    details = await decision_record(migrated_database, decision_id)
    assert details is not None
    assert details.decision.resolution is None
    assert (details.conflicts, details.orders) == ((), ())
    assert await migrated_database.pool.fetchval("SELECT resolution IS NULL FROM decisions") is True


async def test_a_decision_run_again_after_a_crash_stores_nothing_new_and_no_second_order(
    migrated_database: Database, migrated_database_url: str
) -> None:
    decision_id = uuid.uuid4()
    first = await commit_decision(migrated_database, ACCOUNT, builder(decision_id, "c-first"))
    assert first.order_stored

    # The restarted daemon: another pool, the same deterministic decision id, and an order id that differs
    # (e.g. derived from a retry counter): still nothing is stored.
    async with open_database_at(migrated_database_url, DatabaseSettings(pool_min_size=1, pool_max_size=2)) as again:
        conflicts = (conflict_row(decision_id, "choppy_regime"),)
        write = DecisionWrite(
            decision=decision_row(decision_id, RUNNING),
            conflicts=conflicts,
            order=order_row(decision_id, "c-second"),
        )
        second = await commit_decision(again, ACCOUNT, lambda state: write)
        assert (second.already_stored, second.order_stored) == (True, False)
        assert [order.client_order_id for order in await pending_orders(again, ACCOUNT)] == ["c-first"]

    pool = migrated_database.pool
    assert (await count(pool, "decisions"), await count(pool, "conflicts"), await count(pool, "orders")) == (1, 0, 1)


async def test_a_client_order_id_is_never_stored_twice(migrated_database: Database) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    await commit_decision(migrated_database, ACCOUNT, builder(first, "same"))

    stored = await commit_decision(migrated_database, ACCOUNT, builder(second, "same"))

    assert (stored.already_stored, stored.order_stored) == (False, False)
    details = await decision_record(migrated_database, second)
    assert details is not None
    assert details.orders == ()  # the decision is stored, its order was not: the key was used
    rows = await migrated_database.pool.fetch("SELECT decision_id FROM orders WHERE client_order_id = 'same'")
    assert [row["decision_id"] for row in rows] == [first]


async def test_build_sees_the_paused_state_and_no_order_is_stored(migrated_database: Database) -> None:
    await pause(migrated_database)
    seen: list[CoordinatorState] = []
    decision_id = uuid.uuid4()

    stored = await commit_decision(migrated_database, ACCOUNT, builder(decision_id, seen=seen))

    assert seen == [PAUSED]
    assert (stored.state, stored.write.decision.action, stored.order_stored) == (PAUSED, "hold", False)
    assert await count(migrated_database.pool, "orders") == 0
    details = await decision_record(migrated_database, decision_id)
    assert details is not None
    assert details.decision.coordinator_state is PAUSED


async def test_build_sees_halted(migrated_database: Database) -> None:
    halted = StateRecord(state=HALTED, changed_at=T0, changed_by="breaker", reason="max drawdown")
    await write_state_row(migrated_database, ACCOUNT, halted)
    seen: list[CoordinatorState] = []

    await commit_decision(migrated_database, ACCOUNT, builder(uuid.uuid4(), seen=seen))

    assert seen == [HALTED]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"coordinator_state": PAUSED}, "records state PAUSED but was built against RUNNING"),
        ({"account": "other"}, "is for account 'other'"),
    ],
)
async def test_a_write_that_does_not_match_the_locked_state_or_account_stores_nothing(
    migrated_database: Database, change: dict[str, Any], message: str
) -> None:
    decision_id = uuid.uuid4()
    decision = decision_row(decision_id, RUNNING).model_copy(update=change)
    order = order_row(decision_id, "c-1", account=decision.account)

    with pytest.raises(ValueError, match=message):
        await commit_decision(migrated_database, ACCOUNT, lambda state: DecisionWrite(decision=decision, order=order))

    assert await count(migrated_database.pool, "decisions") == 0
    assert await count(migrated_database.pool, "orders") == 0


async def test_a_failure_after_the_decision_is_inserted_stores_nothing_of_it(migrated_database: Database) -> None:
    taken = uuid.uuid4()
    first = uuid.uuid4()
    await commit_decision(
        migrated_database,
        ACCOUNT,
        lambda state: DecisionWrite(
            decision=decision_row(first, state), conflicts=(conflict_row(first, "x", id=taken),)
        ),
    )
    second = uuid.uuid4()
    # The conflict's id is taken: the insert fails after the decision's, and the whole transaction goes.
    write = DecisionWrite(
        decision=decision_row(second, RUNNING),
        conflicts=(conflict_row(second, "y", id=taken),),
        order=order_row(second, "c-2"),
    )

    with pytest.raises(DatabaseError, match=rf"storing a decision of {ACCOUNT} failed on .*duplicate key"):
        await commit_decision(migrated_database, ACCOUNT, lambda state: write)

    assert await decision_record(migrated_database, second) is None
    assert await count(migrated_database.pool, "orders") == 0


def test_rows_that_do_not_belong_together_are_refused() -> None:
    decision_id = uuid.uuid4()
    decision = decision_row(decision_id, RUNNING)
    with pytest.raises(ValueError, match="belongs to decision"):
        DecisionWrite(decision=decision, conflicts=(conflict_row(uuid.uuid4(), "x"),))
    with pytest.raises(ValueError, match="belongs to decision"):
        DecisionWrite(decision=decision, order=order_row(uuid.uuid4(), "c"))
    with pytest.raises(ValueError, match="is for paper/ETH/USDT"):
        DecisionWrite(decision=decision, order=order_row(decision_id, "c", symbol="ETH/USDT"))
    with pytest.raises(ValueError, match="needs a price"):
        order_row(decision_id, "c", price=None)
    with pytest.raises(ValueError, match="both a resolution"):
        conflict_row(decision_id, "x", resolution="abort")
    assert order_row(decision_id, "c", type="market", price=None).price is None


async def test_an_llm_call_stored_after_its_decision_commits_is_listed_with_it(migrated_database: Database) -> None:
    decision_id = uuid.uuid4()
    await commit_decision(migrated_database, ACCOUNT, builder(decision_id))
    call_id = uuid.uuid4()

    # Another transaction, after the decision's commit: what the batching writer does with the resolver's calls.
    await migrated_database.pool.execute(
        """
        INSERT INTO llm_calls (id, request_id, decision_id, provider, model, purpose, answer_model, prompt_digest,
                               system_prompt, user_prompt, latency_ms, attempt, step, error_class, error_message,
                               started_at, wall_started_at)
        VALUES ($1, gen_random_uuid(), $2, 'anthropic', 'claude', 'conflict_resolution', 'ResolutionAnswer', 'd',
                's', 'u', 20000, 2, 2, 'ProviderTimeout', 'no answer within 20 s', $3, $3)
        """,
        call_id,
        decision_id,
        T0,
    )

    details = await decision_record(migrated_database, decision_id)
    assert details is not None
    assert [
        (call.id, call.provider, call.model, call.purpose, call.attempt, call.error_class, call.started_at)
        for call in details.llm_calls
    ] == [(call_id, "anthropic", "claude", "conflict_resolution", 2, "ProviderTimeout", T0)]


async def test_pending_orders_are_the_accounts_unacknowledged_orders_oldest_first(migrated_database: Database) -> None:
    pool = migrated_database.pool
    later, earlier = uuid.uuid4(), uuid.uuid4()
    await commit_decision(migrated_database, ACCOUNT, builder(later, "c-later"))
    await pool.execute("UPDATE orders SET created_at = $1, updated_at = $1", T0 + timedelta(minutes=5))
    await commit_decision(migrated_database, ACCOUNT, builder(earlier, "c-earlier"))
    await commit_decision(migrated_database, ACCOUNT, builder(uuid.uuid4(), "c-open"))
    await pool.execute("UPDATE orders SET status = 'open' WHERE client_order_id = 'c-open'")
    await commit_decision(migrated_database, "other", lambda state: _other_account_write(state))

    orders = await pending_orders(migrated_database, ACCOUNT)

    assert [(o.client_order_id, o.decision_id, o.status) for o in orders] == [
        ("c-earlier", earlier, "pending"),
        ("c-later", later, "pending"),
    ]
    assert [o.client_order_id for o in await pending_orders(migrated_database, "other")] == ["c-other"]


def _other_account_write(state: CoordinatorState) -> DecisionWrite:
    decision_id = uuid.uuid4()
    return DecisionWrite(
        decision=decision_row(decision_id, state, account="other"),
        order=order_row(decision_id, "c-other", account="other"),
    )


# ------------------------------------------------------------------------------------ against a concurrent pause


async def wait_for_lock_waiters(pool: Any, waiting: int, statement: str) -> None:
    """Until ``waiting`` backends of this database wait for a lock in a statement containing ``statement``."""
    query = """
        SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'
    """
    async with asyncio.timeout(WAIT_SECONDS):
        while await pool.fetchval(query, statement) < waiting:
            pass


@pytest.fixture
async def wide_database(migrated_database_url: str) -> AsyncIterator[Database]:
    """A second pool with room for several transactions waiting at once."""
    async with open_database_at(migrated_database_url, DatabaseSettings(pool_min_size=1, pool_max_size=8)) as db:
        yield db


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Released at the end whatever happens, so no thread is left waiting."""
    event = threading.Event()
    yield event
    event.set()


def in_own_loop(url: str, work: Callable[[Database], Any]) -> Any:
    """Run ``work`` on its own Database in a fresh event loop (call in a thread): it may block that thread."""

    async def main() -> Any:
        async with open_database_at(url, DatabaseSettings(pool_min_size=1, pool_max_size=1)) as db:
            return await work(db)

    return asyncio.run(main())


async def test_a_pause_waits_for_a_decision_in_flight_and_later_decisions_see_it(
    migrated_database: Database, migrated_database_url: str, release: threading.Event
) -> None:
    running = StateRecord(state=RUNNING, changed_at=T0, changed_by="test", reason="start")
    await write_state_row(migrated_database, ACCOUNT, running)  # the row to hold
    entered = threading.Event()
    in_flight = uuid.uuid4()
    seen: list[CoordinatorState] = []
    plain = builder(in_flight, seen=seen)

    def slow_build(state: CoordinatorState) -> DecisionWrite:
        entered.set()  # the state row is held FOR SHARE now
        assert release.wait(WAIT_SECONDS)
        return plain(state)

    committing = asyncio.ensure_future(
        asyncio.to_thread(in_own_loop, migrated_database_url, lambda db: commit_decision(db, ACCOUNT, slow_build))
    )
    assert await asyncio.to_thread(entered.wait, WAIT_SECONDS)
    await submit_command(migrated_database, ACCOUNT, Command(Verb.PAUSE), T0)
    pausing = asyncio.ensure_future(apply_pending(migrated_database, ACCOUNT, T0, DegradationLevel.NORMAL, real_apply))
    await wait_for_lock_waiters(migrated_database.pool, 1, "FOR UPDATE")
    assert not pausing.done()

    release.set()
    stored: StoredDecision = await committing
    [settled] = await pausing

    assert settled.status == "applied"
    assert (seen, stored.order_stored) == ([RUNNING], True)  # committed wholly before the pause
    after = await commit_decision(migrated_database, ACCOUNT, builder(uuid.uuid4()))
    assert (after.state, after.order_stored) == (PAUSED, False)
    rows = await migrated_database.pool.fetch(
        "SELECT d.coordinator_state, o.client_order_id FROM orders o JOIN decisions d ON d.id = o.decision_id"
    )
    assert [(r["coordinator_state"], r["client_order_id"]) for r in rows] == [("RUNNING", f"c-{in_flight}")]


async def test_decisions_wait_for_a_pause_in_flight_and_all_see_it(
    migrated_database: Database,
    migrated_database_url: str,
    wide_database: Database,
    release: threading.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await commit_decision(migrated_database, ACCOUNT, builder(uuid.uuid4(), "c-before"))  # RUNNING, stored
    entered = threading.Event()

    def slow_apply(*args: Any) -> Any:
        entered.set()  # the state row is held FOR UPDATE now
        assert release.wait(WAIT_SECONDS)
        return real_apply(*args)

    await submit_command(migrated_database, ACCOUNT, Command(Verb.PAUSE), T0)
    pausing = asyncio.ensure_future(
        asyncio.to_thread(
            in_own_loop,
            migrated_database_url,
            lambda db: apply_pending(db, ACCOUNT, T0, DegradationLevel.NORMAL, slow_apply),
        )
    )
    assert await asyncio.to_thread(entered.wait, WAIT_SECONDS)

    seen: list[CoordinatorState] = []
    ids = [uuid.uuid4() for _ in range(5)]
    committing = [asyncio.ensure_future(commit_decision(wide_database, ACCOUNT, builder(i, seen=seen))) for i in ids]
    await wait_for_lock_waiters(migrated_database.pool, len(ids), "FOR SHARE")
    assert not any(task.done() for task in committing)
    assert seen == []  # no build ran against the state the pause is replacing

    release.set()
    [settled] = await pausing
    stored = await asyncio.gather(*committing)

    assert settled.status == "applied"
    assert seen == [PAUSED] * len(ids)
    assert all((s.state, s.order_stored) == (PAUSED, False) for s in stored)
    assert [r["client_order_id"] for r in await migrated_database.pool.fetch("SELECT client_order_id FROM orders")] == [
        "c-before"
    ]


async def test_many_decisions_racing_a_pause_store_orders_only_for_running_decisions(
    migrated_database: Database, wide_database: Database
) -> None:
    await submit_command(migrated_database, ACCOUNT, Command(Verb.PAUSE), T0)
    seen: list[CoordinatorState] = []
    ids = [uuid.uuid4() for _ in range(30)]

    pausing = asyncio.ensure_future(apply_pending(migrated_database, ACCOUNT, T0, DegradationLevel.NORMAL, real_apply))
    stored = await asyncio.gather(*(commit_decision(wide_database, ACCOUNT, builder(i, seen=seen)) for i in ids))
    assert [s.status for s in await pausing] == ["applied"]

    assert all(s.write.decision.coordinator_state is s.state for s in stored)
    assert all(s.order_stored == (s.state is RUNNING) for s in stored)
    rows = await migrated_database.pool.fetch(
        "SELECT d.coordinator_state, o.id IS NOT NULL AS has_order FROM decisions d"
        " LEFT JOIN orders o ON o.decision_id = d.id"
    )
    assert len(rows) == len(ids)
    assert all(r["has_order"] == (r["coordinator_state"] == "RUNNING") for r in rows)
    after = await commit_decision(migrated_database, ACCOUNT, builder(uuid.uuid4()))
    assert after.state is PAUSED
