"""A provider's circuit breaker as pure functions over an immutable state.

CLOSED: calls pass. A failure opens it when it makes ``consecutive_failures`` failed calls in a row, or when the
last ``window_calls`` calls (at least ``min_calls`` of them) hold a share of failures of ``failure_rate`` or more.
OPEN: calls are refused until the cool-down has passed; then the next call is let through as a trial and the
breaker is HALF_OPEN. HALF_OPEN: other calls are refused while the trial runs; its success closes the breaker
(with a clean history), its failure opens it again for a cool-down ``cooldown_growth`` times longer, up to
``cooldown_max_seconds``. The first cool-down is ``cooldown_seconds``: a provider that stays dead is tried less
and less often (each trial waits out the provider's whole timeout), and one that recovers is used again at once.

Times are seconds on the gateway's wall clock (``monotonic()``): a provider recovers in real time, whatever a
replay's simulated clock says. A call is one gateway call (its retries included); a failure is a call without
a validated answer.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from triplegain.llm.settings import BreakerSettings


class BreakerPhase(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    phase: BreakerPhase = BreakerPhase.CLOSED
    consecutive_failures: int = Field(default=0, ge=0)
    recent_failures: tuple[bool, ...] = Field(
        default=(), description="outcome of the latest calls, oldest first: True for a failure"
    )
    opened_at: float | None = Field(default=None, description="monotonic seconds when it last opened")
    cooldown_seconds: float | None = Field(
        default=None, ge=0, description="the current cool-down, grown by failed trials; None: the settings' first one"
    )
    trial_running: bool = False


def admit(state: BreakerState, settings: BreakerSettings, now: float) -> tuple[BreakerState, bool]:
    """Whether a call may go ahead now, and the state after letting it (or not)."""
    if state.phase is BreakerPhase.CLOSED:
        return state, True
    if state.phase is BreakerPhase.HALF_OPEN:
        if state.trial_running:
            return state, False
        return state.model_copy(update={"trial_running": True}), True
    assert state.opened_at is not None
    if now - state.opened_at < cooldown(state, settings):
        return state, False
    return state.model_copy(update={"phase": BreakerPhase.HALF_OPEN, "trial_running": True}), True


def after_success(state: BreakerState, settings: BreakerSettings) -> BreakerState:
    """The state after an admitted call produced a validated answer."""
    if state.phase is not BreakerPhase.CLOSED:
        return BreakerState()
    return state.model_copy(update={"consecutive_failures": 0, "recent_failures": _remember(state, False, settings)})


def after_failure(state: BreakerState, settings: BreakerSettings, now: float) -> BreakerState:
    """The state after an admitted call failed; a failed trial opens it for a longer cool-down."""
    if state.phase is not BreakerPhase.CLOSED:
        grown = min(cooldown(state, settings) * settings.cooldown_growth, settings.cooldown_max_seconds)
        return _opened(state.model_copy(update={"cooldown_seconds": grown}), now)
    failed = state.model_copy(
        update={
            "consecutive_failures": state.consecutive_failures + 1,
            "recent_failures": _remember(state, True, settings),
        }
    )
    return _opened(failed, now) if _should_open(failed, settings) else failed


def after_abandon(state: BreakerState) -> BreakerState:
    """The state after an admitted call ended without an outcome (cancelled): a trial may be tried again."""
    return state.model_copy(update={"trial_running": False})


def seconds_until_trial(state: BreakerState, settings: BreakerSettings, now: float) -> float:
    """How long an open breaker still refuses calls; 0 when it is not open."""
    if state.phase is not BreakerPhase.OPEN or state.opened_at is None:
        return 0.0
    return max(cooldown(state, settings) - (now - state.opened_at), 0.0)


def cooldown(state: BreakerState, settings: BreakerSettings) -> float:
    """How long the breaker stays open this time: the first cool-down, or the one failed trials grew."""
    return settings.cooldown_seconds if state.cooldown_seconds is None else state.cooldown_seconds


def _should_open(state: BreakerState, settings: BreakerSettings) -> bool:
    if state.consecutive_failures >= settings.consecutive_failures:
        return True
    calls = len(state.recent_failures)
    return calls >= settings.min_calls and sum(state.recent_failures) / calls >= settings.failure_rate


def _remember(state: BreakerState, failed: bool, settings: BreakerSettings) -> tuple[bool, ...]:
    return (*state.recent_failures, failed)[-settings.window_calls :]


def _opened(state: BreakerState, now: float) -> BreakerState:
    return state.model_copy(update={"phase": BreakerPhase.OPEN, "opened_at": now, "trial_running": False})
