"""Prompts a model cannot place in history: no symbol names, no absolute dates, no absolute price levels.

A model asked about BTC/USDT on 2024-03-11 at 68,900 may remember what happened next, and a replay scored on
that memory is worth nothing. With ``llm.mask_history`` on, prompt builders pass what they show through a
``HistoryMask``:

- symbols and their assets become aliases (``BTC/USDT`` → ``ASSET_A/QUOTE_A``; in free text, the asset codes and
  the common names of well-known assets too, e.g. "Bitcoin"), and answers map back (``unmask``);
- times become relative to the moment of the question (``15 min ago``); in free text, ISO dates and years are
  replaced (``[date]``, ``[year]``);
- prices (and price distances such as an ATR) are indexed to the symbol's first close seen by the run, taken as
  100: ratios, trends and distances are kept, levels are not.

``HistoryMask.off()`` changes nothing, so prompt builders use a mask either way.

    mask = HistoryMask(["BTC/USDT"], enabled=True)
    mask.anchor("BTC/USDT", 42_000.0)                # the run's first close
    mask.symbol("BTC/USDT"), mask.price("BTC/USDT", 43_050.0)     # "ASSET_A/QUOTE_A", 102.5
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeAlias

from triplegain.llm.models import AnswerT
from triplegain.llm.settings import MaskMode, ProviderKind, ProviderSettings

INDEX_BASE = 100.0
"""What a symbol's first close becomes."""

ASSET_NAMES: Mapping[str, tuple[str, ...]] = {
    "BTC": ("bitcoin", "xbt"),
    "ETH": ("ethereum", "ether"),
    "XRP": ("ripple",),
    "SOL": ("solana",),
    "ADA": ("cardano",),
    "DOGE": ("dogecoin",),
    "USDT": ("tether",),
    "USDC": ("usd coin",),
}
"""Names by which news text refers to an asset (best effort: a headline may still describe an asset)."""

_Replace: TypeAlias = Callable[[str], str]
_ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b")
_YEAR = re.compile(r"(?<![\d.])(?:19|20)\d{2}(?!\d|[.,]\d)")


def masks_history(mode: MaskMode, *, replaying: bool, providers: Iterable[ProviderSettings]) -> bool:
    """Whether a run masks its prompts: ``replay`` — a replay whose prompts go to a model over the network (the
    offline rules remember nothing); ``always``; ``never``."""
    if mode == "always":
        return True
    if mode == "never" or not replaying:
        return False
    return any(provider.kind is not ProviderKind.OFFLINE for provider in providers)


class HistoryMask:
    """Aliases for the run's symbols, each symbol's anchor price, and the rewriting of what a prompt shows."""

    def __init__(self, symbols: Sequence[str], *, enabled: bool) -> None:
        self.enabled = enabled
        self._anchors: dict[str, float] = {}
        bases = _distinct(symbol.partition("/")[0] for symbol in sorted(symbols))
        quotes = _distinct(symbol.partition("/")[2] for symbol in sorted(symbols))
        self._assets = {asset: f"ASSET_{_letters(i)}" for i, asset in enumerate(bases)}
        self._assets.update({asset: f"QUOTE_{_letters(i)}" for i, asset in enumerate(quotes) if asset})
        self._symbols = {symbol: self._alias_of(symbol) for symbol in symbols}
        terms = dict(self._symbols)
        for asset, alias in self._assets.items():
            terms[asset] = alias
            for name in ASSET_NAMES.get(asset.upper(), ()):
                terms[name] = alias
        self._hide = _replacer(terms, ignore_case=True)
        reveal = {alias: symbol for symbol, alias in self._symbols.items()}
        reveal.update({alias: asset for asset, alias in self._assets.items()})
        self._reveal = _replacer(reveal, ignore_case=False)

    @classmethod
    def off(cls) -> HistoryMask:
        """A mask that changes nothing."""
        return cls((), enabled=False)

    def anchor(self, symbol: str, close: float) -> None:
        """The first close of ``symbol`` the run sees: its prices are indexed to it (later calls change nothing)."""
        if close > 0:
            self._anchors.setdefault(symbol, close)

    def symbol(self, symbol: str) -> str:
        """``symbol``'s alias."""
        if not self.enabled:
            return symbol
        return self._symbols.get(symbol) or self._alias_of(symbol)

    def price(self, symbol: str, value: float | None) -> float | None:
        """A price level or distance of ``symbol``, indexed to its first close = 100."""
        if not self.enabled or value is None:
            return value
        anchor = self._anchors.get(symbol) or abs(value) or 1.0
        return round(value * INDEX_BASE / anchor, 6)

    def moment(self, at: datetime, now: datetime) -> str:
        """``at`` as seen from ``now``."""
        if not self.enabled:
            return at.isoformat()
        minutes = round((now - at) / timedelta(minutes=1))
        if minutes == 0:
            return "now"
        return f"{minutes} min ago" if minutes > 0 else f"in {-minutes} min"

    def text(self, text: str) -> str:
        """Free text (a headline, a summary) without the run's symbols, assets, dates and years."""
        if not self.enabled:
            return text
        return _YEAR.sub("[year]", _ISO_DATE.sub("[date]", self._hide(text)))

    def unmask(self, text: str) -> str:
        """An answer's text with the aliases named again."""
        return self._reveal(text) if self.enabled else text

    def answer(self, answer: AnswerT) -> AnswerT:
        """``answer`` with every text field unmasked."""
        if not self.enabled:
            return answer
        texts = {name: self.unmask(value) for name, value in answer if type(value) is str}
        return answer.model_copy(update=texts)

    def _alias_of(self, symbol: str) -> str:
        base, _, quote = symbol.partition("/")
        aliases = [self._assets.get(base, "ASSET"), self._assets.get(quote, "QUOTE")] if quote else [base]
        return "/".join(aliases)


def _distinct(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _letters(index: int) -> str:
    """A, B, … Z, AA, AB …"""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def _replacer(terms: Mapping[str, str], *, ignore_case: bool) -> _Replace:
    """Replaces each whole-word occurrence of a term (the longest first) by its replacement."""
    if not terms:
        return lambda text: text
    ordered = sorted(terms, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![A-Za-z0-9_])(" + "|".join(re.escape(term) for term in ordered) + r")(?![A-Za-z0-9_])",
        re.IGNORECASE if ignore_case else 0,
    )
    folded = {term.casefold(): replacement for term, replacement in terms.items()}
    if ignore_case:
        return lambda text: pattern.sub(lambda match: folded[match.group(0).casefold()], text)
    return lambda text: pattern.sub(lambda match: terms[match.group(0)], text)
