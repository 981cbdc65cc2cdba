"""Prices, slippage, fees, rounding and triggers of paper fills (``triplegain.execution.fills``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from triplegain.execution.fills import (
    ExitKind,
    attached_exit,
    fee,
    floor_qty,
    limit_fill_price,
    round_price,
    slippage_bps,
    taker_price,
    trigger_reference,
)
from triplegain.execution.settings import MAX_SLIPPAGE_BPS, ExecutionSettings, FeeSchedule, MarketRules
from triplegain.market.candle import Candle, Timeframe

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
FINE = MarketRules(min_qty=0.0, qty_step=1e-8, price_step=1e-8)
CENTS = MarketRules(min_qty=0.0, qty_step=0.001, price_step=0.01)


def candle(open_: float, high: float, low: float, close: float, volume: float = 1_000.0) -> Candle:
    return Candle(
        symbol="BTC/USDT",
        timeframe=Timeframe.M5,
        open_time=T0,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )


def test_a_market_buy_pays_the_slippage_above_the_price_and_a_sell_gets_it_below() -> None:
    settings = ExecutionSettings(slippage_bps=10.0)
    assert taker_price("buy", 100.0, 1.0, 1_000.0, settings, FINE) == pytest.approx(100.1)
    assert taker_price("sell", 100.0, 1.0, 1_000.0, settings, FINE) == pytest.approx(99.9)


def test_slippage_grows_with_the_share_of_the_candle_volume_taken() -> None:
    settings = ExecutionSettings(slippage_bps=5.0, slippage_volume_bps=2.0)
    assert slippage_bps(10.0, 1_000.0, settings) == pytest.approx(5.0 + 2.0 * 1.0)  # 1 % of the volume
    assert slippage_bps(250.0, 1_000.0, settings) == pytest.approx(5.0 + 2.0 * 25.0)
    assert slippage_bps(5_000.0, 1_000.0, settings) == pytest.approx(5.0 + 2.0 * 100.0), "participation caps at 100 %"
    assert slippage_bps(1.0, 0.0, settings) == pytest.approx(5.0 + 2.0 * 100.0), "no volume counts as all of it"
    assert taker_price("buy", 100.0, 250.0, 1_000.0, settings, FINE) == pytest.approx(100.0 * 1.0055)


def test_volume_scaling_is_off_by_default_and_total_slippage_is_capped() -> None:
    assert slippage_bps(5_000.0, 1.0, ExecutionSettings(slippage_bps=5.0)) == 5.0
    extreme = ExecutionSettings(slippage_bps=1_000.0, slippage_volume_bps=100.0)
    assert slippage_bps(1.0, 1.0, extreme) == MAX_SLIPPAGE_BPS
    assert taker_price("sell", 100.0, 1.0, 1.0, extreme, FINE) == pytest.approx(50.0)


def test_fees_are_taker_or_maker_bps_of_the_notional() -> None:
    schedule = FeeSchedule(maker_bps=16.0, taker_bps=26.0)
    assert fee(10_000.0, "taker", schedule) == pytest.approx(26.0)
    assert fee(10_000.0, "maker", schedule) == pytest.approx(16.0)


def test_the_default_fees_are_krakens_base_tier_and_the_exchange_picks_the_schedule() -> None:
    assert ExecutionSettings().fee_schedule == FeeSchedule(maker_bps=25.0, taker_bps=40.0)
    assert ExecutionSettings(exchange="binance").fee_schedule == FeeSchedule(maker_bps=10.0, taker_bps=10.0)


def test_quantities_floor_to_the_step_exactly() -> None:
    assert floor_qty(Decimal("0.123456789"), 1e-8) == Decimal("0.12345678")
    assert floor_qty(0.3, 0.1) == Decimal("0.3"), "decimal arithmetic: 0.3 is three steps of 0.1, not 2.999…"
    assert floor_qty(1.9999, 0.5) == Decimal("1.5")
    assert floor_qty(0.0004, 0.001) == 0


def test_prices_round_to_the_step_against_the_trader() -> None:
    assert round_price(100.001, 0.01, "buy") == 100.01
    assert round_price(100.009, 0.01, "sell") == 100.0
    assert round_price(100.0, 0.01, "buy") == 100.0, "a price on the grid stays"
    assert round_price(0.001, 0.01, "sell") == 0.01, "never below one step"
    assert taker_price("buy", 100.0, 1.0, 1_000.0, ExecutionSettings(slippage_bps=1.0), CENTS) == 100.01


def test_a_limit_buy_fills_when_the_candle_trades_through_it() -> None:
    assert limit_fill_price("buy", 99.0, candle(100.0, 101.0, 98.5, 100.0)) == 99.0
    assert limit_fill_price("buy", 99.0, candle(100.0, 101.0, 99.0, 100.0)) is None, "a touch is not a fill"
    assert limit_fill_price("buy", 99.0, candle(100.0, 101.0, 99.5, 100.0)) is None
    assert limit_fill_price("buy", 99.0, candle(97.0, 98.0, 96.0, 97.5)) == 97.0, "opened below: fills at the open"


def test_a_limit_sell_fills_when_the_candle_trades_through_it() -> None:
    assert limit_fill_price("sell", 101.0, candle(100.0, 101.5, 99.0, 100.0)) == 101.0
    assert limit_fill_price("sell", 101.0, candle(100.0, 101.0, 99.0, 100.0)) is None
    assert limit_fill_price("sell", 101.0, candle(103.0, 104.0, 102.0, 103.0)) == 103.0, "opened above: the open"


def test_a_sell_stop_triggers_at_its_price_or_at_a_gap_open() -> None:
    assert trigger_reference(ExitKind.STOP_LOSS, "sell", 95.0, candle(100.0, 101.0, 95.0, 96.0)) == 95.0
    assert trigger_reference(ExitKind.STOP_LOSS, "sell", 95.0, candle(100.0, 101.0, 95.5, 96.0)) is None
    assert trigger_reference(ExitKind.STOP_LOSS, "sell", 95.0, candle(93.0, 94.0, 92.0, 93.0)) == 93.0, "gap: worse"


def test_a_buy_stop_and_the_targets_trigger_the_other_way() -> None:
    assert trigger_reference(ExitKind.STOP_LOSS, "buy", 105.0, candle(100.0, 105.0, 99.0, 104.0)) == 105.0
    assert trigger_reference(ExitKind.TAKE_PROFIT, "sell", 110.0, candle(100.0, 111.0, 99.0, 104.0)) == 110.0
    assert trigger_reference(ExitKind.TAKE_PROFIT, "sell", 110.0, candle(112.0, 113.0, 111.0, 112.0)) == 112.0
    assert trigger_reference(ExitKind.TAKE_PROFIT, "buy", 90.0, candle(100.0, 101.0, 89.0, 95.0)) == 90.0
    assert trigger_reference(ExitKind.TAKE_PROFIT, "buy", 90.0, candle(100.0, 101.0, 91.0, 95.0)) is None


def test_stop_and_target_in_the_same_candle_the_worse_one_fills() -> None:
    wide = candle(100.0, 111.0, 94.0, 105.0)
    assert attached_exit(1.0, 95.0, 110.0, wide) == (ExitKind.STOP_LOSS, 95.0, 95.0), "long: the stop, not the target"
    assert attached_exit(-1.0, 105.0, 95.0, wide) == (ExitKind.STOP_LOSS, 105.0, 105.0), "short: the stop too"


def test_a_position_exit_fires_only_what_the_candle_reached() -> None:
    assert attached_exit(1.0, 95.0, 110.0, candle(100.0, 111.0, 99.0, 108.0)) == (ExitKind.TAKE_PROFIT, 110.0, 110.0)
    assert attached_exit(1.0, 95.0, 110.0, candle(100.0, 105.0, 96.0, 101.0)) is None
    assert attached_exit(1.0, None, None, candle(100.0, 200.0, 1.0, 101.0)) is None
