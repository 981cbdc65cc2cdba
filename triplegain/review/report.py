"""The HTML report: one self-contained file with the figures, plots and decision table of a run (or of all).

Self-contained means it opens anywhere, offline, and can be mailed or archived: the CSS is inline and every plot
is an inline SVG drawn by matplotlib (text kept as text, so it stays small and searchable). Nothing is loaded
from a CDN and no script runs.

The plots and where their data comes from (see ``report_queries``): equity against buy-and-hold and the drawdown from
``portfolio_snapshots``; buy-and-hold and the price under the trades from the technical agent's views (there is
no candle table); trades from ``fills`` and unfilled orders; the degradation level from ``degradation_events``;
LLM cost per day from ``llm_calls``. A plot without data says so in words instead.

Every stored text is HTML-escaped. No API key is ever stored, so none can appear here.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from triplegain import __version__
from triplegain.review.decision_queries import decision_counts, list_decisions
from triplegain.review.records import (
    DailyCost,
    DecisionCounts,
    DecisionSummary,
    EquityPoint,
    LevelChange,
    PricePoint,
    ReportScope,
    TradePoint,
)
from triplegain.review.report_queries import (
    daily_llm_costs,
    equity_series,
    level_changes,
    price_series,
    scope_decisions,
    trade_points,
)
from triplegain.review.results import ResultEvent, Results
from triplegain.review.results_queries import scope_results
from triplegain.review.results_text import duration
from triplegain.store.database import Database

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


TABLE_LIMIT = 500
"""Decisions the report's table lists (the newest); ``decisions export`` gives all of them."""
MAX_PLOT_POINTS = 2_000
"""Points a line keeps at most (evenly thinned): more add bytes to the file, not detail to the eye."""
LEVELS = ("NORMAL", "REDUCED", "LIMITED", "EMERGENCY")
_SIDE_COLOURS = {"buy": "#1a7f37", "sell": "#cf222e"}


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, read in one go."""

    scope: ReportScope
    results: Results | None
    """None for a report on every account (results are an account's)."""
    counts: DecisionCounts
    decisions: list[DecisionSummary]
    equity: list[EquityPoint]
    prices: list[PricePoint]
    trades: list[TradePoint]
    levels: list[LevelChange]
    costs: list[DailyCost]
    generated_at: datetime


async def report_data(
    db: Database,
    scope: ReportScope,
    *,
    now: datetime,
    table_limit: int = TABLE_LIMIT,
    starting_balance: float = 0.0,
    dust: Callable[[str], float] = lambda symbol: 0.0,
) -> ReportData:
    """Read what a report on ``scope`` (``report_queries.report_scope``) shows; ``starting_balance`` and ``dust``
    as ``results_queries.scope_results`` takes them."""
    figures = None
    if scope.account is not None:
        figures = await scope_results(db, scope, starting_balance=starting_balance, dust=dust)
    return ReportData(
        scope=scope,
        results=figures,
        counts=await decision_counts(db, scope_decisions(scope, limit=None)),
        decisions=await list_decisions(db, scope_decisions(scope, limit=table_limit)),
        equity=await equity_series(db, scope),
        prices=await price_series(db, scope),
        trades=await trade_points(db, scope),
        levels=await level_changes(db, scope),
        costs=await daily_llm_costs(db, scope),
        generated_at=now,
    )


# --- pure series -------------------------------------------------------------------------------------------


def buy_and_hold(prices: Sequence[PricePoint], start_value: float) -> list[tuple[datetime, float]]:
    """``start_value`` split equally across the symbols at their first price and held, over time.

    Starts once every symbol has a price; each time carries the last price seen of each symbol.
    """
    symbols = {point.symbol for point in prices}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    values: dict[datetime, float] = {}
    for point in sorted(prices, key=lambda p: p.ts):
        first.setdefault(point.symbol, point.price)
        last[point.symbol] = point.price
        if len(first) == len(symbols):
            values[point.ts] = start_value * sum(last[s] / first[s] for s in symbols) / len(symbols)
    return sorted(values.items())


def thin(points: Sequence[Any], limit: int = MAX_PLOT_POINTS) -> list[Any]:
    """At most ``limit`` evenly spaced points, always keeping the last."""
    if len(points) <= limit:
        return list(points)
    step = -(-len(points) // limit)
    kept = list(points[::step])
    if kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept


def level_steps(
    levels: Sequence[LevelChange], start: datetime | None, end: datetime | None
) -> list[tuple[datetime, int]]:
    """The degradation level as (time, index in ``LEVELS``) steps from ``start`` to ``end``."""
    if not levels:
        return [(start, 0), (end, 0)] if start is not None and end is not None else []
    steps: list[tuple[datetime, int]] = []
    begin = start if start is not None and start < levels[0].ts else levels[0].ts
    steps.append((begin, _level_index(levels[0].from_level)))
    steps.extend((change.ts, _level_index(change.to_level)) for change in levels)
    finish = end if end is not None and end > steps[-1][0] else steps[-1][0]
    steps.append((finish, steps[-1][1]))
    return steps


def _level_index(level: str) -> int:
    return LEVELS.index(level.upper()) if level.upper() in LEVELS else 0


# --- plots -------------------------------------------------------------------------------------------------


@contextmanager
def _figure(height: float, rows: int = 1) -> Iterator[tuple[Figure, list[Axes]]]:
    from matplotlib.figure import Figure  # imported here: slow, and only the report draws

    figure = Figure(figsize=(9, height), dpi=100, layout="constrained")
    axes = list(figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0])
    for ax in axes:
        ax.grid(True, linewidth=0.4, alpha=0.5)
        ax.spines[["top", "right"]].set_visible(False)
    yield figure, axes


def svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element to inline in HTML (no XML prolog, no date, text as text)."""
    from matplotlib import rc_context

    buffer = io.StringIO()
    with rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _date_axis(ax: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()  # type: ignore[no-untyped-call]  # matplotlib.dates has no annotations
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]


def _times(moments: Iterable[datetime]) -> Any:
    """Times as matplotlib's date numbers (UTC), which every plotting call accepts."""
    from matplotlib.dates import date2num

    return date2num(list(moments))  # type: ignore[no-untyped-call]


_MARKS = {
    "breaker trip": ("#cf222e", "-"),
    "halt": ("#6e0000", "--"),
    "pause": ("#bf8700", "--"),
    "resume": ("#1a7f37", ":"),
}
"""How each kind of event is marked on the equity plot: colour and line style."""


def event_mark(event: ResultEvent) -> tuple[str, str, str] | None:
    """The label, colour and line style an event is marked with on the equity plot; None for a level change or a
    breaker reset (the degradation plot and the events table show them). A command is labelled by who gave it:
    ``halt (breaker)``, ``pause (operator)``."""
    if event.kind not in _MARKS:
        return None
    colour, style = _MARKS[event.kind]
    if event.kind == "breaker trip":
        return event.kind, colour, style
    who = event.what.partition(" by ")[2].partition(":")[0] or "daemon"
    return f"{event.kind} ({who})", colour if who != "operator" else "#0969da", style


def equity_plot(
    equity: Sequence[EquityPoint], prices: Sequence[PricePoint], events: Sequence[ResultEvent] = ()
) -> str | None:
    """Equity of each account against buy-and-hold of the symbols traded, with breaker trips, halts, pauses and
    resumes marked (an operator's in blue); None when there is neither equity nor prices."""
    accounts = sorted({point.account for point in equity})
    start = equity[0].equity if equity else 1.0
    holding = buy_and_hold(prices, start)
    if not equity and not holding:
        return None
    with _figure(3.2) as (figure, [ax]):
        for account in accounts:
            points = thin([point for point in equity if point.account == account])
            ax.plot(
                _times(p.ts for p in points), [p.equity for p in points], linewidth=1.4, label=f"equity ({account})"
            )
        if holding:
            points = thin(holding)
            label = "buy and hold, equal weights" if equity else "buy and hold, equal weights (growth of 1)"
            ax.plot(_times(t for t, _ in points), [v for _, v in points], linewidth=1, linestyle="--", label=label)
        labelled: set[str] = set()
        for event in events:
            mark = event_mark(event)
            if mark is None:
                continue
            label, colour, style = mark
            ax.axvline(
                _times([event.ts])[0],
                color=colour,
                linestyle=style,
                linewidth=1.1,
                label=label if label not in labelled else None,
            )
            labelled.add(label)
        ax.set_ylabel("equity" if equity else "growth of 1")
        ax.legend(loc="best", fontsize="small", frameon=False)
        _date_axis(ax)
        return svg(figure)


def drawdown_plot(equity: Sequence[EquityPoint]) -> str | None:
    """Drawdown from the equity peak, in percent below it; None without snapshots."""
    if not equity:
        return None
    with _figure(2.2) as (figure, [ax]):
        for account in sorted({point.account for point in equity}):
            points = thin([point for point in equity if point.account == account])
            times = _times(p.ts for p in points)
            depths = [-100 * p.drawdown for p in points]
            ax.fill_between(times, depths, 0, step="post", alpha=0.35, label=account)
            ax.plot(times, depths, linewidth=0.8, drawstyle="steps-post")
        ax.set_ylabel("% below peak")
        _date_axis(ax)
        return svg(figure)


def trades_plot(prices: Sequence[PricePoint], trades: Sequence[TradePoint]) -> str | None:
    """Each symbol's price with its buys and sells (filled: solid; not filled: hollow); None without prices."""
    symbols = sorted({point.symbol for point in prices} | {trade.symbol for trade in trades})
    if not symbols:
        return None
    with _figure(1.2 + 2.0 * len(symbols), rows=len(symbols)) as (figure, axes):
        for ax, symbol in zip(axes, symbols, strict=True):
            points = thin([point for point in prices if point.symbol == symbol])
            ax.plot(
                _times(p.ts for p in points), [p.price for p in points], linewidth=0.9, color="#57606a", label="price"
            )
            for side, marker in (("buy", "^"), ("sell", "v")):
                for filled in (True, False):
                    chosen = [t for t in trades if t.symbol == symbol and t.side == side and t.filled is filled]
                    if not chosen:
                        continue
                    colour = _SIDE_COLOURS[side]
                    ax.scatter(
                        _times(t.ts for t in chosen),
                        [t.price for t in chosen],
                        marker=marker,
                        s=36,
                        facecolors=colour if filled else "none",
                        edgecolors=colour,
                        linewidths=1,
                        label=f"{side} {'filled' if filled else 'not filled'}",
                        zorder=3,
                    )
            ax.set_ylabel(symbol)
            ax.legend(loc="best", fontsize="x-small", frameon=False)
        _date_axis(axes[-1])
        return svg(figure)


def degradation_plot(levels: Sequence[LevelChange], start: datetime | None, end: datetime | None) -> str | None:
    """The degradation level over time; None when there is neither a change nor a time span."""
    steps = level_steps(levels, start, end)
    if not steps:
        return None
    with _figure(1.9) as (figure, [ax]):
        ax.step(
            _times(t for t, _ in steps), [level for _, level in steps], where="post", linewidth=1.4, color="#9a6700"
        )
        ax.set_yticks(range(len(LEVELS)), [level.lower() for level in LEVELS])
        ax.set_ylim(-0.3, len(LEVELS) - 0.7)
        _date_axis(ax)
        return svg(figure)


def cost_plot(costs: Sequence[DailyCost]) -> str | None:
    """LLM cost per UTC day, stacked by provider, each day labelled with its number of calls; None without
    calls."""
    if not costs:
        return None
    days = sorted({cost.day for cost in costs})
    providers = sorted({cost.provider for cost in costs})
    with _figure(2.6) as (figure, [ax]):
        bottom = [0.0] * len(days)
        positions = list(range(len(days)))
        for provider in providers:
            by_day = {cost.day: cost.cost_usd for cost in costs if cost.provider == provider}
            heights = [by_day.get(day, 0.0) for day in days]
            ax.bar(positions, heights, bottom=bottom, label=provider, width=0.6)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        calls = {day: sum(cost.calls for cost in costs if cost.day == day) for day in days}
        top = max(bottom) or 1.0
        for position, day in zip(positions, days, strict=True):
            ax.annotate(
                f"{calls[day]} calls",
                (position, bottom[position]),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize="x-small",
            )
        step = max(1, len(days) // 12)
        ax.set_xticks(positions[::step], [day.isoformat() for day in days[::step]], rotation=30, ha="right")
        ax.set_xlim(-0.75, max(len(days), 6) - 0.25)  # a few days still look like bars, not walls
        ax.set_ylim(0, top * 1.25)
        ax.set_ylabel("USD")
        if max(bottom) == 0:
            ax.text(0.5, 0.5, "every call cost nothing (offline or cached)", transform=ax.transAxes, ha="center")
        ax.legend(loc="upper right", fontsize="small")
        return svg(figure)


# --- HTML --------------------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem; }
.scope, .note, footer { color: #57606a; } .note { font-size: 0.9rem; } footer { margin-top: 3rem; font-size: 0.8rem; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr)); gap: 0.5rem; }
.figure { background: #f6f8fa; border-radius: 6px; padding: 0.5rem 0.75rem; }
.figure b { display: block; font-size: 1.15rem; } .figure span { color: #57606a; font-size: 0.85rem; }
svg { max-width: 100%; height: auto; }
table.decisions { border-collapse: collapse; width: 100%; font-size: 0.85rem; }
table.decisions th, table.decisions td { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid #eaeef2;
     vertical-align: top; }
table.decisions td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.buy { color: #1a7f37; font-weight: 600; } td.sell { color: #cf222e; font-weight: 600; } td.hold { color: #57606a; }
code { font-size: 0.85em; }
table.results { border-collapse: collapse; font-size: 0.9rem; margin-bottom: 1rem; }
table.results th { text-align: left; font-weight: normal; color: #57606a; padding: 0.15rem 1rem 0.15rem 0; }
table.results td { font-variant-numeric: tabular-nums; padding: 0.15rem 0; }
h3 { font-size: 1rem; margin-top: 1.2rem; }
"""


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document."""
    scope = data.scope
    if scope.run is not None:
        title = f"triplegain report — run {scope.run.id} (account {scope.run.account})"
    elif scope.account is not None:
        title = f"triplegain report — account {scope.account}"
    else:
        title = "triplegain report — all data"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="scope">{_e(_scope_text(data))}</p>',
        _figures(data),
        _results_section(data.results),
    ]
    start, end = _span(data)
    sections = (
        (
            "Equity and buy-and-hold",
            equity_plot(data.equity, data.prices, data.results.events if data.results is not None else ()),
            "No portfolio snapshots and no prices in this scope.",
            "Equity from portfolio snapshots; buy-and-hold splits the first equity equally across the symbols at "
            "their first price (prices: the technical agent's views, as there is no candle table). Vertical lines "
            "mark breaker trips, halts, pauses and resumes; an operator's commands in blue."
            if data.equity
            else "No portfolio snapshots in this scope: buy-and-hold alone, as the growth of 1 (prices: the "
            "technical agent's views, as there is no candle table).",
        ),
        ("Drawdown", drawdown_plot(data.equity), "No portfolio snapshots in this scope.", ""),
        (
            "Trades on price",
            trades_plot(data.prices, data.trades),
            "No prices and no trades in this scope.",
            "Price from the technical agent's views. Solid markers are fills at their price; hollow markers are "
            "orders without a fill, at their limit price or their decision's intended entry.",
        ),
        (
            "Degradation level",
            degradation_plot(data.levels, start, end),
            "No level changes and no time span in this scope.",
            "" if data.levels else "No level change in this scope: the level stayed normal.",
        ),
        ("LLM cost per day", cost_plot(data.costs), "No LLM calls in this scope.", "Per UTC day, by provider."),
    )
    for heading, plot, empty, note in sections:
        parts.append(f"<h2>{_e(heading)}</h2>")
        parts.append(plot if plot is not None else f'<p class="note">{_e(empty)}</p>')
        if plot is not None and note:
            parts.append(f'<p class="note">{_e(note)}</p>')
    parts.append(_decision_table(data))
    parts.append(
        f"<footer>Generated {_e(_stamp(data.generated_at))} by triplegain {_e(__version__)}. Times are UTC.</footer>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _scope_text(data: ReportData) -> str:
    scope = data.scope
    start, end = _span(data)
    span = f"data from {_stamp(start)} to {_stamp(end)}" if start is not None and end is not None else "no data"
    run = scope.run
    if run is None and scope.account is not None:
        return f"Every run of account {scope.account}; {span}."
    if run is None:
        return f"Every account and run in the database; {span}."
    ended = f"ended {_stamp(run.ended_at)} ({run.exit_reason or 'no reason recorded'})" if run.ended_at else "not ended"
    return (
        f"Daemon run {run.id} of account {run.account}, version {run.version} on {run.host}, started "
        f"{_stamp(run.started_at)}, {ended}; {span}."
    )


def _span(data: ReportData) -> tuple[datetime | None, datetime | None]:
    """The first and last time of anything the report shows."""
    times = [
        *(d.ts for d in data.decisions),
        *(p.ts for p in data.equity[:1]),
        *(p.ts for p in data.equity[-1:]),
        *(p.ts for p in data.prices),
        *(t.ts for t in data.trades),
        *(c.ts for c in data.levels),
    ]
    if data.scope.first is not None:
        times.append(data.scope.first)
    if data.scope.last is not None:
        times.append(data.scope.last)
    return (min(times), max(times)) if times else (None, None)


def _figures(data: ReportData) -> str:
    counts = data.counts
    calls = sum(cost.calls for cost in data.costs)
    errors = sum(cost.errors for cost in data.costs)
    spent = sum(cost.cost_usd for cost in data.costs)
    filled = sum(trade.filled for trade in data.trades)
    figures = [
        (str(counts.total), "decisions"),
        (
            " / ".join(str(counts.by_action.get(action, 0)) for action in ("buy", "sell", "hold")),
            "buy / sell / hold",
        ),
        (str(counts.conflicted), "with a conflict"),
        (f"{calls}", f"LLM calls ({errors} failed)"),
        (f"${spent:,.4f}", "LLM cost"),
        (f"{filled} / {len(data.trades) - filled}", "fills / orders not filled"),
    ]
    if data.equity:
        first, last = data.equity[0].equity, data.equity[-1].equity
        change = f"{100 * (last / first - 1):+.2f} %" if first else "—"
        figures.append((f"{last:,.2f}", f"last equity ({change})"))
        figures.append((f"{100 * max(p.drawdown for p in data.equity):.2f} %", "max drawdown"))
    cells = "".join(f'<div class="figure"><b>{_e(value)}</b><span>{_e(label)}</span></div>' for value, label in figures)
    return f'<div class="figures">{cells}</div>'


def _results_section(results: Results | None) -> str:
    """The results table (as ``triplegain results`` prints it), each symbol, the round trips and the events."""
    parts = ["<h2>Results</h2>"]
    if results is None:
        parts.append(
            '<p class="note">Results are one account\'s: report on a run (--run) or an account (--account).</p>'
        )
        return "\n".join(parts)
    total, start, final, hold = results.total, results.starting_equity, results.final_equity, results.buy_and_hold
    underwater = duration(results.drawdown.longest_underwater)
    rows = [
        ("round trips", f"{total.closed} closed ({total.wins} won, {total.losses} lost), {total.open} open"),
        ("exits", ", ".join(f"{reason} {count}" for reason, count in sorted(total.exits.items())) or "none"),
        ("win rate", _share(total.win_rate)),
        ("profit factor", _ratio(total.profit_factor)),
        ("average win / average loss", f"{_money(total.average_win)} / {_money(total.average_loss)}"),
        ("expectancy (a trip)", _money(total.expectancy)),
        ("net P&L of closed trips, after fees", _money(total.net_pnl)),
        ("fees", f"{_money(total.fees)} ({_ratio(results.fees_pct_of_start)} % of the starting equity)"),
        ("turnover", f"{_money(total.turnover)} ({_ratio(results.turnover_multiple)}× the starting equity)"),
        ("time in market", _share(total.time_in_market)),
        ("max drawdown", f"{results.drawdown.max_pct:.2f} % (longest under water {underwater})"),
        ("Sharpe / Sortino (daily)", f"{_ratio(results.sharpe)} / {_ratio(results.sortino)}"),
        ("equity", f"{_money(start)} → {_money(final)}{_change(final, start)}"),
        ("buy and hold", f"{_money(hold)}{_change(hold, start)}"),
    ]
    body = "".join(f"<tr><th>{_e(label)}</th><td>{_e(value)}</td></tr>" for label, value in rows)
    parts.append(f'<table class="results"><tbody>{body}</tbody></table>')
    symbols = [
        (
            symbol,
            str(s.closed),
            str(s.wins),
            str(s.losses),
            str(s.open),
            _share(s.win_rate),
            _ratio(s.profit_factor),
            _money(s.net_pnl),
            _money(s.fees),
            _share(s.time_in_market),
        )
        for symbol, s in results.by_symbol.items()
    ]
    symbol_names = (
        "symbol",
        "closed",
        "won",
        "lost",
        "open",
        "win rate",
        "profit factor",
        "net P&L",
        "fees",
        "in market",
    )
    parts.append(_table(symbol_names, symbols, numeric=set(range(1, 10))))
    trips = [
        (
            _minute(trip.opened_at),
            trip.symbol,
            trip.side,
            f"{trip.quantity:.8g}",
            f"{trip.entry:,.8g}",
            "open" if trip.exit is None else f"{trip.exit:,.8g}",
            f"{trip.pnl:+,.2f}",
            duration(trip.duration),
            trip.reason.value,
        )
        for trip in results.trips
    ]
    parts.append("<h3>Round trips</h3>")
    trip_names = ("opened (UTC)", "symbol", "side", "quantity", "entry", "exit", "P&L after fees", "duration", "exit")
    parts.append(_table(trip_names, trips, numeric={3, 4, 5, 6}) if trips else '<p class="note">No trade.</p>')
    parts.append("<h3>Breaker, commands and level changes</h3>")
    events = [(_minute(event.ts), event.kind, event.what, event.cause) for event in results.events]
    event_names = ("time (UTC)", "event", "what", "cause")
    parts.append(_table(event_names, events) if events else '<p class="note">None in this scope.</p>')
    return "\n".join(parts)


def _table(names: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int] | None = None) -> str:
    """An HTML table of escaped text; columns in ``numeric`` right-aligned."""
    right = numeric or set()
    head = "".join(f"<th>{_e(name)}</th>" for name in names)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(cell)}</td>' if n in right else f"<td>{_e(cell)}</td>" for n, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="decisions"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _change(value: float | None, start: float) -> str:
    return f" ({100 * (value / start - 1):+.2f} %)" if value is not None and start > 0 else ""


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _decision_table(data: ReportData) -> str:
    parts = ["<h2>Decisions</h2>"]
    if not data.decisions:
        parts.append('<p class="note">No decisions in this scope.</p>')
        return "\n".join(parts)
    total = data.counts.total
    if total > len(data.decisions):
        parts.append(
            f'<p class="note">The newest {len(data.decisions)} of {total}; '
            "<code>triplegain decisions export</code> writes them all.</p>"
        )
    names = ("time (UTC)", "id", "symbol", "action", "confidence", "conflicts", "resolved by", "order", "reason")
    header = "".join(f"<th>{name}</th>" for name in names)
    rows = []
    for decision in data.decisions:
        action = _e(decision.action)
        rows.append(
            "<tr>"
            f"<td>{_e(decision.ts.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S'))}</td>"
            f'<td><code title="{_e(str(decision.id))}">{_e(str(decision.id)[:8])}</code></td>'
            f"<td>{_e(decision.symbol)}</td>"
            f'<td class="{action}">{action}</td>'
            f'<td class="num">{decision.confidence:.3f}</td>'
            f"<td>{_e(', '.join(decision.conflict_rules))}</td>"
            f"<td>{_e(decision.resolved_by or '')}</td>"
            f"<td>{_e(decision.order_status or '')}</td>"
            f"<td>{_e(decision.reason)}</td>"
            "</tr>"
        )
    parts.append(f'<table class="decisions"><thead><tr>{header}</tr></thead><tbody>')
    parts.extend(rows)
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _stamp(moment: datetime | date | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return moment.isoformat()


def _e(text: str) -> str:
    return html.escape(text, quote=True)
