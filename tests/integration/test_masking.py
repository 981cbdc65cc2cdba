"""``llm.mask_history``: in a replay asking a model over the network (by default), no symbol, date or raw price of
the replay's candles appears in any stored prompt, and the model's answers are mapped back to the symbol.

The daemon replays synthetic BTC/USDT candles with every agent and the resolver asking ``ollama`` (the stub); the
stub's answers name the market the prompt showed. Then every ``llm_calls`` prompt is searched for the symbol,
its assets and their names, every candle's date and year, and every price of every candle.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.test_answers_from import replay
from tests.integration.test_ollama import ANSWERS, CONFIG, purpose
from tests.offline_replay import HEADLINES
from tests.stubs.llm_server import Answer, LLMStubServer, Reply
from triplegain.clock import WallClock
from triplegain.config import Settings, load_settings
from triplegain.market import SyntheticFeed

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

MARKET = re.compile(r"Market: (\S+)")


def naming_the_market(body: Any) -> Reply:
    """The purpose's answer, its reasoning naming the market as the prompt showed it."""
    market = MARKET.search(body["messages"][1]["content"])
    shown = market.group(1).rstrip(",") if market is not None else "it"
    answer = {**ANSWERS[purpose(body)], "reasoning": f"{shown} looks fine"}
    return Answer(json.dumps(answer))


async def candle_prices(settings: Settings) -> tuple[set[str], set[str]]:
    """Every price of every candle of the replay, written as JSON or a prompt might; every date of a candle."""
    prices: set[str] = set()
    dates: set[str] = set()
    async for candle in SyntheticFeed(settings.market.synthetic, clock=WallClock()):
        for price in (candle.open, candle.high, candle.low, candle.close):
            prices |= {repr(price), f"{price:.2f}", f"{price:,.2f}"}
        dates.add(candle.open_time.date().isoformat())
    return prices, dates


def test_no_symbol_date_or_price_of_the_candles_reaches_a_stored_prompt(
    migrated_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", migrated_database_url)
    settings: Settings | None = None

    async def run() -> tuple[list[str], list[str], str]:
        nonlocal settings
        async with LLMStubServer() as stub:
            stub.openai.respond = naming_the_market
            path = tmp_path / "masked.yaml"
            path.write_text(CONFIG.format(url=stub.openai_base_url, headlines=HEADLINES))
            settings = load_settings(path, environ={})
            _, said = await replay(settings, environ={})
        connection = await asyncpg.connect(migrated_database_url)
        try:
            prompts = [
                row["system_prompt"] + "\n" + row["user_prompt"]
                for row in await connection.fetch("SELECT system_prompt, user_prompt FROM llm_calls")
            ]
            reasons = [row["reasoning"] for row in await connection.fetch("SELECT reasoning FROM agent_outputs")]
        finally:
            await connection.close()
        return prompts, reasons, said

    prompts, reasons, said = asyncio.run(run())
    assert settings is not None
    prices, dates = asyncio.run(candle_prices(settings))

    assert "prompts are masked (llm.mask_history)" in said
    assert len(prompts) > 100
    assert {purpose_of(prompt) for prompt in prompts} >= {"technical", "regime", "sentiment", "conflict"}
    text = "\n".join(prompts)
    for name in ("BTC", "USDT", "bitcoin", "tether", "XBT"):
        assert not re.search(rf"\b{name}\b", text, re.IGNORECASE), name
    for date in dates:
        assert date not in text, date
    assert not re.search(r"(?<![\d.])20\d\d(?![\d.])", text), "no year either"
    leaked = [price for price in prices if price in text]
    assert leaked == [], leaked[:5]
    assert "ASSET_A/QUOTE_A" in text
    assert any("LLM refinement (ollama): BTC/USDT looks fine" in (reason or "") for reason in reasons), (
        "answers map back to the symbol"
    )


def purpose_of(prompt: str) -> str:
    for phrase, name in (
        ("market-regime", "regime"),
        ("technical-analysis", "technical"),
        ("sentiment score", "sentiment"),
        ("resolve a conflict", "conflict"),
    ):
        if phrase in prompt:
            return name
    return "?"
