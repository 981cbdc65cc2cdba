"""Which decisions and LLM calls to read.

Filters are frozen pydantic models, so a filter is checked once (times aware, ``since`` before ``until``,
limits positive) and then passed around as a value. Times: ``since`` is inclusive, ``until`` exclusive, so
consecutive windows never count a row twice.
"""

from __future__ import annotations

from typing import Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from triplegain.model import DecisionAction

DEFAULT_LIMIT = 50
"""Rows a list shows unless told otherwise: a screenful, the most recent first."""


class _TimeWindow(BaseModel):
    """``since`` (inclusive) and ``until`` (exclusive), both optional and timezone-aware."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    since: AwareDatetime | None = Field(default=None, description="from this time on (inclusive)")
    until: AwareDatetime | None = Field(default=None, description="before this time (exclusive)")
    limit: int | None = Field(default=DEFAULT_LIMIT, ge=1, description="at most this many rows; None: all")
    offset: int = Field(
        default=0, ge=0, le=2**62, description="skip this many of the newest matches first (a page further)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since {self.since.isoformat()} is not before until {self.until.isoformat()}")
        return self


class DecisionFilter(_TimeWindow):
    """Which decisions to read. Every field narrows; the defaults match every decision (the latest 50)."""

    symbol: str | None = Field(default=None, min_length=1, description="the market, e.g. BTC/USDT")
    action: DecisionAction | None = None
    conflicts_only: bool = Field(default=False, description="only decisions where a conflict rule fired")
    provider: str | None = Field(
        default=None, min_length=1, description="only decisions an LLM of this provider was asked about"
    )
    run_id: int | None = Field(default=None, ge=1, description="only decisions of this daemon run")
    account: str | None = Field(default=None, min_length=1, description="only decisions of this account")


class LLMCallFilter(_TimeWindow):
    """Which LLM calls to read (by ``started_at``). Every field narrows."""

    provider: str | None = Field(default=None, min_length=1)
    purpose: str | None = Field(default=None, min_length=1, description="e.g. conflict_resolution, regime_refinement")
    symbol: str | None = Field(
        default=None, min_length=1, description="the call's symbol, its decision's, or its agent view's"
    )
    decision_id: UUID | None = Field(default=None, description="only the attempts made for this decision")
    run_id: int | None = Field(default=None, ge=1)
    account: str | None = Field(default=None, min_length=1, description="only calls of this account's daemon runs")
    errors_only: bool = Field(default=False, description="only failed or skipped attempts")
