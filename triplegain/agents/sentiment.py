"""The sentiment agent: bias and a score in [−1, 1] from recent headlines and posts about one symbol.

Scoring (``score_items`` then ``assess_sentiment``):

    relevance  = 1 when the item names the symbol's asset (by tag, or else in its text through the asset's
                 aliases), 0 when it names only other assets, general_item_weight when it names none
    recency    = 0.5 ^ (age / half_life); items older than the lookback or published after now are left out
    weight     = relevance · recency;   s = the item's lexicon score (see ``lexicon``)

Over the items the lexicon has an opinion on (at least one hit):

    score      = Σ weight·s / Σ weight
    agreement  = |Σ weight·s| / Σ weight·|s|
    evidence   = 1 − exp(−Σ weight / evidence_scale)
    confidence = evidence · agreement
    bias       = long if score ≥ neutral_band, short if ≤ −neutral_band, else neutral

The drivers are the ``max_drivers`` items with the largest weight·|s|. Item text is untrusted: the reasoning names
drivers by id and source only (their titles are in the body, as data), and an LLM refinement sees the items only
inside a ``data_block``. The refinement may revise the score and confidence within their bounds; the bias then
follows the revised score by the same band. With no relevant item there is nothing to refine and no call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from triplegain.agents.base import AgentOutput, Baseline, bias_of
from triplegain.agents.lexicon import lexicon_score, words_of
from triplegain.agents.refinement import (
    REASONING_MAX_CHARS,
    RefinementPrompts,
    Refiner,
    configured_refiner,
    request_refinement,
)
from triplegain.agents.settings import SentimentSettings
from triplegain.agents.sources import ItemPool, TextItem
from triplegain.clock import Clock
from triplegain.llm import LLMGateway, LLMRequest, data_block
from triplegain.llm.masking import HistoryMask
from triplegain.model import AgentName, Bias

REFINEMENT_PURPOSE = "sentiment_refinement"
DRIVER_TITLE_CHARS = 200
_SECONDS_PER_HOUR = 3600.0


class Driver(BaseModel):
    """An item that moved the score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="the item's id")
    source: str = Field(description="where it came from")
    title: str = Field(description="its title, cut to 200 characters")
    published_at: datetime = Field(description="when it was published")
    score: float = Field(ge=-1, le=1, description="its lexicon score")
    weight: float = Field(ge=0, le=1, description="relevance · recency")


class SentimentView(BaseModel):
    """The sentiment agent's body."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bias: Bias = Field(description="long, short or neutral")
    score: float = Field(ge=-1, le=1, description="weighted mean of the opinionated items' scores")
    items_considered: int = Field(ge=0, description="relevant items within the lookback window")
    items_opinionated: int = Field(ge=0, description="of those, items the lexicon had an opinion on")
    evidence: float = Field(ge=0, le=1, description="1 − exp(−total weight / evidence_scale)")
    agreement: float = Field(ge=0, le=1, description="how far the opinionated items point the same way")
    drivers: tuple[Driver, ...] = Field(description="the items that weighed most, strongest first")


class SentimentOutput(AgentOutput[SentimentView]):
    """What the sentiment agent publishes."""


class SentimentRefinement(BaseModel):
    """What an LLM refining the baseline must answer; the bounds are the body's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score: float = Field(ge=-1, le=1)
    confidence: float = Field(ge=0, le=1)
    reasoning: str = Field(min_length=1, max_length=REASONING_MAX_CHARS)


@dataclass(frozen=True, slots=True)
class ScoredItem:
    item: TextItem
    score: float
    hits: int
    weight: float

    @property
    def impact(self) -> float:
        return self.weight * abs(self.score)


# ------------------------------------------------------------------------------------------------- scoring


def asset_of(symbol: str) -> str:
    """The base asset of a symbol: ``BTC/USDT`` → ``BTC``."""
    return symbol.split("/", 1)[0].upper()


