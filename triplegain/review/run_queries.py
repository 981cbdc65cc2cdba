"""Reading what a daemon run did, for ``runs compare``: its decisions, its trades and its final equity.

Decisions are the run's own (``run_id``); trades and equity are read as the report reads them
(``report_queries``): the run's account between the first and last time its rows carry.
"""

from __future__ import annotations

from triplegain.review.comparison import RunRecord
from triplegain.review.decision_queries import list_decisions
from triplegain.review.filters import DecisionFilter
from triplegain.review.report_queries import equity_series, find_run, report_scope, trade_points
from triplegain.store.database import Database


async def run_record(db: Database, run_id: int) -> RunRecord | None:
    """What run ``run_id`` did; None when there is no such run."""
    run = await find_run(db, run_id)
    if run is None:
        return None
    scope = await report_scope(db, run)
    decisions = await list_decisions(db, DecisionFilter(run_id=run_id, limit=None))
    equity = await equity_series(db, scope)
    return RunRecord(
        run=run,
        decisions=tuple(reversed(decisions)),
        trades=tuple(await trade_points(db, scope)),
        final_equity=equity[-1].equity if equity else None,
    )
