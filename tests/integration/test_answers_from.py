"""A run re-executed for free: the daemon replays synthetic candles asking DeepSeek (the regime agent's review and
the resolver chain's first provider) and Claude, both the local stub through the real SDKs; then the same replay
with ``--answers-from`` that run sends no request at all and makes the same decisions, trades and final equity,
which ``triplegain runs compare`` confirms (exit 0). A third run with a changed setting (the resolution bounds,
which the resolver's prompt states) finds its questions unasked: answered by the conservative rule without a
request, and ``runs compare`` lists what differs (exit 1).

The daemon runs in this process (``run_daemon``), the comparison as the CLI's own entry point.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import run_main
from tests.stubs.llm_server import STUB_KEYS, Answer, Failure, LLMStubServer, Reply
from triplegain.config import Settings, load_settings
from triplegain.daemon.run import RunOptions, run_daemon
from triplegain.daemon.status import StatusBoard
from triplegain.daemon.summary import RunSummary

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

CONFIG = """
llm:
  providers:
    deepseek: {{base_url: "{openai}", timeout_seconds: 5, retry: {{max_attempts: 1}}}}
    anthropic: {{base_url: "{anthropic}", timeout_seconds: 5, retry: {{max_attempts: 1}}}}
agents:
  regime: {{llm_provider: deepseek}}
coordinator:
  account: {account}
  conflicts: {{risk_cut_threshold: 0.3, opposed_max_confidence_gap: 0.5}}
  resolution: {{max_size_reduction_pct: {max_cut}}}
risk: {{min_confidence: 0.05, min_confidence_by_regime: {{}}, cooldown_after_losses: {{}}}}
market:
  synthetic: {{symbols: {{BTC/USDT: 40000.0}}, count: 240, start: 2024-01-01T00:00:00Z, seed: 11}}
"""


class DeepSeek:
    """The regime review: choppy (conflicts follow); every other resolution asked: a 500, else proceed."""

    def __init__(self) -> None:
        self.resolutions = 0

    def __call__(self, body: Any) -> Reply:
        system = body["messages"][0]["content"]
        if "market-regime" in system:
            return Answer(json.dumps({"regime": "choppy", "confidence": 0.8, "reasoning": "no direction"}))
        self.resolutions += 1
        if self.resolutions % 2 == 0:
            return Failure(500)
        return Answer(json.dumps({"action": "proceed", "confidence": 0.7, "reasoning": "the trend wins"}))


def claude(body: Any) -> Reply:
    """A smaller trade, or none, depending on the question."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
    action = "modify" if digest[0] % 2 else "abort"
    answer = {"action": action, "confidence": 0.6, "reasoning": "smaller", "size_reduction_pct": 40}
    return Answer(json.dumps(answer))


def settings(stub: LLMStubServer, folder: Path, account: str, max_cut: float = 75.0) -> Settings:
    path = folder / f"{account}.yaml"
    path.write_text(
        CONFIG.format(
            openai=stub.openai_base_url, anthropic=stub.anthropic_base_url, account=account, max_cut=max_cut
        )
    )
    return load_settings(path, environ={})


def requests(stub: LLMStubServer) -> int:
    return len(stub.openai.requests) + len(stub.anthropic.requests)


async def replay(
    settings: Settings, environ: Mapping[str, str] = STUB_KEYS, **options: Any
) -> tuple[RunSummary, str]:
    """The daemon over the settings' synthetic candles; its summary and what it said on its status board."""
    said = io.StringIO()
    summary = await run_daemon(
        settings,
        RunOptions(source="synthetic", status_interval_seconds=60, **options),
        environ,
        StatusBoard(said, rich_panel=False),
    )
    return summary, said.getvalue()


def test_a_replay_re_run_from_its_answers_sends_nothing_and_decides_the_same(
    migrated_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_DATABASE_URL", migrated_database_url)

    async def three_runs() -> tuple[RunSummary, RunSummary, RunSummary, list[int], str]:
        async with LLMStubServer() as stub:
            stub.openai.respond = DeepSeek()
            stub.anthropic.respond = claude
            first, said = await replay(settings(stub, tmp_path, "first"), max_llm_usd=5.0)
            sent = [requests(stub)]
            again, _ = await replay(settings(stub, tmp_path, "again"), answers_from=first.run_id)
            sent.append(requests(stub))
            changed, _ = await replay(
                settings(stub, tmp_path, "changed", max_cut=30.0), answers_from=first.run_id
            )
            sent.append(requests(stub))
        return first, again, changed, sent, said

    first, again, changed, sent, said = asyncio.run(three_runs())

    assert sent[0] > 20, "the first run asked both providers"
    assert first.llm_calls["anthropic"].calls > 0, "DeepSeek's failures went on to Claude"
    assert "LLM cost at most $" in said, "a replay that may call a paid provider says what it may cost"
    assert first.llm_budget is not None
    assert first.llm_budget.spent_usd > 0

    assert sent[1] == sent[0], "the re-run sent no request to any provider"
    assert again.answers is not None
    assert (again.answers.missed, again.answers.asked) == (0, 0)
    assert again.answers.served > 0
    assert again.llm_calls == {}, "served answers are not calls made by the run"
    assert (again.decisions, again.trades, again.final_equity) == (first.decisions, first.trades, first.final_equity)

    url = {"TRIPLEGAIN_DATABASE_URL": migrated_database_url}
    same = run_main("runs", "compare", str(first.run_id), str(again.run_id), env=url)
    assert same.code == 0, same.stdout + same.stderr
    assert "no difference: the same " in same.stdout

    assert sent[2] == sent[0], "questions the first run never asked are not asked (--on-missing conservative)"
    assert changed.answers is not None
    assert changed.answers.missed > 0
    assert changed.answers.asked == 0
    differ = run_main("runs", "compare", str(first.run_id), str(changed.run_id), env=url)
    assert differ.code == 1, differ.stdout + differ.stderr
    assert "decisions that differ: " in differ.stdout
    assert "conservative rule, no trade" in differ.stdout
