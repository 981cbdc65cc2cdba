"""The paper portfolio's circuit breaker as pure functions over an immutable state.

Four rules: loss since the start of the UTC day, loss since the start of the ISO week (UTC), drawdown from the
peak equity, and losing trades in a row. A rule trips when its figure reaches its threshold (≥) and takes its
configured action: a pause (no new exposure until a time) or a halt (until a person resets it). While a rule's
trip is active the rule does not trip again. When a trip ends — a pause expiring, a halt reset — that rule's
measure restarts from the latest equity (or from zero losses in a row), so it does not trip again at once.

The caller calls ``on_trade_closed`` after every closing fill and ``on_equity`` on every equity update. Day and
week baselines are the first equity seen in that day or week; an update dated before the day already tracked
(a candle a restarted daemon takes in again) changes nothing. Times are timezone-aware and handled in UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field

from triplegain.model import BreakerAction, BreakerRule
from triplegain.section import Section

_PCT_TOLERANCE = 1e-9
"""A loss this close below a threshold (in percentage points) counts as reaching it: float noise is not a margin."""


class PortfolioBreakerSettings(Section):
    """The paper portfolio's circuit breaker: thresholds and what tripping each rule does."""

    model_config = ConfigDict(allow_inf_nan=False)

    daily_loss_pct: float = Field(
        default=3.0, gt=0, le=100, description="loss since the first equity of the UTC day, % of that equity"
    )
    daily_loss_action: BreakerAction = Field(
        default=BreakerAction.PAUSE, description="pause (until the next UTC day) or halt (until a person resets)"
    )
    weekly_loss_pct: float = Field(
        default=8.0, gt=0, le=100, description="loss since the first equity of the ISO week (UTC), % of that equity"
    )
    weekly_loss_action: BreakerAction = Field(
        default=BreakerAction.HALT, description="pause (until next Monday 00:00 UTC) or halt (until a person resets)"
    )
    max_drawdown_pct: float = Field(default=15.0, gt=0, le=100, description="fall from the peak equity, % of the peak")
    max_drawdown_action: BreakerAction = Field(
        default=BreakerAction.HALT, description="pause (for pause_minutes) or halt (until a person resets)"
    )
    consecutive_losses: int = Field(default=5, ge=1, description="closed trades in a row with a negative P&L")
    consecutive_losses_action: BreakerAction = Field(
        default=BreakerAction.PAUSE, description="pause (for pause_minutes) or halt (until a person resets)"
    )
    pause_minutes: float = Field(
        default=60.0, gt=0, description="how long a max_drawdown or consecutive_losses pause lasts"
    )


class Trip(BaseModel):
    """A rule that tripped: what it measured, against what, and until when it blocks new exposure."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    rule: BreakerRule
    action: BreakerAction
    at: datetime
    until: datetime | None = Field(description="end of a pause; None for a halt")
    measured: float = Field(description="the loss or drawdown in %, or the number of losing trades in a row")
    threshold: float
    equity: float | None = Field(description="the latest equity when it tripped")
    reference_equity: float | None = Field(description="the day start, week start or peak the loss is measured from")
    reason: str


class PortfolioBreakerState(BaseModel):
    """Baselines, the losing streak and the active trips; empty until the first equity update."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    equity: float | None = None
    day: date | None = None
    day_start_equity: float | None = None
    week_start: date | None = Field(default=None, description="the Monday of the current ISO week")
    week_start_equity: float | None = None
    peak_equity: float | None = None
    consecutive_losses: int = Field(default=0, ge=0)
    trips: tuple[Trip, ...] = Field(default=(), description="active trips; expired pauses go at the next update")


def on_equity(
    state: PortfolioBreakerState, equity: float, now: datetime, settings: PortfolioBreakerSettings
) -> tuple[PortfolioBreakerState, list[Trip]]:
    """The state after an equity update at ``now``, and the rules it tripped."""
    if not math.isfinite(equity) or equity < 0:
        raise ValueError(f"equity must be a finite number ≥ 0, got {equity!r}")
    now = _utc(now)
    if state.day is not None and now.date() < state.day:
        return state, []
    state = _expire(state, now)
    today = now.date()
    monday = today - timedelta(days=today.weekday())
    update: dict[str, object] = {"equity": equity, "peak_equity": max(state.peak_equity or equity, equity)}
    if state.day != today or state.day_start_equity is None:
        update |= {"day": today, "day_start_equity": equity}
    if state.week_start != monday or state.week_start_equity is None:
        update |= {"week_start": monday, "week_start_equity": equity}
    state = state.model_copy(update=update)
    day_end = datetime.combine(today + timedelta(days=1), time(), UTC)
    week_end = datetime.combine(monday + timedelta(days=7), time(), UTC)
    pause_end = now + _pause(settings)
    rules = (
        (BreakerRule.DAILY_LOSS, settings.daily_loss_pct, settings.daily_loss_action, state.day_start_equity, day_end),
        (
            BreakerRule.WEEKLY_LOSS,
            settings.weekly_loss_pct,
            settings.weekly_loss_action,
            state.week_start_equity,
            week_end,
        ),
        (
            BreakerRule.MAX_DRAWDOWN,
            settings.max_drawdown_pct,
            settings.max_drawdown_action,
            state.peak_equity,
            pause_end,
        ),
    )
    trips: list[Trip] = []
    for rule, threshold, action, reference, period_end in rules:
        if reference is None or reference <= 0 or _is_active(state, rule, now):
            continue
        loss_pct = (reference - equity) / reference * 100
        if loss_pct >= threshold - _PCT_TOLERANCE:
            trips.append(
                Trip(
                    rule=rule,
                    action=action,
                    at=now,
                    until=_until(action, period_end),
                    measured=loss_pct,
                    threshold=threshold,
                    equity=equity,
                    reference_equity=reference,
                    reason=f"{rule.value} {loss_pct:.2f}% reached {threshold:g}%: equity {equity:.2f} "
                    f"from {reference:.2f}",
                )
            )
    return state.model_copy(update={"trips": state.trips + tuple(trips)}), trips


