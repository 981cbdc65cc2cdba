"""A small crypto-finance sentiment lexicon with negation, for the sentiment agent's deterministic baseline.

Text is lower-cased, ``n't`` becomes `` not`` and it is split into words (letters and digits; hyphens and
punctuation separate words, so "all-time high" is the phrase all time high). At each word the longest matching
phrase (up to three words) is taken; its valence is flipped and damped (× −0.75) when a negator stands within
the three words before it ("not a crash", "no ETF approval"). An item's score is tanh(sum of valences): one
strong word gives ±0.76, and it never leaves [−1, 1].
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

NEGATION_FACTOR = -0.75
NEGATION_SCOPE = 3
MAX_PHRASE_WORDS = 3

NEGATORS = frozenset({"not", "no", "never", "without", "neither", "nor", "cannot", "none", "nobody", "nothing"})

_POSITIVE_STRONG = (
    "surge surges surged surging soar soars soared soaring skyrocket skyrockets skyrocketed rally rallies rallied "
    "rallying bullish breakout boom booming moon mooning ath"
)
_POSITIVE = (
    "gain gains gained rise rises rising rose jump jumps jumped climb climbs climbed rebound rebounds rebounded "
    "recover recovers recovered recovery approve approves approved approval adoption adopt adopts adopted "
    "partnership partners upgrade upgraded inflow inflows accumulate accumulation outperform outperforms "
    "outperformed beat beats optimism optimistic boost boosts boosted win wins won victory growth milestone "
    "buying demand upbeat strong strength record"
)
_NEGATIVE_STRONG = (
    "crash crashes crashed crashing plunge plunges plunged plunging collapse collapses collapsed hack hacks hacked "
    "exploit exploited scam scams fraud bankrupt bankruptcy insolvent insolvency bearish capitulation selloff "
    "ponzi"
)
_NEGATIVE = (
    "fall falls falling fell drop drops dropped dropping decline declines declined slump slumps slumped slide "
    "slides tumble tumbles tumbled sink sinks sank dump dumps dumped lawsuit lawsuits sue sues sued ban bans "
    "banned crackdown reject rejects rejected rejection delay delays delayed outflow outflows fear fears panic "
    "warn warns warning liquidation liquidations probe investigation subpoena penalty loss losses weak weakness "
    "halt halts halted suspend suspends suspended delist delists delisted delisting downgrade downgraded "
    "underperform underperforms selling"
)
_MILD_NEGATIVE = "risk risks concern concerns charges charged uncertainty volatile"

_PHRASES: Mapping[str, float] = {
    "all time high": 1.0,
    "record high": 1.0,
    "short squeeze": 0.6,
    "rate cut": 0.5,
    "rate cuts": 0.5,
    "sell off": -0.8,
    "rug pull": -1.0,
    "rate hike": -0.5,
    "rate hikes": -0.5,
    "all time low": -1.0,
}


def _entries(words: str, valence: float) -> dict[tuple[str, ...], float]:
    return {(word,): valence for word in words.split()}


LEXICON: Mapping[tuple[str, ...], float] = {
    **_entries(_POSITIVE_STRONG, 1.0),
    **_entries(_POSITIVE, 0.6),
    **_entries(_NEGATIVE_STRONG, -1.0),
    **_entries(_NEGATIVE, -0.6),
    **_entries(_MILD_NEGATIVE, -0.3),
    **{tuple(phrase.split()): valence for phrase, valence in _PHRASES.items()},
}
"""Phrase (a tuple of words) → valence in [−1, 1]."""

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class LexiconScore:
    score: float
    """tanh of the summed valences, in [−1, 1]."""
    hits: int
    """Lexicon phrases found; 0 means the text says nothing the lexicon knows."""


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("n't", " not"))


def lexicon_score(text: str) -> LexiconScore:
    """The text's sentiment by the lexicon (see the module docstring)."""
    words = words_of(text)
    total = 0.0
    hits = 0
    index = 0
    while index < len(words):
        match = _phrase_at(words, index)
        if match is None:
            index += 1
            continue
        length, valence = match
        if any(word in NEGATORS for word in words[max(0, index - NEGATION_SCOPE) : index]):
            valence *= NEGATION_FACTOR
        total += valence
        hits += 1
        index += length
    return LexiconScore(math.tanh(total), hits)


def _phrase_at(words: list[str], index: int) -> tuple[int, float] | None:
    """The longest lexicon phrase starting at ``words[index]``: its length and valence."""
    for length in range(min(MAX_PHRASE_WORDS, len(words) - index), 0, -1):
        valence = LEXICON.get(tuple(words[index : index + length]))
        if valence is not None:
            return length, valence
    return None
