"""The coordinator's settings, gathered from the modules whose rules they configure."""

from __future__ import annotations

from pydantic import Field

from triplegain.coordinator.breaker import PortfolioBreakerSettings
from triplegain.coordinator.conflicts import ConflictSettings
from triplegain.coordinator.consensus import ConsensusSettings
from triplegain.coordinator.degradation import DegradationSettings
from triplegain.coordinator.intent import IntentSettings
from triplegain.coordinator.resolution import ResolutionBounds
from triplegain.coordinator.resolver import ResolverSettings
from triplegain.coordinator.schedule import ScheduleSettings
from triplegain.model import ACCOUNT_NAME_PATTERN
from triplegain.section import Section


class CoordinatorSettings(Section):
    """How views become decisions: schedule, intents, consensus, conflicts and their resolution, degradation, the
    breaker."""

    account: str = Field(
        default="paper",
        min_length=1,
        pattern=ACCOUNT_NAME_PATTERN,
        description="the paper account this coordinator trades; its state, commands and orders are kept under it",
    )
    schedule: ScheduleSettings = Field(
        default_factory=ScheduleSettings,
        description="the scheduled tasks: interval, timeout, per-symbol fan-out, dependencies (live and replay)",
    )
    intent: IntentSettings = Field(
        default_factory=IntentSettings, description="how the technical view's lean becomes an entry, stop and target"
    )
    consensus: ConsensusSettings = Field(default_factory=ConsensusSettings, description="agreement and disagreement")
    conflicts: ConflictSettings = Field(default_factory=ConflictSettings, description="conflict rules")
    resolver: ResolverSettings = Field(
        default_factory=ResolverSettings, description="the LLM providers asked to resolve a conflict, in order"
    )
    resolution: ResolutionBounds = Field(
        default_factory=ResolutionBounds, description="bounds on a resolver's modifications (out of range: clamped)"
    )
    degradation: DegradationSettings = Field(
        default_factory=DegradationSettings, description="degradation levels, their triggers and effects"
    )
    breaker: PortfolioBreakerSettings = Field(
        default_factory=PortfolioBreakerSettings, description="circuit breaker on the paper portfolio"
    )
    max_market_data_age_intervals: float = Field(
        default=3.0,
        gt=0,
        allow_inf_nan=False,
        description="no trade on stale data: a decision on a symbol whose newest candle closed more than this many "
        "candle intervals ago holds (exits too)",
    )
    snapshot_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        allow_inf_nan=False,
        description="housekeeping polls for commands and saves the snapshot (task runs, hold decisions, heartbeat) "
        "at most this often, in wall-clock seconds (a replay runs housekeeping at every candle time); commands "
        "still apply at once through NOTIFY, and degradation and breaker events are saved at once. 0: every run",
    )
    max_unsaved_rows: int = Field(
        default=50_000,
        ge=1,
        description="while the database is out of reach, at most this many task runs, hold decisions, degradation "
        "and breaker events wait in memory for the next snapshot; past it the daemon stops without dropping them",
    )
