"""The ``execution`` settings and their market rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from triplegain.execution.settings import ExecutionSettings, FeeSchedule, MarketRules

pytestmark = pytest.mark.timeout(30)

FALLBACK = MarketRules(min_qty=1e-8, qty_step=1e-8, price_step=1e-8, min_notional=5.0)


def test_the_defaults_describe_a_spot_account_of_10000_usdt_on_kraken() -> None:
    settings = ExecutionSettings()
    assert (settings.exchange, settings.quote_asset, settings.starting_balances) == ("kraken", "USDT", {"USDT": 1e4})
    assert not settings.allow_borrowing
    assert settings.rules_for("BTC/USDT") == FALLBACK
    for name, field in ExecutionSettings.model_fields.items():
        assert field.description, f"execution.{name} needs a description (config/default.yaml shows it)"


def test_an_exchange_without_fees_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(
        ValidationError, match=r"exchange 'coinbase' has no fee schedule in fees \(known: binance, kraken\)"
    ):
        ExecutionSettings(exchange="coinbase")
    assert ExecutionSettings(exchange="coinbase", fees={"coinbase": FeeSchedule()}).fee_schedule == FeeSchedule()


def test_negative_starting_balances_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="starting_balances must be ≥ 0"):
        ExecutionSettings(starting_balances={"USDT": -1.0})
    with pytest.raises(ValidationError, match="slipage_bps"):
        ExecutionSettings.model_validate({"slipage_bps": 3})


def test_configured_markets_override_the_default() -> None:
    rules = MarketRules(min_qty=0.0001, qty_step=0.0001, price_step=0.1, min_notional=10.0)
    assert ExecutionSettings(markets={"BTC/USDT": rules}).rules_for("BTC/USDT") == rules
