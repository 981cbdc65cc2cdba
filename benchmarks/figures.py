"""What every benchmark prints figures with: nearest-rank percentiles, a checked positive-integer option and the
process's resident memory."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


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


def resident_bytes() -> int:
    """This process's resident set size: psutil's figure when it is installed, else Linux's /proc/self/statm."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)


def use_uvloop() -> None:
    """``--loop uvloop``: run on uvloop (optional, not a dependency) instead of asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        raise SystemExit("--loop uvloop: uvloop is not installed (pip install uvloop)") from None
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@contextlib.contextmanager
def scratch_directory() -> Iterator[Path]:
    """A temporary directory for a benchmark's throwaway database, removed afterwards.

    Under /var/tmp where there is one: run as root, the embedded server makes the parents of its data directory
    traversable, which /tmp's sticky bit would not allow to be undone cleanly.
    """
    parent = "/var/tmp" if os.path.isdir("/var/tmp") else None
    with tempfile.TemporaryDirectory(prefix="triplegain-bench-", dir=parent, ignore_cleanup_errors=True) as scratch:
        yield Path(scratch)
