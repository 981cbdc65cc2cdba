"""Spot books: balances, positions, realised results and valuation (``triplegain.execution.accounting``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triplegain.execution.accounting import (
    RECENT_CLOSED_TRADES,
    FillEffect,
    Ledger,
    apply_fill,
    split_symbol,
    tradable,
)
from triplegain.execution.settings import MarketRules
from triplegain.model import OrderSide

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
RULES = MarketRules(min_qty=0.001, qty_step=0.001, price_step=0.01)
SYMBOL = "BTC/USDT"


def fill(
    side: OrderSide,
    qty: float,
    price: float,
    fee: float = 0.0,
    *,
    minute: int = 0,
    stop: float | None = None,
    target: float | None = None,
    symbol: str = SYMBOL,
) -> FillEffect:
    return FillEffect(
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        fee=fee,
        ts=T0 + timedelta(minutes=minute),
        stop_price=stop,
        target_price=target,
    )


def apply_all(ledger: Ledger, *fills: FillEffect) -> tuple[Ledger, list[float]]:
    pnls = []
    for effect in fills:
        ledger, closed = apply_fill(ledger, effect, RULES)
        if closed is not None:
            pnls.append(closed.pnl)
    return ledger, pnls


def usdt(amount: float = 10_000.0, **held: float) -> Ledger:
    return Ledger.starting("USDT", {"USDT": amount, **held})


def test_a_buy_spends_quote_and_fee_and_adds_base() -> None:
    ledger, _ = apply_all(usdt(), fill("buy", 2.0, 100.0, fee=0.5, stop=95.0, target=110.0))
    assert ledger.balances == {"USDT": 10_000.0 - 200.0 - 0.5, "BTC": 2.0}
    assert ledger.fees_paid == 0.5
    position = ledger.positions[SYMBOL]
    assert (position.qty, position.avg_price, position.stop_price, position.target_price) == (2.0, 100.0, 95.0, 110.0)
    assert position.entry_fees == 0.5


def test_a_round_trip_closes_a_trade_with_its_result_after_both_fees() -> None:
    ledger, pnls = apply_all(usdt(), fill("buy", 2.0, 100.0, fee=0.5), fill("sell", 2.0, 110.0, fee=0.6, minute=5))
    assert pnls == [pytest.approx(20.0 - 0.5 - 0.6)]
    assert ledger.positions == {}
    assert ledger.balances["BTC"] == 0.0
    assert ledger.cash == pytest.approx(10_000.0 + 20.0 - 1.1)
    assert ledger.closed_trades[0].closed_at == T0 + timedelta(minutes=5)


def test_a_partial_exit_realises_its_share_and_the_trade_closes_with_the_last_part() -> None:
    ledger, pnls = apply_all(
        usdt(),
        fill("buy", 2.0, 100.0, fee=1.0),
        fill("sell", 1.0, 120.0, fee=0.2, minute=5),
    )
    assert pnls == []
    position = ledger.positions[SYMBOL]
    assert (position.qty, position.avg_price) == (1.0, 100.0)
    assert position.realized_pnl == pytest.approx(20.0 - 0.5 - 0.2)
    assert position.entry_fees == pytest.approx(0.5)
    ledger, pnls = apply_all(ledger, fill("sell", 1.0, 90.0, fee=0.1, minute=10))
    assert pnls == [pytest.approx((20.0 - 0.5 - 0.2) + (-10.0 - 0.5 - 0.1))]


def test_adding_averages_the_entry_and_new_protection_replaces_the_old() -> None:
    ledger, _ = apply_all(usdt(), fill("buy", 1.0, 100.0, stop=95.0, target=110.0), fill("buy", 3.0, 120.0, minute=5))
    position = ledger.positions[SYMBOL]
    assert position.avg_price == pytest.approx(115.0)
    assert (position.stop_price, position.target_price) == (95.0, 110.0), "an order without protection keeps it"
    ledger, _ = apply_all(ledger, fill("buy", 1.0, 100.0, stop=105.0, target=130.0, minute=10))
    assert (ledger.positions[SYMBOL].stop_price, ledger.positions[SYMBOL].target_price) == (105.0, 130.0)
    ledger, _ = apply_all(ledger, fill("sell", 1.0, 100.0, stop=140.0, target=90.0, minute=15))
    assert ledger.positions[SYMBOL].stop_price == 105.0, "a reducing order keeps the position's protection"


def test_selling_more_than_held_closes_the_long_and_opens_a_short() -> None:
    ledger, pnls = apply_all(
        usdt(), fill("buy", 1.0, 100.0, fee=0.2), fill("sell", 3.0, 110.0, fee=0.6, stop=120.0, target=90.0, minute=5)
    )
    assert pnls == [pytest.approx(10.0 - 0.2 - 0.2)]
    short = ledger.positions[SYMBOL]
    assert (short.qty, short.avg_price, short.stop_price, short.target_price) == (-2.0, 110.0, 120.0, 90.0)
    assert short.entry_fees == pytest.approx(0.4)
    assert ledger.balances["BTC"] == -2.0
    ledger, pnls = apply_all(ledger, fill("buy", 2.0, 100.0, fee=0.4, minute=10))
    assert pnls == [pytest.approx(20.0 - 0.4 - 0.4)], "a short gains when the price falls"


def test_holdings_without_a_position_are_taken_in_at_the_fill_price() -> None:
    ledger, pnls = apply_all(usdt(1_000.0, BTC=0.5), fill("sell", 0.5, 100.0, fee=0.1))
    assert pnls == [pytest.approx(-0.1)], "the result of starting holdings counts from their first fill"
    assert ledger.balances == {"USDT": 1_000.0 + 50.0 - 0.1, "BTC": 0.0}


def test_dust_left_by_a_sell_closes_the_position_but_stays_in_the_balance() -> None:
    ledger, pnls = apply_all(usdt(), fill("buy", 1.0005, 100.0), fill("sell", 1.0, 100.0, minute=5))
    assert pnls == [pytest.approx(0.0)]
    assert ledger.positions == {}
    assert ledger.balances["BTC"] == pytest.approx(0.0005)
    assert not tradable(0.0005, RULES)


def test_base_balances_are_summed_in_decimal_so_nothing_is_left_behind() -> None:
    ledger, _ = apply_all(
        usdt(), fill("buy", 0.1, 100.0), fill("buy", 0.2, 100.0, minute=1), fill("sell", 0.3, 100.0, minute=2)
    )
    assert ledger.balances["BTC"] == 0.0


def test_equity_values_each_holding_at_its_last_price_and_drawdown_follows_the_peak() -> None:
    ledger, _ = apply_all(usdt(), fill("buy", 10.0, 100.0))
    assert ledger.equity() == pytest.approx(10_000.0), "no mark yet: valued at the entry"
    ledger = ledger.mark(SYMBOL, 120.0).with_peak()
    assert ledger.equity() == pytest.approx(10_200.0)
    assert ledger.peak_equity == pytest.approx(10_200.0)
    ledger = ledger.mark(SYMBOL, 99.0).with_peak()
    assert ledger.peak_equity == pytest.approx(10_200.0)
    assert ledger.drawdown() == pytest.approx(1 - 9_990.0 / 10_200.0)


def test_an_asset_without_any_price_counts_zero() -> None:
    assert usdt(100.0, XRP=1_000.0).equity() == 100.0
    assert usdt(100.0, XRP=1_000.0).mark("XRP/USDT", 0.5).equity() == 600.0


def test_only_the_recent_closed_trades_are_kept() -> None:
    ledger = usdt()
    for index in range(RECENT_CLOSED_TRADES + 5):
        ledger, _ = apply_all(
            ledger, fill("buy", 1.0, 100.0, minute=2 * index), fill("sell", 1.0, 100.0, minute=2 * index + 1)
        )
    assert len(ledger.closed_trades) == RECENT_CLOSED_TRADES


def test_symbols_split_into_base_and_quote() -> None:
    assert split_symbol("BTC/USDT") == ("BTC", "USDT")
    assert split_symbol("BTC/USDT:USDT") == ("BTC", "USDT")
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        split_symbol("BTCUSDT")