def asset_words(aliases: Mapping[str, Sequence[str]], asset: str) -> dict[str, frozenset[str]]:
    """Asset → the lower-case words that name it: its code and its aliases (``asset`` is always included)."""
    words = {
        name.upper(): frozenset({name.lower(), *(alias.lower() for alias in names)}) for name, names in aliases.items()
    }
    words.setdefault(asset, frozenset({asset.lower()}))
    return words


def assets_named(item: TextItem, words: Mapping[str, frozenset[str]]) -> set[str]:
    """The assets an item is about: those its tags name, or if its tags name none, those its text names."""
    tags = {asset_of(tag).lower() for tag in item.symbols}
    tagged = {asset for asset, names in words.items() if tags & names}
    if tagged:
        return tagged
    text = set(words_of(f"{item.title} {item.summary}"))
    return {asset for asset, names in words.items() if text & names}


def score_items(symbol: str, items: Sequence[TextItem], now: datetime, settings: SentimentSettings) -> list[ScoredItem]:
    """The items relevant to ``symbol`` within the lookback, with their scores and weights, strongest first."""
    asset = asset_of(symbol)
    words = asset_words(settings.asset_aliases, asset)
    oldest = now - timedelta(hours=settings.lookback_hours)
    half_life = settings.half_life_hours * _SECONDS_PER_HOUR
    scored: list[ScoredItem] = []
    for item in items:
        if not oldest < item.published_at <= now:
            continue
        named = assets_named(item, words)
        weight = 1.0 if asset in named else 0.0 if named else settings.general_item_weight
        if weight <= 0:
            continue
        age = (now - item.published_at).total_seconds()
        lexical = lexicon_score(f"{item.title}. {item.summary}")
        scored.append(ScoredItem(item, lexical.score, lexical.hits, weight * 0.5 ** (age / half_life)))
    scored.sort(key=lambda entry: (-entry.impact, -entry.item.published_at.timestamp(), entry.item.id))
    return scored


def assess_sentiment(scored: Sequence[ScoredItem], settings: SentimentSettings) -> Baseline[SentimentView]:
    """The deterministic view from ``score_items``'s result (see the module docstring)."""
    opinionated = [entry for entry in scored if entry.hits > 0]
    total_weight = sum(entry.weight for entry in opinionated)
    signed = sum(entry.weight * entry.score for entry in opinionated)
    unsigned = sum(entry.impact for entry in opinionated)
    score = max(-1.0, min(1.0, signed / total_weight)) if total_weight > 0 else 0.0
    agreement = min(1.0, abs(signed) / unsigned) if unsigned > 0 else 1.0
    evidence = 1.0 - math.exp(-total_weight / settings.evidence_scale)
    confidence = evidence * agreement if opinionated else 0.0
    bias = bias_of(score, settings.neutral_band)
    drivers = tuple(_driver(entry) for entry in opinionated[: settings.max_drivers])
    view = SentimentView(
        bias=bias,
        score=score,
        items_considered=len(scored),
        items_opinionated=len(opinionated),
        evidence=evidence,
        agreement=agreement,
        drivers=drivers,
    )
    if not opinionated:
        reasoning = f"neutral: none of {len(scored)} relevant item(s) carries an opinion the lexicon knows"
    else:
        reasoning = (
            f"{bias.value}: score {score:+.2f} from {len(opinionated)} of {len(scored)} relevant item(s), "
            f"agreement {agreement:.2f}, evidence {evidence:.2f}; strongest: "
            + ", ".join(f"{driver.score:+.2f} (item {driver.id} from {driver.source})" for driver in drivers[:3])
        )
    return Baseline(view, confidence, reasoning)


def _driver(entry: ScoredItem) -> Driver:
    item = entry.item
    return Driver(
        id=item.id,
        source=item.source,
        title=item.title[:DRIVER_TITLE_CHARS],
        published_at=item.published_at,
        score=entry.score,
        weight=min(1.0, entry.weight),
    )


# --------------------------------------------------------------------------------------------------- agent


