"""Settings and an account for replays through the whole system with the offline provider everywhere.

A low risk-cut threshold, a wide opposed-confidence gap and part of BTC's cap already held make conflicts (and so
resolver calls) happen within a few hundred candles.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from triplegain.config import Settings, load_settings
from triplegain.model import AccountSnapshot

HEADLINES = Path(__file__).resolve().parent / "data" / "headlines.jsonl"

OFFLINE_REPLAY_CONFIG = f"""
agents:
  technical: {{timeframes: [5m, 15m]}}
  regime: {{timeframe: 15m, llm_provider: offline}}
  sentiment:
    llm_provider: offline
    sources: [{{kind: replay, path: "{HEADLINES}"}}]
coordinator:
  resolver: {{providers: [offline]}}
  conflicts: {{risk_cut_threshold: 0.3, opposed_max_confidence_gap: 0.5}}
  schedule:
    housekeeping: {{interval_seconds: 900}}
"""


def offline_replay_settings(folder: Path, more: str = "") -> Settings:
    """The settings above plus ``more`` (YAML of other top-level sections), loaded as a user's file would be."""
    path = folder / "offline-replay.yaml"
    path.write_text(OFFLINE_REPLAY_CONFIG + more)
    return load_settings(path, environ={})


def btc_partly_held(now: datetime) -> AccountSnapshot:
    """A paper account with part of BTC's cap already held, so BTC's entries are cut (a risk_cut conflict)."""
    return AccountSnapshot(equity=10_000.0, cash=9_000.0, open_notional={"BTC/USDT": 1_200.0}, now=now)
