"""Command-line values of the review commands, checked before anything else happens.

Options arrive as text and are parsed here rather than by click, so that a mistake reads as the project's one
line — ``--since: '2024-13-01' is not …— what is allowed`` — with exit code 2 (``UserError``), instead of a
usage box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from triplegain.errors import UserError
from triplegain.model import DecisionAction, account_name
from triplegain.review.id_prefixes import ID_PREFIX_MIN

ACTIONS: tuple[str, ...] = tuple(DecisionAction)
_TIME_EXAMPLES = (
    "e.g. 2024-01-31, 2024-01-31T09:30, 2024-01-31T09:30:00Z or 2024-01-31T09:30:00+02:00 (UTC if no offset)"
)
_ID_TEXT = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]*")


def parse_time(value: str, option: str) -> datetime:
    """An ISO 8601 date (its midnight) or date and time; UTC when it has no offset."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)  # a date alone is its midnight
    except ValueError:
        raise UserError(f"{option}: {value!r} is not an ISO 8601 date or time — {_TIME_EXAMPLES}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until``; ``--since`` must come first (``--until`` is exclusive)."""
    start = parse_time(since, "--since") if since is not None else None
    end = parse_time(until, "--until") if until is not None else None
    if start is not None and end is not None and start >= end:
        raise UserError(
            f"--until: {until!r} is not after --since {since!r} — --until is exclusive, so it must be later"
        )
    return start, end


def parse_action(value: str | None) -> DecisionAction | None:
    if value is None:
        return None
    text = value.strip().lower()
    if text not in ACTIONS:
        raise UserError(f"--action: {value!r} is not an action — one of {', '.join(ACTIONS)}")
    return DecisionAction(text)


def parse_positive(value: str | None, option: str, default: int | None) -> int | None:
    """A whole number ≥ 1 (``--limit``, ``--run``); ``default`` when the option is absent."""
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if number < 1:
        raise UserError(f"{option}: {value!r} is not a whole number of at least 1")
    return number


def parse_choice(value: str, option: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (case-insensitive)."""
    text = value.strip().lower()
    if text not in allowed:
        raise UserError(f"{option}: {value!r} is not allowed — one of {', '.join(allowed)}")
    return text


def parse_symbol(value: str | None) -> str | None:
    """A market like ``BTC/USDT``; upper case, as exchanges' unified symbols are."""
    if value is None:
        return None
    text = value.strip().upper()
    if not text:
        raise UserError(f"--symbol: {value!r} is empty — a market like BTC/USDT")
    return text


def parse_text(value: str | None, option: str) -> str | None:
    """A non-empty name (``--provider``, ``--purpose``)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise UserError(f"{option}: {value!r} is empty — leave the option out to match any")
    return text


@dataclass(frozen=True)
class IdQuery:
    """A whole id, or the first digits of one (as the lists show them)."""

    exact: UUID | None
    prefix: str | None


def parse_id(value: str, name: str, what: str) -> IdQuery:
    """A UUID, or a prefix of at least ``ID_PREFIX_MIN`` hex digits; ``name`` is how the argument is called."""
    text = value.strip().lower()
    try:
        return IdQuery(exact=UUID(text), prefix=None)
    except ValueError:
        pass
    if _ID_TEXT.fullmatch(text) and len(text.replace("-", "")) >= ID_PREFIX_MIN and len(text) < 36:
        return IdQuery(exact=None, prefix=text)
    raise UserError(f"{name}: {value!r} is not {what} id — a UUID, or its first {ID_PREFIX_MIN} or more hex digits")


@dataclass(frozen=True)
class ScopeChoice:
    """Which rows a review command reads: one daemon run, every run of one account, or everything; with none of
    the three given, the latest run."""

    run_id: int | None = None
    account: str | None = None
    everything: bool = False


def parse_scope(run: str | None, account: str | None, everything: bool) -> ScopeChoice:
    """``--run ID``, ``--account NAME`` or ``--all``: at most one of them."""
    given = [name for name, value in (("--run", run), ("--account", account), ("--all", everything)) if value]
    if len(given) > 1:
        raise UserError(f"{given[1]}: given with {given[0]} — pick one: --run ID, --account NAME or --all")
    return ScopeChoice(
        run_id=parse_positive(run, "--run", None),
        account=account_name(account, "--account") if account is not None else None,
        everything=everything,
    )
