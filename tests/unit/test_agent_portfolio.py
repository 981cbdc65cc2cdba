"""The portfolio agent: allocation validation, drift, proposals, minimum orders, scoping, and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from triplegain.agents import (
    AgentsSettings,
    Holdings,
    PortfolioAgent,
    PortfolioContext,
    PortfolioSettings,
    PortfolioView,
    plan_rebalance,
)
from triplegain.clock import FakeClock
from triplegain.model import AgentName, OrderSide

SETTINGS = PortfolioSettings()
PRICES = {"BTC": 40_000.0, "XRP": 0.5}


def holdings(btc: float, xrp: float, usdt: float) -> Holdings:
    return Holdings(balances={"BTC": btc, "XRP": xrp, "USDT": usdt}, prices=PRICES)


def by_asset(view: PortfolioView) -> dict[str, float]:
    return {position.asset: position.drift_points for position in view.positions}


# ------------------------------------------------------------------------------------------------ settings


def test_the_default_allocation_is_a_third_each() -> None:
    assert SETTINGS.target_allocation == {"BTC": 1 / 3, "XRP": 1 / 3, "USDT": 1 / 3}


def test_weights_must_sum_to_one_and_the_error_names_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        AgentsSettings.model_validate({"portfolio": {"target_allocation": {"BTC": 0.5, "XRP": 0.3, "USDT": 0.1}}})
    [error] = caught.value.errors()
    assert error["loc"] == ("portfolio", "target_allocation")
    assert "weights sum to 0.9" in error["msg"]
    assert "must sum to 1 (within 1e-09)" in error["msg"]


def test_a_sum_within_the_tolerance_is_accepted() -> None:
    PortfolioSettings(target_allocation={"BTC": 0.1, "XRP": 0.2, "USDT": 0.7 + 5e-10})


@pytest.mark.parametrize(
    ("allocation", "message"),
    [
        ({"BTC": 1.5, "USDT": -0.5}, "each weight must be between 0 and 1"),
        ({"BTC": 0.5, "XRP": 0.5}, "no weight for the quote asset 'USDT'"),
    ],
)
def test_bad_allocations_are_refused(allocation: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PortfolioSettings(target_allocation=allocation)


# --------------------------------------------------------------------------------------------------- drift


def test_a_balanced_portfolio_has_no_proposals() -> None:
    view = plan_rebalance(holdings(0.25, 20_000, 10_000), SETTINGS)
    assert view.total_value == pytest.approx(30_000)
    assert by_asset(view) == pytest.approx({"BTC": 0.0, "XRP": 0.0, "USDT": 0.0}, abs=1e-9)
    assert (view.proposals, view.skipped) == ((), ())


def test_drift_beyond_the_threshold_is_rebalanced_to_target() -> None:
    view = plan_rebalance(holdings(0.4, 12_000, 8_000), SETTINGS)  # 16k BTC, 6k XRP, 8k USDT of 30k
    assert by_asset(view) == pytest.approx({"BTC": 20.0, "XRP": -13.333333, "USDT": -6.666667}, rel=1e-6)
    [buy_xrp, sell_btc] = sorted(view.proposals, key=lambda proposal: proposal.asset, reverse=True)
    assert (sell_btc.side, sell_btc.symbol) == (OrderSide.SELL, "BTC/USDT")
    assert sell_btc.notional == pytest.approx(6_000)
    assert sell_btc.quantity == pytest.approx(0.15)
    assert buy_xrp.side is OrderSide.BUY
    assert (buy_xrp.quantity, buy_xrp.notional) == pytest.approx((8_000, 4_000))
    assert [proposal.side for proposal in view.proposals] == [OrderSide.SELL, OrderSide.BUY]


def test_drift_within_the_threshold_is_left_alone() -> None:
    view = plan_rebalance(holdings(0.28, 19_000, 9_300), SETTINGS)  # BTC +4.1 pp
    assert view.proposals == ()


def test_orders_below_the_minimums_are_skipped_with_the_reason() -> None:
    settings = PortfolioSettings(min_order_notional={"BTC": 5.0, "XRP": 500.0})
    view = plan_rebalance(Holdings(balances={"BTC": 0.001, "XRP": 100.0, "USDT": 0.0}, prices=PRICES), settings)
    # 40 + 50 USDT: sell 10 USDT of BTC (above its minimum of 5) and 20 USDT of XRP (below its minimum of 500)
    assert [(proposal.asset, proposal.side) for proposal in view.proposals] == [("BTC", OrderSide.SELL)]
    assert view.proposals[0].quantity == pytest.approx(0.00025)
    [skipped] = view.skipped
    assert (skipped.asset, skipped.side) == ("XRP", OrderSide.SELL)
    assert skipped.notional == pytest.approx(20)
    assert skipped.reason == "notional 20.00 USDT is below the minimum 500"


def test_a_quantity_below_the_minimum_is_skipped() -> None:
    settings = PortfolioSettings(min_order_quantity={"BTC": 1.0, "XRP": 1.0})
    view = plan_rebalance(holdings(0.4, 12_000, 8_000), settings)
    assert [item.reason for item in view.skipped] == ["quantity 0.15 is below the minimum 1"]
    assert [proposal.asset for proposal in view.proposals] == ["XRP"]


def test_buys_are_funded_by_cash_and_sells_and_scaled_to_them() -> None:
    settings = PortfolioSettings(target_allocation={"BTC": 0.5, "XRP": 0.5, "USDT": 0.0}, min_order_notional={})
    cash_only = plan_rebalance(Holdings(balances={"USDT": 1_000.0}, prices=PRICES), settings)
    assert [proposal.notional for proposal in cash_only.proposals] == [pytest.approx(500), pytest.approx(500)]
    from_sale = plan_rebalance(Holdings(balances={"XRP": 4_000.0}, prices=PRICES), settings)
    assert [(proposal.asset, proposal.side) for proposal in from_sale.proposals] == [
        ("XRP", OrderSide.SELL),
        ("BTC", OrderSide.BUY),
    ]
    assert [proposal.notional for proposal in from_sale.proposals] == pytest.approx([1_000, 1_000])
    settings = settings.model_copy(update={"min_order_notional": {"XRP": 5_000.0}})
    unfunded = plan_rebalance(Holdings(balances={"XRP": 4_000.0}, prices=PRICES), settings)
    assert unfunded.proposals == ()
    assert [item.reason for item in unfunded.skipped] == [
        "notional 1000.00 USDT is below the minimum 5000",
        "no USDT to fund it",
    ]


def test_an_empty_portfolio_proposes_nothing() -> None:
    view = plan_rebalance(Holdings(balances={}, prices=PRICES), SETTINGS)
    assert (view.total_value, view.proposals) == (0.0, ())


def test_an_asset_without_a_price_is_an_error() -> None:
    with pytest.raises(ValueError, match="no price for XRP"):
        plan_rebalance(Holdings(balances={"BTC": 1.0}, prices={"BTC": 40_000.0}), SETTINGS)


def test_bad_balances_and_prices_are_refused() -> None:
    with pytest.raises(ValidationError, match="quantities must be finite and ≥ 0"):
        Holdings(balances={"BTC": -1.0}, prices=PRICES)
    with pytest.raises(ValidationError, match="prices must be finite and > 0"):
        Holdings(balances={}, prices={"BTC": math.nan})


# ------------------------------------------------------------------------------------------------- properties


amounts = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(btc=st.floats(0, 50), xrp=amounts, usdt=amounts, btc_price=st.floats(1, 1e5), xrp_price=st.floats(1e-3, 10))
def test_proposals_move_drift_toward_zero_and_never_oversell(
    btc: float, xrp: float, usdt: float, btc_price: float, xrp_price: float
) -> None:
    prices = {"BTC": btc_price, "XRP": xrp_price}
    start = Holdings(balances={"BTC": btc, "XRP": xrp, "USDT": usdt}, prices=prices)
    view = plan_rebalance(start, SETTINGS)
    after = dict(start.balances)
    for proposal in view.proposals:
        sign = 1 if proposal.side is OrderSide.BUY else -1
        if proposal.side is OrderSide.SELL:
            assert proposal.quantity <= start.balances[proposal.asset] * (1 + 1e-12)
        after[proposal.asset] += sign * proposal.quantity
        after["USDT"] -= sign * proposal.notional
    assert after["USDT"] >= -1e-6 * max(1.0, view.total_value)
    rebalanced = plan_rebalance(Holdings(balances={k: max(v, 0.0) for k, v in after.items()}, prices=prices), SETTINGS)
    before, later = by_asset(view), by_asset(rebalanced)
    for proposal in view.proposals:
        assert abs(later[proposal.asset]) <= abs(before[proposal.asset]) + 1e-9
    assert sum(map(abs, later.values())) <= sum(map(abs, before.values())) + 1e-9


# ------------------------------------------------------------------------------------------------------ agent


async def test_a_symbol_view_holds_only_that_market() -> None:
    clock = FakeClock()
    agent = PortfolioAgent(SETTINGS, clock=clock)
    context = PortfolioContext("XRP/USDT", holdings(0.4, 12_000, 8_000))
    output = await agent.analyze(context)
    assert (output.agent, output.symbol, output.confidence, output.timestamp) == (
        AgentName.PORTFOLIO,
        "XRP/USDT",
        1.0,
        clock.now(),
    )
    assert [position.asset for position in output.body.positions] == ["XRP", "USDT"]
    assert [proposal.symbol for proposal in output.body.proposals] == ["XRP/USDT"]
    assert output.body.total_value == pytest.approx(30_000)
    assert "XRP 20.0% vs target 33.3% (-13.3 pp)" in output.reasoning


async def test_the_whole_portfolio_view_has_no_symbol() -> None:
    output = await PortfolioAgent(SETTINGS, clock=FakeClock()).analyze(
        PortfolioContext(None, holdings(0.4, 12_000, 8_000))
    )
    assert output.symbol is None
    assert [position.asset for position in output.body.positions] == ["BTC", "XRP", "USDT"]
    assert len(output.body.proposals) == 2


async def test_a_symbol_in_another_quote_is_refused() -> None:
    with pytest.raises(ValueError, match="BTC/EUR is not quoted in the portfolio's quote asset USDT"):
        await PortfolioAgent(SETTINGS, clock=FakeClock()).analyze(
            PortfolioContext("BTC/EUR", holdings(0.4, 12_000, 8_000))
        )