@dataclass(frozen=True, slots=True)
class SentimentContext:
    symbol: str
    allow_llm: bool = True


class SentimentAgent:
    """Publishes on sentiment_updates; reads its items from an ``ItemPool`` shared by every symbol."""

    def __init__(
        self,
        settings: SentimentSettings,
        *,
        clock: Clock,
        pool: ItemPool,
        gateway: LLMGateway | None = None,
        prompts: RefinementPrompts | None = None,
        mask: HistoryMask | None = None,
        new_id: Callable[[], UUID] = uuid4,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._pool = pool
        self._refiner = configured_refiner(
            "sentiment", REFINEMENT_PURPOSE, settings.llm_provider, gateway, prompts, mask
        )
        self._new_id = new_id
        self._valid_for = timedelta(seconds=settings.valid_seconds)

    @property
    def name(self) -> AgentName:
        return AgentName.SENTIMENT

    @property
    def valid_for(self) -> timedelta:
        return self._valid_for

    async def analyze(self, context: SentimentContext) -> SentimentOutput:
        now = self._clock.now()
        scored = score_items(context.symbol, await self._pool.items(now), now, self._settings)
        baseline = assess_sentiment(scored, self._settings)
        output_id = self._new_id()
        body, confidence, reasoning, llm_call_id = baseline.body, baseline.confidence, baseline.reasoning, None
        refiner = self._refiner
        if refiner is not None and context.allow_llm and scored:
            request = self._refinement_request(refiner, output_id, context.symbol, baseline, scored, now)
            refinement = await request_refinement(refiner, request, SentimentRefinement)
            answer = refinement.answer
            if answer is not None:
                bias = bias_of(answer.score, self._settings.neutral_band)
                body = body.model_copy(update={"score": answer.score, "bias": bias})
                confidence, llm_call_id = answer.confidence, refinement.call_id
            reasoning = refinement.explain(reasoning, answer.reasoning if answer is not None else None)
        return SentimentOutput(
            id=output_id,
            agent=AgentName.SENTIMENT,
            symbol=context.symbol,
            timestamp=now,
            confidence=confidence,
            body=body,
            reasoning=reasoning,
            llm_call_id=llm_call_id,
        )

    def _refinement_request(
        self,
        refiner: Refiner,
        output_id: UUID,
        symbol: str,
        baseline: Baseline[SentimentView],
        scored: Sequence[ScoredItem],
        now: datetime,
    ) -> LLMRequest:
        shown = scored[: self._settings.max_prompt_items]
        view = baseline.body
        facts: dict[str, JsonValue] = {"score": view.score, "confidence": baseline.confidence}
        numbers = {
            **facts,
            "bias": view.bias.value,
            "items_considered": view.items_considered,
            "items_opinionated": view.items_opinionated,
            "item_scores": [round(entry.score, 3) for entry in shown],
            "item_weights": [round(entry.weight, 3) for entry in shown],
        }
        prompts, mask = refiner.prompts, refiner.mask
        lines = [_item_line(entry.item, mask, now) for entry in shown]
        return LLMRequest(
            purpose=REFINEMENT_PURPOSE,
            system_prompt=prompts.system_prompt(),
            user_prompt=prompts.user.render(
                symbol=mask.symbol(symbol),
                baseline=json.dumps(numbers, sort_keys=True),
                items=data_block("items", lines),
            ),
            context={"symbol": symbol, "baseline": facts, "item_ids": [entry.item.id for entry in shown]},
            served_id=output_id,
        )


def _item_line(item: TextItem, mask: HistoryMask, now: datetime) -> str:
    """An item as the prompt shows it: published time, source, title and summary (through ``mask``)."""
    published = mask.moment(item.published_at, now) if mask.enabled else f"{item.published_at:%Y-%m-%d %H:%M} UTC"
    line = f"{published} | {item.source} | {mask.text(item.title)}"
    return line + (f" | {mask.text(item.summary)}" if item.summary else "")
