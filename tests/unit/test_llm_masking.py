"""Prompts a model cannot place in history: aliases, relative times, indexed prices; answers mapped back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from triplegain.llm import LLMSettings
from triplegain.llm.masking import HistoryMask, masks_history

NOW = datetime(2024, 3, 11, 14, 30, tzinfo=UTC)


def mask() -> HistoryMask:
    masked = HistoryMask(["ETH/USDT", "BTC/USDT"], enabled=True)
    masked.anchor("BTC/USDT", 40_000.0)
    masked.anchor("BTC/USDT", 50_000.0)
    return masked


def test_symbols_and_assets_get_aliases_and_answers_map_back() -> None:
    masked = mask()
    assert (masked.symbol("BTC/USDT"), masked.symbol("ETH/USDT")) == ("ASSET_A/QUOTE_A", "ASSET_B/QUOTE_A")
    headline = "Bitcoin and btc/usdt rally; ETH lags, Tether mints; bitcoiners and ETHER cheer"
    assert masked.text(headline) == (
        "ASSET_A and ASSET_A/QUOTE_A rally; ASSET_B lags, QUOTE_A mints; bitcoiners and ASSET_B cheer"
    )
    assert masked.unmask("ASSET_A/QUOTE_A leads ASSET_B") == "BTC/USDT leads ETH"


def test_prices_are_indexed_to_the_first_close_and_times_are_relative() -> None:
    masked = mask()
    assert masked.price("BTC/USDT", 41_000.0) == 102.5
    assert masked.price("BTC/USDT", 400.0) == 1.0, "a distance (an ATR) scales the same way"
    assert masked.moment(NOW - timedelta(minutes=15), NOW) == "15 min ago"
    assert masked.moment(NOW, NOW) == "now"
    assert masked.text("ETF decision on 2024-03-11T14:00:00Z, as in 2023.") == "ETF decision on [date], as in [year]."
    assert masked.text("a score of 0.2082, 2024.5 or 12024") == "a score of 0.2082, 2024.5 or 12024"


def test_answers_have_their_text_fields_unmasked() -> None:
    class Answer(BaseModel):
        reasoning: str
        confidence: float

    answer = mask().answer(Answer(reasoning="ASSET_A/QUOTE_A is choppy", confidence=0.5))
    assert answer == Answer(reasoning="BTC/USDT is choppy", confidence=0.5)


def test_off_changes_nothing() -> None:
    off = HistoryMask.off()
    assert (off.symbol("BTC/USDT"), off.price("BTC/USDT", 41_000.0), off.text("Bitcoin 2024")) == (
        "BTC/USDT",
        41_000.0,
        "Bitcoin 2024",
    )
    assert off.moment(NOW, NOW) == NOW.isoformat()


def test_by_default_only_replays_that_ask_a_model_over_the_network_mask() -> None:
    providers = LLMSettings().providers
    network, offline = [providers.deepseek], [providers.offline]
    assert LLMSettings().mask_history == "replay"
    assert masks_history("replay", replaying=True, providers=network)
    assert not masks_history("replay", replaying=False, providers=network), "off by default live"
    assert not masks_history("replay", replaying=True, providers=offline)
    assert masks_history("always", replaying=False, providers=offline)
    assert not masks_history("never", replaying=True, providers=network)
