"""Results (``review.results``) as lines for a terminal: the core a replay's summary ends with, and the whole of
``triplegain results`` (the core, each symbol, every round trip and every event)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from triplegain.review.results import Results, RoundTrip, TradeStats

LABEL = 14
"""Width of a line's label (the daemon's summary uses the same)."""


def duration(span: timedelta | None) -> str:
    """``3 d 04 h``, ``5 h 20 min``, ``45 min``; ``-`` for None."""
    if span is None:
        return "-"
    minutes = int(span.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours:02d} h"
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f} %"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


def _change(value: float | None, start: float) -> str:
    if value is None or start <= 0:
        return _money(value)
    return f"{value:,.2f} ({100 * (value / start - 1):+.2f} %)"


def _trips_line(stats: TradeStats) -> str:
    exits = ", ".join(f"{reason} {count}" for reason, count in sorted(stats.exits.items()))
    return (
        f"{stats.closed} closed ({stats.wins} won, {stats.losses} lost), {stats.open} open"
        + (f"; exits: {exits}" if exits else "")
    )


def core_lines(results: Results) -> list[str]:
    """The figures a replay's summary ends with."""
    total = results.total
    events = results.events
    trips = sum(event.kind == "breaker trip" for event in events)
    halts = sum(event.kind == "halt" for event in events)
    pauses = sum(event.kind == "pause" for event in events)
    levels = sum(event.kind == "level change" for event in events)
    fees_share = "-" if results.fees_pct_of_start is None else f"{results.fees_pct_of_start:.2f} %"
    underwater = duration(results.drawdown.longest_underwater)
    start = results.starting_equity
    rows = [
        ("round trips", _trips_line(total)),
        ("win rate", f"{_pct(total.win_rate)} · profit factor {_ratio(total.profit_factor)}"),
        (
            "avg win/loss",
            f"{_money(total.average_win)} / {_money(total.average_loss)} · expectancy {_money(total.expectancy)}",
        ),
        ("net P&L", f"{_money(total.net_pnl)} on closed trips, after fees"),
        ("fees", f"{_money(total.fees)} ({fees_share} of the starting equity)"),
        ("turnover", f"{_money(total.turnover)} ({_ratio(results.turnover_multiple)}× the starting equity)"),
        ("in market", _pct(total.time_in_market)),
        ("max drawdown", f"{results.drawdown.max_pct:.2f} %, longest under water {underwater}"),
        ("Sharpe", f"{_ratio(results.sharpe)} · Sortino {_ratio(results.sortino)} (daily, {results.daily_returns} d)"),
        ("equity", f"{_money(start)} → {_change(results.final_equity, start)}"),
        ("buy and hold", _change(results.buy_and_hold, start)),
        ("breaker", f"{trips} trip(s), {halts} halt(s), {pauses} pause(s), {levels} level change(s)"),
    ]
    return [f"{label:<{LABEL}}{value}" for label, value in rows]


def results_lines(results: Results, scope: str) -> list[str]:
    """Everything ``triplegain results`` prints."""
    lines = [f"results of {scope}, {_when(results.period_start)} to {_when(results.period_end)} UTC", ""]
    lines += core_lines(results)
    if results.by_symbol:
        lines += ["", "by symbol"]
        for symbol, stats in results.by_symbol.items():
            lines.append(
                f"  {symbol:<10} {_trips_line(stats)}; win rate {_pct(stats.win_rate)}, profit factor "
                f"{_ratio(stats.profit_factor)}, net {_money(stats.net_pnl)}, fees {_money(stats.fees)}, in market "
                f"{_pct(stats.time_in_market)}"
            )
    if results.trips:
        lines += ["", "round trips (P&L after fees)"]
        lines += [_trip_line(trip) for trip in results.trips]
    if results.events:
        lines += ["", "breaker, commands and level changes"]
        lines += [f"  {_when(e.ts)}  {e.kind:<13} {e.what}: {e.cause}".rstrip(": ") for e in results.events]
    return lines


def _trip_line(trip: RoundTrip) -> str:
    exit_price = f"{trip.exit:,.8g}" if trip.exit is not None else "open"
    return (
        f"  {_when(trip.opened_at)}  {trip.symbol:<10} {trip.side:<5} {trip.quantity:.8g} @ {trip.entry:,.8g} → "
        f"{exit_price}  {trip.pnl:+,.2f}  {duration(trip.duration)}  {trip.reason.value}"
    )
