"""Market rules from ccxt's market data (``exchange.load_markets()``), for ``PaperBroker(market_rules=...)``.

ccxt describes each market's precision in the exchange's ``precisionMode``: as a tick size (``TICK_SIZE``, e.g.
kraken: ``amount`` 1e-08) or as a number of decimal places (``DECIMAL_PLACES``: 8 means 1e-08). Significant
digits cannot be one fixed step, so for those, and for anything the data leaves out, the fallback's value is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from triplegain.execution.settings import MarketRules

DECIMAL_PLACES = 2
TICK_SIZE = 4
"""ccxt's precision modes (``ccxt.DECIMAL_PLACES``, ``ccxt.TICK_SIZE``), repeated to avoid importing ccxt."""


def rules_from_ccxt(
    markets: Mapping[str, Mapping[str, Any]], precision_mode: int, fallback: MarketRules
) -> dict[str, MarketRules]:
    """Symbol → rules for every market ccxt lists; a value it does not give is ``fallback``'s."""
    return {symbol: _rules(market, precision_mode, fallback) for symbol, market in markets.items()}


def _rules(market: Mapping[str, Any], precision_mode: int, fallback: MarketRules) -> MarketRules:
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    min_qty = _positive((limits.get("amount") or {}).get("min"))
    min_notional = _positive((limits.get("cost") or {}).get("min"))
    return MarketRules(
        min_qty=min_qty if min_qty is not None else fallback.min_qty,
        qty_step=_step(precision.get("amount"), precision_mode) or fallback.qty_step,
        price_step=_step(precision.get("price"), precision_mode) or fallback.price_step,
        min_notional=min_notional if min_notional is not None else fallback.min_notional,
    )


def _step(value: Any, precision_mode: int) -> float | None:
    number = _positive(value)
    if number is None:
        return None
    if precision_mode == TICK_SIZE:
        return number
    if precision_mode == DECIMAL_PLACES and number == int(number):
        return float(10.0 ** -int(number))
    return None


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