def on_trade_closed(
    state: PortfolioBreakerState, pnl: float, now: datetime, settings: PortfolioBreakerSettings
) -> tuple[PortfolioBreakerState, list[Trip]]:
    """The state after a trade closed with realized ``pnl``; a negative P&L is a loss, anything else ends a streak."""
    if not math.isfinite(pnl):
        raise ValueError(f"pnl must be a finite number, got {pnl!r}")
    now = _utc(now)
    state = _expire(state, now)
    losses = state.consecutive_losses + 1 if pnl < 0 else 0
    state = state.model_copy(update={"consecutive_losses": losses})
    rule = BreakerRule.CONSECUTIVE_LOSSES
    if losses < settings.consecutive_losses or _is_active(state, rule, now):
        return state, []
    action = settings.consecutive_losses_action
    trip = Trip(
        rule=rule,
        action=action,
        at=now,
        until=_until(action, now + _pause(settings)),
        measured=losses,
        threshold=settings.consecutive_losses,
        equity=state.equity,
        reference_equity=None,
        reason=f"{losses} losing trades in a row reached {settings.consecutive_losses}: last P&L {pnl:.2f}",
    )
    return state.model_copy(update={"trips": (*state.trips, trip)}), [trip]


def reset(state: PortfolioBreakerState, rule: BreakerRule | None = None) -> PortfolioBreakerState:
    """A person's reset of the halts of ``rule`` (or of every rule); pauses are left to expire."""
    ended = [t for t in state.trips if t.action is BreakerAction.HALT and rule in (None, t.rule)]
    return _end(state, ended)


def status(state: PortfolioBreakerState, now: datetime) -> BreakerAction | None:
    """HALT if any halt is active, else PAUSE if any pause is still running, else None."""
    now = _utc(now)
    if any(t.action is BreakerAction.HALT for t in state.trips):
        return BreakerAction.HALT
    if any(t.until is not None and t.until > now for t in state.trips):
        return BreakerAction.PAUSE
    return None


def blocks_new_exposure(state: PortfolioBreakerState, now: datetime) -> bool:
    """Whether an active trip forbids opening or adding to positions at ``now``; exits and stops always run."""
    return status(state, now) is not None


def _until(action: BreakerAction, pause_end: datetime) -> datetime | None:
    return pause_end if action is BreakerAction.PAUSE else None


def _expire(state: PortfolioBreakerState, now: datetime) -> PortfolioBreakerState:
    return _end(state, [t for t in state.trips if t.until is not None and t.until <= now])


def _end(state: PortfolioBreakerState, ended: list[Trip]) -> PortfolioBreakerState:
    """The state without the ``ended`` trips, each ended rule's measure restarted."""
    if not ended:
        return state
    restart: dict[BreakerRule, dict[str, object]] = {
        BreakerRule.DAILY_LOSS: {"day_start_equity": state.equity},
        BreakerRule.WEEKLY_LOSS: {"week_start_equity": state.equity},
        BreakerRule.MAX_DRAWDOWN: {"peak_equity": state.equity},
        BreakerRule.CONSECUTIVE_LOSSES: {"consecutive_losses": 0},
    }
    update: dict[str, object] = {"trips": tuple(t for t in state.trips if t not in ended)}
    for trip in ended:
        update |= restart[trip.rule]
    return state.model_copy(update=update)


def _is_active(state: PortfolioBreakerState, rule: BreakerRule, now: datetime) -> bool:
    return any(t.rule is rule and (t.until is None or t.until > now) for t in state.trips)


def _pause(settings: PortfolioBreakerSettings) -> timedelta:
    return timedelta(minutes=settings.pause_minutes)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"times must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(UTC)
