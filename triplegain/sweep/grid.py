"""The grid of a sweep, built by pure functions: settings overrides × candle files × seeds, one run a point.

    build_grid([parse_override("coordinator.consensus.agreement_boost=0.1,0.2")], [Path("a.csv")], [None])

``--set KEY=V1,V2`` names a setting by its dotted path in ``Settings`` and its values, separated by commas outside
brackets, braces and quotes (``risk.x=[1, 2],[3]`` is two lists); each value is read as YAML, as a
``TRIPLEGAIN_*`` override is. Points are numbered from 1 in a fixed order: the first override varies slowest,
then the candle files, then the seeds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from triplegain.errors import UserError

_OPENING = {"[": "]", "{": "}"}


@dataclass(frozen=True)
class Override:
    """One ``--set``: a setting's dotted path and the values the sweep gives it (each with its text as typed)."""

    key: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]

    def origin(self, position: int) -> str:
        """How the user wrote the ``position``-th value, for an error message."""
        return f"--set {self.key}={self.texts[position]}"


@dataclass(frozen=True)
class GridPoint:
    """One run of the sweep: its number, the settings it overrides, its candle file (None: synthetic candles, or
    the settings' files) and its seed (None: the settings' own)."""

    index: int
    overrides: tuple[tuple[str, Any], ...]
    candles: Path | None
    seed: int | None

    @property
    def label(self) -> str:
        """The point in a line: ``agreement_boost=0.1 a.csv seed 3``."""
        parts = [f"{key}={_shown(value)}" for key, value in self.overrides]
        if self.candles is not None:
            parts.append(self.candles.name)
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return " ".join(parts) or "defaults"


def parse_override(text: str) -> Override:
    """``KEY=V1,V2,…`` as an ``Override``; ``UserError`` naming the option when it is not one."""
    key, equals, raw = text.partition("=")
    key = key.strip()
    parts = tuple(key.split("."))
    if not equals or not key or not all(part.strip() == part and part for part in parts):
        raise UserError(f"--set {text!r}: not KEY=VALUE[,VALUE…] with KEY a dotted setting path (a.b.c)")
    texts = tuple(piece.strip() for piece in split_values(raw))
    if not texts or any(not piece for piece in texts):
        raise UserError(f"--set {text!r}: an empty value — give VALUE[,VALUE…]")
    values = []
    for piece in texts:
        try:
            values.append(yaml.safe_load(piece))
        except yaml.YAMLError as error:
            problem = " ".join((getattr(error, "problem", None) or str(error)).split())
            raise UserError(f"--set {key}={piece}: not a YAML value — {problem}") from None
    return Override(key=key, values=tuple(values), texts=texts)


def split_values(raw: str) -> list[str]:
    """``raw`` split at the commas outside brackets, braces and quotes."""
    pieces: list[str] = []
    closing: list[str] = []
    quote = ""
    start = 0
    for position, char in enumerate(raw):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in _OPENING:
            closing.append(_OPENING[char])
        elif closing and char == closing[-1]:
            closing.pop()
        elif char == "," and not closing:
            pieces.append(raw[start:position])
            start = position + 1
    pieces.append(raw[start:])
    return pieces


def parse_seeds(text: str | None) -> list[int | None]:
    """``--seeds 1,2,3`` as seeds; ``[None]`` (the settings' own seed) when not given."""
    if text is None:
        return [None]
    seeds: list[int | None] = []
    for piece in text.split(","):
        try:
            seeds.append(int(piece.strip()))
        except ValueError:
            raise UserError(f"--seeds {text!r}: {piece.strip()!r} is not a whole number — give N[,N…]") from None
    return seeds


def build_grid(overrides: Sequence[Override], files: Sequence[Path], seeds: Sequence[int | None]) -> list[GridPoint]:
    """Every combination of the overrides' values, the candle files (none: one point without a file) and the
    seeds."""
    keys = [override.key for override in overrides]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise UserError(f"--set {repeated[0]}: given more than once — list its values in one --set, comma-separated")
    sources: list[Path | None] = [*files] or [None]
    choices = itertools.product(
        itertools.product(*(override.values for override in overrides)), sources, seeds or [None]
    )
    return [
        GridPoint(index=index, overrides=tuple(zip(keys, values, strict=True)), candles=candles, seed=seed)
        for index, (values, candles, seed) in enumerate(choices, start=1)
    ]


def _shown(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
