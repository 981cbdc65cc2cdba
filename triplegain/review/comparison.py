"""Two daemon runs side by side: the decisions that differ, the trades that differ, and their final equity.

The tool for "what did my change do": run a replay, change a prompt or a setting, replay again (``--answers-from``
the first run serves every answer it already has), then ``triplegain runs compare A B``.

    a, b = await run_record(db, 3), await run_record(db, 5)     # review.run_queries
    comparison = compare_runs(a, b)
    comparison.differ                                           # exit 1 when True
    comparison.lines(limit=50)

Decisions are matched by (time, symbol) and differ in action, confidence (beyond ``CONFIDENCE_TOLERANCE``) or
reason, or when one run made a decision the other did not; trades (fills, and orders not filled) by (time,
symbol, side, filled) and differ in quantity or price (beyond ``RELATIVE_TOLERANCE``). Times are the runs' own:
candle time in a replay. Everything here is pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from triplegain.review.records import DaemonRun, DecisionSummary, TradePoint

CONFIDENCE_TOLERANCE = 1e-9
RELATIVE_TOLERANCE = 1e-9

_FROZEN = ConfigDict(frozen=True)
_Row = TypeVar("_Row")
_Key = tuple[datetime, str, str, bool]
"""Time, symbol, and for a trade its side and whether it filled."""


class RunRecord(BaseModel):
    """What a run did: its decisions and trades, oldest first, and its account's equity at its end."""

    model_config = _FROZEN

    run: DaemonRun
    decisions: tuple[DecisionSummary, ...]
    trades: tuple[TradePoint, ...]
    final_equity: float | None


class Differing(BaseModel):
    """A decision (or trade) of one run and its counterpart in the other; None where a run has none."""

    model_config = _FROZEN

    a: DecisionSummary | TradePoint | None
    b: DecisionSummary | TradePoint | None


class RunComparison(BaseModel):
    """Run ``a`` against run ``b``."""

    model_config = _FROZEN

    a: RunRecord
    b: RunRecord
    decisions: tuple[Differing, ...]
    trades: tuple[Differing, ...]
    equity_differs: bool

    @property
    def differ(self) -> bool:
        return bool(self.decisions or self.trades or self.equity_differs)

    def lines(self, limit: int | None = None) -> list[str]:
        """The comparison for a terminal: at most ``limit`` differing decisions and trades each."""
        a, b = self.a, self.b
        lines = [_describe(a), _describe(b)]
        if not self.differ:
            lines.append(
                f"no difference: the same {len(a.decisions):,} decisions, {len(a.trades):,} fills and unfilled orders "
                f"and final equity {_money(a.final_equity)}"
            )
            return lines
        lines.append(f"decisions that differ: {len(self.decisions):,}")
        for pair in _first(self.decisions, limit):
            lines.extend(_decision_pair(pair, a.run.id, b.run.id))
        lines.append(f"fills and unfilled orders that differ: {len(self.trades):,}")
        for pair in _first(self.trades, limit):
            lines.extend(_trade_pair(pair, a.run.id, b.run.id))
        lines.append(f"final equity: run {a.run.id} {_money(a.final_equity)}, run {b.run.id} {_money(b.final_equity)}")
        shown = max(len(self.decisions), len(self.trades))
        if limit is not None and shown > limit:
            lines.append(f"(the first {limit} of each; --limit N for more)")
        return lines


def compare_runs(a: RunRecord, b: RunRecord) -> RunComparison:
    """What differs between ``a`` and ``b``."""
    decisions = _differing(a.decisions, b.decisions, key=lambda d: (d.ts, d.symbol, "", False), same=_same_decision)
    trades = _differing(a.trades, b.trades, key=lambda t: (t.ts, t.symbol, t.side, t.filled), same=_same_trade)
    if a.final_equity is None or b.final_equity is None:
        equity_differs = a.final_equity != b.final_equity
    else:
        equity_differs = not math.isclose(a.final_equity, b.final_equity, rel_tol=RELATIVE_TOLERANCE)
    return RunComparison(
        a=a,
        b=b,
        decisions=tuple(Differing(a=x, b=y) for x, y in decisions),
        trades=tuple(Differing(a=x, b=y) for x, y in trades),
        equity_differs=equity_differs,
    )


def _differing(
    a: Sequence[_Row], b: Sequence[_Row], *, key: Callable[[_Row], _Key], same: Callable[[_Row, _Row], bool]
) -> list[tuple[_Row | None, _Row | None]]:
    """The rows matched by ``key`` that are not ``same``, and those without a match, in the order of the keys."""
    by_a, by_b = _keyed(a, key), _keyed(b, key)
    pairs = []
    for k in sorted(by_a.keys() | by_b.keys()):
        x, y = by_a.get(k), by_b.get(k)
        if x is None or y is None or not same(x, y):
            pairs.append((x, y))
    return pairs


def _keyed(rows: Iterable[_Row], key: Callable[[_Row], _Key]) -> Mapping[_Key, _Row]:
    keyed: dict[_Key, _Row] = {}
    for row in rows:
        keyed.setdefault(key(row), row)
    return keyed


def _same_decision(x: DecisionSummary, y: DecisionSummary) -> bool:
    return x.action == y.action and abs(x.confidence - y.confidence) <= CONFIDENCE_TOLERANCE and x.reason == y.reason


def _same_trade(x: TradePoint, y: TradePoint) -> bool:
    return math.isclose(x.qty, y.qty, rel_tol=RELATIVE_TOLERANCE) and math.isclose(
        x.price, y.price, rel_tol=RELATIVE_TOLERANCE
    )


def _describe(record: RunRecord) -> str:
    run = record.run
    return (
        f"run {run.id} (account {run.account}, started {run.started_at:%Y-%m-%d %H:%M} UTC): "
        f"{len(record.decisions):,} decisions, {len(record.trades):,} fills and unfilled orders, final equity "
        f"{_money(record.final_equity)}"
    )


def _decision_pair(pair: Differing, run_a: int, run_b: int) -> list[str]:
    any_side = pair.a or pair.b
    assert isinstance(any_side, DecisionSummary)
    head = f"  {any_side.ts:%Y-%m-%d %H:%M}  {any_side.symbol}"
    return [head, _decision_side(run_a, pair.a), _decision_side(run_b, pair.b)]


def _decision_side(run_id: int, decision: DecisionSummary | TradePoint | None) -> str:
    if decision is None:
        return f"    run {run_id}: no decision"
    assert isinstance(decision, DecisionSummary)
    return f"    run {run_id}: {decision.action.value} {decision.confidence:.2f} — {decision.reason}"


def _trade_pair(pair: Differing, run_a: int, run_b: int) -> list[str]:
    any_side = pair.a or pair.b
    assert isinstance(any_side, TradePoint)
    head = f"  {any_side.ts:%Y-%m-%d %H:%M}  {any_side.symbol} {any_side.side}"
    return [head, _trade_side(run_a, pair.a), _trade_side(run_b, pair.b)]


def _trade_side(run_id: int, trade: DecisionSummary | TradePoint | None) -> str:
    if trade is None:
        return f"    run {run_id}: none"
    assert isinstance(trade, TradePoint)
    state = "filled" if trade.filled else "not filled"
    return f"    run {run_id}: {trade.qty:g} at {trade.price:,.8g} {state}"


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def _first(rows: Sequence[Differing], limit: int | None) -> Sequence[Differing]:
    return rows if limit is None else rows[:limit]
