"""What every benchmark prints figures with: nearest-rank percentiles and a checked positive-integer option."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence


def percentiles(seconds: Sequence[float], fractions: Sequence[float], *, scale: float, digits: int) -> dict[str, float]:
    """Nearest-rank percentiles of durations in seconds, times ``scale`` (1e6: µs, 1e3: ms), named ``p50``,
    ``p99.9``…"""
    ordered = sorted(seconds)
    return {
        f"p{fraction * 100:g}": round(ordered[max(1, math.ceil(fraction * len(ordered))) - 1] * scale, digits)
        for fraction in fractions
    }


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} — a positive whole number is allowed")
    return value
